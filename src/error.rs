//! Every way an operation on an archive can fail, one variant per rule.
//!
//! Messages say what went wrong and what to do next; fields carry the
//! structured facts (`expected`, `found`, `name`, `offset`) for programs.

use std::path::PathBuf;

use std::fmt;

use serde::Serialize;

use crate::value::section::Section;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error type of every fallible operation in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system error while touching `path`.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing ("opening", "writing", ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The path names something other than a regular file: a directory, a
    /// named pipe, a device. Archives are only read from regular files, so
    /// that opening never blocks (a FIFO waits for a writer) or reads
    /// forever (`/dev/zero`).
    #[error("{path} is a {kind}, not a regular file; give the path of an .ach file")]
    NotAFile {
        /// The path given.
        path: PathBuf,
        /// What it is ("directory", "named pipe (FIFO)", "character
        /// device", ...).
        kind: &'static str,
    },

    /// The target of a save exists and overwriting was not allowed.
    #[error(
        "{path} already exists; pass allow_overwrite: true to replace it, or choose another path"
    )]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },

    /// A path to save to names something that is not a regular file (a
    /// directory, a device, a pipe) or no file at all.
    #[error(
        "{path:?} does not name a file to save to (it is {what}); \
         give the path of a file, such as \"work.ach\""
    )]
    InvalidSavePath {
        /// The path given.
        path: PathBuf,
        /// What it is instead ("a directory", "not a regular file", ...).
        what: &'static str,
    },

    /// The file is shorter than its own header says it must be.
    #[error(
        "archive is truncated: it should be {expected} bytes but is {found}; \
         the file was cut short (interrupted copy or download?): fetch it again"
    )]
    Truncated {
        /// Length the header promises (or the minimum for any archive).
        expected: u64,
        /// Actual length.
        found: u64,
    },

    /// The archive's storage failed to deliver bytes that the archive has:
    /// an I/O error, a source that served less than its length promised, or
    /// a mapping or copy the process could not make. This is not damage: the
    /// archive may be intact, and the same read may work later.
    #[error(
        "{action}{} failed: {source}; the storage or the memory failed, not necessarily the \
         archive: check the device (or free memory) and try again",
        binding_text(.name, .index)
    )]
    SourceRead {
        /// What was being read ("reading the blob", "reading the header", ...).
        action: &'static str,
        /// The binding whose bytes these are, when the read was for one.
        name: Option<String>,
        /// That binding's entry index in the table of contents.
        index: Option<u64>,
        /// What the storage reported.
        #[source]
        source: std::io::Error,
    },

    /// The file continues past the trailer.
    #[error(
        "archive has {extra} unexpected bytes after its trailer (expected length {expected}); \
         the file was appended to or is not a single .ach archive"
    )]
    TrailingBytes {
        /// Length the header promises.
        expected: u64,
        /// How many bytes follow.
        extra: u64,
    },

    /// The first four bytes are not `ACH\0`.
    #[error(
        "not an .ach archive: the file starts with {found:02x?}, not the magic bytes \"ACH\\0\"; \
         check the path"
    )]
    NotAnArchive {
        /// The first bytes of the file.
        found: [u8; 4],
    },

    /// The archive was written by a newer, incompatible format version.
    #[error(
        "archive format {found_major}.{found_minor} is newer than this reader ({supported_major}.x); \
         upgrade achronyme-env to read it"
    )]
    NewerVersion {
        /// Major version in the file.
        found_major: u16,
        /// Minor version in the file.
        found_minor: u16,
        /// Highest major version this build reads.
        supported_major: u16,
    },

    /// The archive claims a major version older than any this reader knows.
    #[error("archive format major version {found} is not one this reader knows (it reads 1)")]
    UnknownVersion {
        /// Major version in the file.
        found: u16,
    },

    /// Flag bits that this reader does not understand are set.
    #[error(
        "archive sets feature flags {flags:#x} that this reader does not know; \
         upgrade achronyme-env to read it"
    )]
    UnknownFlags {
        /// The unknown bits.
        flags: u32,
    },

    /// A reserved field holds non-zero bytes.
    #[error("archive is damaged: reserved bytes of the {field} are not zero (at offset {offset})")]
    ReservedNotZero {
        /// Which structure.
        field: &'static str,
        /// File offset of the structure.
        offset: u64,
    },

    /// The table of contents does not match its checksum.
    #[error(
        "archive is damaged: the table of contents (or header) does not match its checksum; \
         no binding can be trusted, restore the file from a backup"
    )]
    TocChecksum,

    /// The header or the table of contents breaks a rule of layout.md
    /// section 8.1; `part` names the structure at fault.
    #[error("archive is damaged: {part} is invalid: {reason}")]
    InvalidToc {
        /// The structure that breaks the rule.
        part: Part,
        /// The rule that failed.
        reason: &'static str,
    },

    /// The archive's metadata block could not be parsed.
    #[error("archive is damaged: metadata block is invalid: {reason}")]
    InvalidMetadata {
        /// The rule that failed.
        reason: &'static str,
    },

    /// A blob's framing does not match its table-of-contents entry.
    #[error(
        "archive is damaged: the blob of {name:?} at offset {offset} has an invalid frame: {reason}"
    )]
    InvalidFrame {
        /// Binding name.
        name: String,
        /// Blob offset.
        offset: u64,
        /// The rule that failed.
        reason: &'static str,
    },

    /// A blob's bytes do not match their recorded SHA-256.
    #[error(
        "binding {name:?} is damaged: chunk {chunk} of its blob (file offset {offset}) does not \
         match its checksum; other bindings may still load, restore this one from a backup"
    )]
    ChecksumMismatch {
        /// Binding name.
        name: String,
        /// Chunk index within the blob.
        chunk: u64,
        /// File offset of the chunk.
        offset: u64,
    },

    /// The hash pool does not match the closing SHA-256, so no stored
    /// digest can be trusted.
    #[error(
        "archive is damaged: its chunk digests do not match its closing SHA-256; \
         run `ach verify` to see which bindings still load"
    )]
    UnsealedDigests,

    /// A value's encoded bytes are malformed.
    #[error("binding {name:?} is damaged: its value encoding is invalid: {reason}")]
    InvalidValue {
        /// Binding name.
        name: String,
        /// The rule that failed.
        reason: String,
    },

    /// Values nest deeper than the limit.
    #[error(
        "value {name:?} nests deeper than {limit} levels; flatten it (archives refuse deeper \
         nesting so that reading can never overflow the stack)"
    )]
    TooDeep {
        /// Binding name.
        name: String,
        /// The limit.
        limit: usize,
    },

    /// A compressed chunk does not decompress to exactly its declared
    /// bytes (its digest matched, or checksums were skipped).
    #[error(
        "binding {name:?} is damaged: compressed chunk {chunk} does not decompress ({reason}); \
         other bindings may still load, restore this one from a backup"
    )]
    CorruptChunk {
        /// Binding name.
        name: String,
        /// Chunk index within the blob.
        chunk: u64,
        /// What the decompressor reported.
        reason: String,
    },

    /// Copying a raw tensor out of the file (a restore or `env_load_var`
    /// with `copy`, the default) would hold more memory than the budget.
    #[error(
        "binding {name:?} needs {bytes} bytes of memory to copy out of the file, over the limit \
         of {limit} bytes; restore it as a view of the file with copy: false (it then changes \
         if the file is rewritten in place), or raise max_decoded_bytes"
    )]
    CopyTooLarge {
        /// Binding name.
        name: String,
        /// Bytes the restore would hold with this copy.
        bytes: u64,
        /// The budget.
        limit: u64,
    },

    /// Loading a binding would hold more memory than the load's budget
    /// ([`LoadOptions::max_decoded_bytes`](crate::LoadOptions::max_decoded_bytes)),
    /// or than this process could allocate. Refused before the value is
    /// built.
    #[error(
        "binding {name:?} needs at least {bytes} bytes of memory to load, over the limit of \
         {limit} bytes (or more than this process could allocate); if you trust the archive, \
         raise the limit (LoadOptions::max_decoded_bytes, RestoreOptions::max_decoded_bytes, \
         or --max-memory for ach), else it may be damaged or hostile"
    )]
    TooLarge {
        /// Binding name.
        name: String,
        /// Bytes of memory the load was counted as needing when it stopped:
        /// a lower bound (counting stops at the first byte over the limit).
        bytes: u64,
        /// The budget in force.
        limit: u64,
    },

    /// A name asked for is not in the archive.
    #[error("no binding named {name:?} in the archive{}", suggestion_text(.suggestion))]
    NoSuchBinding {
        /// Requested name.
        name: String,
        /// The closest existing name, if any is close.
        suggestion: Option<String>,
    },

    /// A binding name cannot be stored.
    #[error("cannot save binding {name:?}: {reason}")]
    InvalidName {
        /// The offending name (lossy).
        name: String,
        /// Why.
        reason: &'static str,
    },

    /// A binding's value cannot be stored in an archive.
    #[error("cannot save binding {name:?}: {reason}")]
    Unsaveable {
        /// The binding.
        name: String,
        /// Why: it holds a user lambda, or a tensor of more than 64
        /// dimensions.
        reason: &'static str,
    },

    /// A save would exceed the size limit.
    #[error(
        "save aborted: the archive would exceed max_file_size ({limit} bytes) while writing \
         {name:?}; the previous file (if any) is untouched. Raise the limit or save fewer bindings"
    )]
    SizeLimitExceeded {
        /// The limit.
        limit: u64,
        /// Binding being written when the limit was hit.
        name: String,
    },

    /// A value holds a `mut` reference that reaches itself.
    #[error(
        "binding {name:?} holds a mut reference that refers back to itself; archives store \
         values, not reference graphs: break the cycle (or save its parts) and save again"
    )]
    CyclicReference {
        /// Binding name.
        name: String,
    },

    /// A value changed while a save was writing it.
    #[error(
        "binding {name:?} changed while it was being saved (another thread wrote to a mut \
         reference it holds); the previous file is untouched, save again"
    )]
    ValueChanged {
        /// Binding name.
        name: String,
    },

    /// A tensor's shape does not match its data.
    #[error("tensor shape {shape:?} holds {expected} elements but {found} were given")]
    ShapeMismatch {
        /// The shape.
        shape: Vec<usize>,
        /// Product of the shape.
        expected: u64,
        /// Elements supplied.
        found: u64,
    },

    /// A name pattern is not a valid glob.
    #[error(
        "invalid name pattern {pattern:?}: {reason}; use * for any run of characters and ? for one"
    )]
    InvalidPattern {
        /// The pattern.
        pattern: String,
        /// Why it is invalid.
        reason: String,
    },

    /// The archive was written by another runtime version and the restore
    /// asked for a strict match.
    #[error(
        "archive was written by Achronyme {file} but this is {current}; \
         restore without strict_version to load it anyway"
    )]
    VersionMismatch {
        /// Version recorded in the archive.
        file: String,
        /// Version of the running runtime.
        current: String,
    },

    /// A namespace restore would replace an existing binding.
    #[error(
        "namespace {name:?} is already bound; pass overwrite: true to replace it, \
         or choose another namespace"
    )]
    NamespaceTaken {
        /// The namespace.
        name: String,
    },

    /// A namespace name is not a valid identifier.
    #[error(
        "namespace {name:?} is not a valid name: use letters, digits and _, not starting with a digit"
    )]
    InvalidNamespace {
        /// The namespace.
        name: String,
    },

    /// A save or restore option has a value outside what it accepts.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// What it accepts and what it got.
        reason: String,
    },

    /// A restored value names a builtin function the running host does not
    /// provide, and the restore asked for strictness.
    #[error(
        "binding {name:?} refers to builtin {builtin:?}, which this runtime does not provide; \
         restore without strict_builtins to skip it with a warning"
    )]
    UnknownBuiltin {
        /// The binding holding the reference.
        name: String,
        /// The builtin's name.
        builtin: String,
    },

    /// A name asked for is not bound in the environment.
    #[error("no variable named {name:?} in the environment{}", unbound_text(.suggestion))]
    Unbound {
        /// Requested name.
        name: String,
        /// The closest bound name, if any is close.
        suggestion: Option<String>,
    },

    /// `env_clear` was called without `confirm: true`.
    #[error(
        "env_clear removes every variable and was not confirmed; call env_clear(true) to clear"
    )]
    ClearNotConfirmed,

    /// `verify` found damage.
    #[error("{0}")]
    VerificationFailed(Box<VerifyReport>),

    /// An object store failed or refused a request: the object is missing,
    /// access was denied, the object changed between two reads, the
    /// connection dropped... (never damage to the archive). [`RemoteFailure::kind`]
    /// says which; the message says what to do.
    #[error("{0}")]
    Remote(Box<RemoteFailure>),

    /// A URL was given where this build can only open local files: it was
    /// built without the `remote` feature, or the URL names a store that
    /// cannot do what was asked (saving to `https://`).
    #[error("cannot use {url:?}: {reason}")]
    RemoteUnsupported {
        /// The URL given.
        url: String,
        /// Why not, and what to do instead.
        reason: String,
    },
}

