//! # achronyme-env
//!
//! Saves and restores the working environment of the Achronyme language as
//! `.ach` archives: lazy, zero-copy, checksummed at every granularity.
//!
//! ## The model
//!
//! An [`Environment`] maps names to [`Value`]s (numbers, strings, vectors,
//! f64 and complex tensors, records, edges, builtin functions, `mut`
//! references) and holds a constants section. [`save_environment`] streams
//! it to disk blob by blob, each binding in its own 64-byte-aligned,
//! checksummed blob (XXH3-128 by default, SHA-256 on request), then writes a table of contents sorted by name and a
//! closing checksum; the old file at the path survives any failure.
//!
//! [`Archive::open`] reads and validates only the header and the table of
//! contents (mapping the file when a blob is first loaded), so [`Archive::info`] (and [`env_info`]) costs the same on a
//! megabyte and on many gigabytes. [`Archive::get`] loads one binding by
//! touching only its blob; an uncompressed tensor comes back as a view that
//! borrows the mapped file ([`Tensor::is_mapped`]), keeps the mapping alive
//! on its own, and copies on first write. [`Archive::verify`] checks every
//! byte. Every load counts the memory its value will hold before building
//! it and refuses more than its budget ([`LoadOptions::max_decoded_bytes`],
//! 4 GiB by default) with [`Error::TooLarge`], so an archive from anyone
//! gives a value or an error, never an aborted process.
//!
//! [`snapshot_env`] captures an environment in memory at a cost that grows
//! with the number of bindings, not their bytes (tensors share storage; `mut`
//! references are copied so later writes cannot leak in), and
//! [`restore_snapshot`] brings it back with the modes of a restore. The
//! environment functions of spec 3.3 ([`env_bindings`], [`env_get`],
//! [`env_set`], [`env_remove`], [`env_clear`]) work on an [`Environment`].
//! The [`builtins`] module wraps all of spec 3 in an evaluator's calling
//! convention (`Value` arguments, options as a Record) for the language to
//! register as is.
//!
//! Archives can live on object storage too (the `remote` feature, which
//! the `ach` command enables): every function that opens or saves by name
//! takes a [`Location`], a path or a URL (`s3://bucket/key.ach`, `gs://`,
//! `az://`, `https://`, `file://`, `memory://`), and `Archive::open_url`
//! opens one with ranged reads: the header and table of contents in one
//! round trip, one more request per binding loaded. A remote tensor is
//! never mapped: it loads into a buffer of its own.
//!
//! The byte layout is specified in `layout.md`.
//!
//! ```
//! use achronyme_env::*;
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("session.ach");
//!
//! let mut env = Environment::new();
//! env.set("temps", Value::Tensor(Tensor::new(vec![2, 2], vec![20.5, 21.0, 19.8, 22.1]).unwrap()));
//! env.set("label", Value::from("run 7"));
//! save_environment(&env, &path, &SaveOptions::default()).unwrap();
//!
//! let mut restored = Environment::new();
//! restore_environment(&mut restored, &path, &RestoreOptions::default()).unwrap();
//! assert_eq!(restored, env);
//! assert_eq!(env_info(&path).unwrap().bindings, ["label", "temps"]);
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(not(target_endian = "little"))]
compile_error!(
    "achronyme-env maps little-endian data in place and supports little-endian targets only"
);

// Layers, each importing only from those listed before it (README,
// "Architecture"): errors and values; the bytes on disk; the archive; the
// environment.
mod error;
mod suggest;
mod value;

mod format;
mod parallel;

mod archive;

mod env;

// Deterministic environments for tests, benchmarks and the demo.
#[doc(hidden)]
pub use env::testdata;

// The byte layout and hashing, for the test suite and the fuzz targets that
// build hostile archives by hand; not a stable API.
#[doc(hidden)]
pub use format::{hash, layout};

