//! Which tensors a save writes once for several places (format 1.3,
//! layout.md 3.6): top-level tensors that share storage with an earlier
//! one share its blob, and tensors nested in other values get blobs of
//! their own (an entry of the storage section, or the top-level entry they
//! share storage with), which the values' encodings refer to.

use std::collections::HashMap;

#[cfg(test)]
use crate::archive::writer::Planned;

use crate::format::encoding::BlobIndex;
use crate::format::layout::{STORAGE_NAME_LEN, Tag};
use crate::value::{MAX_DEPTH, Value, read_ref};

/// Nested tensors of at least this many bytes of elements get a blob of
/// their own; smaller ones stay inline in the value that holds them.
///
/// Why 64 KiB: a blob costs a 64-byte frame, up to 63 bytes of padding, a
/// 40-byte table entry, a 16-byte name and a digest (about 200 bytes), and
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

/// What a save needs to know of a tensor value: its tag, shape, the bytes
/// of its elements, [`Buffer::storage_key`](crate::value::Buffer) and
/// whether another value may share its storage
/// ([`Buffer::may_share`](crate::value::Buffer)). None for other values.
struct TensorFacts<'v> {
    tag: Tag,
    shape: &'v [usize],
    bytes: usize,
    storage: Option<(usize, usize)>,
    may_share: bool,
}

fn tensor_facts(v: &Value) -> Option<TensorFacts<'_>> {
    let facts = match v {
        Value::Tensor(t) => TensorFacts {
            tag: Tag::Tensor,
            shape: t.shape(),
            bytes: t.len() * 8,
            storage: t.buffer().storage_key(),
            may_share: t.buffer().may_share(),
        },
        Value::ComplexTensor(t) => TensorFacts {
            tag: Tag::ComplexTensor,
            shape: t.shape(),
            bytes: t.len() * 16,
            storage: t.buffer().storage_key(),
            may_share: t.buffer().may_share(),
        },
        _ => return None,
    };
    Some(facts)
}

/// The storage key of `v` when it is a non-empty tensor (what a save files
/// the blobs it wrote under).
pub(crate) fn storage_key_of(v: &Value) -> Option<(usize, usize)> {
    tensor_facts(v)?.storage
}

/// The key of a non-empty tensor's storage.
fn key_of(t: &TensorFacts<'_>) -> Option<Key> {
    Some(Key {
        tag: t.tag as u8,
        storage: t.storage?,
        shape: t.shape.to_vec(),
    })
}

/// What a save stores once: built from the planned bindings before any
/// byte is written, it gives every blob its entry index up front.
///
/// Built binding by binding ([`SharedPlan::add`], then
/// [`SharedPlan::finish`]), so that a save plans each value while it
/// chooses it, with the value in cache: a second pass over 100,000 small
/// bindings cost a tenth of the save.
#[derive(Default)]
pub(crate) struct SharedPlan {
    /// Each stored tensor's entry.
    entries: HashMap<Key, u64>,
    /// The planned bindings that share an earlier binding's blob, and
    /// that binding, by binding (sparse: most saves have none).
    aliases: Vec<(usize, usize)>,
    /// The planned bindings a later one shares the blob of, sorted.
    owners: Vec<usize>,
    /// Bindings planned so far.
    planned: usize,
    /// The large tensors nested in the bindings, in the order found, with
    /// their keys: given entries by `finish`, once every top-level tensor
    /// has its own.
    nested: Vec<(Key, Value)>,
    /// The storage section's entries, in order: name and tensor.
    storage: Vec<(String, Value)>,
}

impl SharedPlan {
    /// Plans `items`, the bindings of a save in table order (what a save
    /// does binding by binding).
    #[cfg(test)]
    pub(crate) fn new(items: &[Planned<'_>]) -> Self {
        let mut plan = SharedPlan::default();
        for item in items {
            plan.add(item.value);
        }
        plan.finish();
        plan
    }

    /// Plans the next binding in table order, saved as `v`.
    pub(crate) fn add(&mut self, v: &Value) {
        let i = self.planned;
        self.planned += 1;
        // A buffer nothing else holds is stored once anyway.
        if let Some(key) = tensor_facts(v)
            .filter(|t| t.may_share)
            .and_then(|t| key_of(&t))
        {
            match self.entries.get(&key) {
                Some(&j) => {
                    self.aliases.push((i, j as usize));
                    self.owners.push(j as usize);
                }
                None => {
                    self.entries.insert(key, i as u64);
                }
            }
        }
        self.walk(v, 0);
    }

    /// Gives each large nested tensor the entry of the binding it shares
    /// storage with, whatever their order, or else an entry of the storage
    /// section, numbered after every binding. Call once, after the last
    /// [`add`](SharedPlan::add).
    pub(crate) fn finish(&mut self) {
        self.owners.sort_unstable();
        self.owners.dedup();
        let first = self.planned as u64;
        for (key, v) in std::mem::take(&mut self.nested) {
            if !self.entries.contains_key(&key) {
                let ordinal = self.storage.len();
                self.entries.insert(key, first + ordinal as u64);
                self.storage.push((storage_name(ordinal as u64), v));
            }
        }
    }

    /// Finds the large tensors nested in `v` (at `depth`).
    fn walk(&mut self, v: &Value, depth: usize) {
        // The encoder refuses what is deeper.
        if depth >= MAX_DEPTH {
            return;
        }
        let mut fields = |fields: &[(String, Value)]| {
            for (_, x) in fields {
                self.walk(x, depth + 1);
            }
        };
        match v {
            Value::Tensor(_) | Value::ComplexTensor(_) if depth > 0 => {
                if let Some(key) = tensor_facts(v)
                    .filter(|t| t.bytes >= NESTED_BLOB_MIN)
                    .and_then(|t| key_of(&t))
                {
                    self.nested.push((key, v.clone()));
                }
            }
            Value::Vector(items) => {
                for x in items {
                    self.walk(x, depth + 1);
                }
            }
            Value::Record(r) => fields(r.fields()),
            Value::Edge(e) => fields(e.properties.fields()),
            Value::MutableRef(r) => {
                let inner = read_ref(r).clone();
                self.walk(&inner, depth + 1);
            }
            _ => {}
        }
    }

    /// The earlier binding whose blob binding `i` shares, if any.
    pub(crate) fn alias_of(&self, i: usize) -> Option<usize> {
        let at = self.aliases.binary_search_by_key(&i, |&(a, _)| a).ok()?;
        Some(self.aliases[at].1)
    }

    /// Whether a later binding shares binding `i`'s blob: its value then
    /// needs a blob, not a place in the table's value pool (format 1.4).
    pub(crate) fn is_shared(&self, i: usize) -> bool {
        self.owners.binary_search(&i).is_ok()
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
        let t = tensor_facts(v).filter(|t| t.bytes >= NESTED_BLOB_MIN)?;
        self.entries.get(&key_of(&t)?).copied()
    }
}

/// The name of the storage entry of ordinal `k`: fixed-width lowercase
/// hexadecimal, so that names sort as their ordinals.
pub(crate) fn storage_name(k: u64) -> String {
    format!("{k:0width$x}", width = STORAGE_NAME_LEN)
}