/// What went wrong talking to an object store (an [`Error::Remote`]), or
/// what a read of a remote archive met (inside [`Error::SourceRead`]; see
/// [`Error::remote_failure`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFailure {
    /// Which kind of failure.
    pub kind: RemoteErrorKind,
    /// The object's URL.
    pub url: String,
    /// What the store reported, for people.
    pub detail: String,
}

/// Kinds of [`RemoteFailure`], each with its own remedy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum RemoteErrorKind {
    /// No object at that URL (or no such bucket).
    NotFound,
    /// The credentials were refused or are missing.
    AccessDenied,
    /// The object was replaced between the open and a later read: its
    /// ETag or version no longer matches.
    Changed,
    /// Saving without `allow_overwrite` and an object is already there.
    AlreadyExists,
    /// The store kept answering "slow down" (HTTP 429 or 503) after every
    /// retry.
    Throttled,
    /// The store redirected or rejected the request as addressed: a wrong
    /// region or endpoint.
    WrongEndpoint,
    /// The connection failed or dropped, or the store served fewer bytes
    /// than asked, after every retry.
    Connection,
    /// The URL or an option is not valid for this store.
    Config,
    /// The store cannot do this (a conditional or multipart write, ...).
    Unsupported,
    /// Anything else the store reported.
    Other,
}

