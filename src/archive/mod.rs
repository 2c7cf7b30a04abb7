//! An archive as a whole: where its bytes come from ([`source`], the one
//! place that maps files), reading and validating it ([`reader`]), writing
//! one as a stream ([`writer`]), copying a stored blob from one archive
//! file into another (`copy`, the one place that asks the kernel to copy
//! between files), what its table of contents says
//! ([`info`]), and publishing a file atomically ([`publish`]); where an
//! archive lives ([`location`]: a path or a URL) and, with the `remote`
//! feature, reading and saving archives on object storage (`remote`).

pub(crate) mod copy;
pub mod info;
pub mod location;
pub mod publish;
pub mod reader;
#[cfg(feature = "remote")]
pub mod remote;
pub(crate) mod shared;
pub mod source;
pub mod writer;
