//! What `env_info` reports (spec 3.1): the archive's summary, its names and
//! a description of every binding, all read from the table of contents.
//!
//! The summary is built when asked for; the name list and the per-binding
//! details are read in place from the mapped table the first time they are
//! looked at, so asking for the summary of an archive of 100,000 bindings
//! does not allocate 100,000 strings.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use serde::{Serialize, Serializer};

use crate::format::layout::{Codec, RawEntry, SECTION_STORAGE, Section, Tag};
use crate::format::toc::TocView;

/// What `env_info` reports, plus per-binding details.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnvInfo {
    /// Format version, `"major.minor"`.
    pub version: String,
    /// Creation time, ISO 8601 UTC.
    pub created_at: String,
    /// Creation time, Unix seconds.
    pub created_timestamp: u64,
    /// Program that wrote the archive.
    pub created_by: String,
    /// Platform that wrote it.
    pub platform: String,
    /// Runtime version recorded in the header.
    pub achronyme_version: String,
    /// Bindings in the bindings section.
    pub num_bindings: u64,
    /// Bindings in the constants section.
    pub num_constants: u64,
    /// Bindings in the functions section.
    pub num_functions: u64,
    /// True when any blob is compressed.
    pub compressed: bool,
    /// The codec the save asked for ([`Codec::None`] when it asked for
    /// none). Blobs too small or too random to shrink are stored raw
    /// whatever is asked: `compressed_blobs` says how many were not.
    pub codec: Codec,
    /// Blobs stored compressed.
    pub compressed_blobs: u64,
    /// Tensor blobs of the storage section (format 1.3, layout.md 3.6):
    /// tensors nested in values, stored once. Not bindings.
    pub storage_blobs: u64,
    /// Bytes those blobs store.
    pub storage_bytes: u64,
    /// Bindings and constants that share another entry's blob instead of
    /// storing their own (format 1.3).
    pub shared_entries: u64,
    /// The algorithm of the blobs' chunk digests (layout.md 4.3).
    pub checksum: crate::hash::Checksum,
    /// File size in bytes.
    pub file_size: u64,
    /// Description, if any.
    pub description: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Custom metadata.
    pub custom: Vec<(String, String)>,
    /// Names in the bindings section, sorted (a slice of `String`s once
    /// looked at). Listing them checks the whole table of contents first
    /// (format 1.3 opens without reading it, layout.md 6.8); a table that
    /// fails its checks lists none, and
    /// [`Archive::check_table`](crate::Archive::check_table) says why.
    pub bindings: Names,
    /// Every entry, in table order: section, then name (a slice of
    /// [`BindingInfo`] once looked at). Checked as `bindings` is.
    pub entries: Entries,
}

/// One binding as the table of contents describes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BindingInfo {
    /// Name.
    pub name: String,
    /// Section.
    pub section: Section,
    /// Type name (`"Tensor"`, ...).
    #[serde(rename = "type")]
    pub type_name: &'static str,
    /// Shape (tensors only; empty otherwise).
    pub shape: Vec<u64>,
    /// Bytes as stored.
    pub stored_bytes: u64,
    /// Bytes once decoded.
    pub raw_bytes: u64,
    /// Codec.
    pub codec: Codec,
}

/// A list read lazily from the table of contents; derefs to a slice.
macro_rules! lazy_list {
    ($(#[$doc:meta])* $name:ident, $item:ty) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            toc: TocView,
            section: Option<Section>,
            cache: OnceLock<Vec<$item>>,
        }

        impl Deref for $name {
            type Target = [$item];
            fn deref(&self) -> &[$item] {
                self.cache.get_or_init(|| self.build())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&**self, f)
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                **self == **other
            }
        }

        impl PartialEq<Vec<$item>> for $name {
            fn eq(&self, other: &Vec<$item>) -> bool {
                **self == **other
            }
        }

        impl PartialEq<[$item]> for $name {
            fn eq(&self, other: &[$item]) -> bool {
                **self == *other
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                (**self).serialize(s)
            }
        }

        impl IntoIterator for $name {
            type Item = $item;
            type IntoIter = std::vec::IntoIter<$item>;
            fn into_iter(self) -> Self::IntoIter {
                match self.cache.into_inner() {
                    Some(v) => v.into_iter(),
                    None => {
                        let fresh = $name {
                            toc: self.toc,
                            section: self.section,
                            cache: OnceLock::new(),
                        };
                        fresh.build().into_iter()
                    }
                }
            }
        }

        impl<'a> IntoIterator for &'a $name {
            type Item = &'a $item;
            type IntoIter = std::slice::Iter<'a, $item>;
            fn into_iter(self) -> Self::IntoIter {
                self.iter()
            }
        }
    };
}

lazy_list!(
    /// The names of one section, sorted; derefs to `[String]`.
    Names,
    String
);

lazy_list!(
    /// Every binding's description, in table order; derefs to
    /// `[BindingInfo]`.
    Entries,
    BindingInfo
);

impl<const N: usize> PartialEq<[&str; N]> for Names {
    fn eq(&self, other: &[&str; N]) -> bool {
        **self == *other
    }
}

impl PartialEq<Vec<&str>> for Names {
    fn eq(&self, other: &Vec<&str>) -> bool {
        **self == **other
    }
}

impl PartialEq<&[&str]> for Names {
    fn eq(&self, other: &&[&str]) -> bool {
        **self == **other
    }
}

impl Names {
    pub(crate) fn new(toc: TocView, section: Section) -> Self {
        Names {
            toc,
            section: Some(section),
            cache: OnceLock::new(),
        }
    }

    fn build(&self) -> Vec<String> {
        let section = self.section.unwrap_or(Section::Bindings);
        self.toc.names(section).map(str::to_owned).collect()
    }

    /// The names without building the list: read in place.
    pub fn iter_str(&self) -> impl Iterator<Item = &str> {
        self.toc.names(self.section.unwrap_or(Section::Bindings))
    }
}

impl Entries {
    pub(crate) fn new(toc: TocView) -> Self {
        Entries {
            toc,
            section: None,
            cache: OnceLock::new(),
        }
    }

    fn build(&self) -> Vec<BindingInfo> {
        // The storage section (format 1.3) holds no bindings.
        self.toc
            .checked_entries()
            .iter()
            .filter(|e| e.section != SECTION_STORAGE)
            .map(|e| binding_info(&self.toc, &e))
            .collect()
    }
}

/// How the table of contents describes entry `e`.
pub(crate) fn binding_info(toc: &TocView, e: &RawEntry) -> BindingInfo {
    BindingInfo {
        name: toc.name_of(e).to_string(),
        section: Section::from_u8(e.section).unwrap_or(Section::Bindings),
        type_name: Tag::from_u8(e.tag).map_or("?", Tag::name),
        shape: toc.shape_of(e).iter().map(|d| d.get()).collect(),
        stored_bytes: e.stored_len.get(),
        raw_bytes: e.raw_len.get(),
        codec: Codec::from_u8(e.codec).unwrap_or(Codec::None),
    }
}