pub use archive::info::{BindingInfo, Entries, EnvInfo, Names};
pub use archive::location::Location;
pub use archive::publish::{PublishOptions, Published, atomic_write};
pub use archive::reader::{Archive, LoadOptions};
#[cfg(feature = "remote")]
pub use archive::remote::{RemoteOptions, RemoteSource};
pub use archive::source::{Bytes, Checked, Checks, FileSource, MemorySource, ReadError, Source};
pub use env::builtins;
pub use env::environment::{
    DEFAULT_RUNTIME_NAME, Environment, Warning, WarningSink, env_bindings, env_clear, env_get,
    env_remove, env_set,
};
pub use env::load::{LoadVarOptions, env_info, env_load_var, env_load_var_with};
pub use env::restore::{
    RestoreMode, RestoreOptions, RestoreReport, restore_environment, restore_from_archive,
};
pub use env::save::{
    Compression, LARGE_VALUE_BYTES, RUNTIME_VERSION, SaveOptions, SaveReport, Skipped,
    save_environment,
};
pub use env::snapshot::{
    Snapshot, SnapshotOptions, SnapshotRestoreOptions, restore_snapshot, snapshot_env,
};
pub use error::{Damage, Error, Part, RemoteErrorKind, RemoteFailure, Result, VerifyReport};
pub use format::hash::Checksum;
pub use format::layout::{Codec, Section};
pub use format::metadata::Metadata;
/// The object store client (the `remote` feature), re-exported so that a
/// program builds stores with the same version this crate uses.
#[cfg(feature = "remote")]
pub use object_store;
pub use value::{Buffer, Complex, ComplexTensor, Edge, Function, Record, Tensor, Value};