impl fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, todo) = match self.kind {
            RemoteErrorKind::NotFound => ("no object at", "check the bucket and the key"),
            RemoteErrorKind::AccessDenied => (
                "access denied to",
                "check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, GOOGLE_SERVICE_ACCOUNT, AZURE_STORAGE_ACCOUNT_KEY...) and the object's permissions",
            ),
            RemoteErrorKind::Changed => (
                "the object changed while it was being read:",
                "it was replaced after it was opened; open it again to read the new archive",
            ),
            RemoteErrorKind::AlreadyExists => (
                "an object already exists at",
                "pass allow_overwrite: true to replace it, or choose another key",
            ),
            RemoteErrorKind::Throttled => (
                "the store kept throttling requests to",
                "retry later, or lower the concurrency (RemoteOptions::concurrency)",
            ),
            RemoteErrorKind::WrongEndpoint => (
                "the store rejected the address of",
                "check the region (AWS_REGION) and endpoint (AWS_ENDPOINT_URL)",
            ),
            RemoteErrorKind::Connection => (
                "the connection failed while reading or writing",
                "check the network and the endpoint, then try again (transient failures were already retried)",
            ),
            RemoteErrorKind::Config => (
                "invalid address or option for",
                "fix the URL or option (a plain http:// endpoint needs AWS_ALLOW_HTTP=true or allow_http)",
            ),
            RemoteErrorKind::Unsupported => (
                "the store cannot do this for",
                "use another store or option",
            ),
            RemoteErrorKind::Other => ("the store failed on", "try again"),
        };
        write!(f, "{what} {}: {}; {todo}", self.url, self.detail)
    }
}

