//! An archive as a whole: where its bytes come from ([`source`], the one
//! place that maps files), reading and validating it ([`reader`]), writing
//! one as a stream ([`writer`]), what its table of contents says
//! ([`info`]), and publishing a file atomically ([`publish`]).

pub mod info;
pub mod publish;
pub mod reader;
pub mod source;
pub mod writer;
