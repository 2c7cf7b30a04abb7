//! The bytes on disk, as `layout.md` specifies them: the header, table of
//! contents, frames and trailer ([`layout`]), the table read in place
//! ([`toc`]), chunked hashing ([`hash`]), codecs and byte filters
//! ([`codec`]), the value encoding ([`encoding`]) and the metadata block
//! ([`metadata`]). Nothing here knows of environments, files or saves.

pub mod codec;
pub mod encoding;
pub mod hash;
pub mod layout;
pub mod metadata;
pub(crate) mod pages;
pub mod toc;