/// Entry points for the fuzz targets in `fuzz/` (not a stable API).
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes `bytes` as one tagged value (the private value decoder).
    /// When it decodes, the value is encoded again and that encoding must
    /// decode too: a value the reader accepts must be one the writer can
    /// write. Returns whether `bytes` decoded.
    pub fn decode_value(bytes: &[u8]) -> bool {
        let limit = crate::LoadOptions::DEFAULT_MAX_DECODED_BYTES;
        let Ok((v, _)) = crate::format::encoding::decode_exact(bytes, limit) else {
            return false;
        };
        let mut again = Vec::new();
        crate::format::encoding::encode(&mut again, &v, 0).expect("a decoded value encodes");
        assert!(
            crate::format::encoding::decode_exact(&again, limit).is_ok(),
            "a re-encoded value decodes"
        );
        true
    }

    /// Names looked up in every archive [`exercise_archive`] opens: those of
    /// `testdata::every_type` and the usual test names, which the seeds of
    /// the fuzz corpora hold.
    const LOOKUPS: &[&str] = &[
        "a", "b", "c", "t", "x", "v", "s", "null", "number", "nan", "neg_zero", "flag", "text",
        "z", "model", "sin_ref", "counter", "matrix", "mixed", "spectrum", "PI", "zz", "",
    ];

    /// What the archive fuzz targets do with their input: open it, read the
    /// summary, every name and entry, load every binding and constant with
    /// and without checksums, and verify. Returns whether it opened.
    pub fn exercise_archive(bytes: Vec<u8>) -> bool {
        use crate::{Archive, LoadOptions, Section};
        let Ok(archive) = Archive::from_bytes(bytes) else {
            return false;
        };
        let info = archive.info();
        let _ = info.bindings.iter().map(String::len).sum::<usize>();
        let _ = info.entries.iter().map(|e| e.name.len()).sum::<usize>();
        let _ = format!("{info:?}");
        let _ = archive.check_table().map_err(|e| e.to_string());
        for section in [Section::Bindings, Section::Constants] {
            // The listed names, and names the seeds hold looked up whether
            // or not the table passes its whole check: lookups in a paged
            // table read and check only the pages they touch (layout.md
            // 6.8), which a listing never reaches in a table that fails.
            let mut names: Vec<String> = archive.names(section).map(str::to_string).collect();
            names.extend(LOOKUPS.iter().map(|s| s.to_string()));
            for name in &names {
                let _ = archive.contains(section, name);
                let _ = archive.binding_info(section, name);
                let _ = archive.blob_range(section, name);
                for verify_checksum in [true, false] {
                    let opts = LoadOptions {
                        verify_checksum,
                        ..LoadOptions::default()
                    };
                    if let Ok(v) = archive.get_with(section, name, opts) {
                        let _ = format!("{v:?}");
                    }
                }
            }
        }
        let _ = archive.verify_report().to_string();
        true
    }

    /// Recomputes an archive's trailer in place (the table checksum and the
    /// closing checksum, layout.md section 7) to match whatever its header,
    /// table and hash pool now say, as an attacker could. `None` when the
    /// header or the table header cannot be located. Shared by the
    /// `archive_resealed` fuzz target and the tests that edit archives.
    pub fn reseal(bytes: &mut [u8]) -> Option<()> {
        use crate::format::hash::sha256;
        use crate::format::layout::{RawHeader, RawTocHeader, TOC_CHUNK_LOG2};
        use crate::format::toc::PageLayout;
        use zerocopy::FromBytes;
        let (header, _) = RawHeader::read_from_prefix(bytes).ok()?;
        let toc_offset = usize::try_from(header.toc_offset.get()).ok()?;
        let toc_len = usize::try_from(header.toc_len.get()).ok()?;
        let toc_end = toc_offset.checked_add(toc_len)?;
        let (th, _) = RawTocHeader::read_from_prefix(bytes.get(toc_offset..toc_end)?).ok()?;
        // The table's chunks are hashed with the archive's checksum, or
        // SHA-256 when its byte is unknown (left for open to refuse).
        let known = crate::hash::Checksum::from_u8(th.checksum);
        let algo = known.unwrap_or(crate::hash::Checksum::Sha256);
        let values_len = header.values_len.get();
        let layout = PageLayout::of(&th, toc_len as u64, values_len)
            .ok()
            .flatten();
        let toc_sha = match layout {
            // A paged table (layout.md 6.8): the page digests and the top
            // digests into the page index, then SHA-256(header ‖ index head
            // ‖ top digests).
            Some(l) => {
                crate::format::toc::seal_pages(&mut bytes[toc_offset..toc_end], &l, algo);
                let header: [u8; 64] = bytes.get(..64)?.try_into().ok()?;
                crate::format::toc::paged_toc_digest(&header, &bytes[toc_offset..toc_end], &l)
            }
            None => {
                let toc = &bytes[toc_offset..toc_end];
                let chunks: Vec<Vec<u8>> = toc
                    .chunks(1 << TOC_CHUNK_LOG2)
                    .map(|c| algo.digest(c))
                    .collect();
                let mut parts: Vec<&[u8]> = vec![bytes.get(..64)?];
                parts.extend(chunks.iter().map(|d| d.as_slice()));
                sha256(&parts)
            }
        };
        let toc = &bytes[toc_offset..toc_end];
        let pool_start = usize::try_from(th.hashes_offset.get()).ok()?;
        let pool_len = usize::try_from(th.hash_count.get())
            .ok()?
            .checked_mul(algo.len())?;
        let pool = bytes.get(pool_start..pool_start.checked_add(pool_len)?)?;
        let closing = match algo {
            crate::hash::Checksum::Sha256 => sha256(&[&toc_sha, pool]),
            crate::hash::Checksum::Xxh3 => sha256(&[&toc_sha, toc, pool]),
        };
        let trailer = bytes.get_mut(toc_end..toc_end.checked_add(64)?)?;
        trailer[..32].copy_from_slice(&toc_sha);
        trailer[32..].copy_from_slice(&closing);
        Some(())
    }

    /// Encodes `v` as the value decoder reads it, for seeding the corpus.
    pub fn encode_value(v: &crate::Value) -> Vec<u8> {
        let mut out = Vec::new();
        crate::format::encoding::encode(&mut out, v, 0).expect("an in-memory encoding succeeds");
        out
    }
}

/// The README's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