impl std::error::Error for RemoteFailure {}

/// The structure of an archive that an [`Error::InvalidToc`] is about
/// (layout.md sections 2, 4 and 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Part {
    /// The 64-byte file header (its fields, including where it says the
    /// table of contents is).
    Header,
    /// The 64-byte header of the table of contents (magic, sizes, chunk
    /// sizes).
    TocHeader,
    /// The table of contents as a whole: what its entries add up to against
    /// its header and pools.
    Toc,
    /// The name pool of the table of contents.
    NamePool,
    /// The table of contents entry at this index (0-based, table order).
    Entry(u64),
    /// The hash pool: where it lies and how many digests it holds.
    HashPool,
    /// The page index at the end of a paged table of contents (format
    /// 1.3): its head and counts.
    PageIndex,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Header => write!(f, "the header"),
            Part::TocHeader => write!(f, "the table of contents header"),
            Part::Toc => write!(f, "the table of contents"),
            Part::NamePool => write!(f, "the name pool of the table of contents"),
            Part::Entry(i) => write!(f, "entry {i} of the table of contents"),
            Part::HashPool => write!(f, "the hash pool"),
            Part::PageIndex => write!(f, "the page index of the table of contents"),
        }
    }
}

fn suggestion_text(s: &Option<String>) -> String {
    match s {
        Some(s) => format!("; did you mean {s:?}?"),
        None => "; list the names with env_info".to_string(),
    }
}

