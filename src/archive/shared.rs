//! Which tensors a save writes once for several places (format 1.3,
//! layout.md 3.6): top-level tensors that share storage with an earlier
//! one share its blob, and tensors nested in other values get blobs of
//! their own (an entry of the storage section, or the top-level entry they
//! share storage with), which the values' encodings refer to.

use std::collections::HashMap;

use crate::archive::writer::Planned;
use crate::format::encoding::BlobIndex;
use crate::format::layout::{STORAGE_NAME_LEN, Tag};
use crate::value::{MAX_DEPTH, Value, read_ref};

/// Nested tensors of at least this many bytes of elements get a blob of
/// their own; smaller ones stay inline in the value that holds them.
///
/// Why 64 KiB: a blob costs a 64-byte frame, up to 63 bytes of padding, a
/// 56-byte table entry, a 16-byte name and a digest (about 220 bytes), and
/// a reference costs 9 bytes against the inline shape. At 64 KiB that is
/// under 0.4% of the tensor, while the gain (no copy, no decoding, a view
/// of the mapped file) is already worth a page-aligned view: 16 pages. A
/// small vector of coordinates or a 3x3 matrix stays inline, loaded with
/// its record in one read.
pub(crate) const NESTED_BLOB_MIN: usize = 64 << 10;

/// A tensor's storage as one save sees it: its kind, where its elements
/// are and how many, and its shape (a reference takes its target's shape).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    tag: u8,
    storage: (usize, usize),
    shape: Vec<usize>,
}

/// The bytes of `v`'s elements when it is a tensor whose storage another
/// value may share ([`Buffer::may_share`](crate::value::Buffer)): only
/// those need a [`Key`].
fn shareable_bytes(v: &Value) -> Option<usize> {
    match v {
        Value::Tensor(t) if t.buffer().may_share() => Some(t.len() * 8),
        Value::ComplexTensor(t) if t.buffer().may_share() => Some(t.len() * 16),
        _ => None,
    }
}

/// The key and element bytes of `v` when it is a non-empty tensor.
fn key_of(v: &Value) -> Option<(Key, usize)> {
    let (tag, storage, shape, bytes) = match v {
        Value::Tensor(t) => (
            Tag::Tensor,
            t.buffer().storage_key()?,
            t.shape(),
            t.len() * 8,
        ),
        Value::ComplexTensor(t) => (
            Tag::ComplexTensor,
            t.buffer().storage_key()?,
            t.shape(),
            t.len() * 16,
        ),
        _ => return None,
    };
    let key = Key {
        tag: tag as u8,
        storage,
        shape: shape.to_vec(),
    };
    Some((key, bytes))
}

/// What a save stores once: built from the planned bindings before any
/// byte is written, it gives every blob its entry index up front.
pub(crate) struct SharedPlan {
    /// Each stored tensor's entry.
    entries: HashMap<Key, u64>,
    /// Per planned binding: the earlier binding whose blob it shares.
    aliases: Vec<Option<usize>>,
    /// Per planned binding: whether a later one shares its blob.
    owners: Vec<bool>,
    /// The storage section's entries, in order: name and tensor.
    storage: Vec<(String, Value)>,
}

impl SharedPlan {
    /// Plans `items`, the bindings of a save in table order.
    pub(crate) fn new(items: &[Planned<'_>]) -> Self {
        let mut plan = SharedPlan {
            entries: HashMap::new(),
            aliases: vec![None; items.len()],
            owners: vec![false; items.len()],
            storage: Vec::new(),
        };
        // Top-level tensors first, so that a value nested anywhere refers
        // to the binding it shares storage with, whatever their order.
        for (i, item) in items.iter().enumerate() {
            // A buffer nothing else holds is stored once anyway.
            if shareable_bytes(item.value).is_none() {
                continue;
            }
            if let Some((key, _)) = key_of(item.value) {
                match plan.entries.get(&key) {
                    Some(&j) => {
                        plan.aliases[i] = Some(j as usize);
                        plan.owners[j as usize] = true;
                    }
                    None => {
                        plan.entries.insert(key, i as u64);
                    }
                }
            }
        }
        let first = items.len() as u64;
        for item in items {
            plan.walk(item.value, 0, first);
        }
        plan
    }

    /// Finds the large tensors nested in `v` (at `depth`), giving each new
    /// storage an entry of the storage section, numbered from `first`.
    fn walk(&mut self, v: &Value, depth: usize, first: u64) {
        // The encoder refuses what is deeper.
        if depth >= MAX_DEPTH {
            return;
        }
        let mut fields = |fields: &[(String, Value)]| {
            for (_, x) in fields {
                self.walk(x, depth + 1, first);
            }
        };
        match v {
            Value::Tensor(t) if depth > 0 && t.len() * 8 < NESTED_BLOB_MIN => {}
            Value::ComplexTensor(t) if depth > 0 && t.len() * 16 < NESTED_BLOB_MIN => {}
            Value::Tensor(_) | Value::ComplexTensor(_) if depth > 0 => {
                let Some((key, _)) = key_of(v) else {
                    return;
                };
                if !self.entries.contains_key(&key) {
                    let ordinal = self.storage.len();
                    self.entries.insert(key, first + ordinal as u64);
                    self.storage.push((storage_name(ordinal as u64), v.clone()));
                }
            }
            Value::Vector(items) => {
                for x in items {
                    self.walk(x, depth + 1, first);
                }
            }
            Value::Record(r) => fields(r.fields()),
            Value::Edge(e) => fields(e.properties.fields()),
            Value::MutableRef(r) => {
                let inner = read_ref(r).clone();
                self.walk(&inner, depth + 1, first);
            }
            _ => {}
        }
    }

    /// The earlier binding whose blob binding `i` shares, if any.
    pub(crate) fn alias_of(&self, i: usize) -> Option<usize> {
        self.aliases.get(i).copied().flatten()
    }

    /// Whether a later binding shares binding `i`'s blob: its value then
    /// needs a blob, not a place in the table's value pool (format 1.4).
    pub(crate) fn is_shared(&self, i: usize) -> bool {
        self.owners.get(i).copied().unwrap_or(false)
    }

    /// The storage section's entries, in table order.
    pub(crate) fn storage(&self) -> &[(String, Value)] {
        &self.storage
    }
}

impl BlobIndex for SharedPlan {
    fn entry_of(&self, v: &Value) -> Option<u64> {
        if self.entries.is_empty() {
            return None;
        }
        let bytes = match v {
            Value::Tensor(t) => t.len() * 8,
            Value::ComplexTensor(t) => t.len() * 16,
            _ => return None,
        };
        if bytes < NESTED_BLOB_MIN {
            return None;
        }
        self.entries.get(&key_of(v)?.0).copied()
    }
}

/// The name of the storage entry of ordinal `k`: fixed-width lowercase
/// hexadecimal, so that names sort as their ordinals.
pub(crate) fn storage_name(k: u64) -> String {
    format!("{k:0width$x}", width = STORAGE_NAME_LEN)
}
