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
            let Some(t) = tensor_facts(item.value).filter(|t| t.may_share) else {
                continue;
            };
            if let Some(key) = key_of(&t) {
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
            Value::Tensor(_) | Value::ComplexTensor(_) if depth > 0 => {
                let Some(key) = tensor_facts(v)
                    .filter(|t| t.bytes >= NESTED_BLOB_MIN)
                    .and_then(|t| key_of(&t))
                else {
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
        let t = tensor_facts(v).filter(|t| t.bytes >= NESTED_BLOB_MIN)?;
        self.entries.get(&key_of(&t)?).copied()
    }
}

/// The name of the storage entry of ordinal `k`: fixed-width lowercase
/// hexadecimal, so that names sort as their ordinals.
pub(crate) fn storage_name(k: u64) -> String {
    format!("{k:0width$x}", width = STORAGE_NAME_LEN)
}