fn binding_text(name: &Option<String>, index: &Option<u64>) -> String {
    match (name, index) {
        (Some(name), Some(i)) => format!(" of binding {name:?} (entry {i})"),
        (Some(name), None) => format!(" of binding {name:?}"),
        (None, Some(i)) => format!(" of entry {i}"),
        (None, None) => String::new(),
    }
}

fn unbound_text(s: &Option<String>) -> String {
    match s {
        Some(s) => format!("; did you mean {s:?}?"),
        None => "; list the names with env_bindings()".to_string(),
    }
}

impl Error {
    /// An [`Error::Io`]: `action` is what was being done to `path` ("writing",
    /// "opening"), as the message shows it.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn toc(part: Part, reason: &'static str) -> Self {
        Error::InvalidToc { part, reason }
    }

    /// The object-store failure behind this error, if any: an
    /// [`Error::Remote`], or an [`Error::SourceRead`] whose storage was an
    /// object store (a read after the open failed).
    pub fn remote_failure(&self) -> Option<&RemoteFailure> {
        match self {
            Error::Remote(f) => Some(f),
            Error::SourceRead { source, .. } => source
                .get_ref()
                .and_then(|e| e.downcast_ref::<RemoteFailure>()),
            _ => None,
        }
    }
}

/// What a full verification found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Bindings checked.
    pub bindings_checked: u64,
    /// Bytes hashed.
    pub bytes_hashed: u64,
    /// Damaged bindings with the reason.
    pub damaged: Vec<Damage>,
    /// File offsets of padding that is not zero.
    pub nonzero_padding: Vec<u64>,
    /// False when the closing SHA-256 does not match (or the hash pool
    /// could not be read: see `read_errors`).
    pub closing_checksum_ok: bool,
    /// Parts that could not be read at all (an I/O failure of the storage,
    /// not damage): what was being read and why it failed. Verify again
    /// once the storage answers.
    pub read_errors: Vec<String>,
    /// Why the table of contents failed its checks, when it did (a paged
    /// table is checked whole only when something walks it, layout.md
    /// 6.8); then no binding was checked.
    pub table: Option<String>,
}

/// One damaged binding.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Damage {
    /// Binding name.
    pub name: String,
    /// Section.
    pub section: Section,
    /// What is wrong.
    pub error: String,
}

impl VerifyReport {
    /// True when nothing is damaged.
    pub fn is_ok(&self) -> bool {
        self.table.is_none()
            && self.damaged.is_empty()
            && self.nonzero_padding.is_empty()
            && self.closing_checksum_ok
            && self.read_errors.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            return write!(f, "archive is intact ({} bindings)", self.bindings_checked);
        }
        write!(f, "archive failed verification:")?;
        if let Some(e) = &self.table {
            return write!(f, " {e}");
        }
        if !self.damaged.is_empty() {
            let names: Vec<&str> = self.damaged.iter().map(|d| d.name.as_str()).collect();
            write!(f, " damaged bindings: {}.", names.join(", "))?;
        }
        if let Some(off) = self.nonzero_padding.first() {
            write!(f, " padding is not zero at offset {off}.")?;
        }
        if let Some(e) = self.read_errors.first() {
            write!(f, " could not be read: {e}.")?;
        } else if !self.closing_checksum_ok {
            write!(f, " the closing SHA-256 does not match.")?;
        }
        write!(f, " Undamaged bindings can still be loaded one by one.")
    }
}
