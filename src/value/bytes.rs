//! A shared, immutable byte range: the storage a tensor can borrow.

use std::sync::Arc;

/// A shared, immutable byte range. Cloning shares the owner; a tensor view
/// holds one of these, which keeps the mapping alive after the archive handle
/// is dropped.
#[derive(Clone)]
pub struct Bytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    start: usize,
    end: usize,
    /// The owner is a file mapping (not memory the process allocated).
    mapped: bool,
}

impl Bytes {
    /// Bytes owned by a vector.
    pub fn from_vec(v: Vec<u8>) -> Self {
        let end = v.len();
        Bytes {
            owner: Arc::new(v),
            start: 0,
            end,
            mapped: false,
        }
    }

    /// All the bytes of `owner`, kept alive by this value and its clones:
    /// memory that something else allocated (a host language's array, a
    /// buffer shared with another library), borrowed without a copy. Not
    /// [`Bytes::is_mapped`], whatever the owner is.
    ///
    /// The owner must hand out the same bytes (same address, length and
    /// contents) for as long as it lives; that is what every other owner of
    /// `Bytes` does. One that does not cannot cause undefined behaviour,
    /// only a panic on access (a range now out of bounds) or a tensor whose
    /// elements changed.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use achronyme_env::{Buffer, Bytes, Tensor};
    /// // Elements some other code allocated, shared with this crate.
    /// struct Elements(Vec<f64>);
    /// impl AsRef<[u8]> for Elements {
    ///     fn as_ref(&self) -> &[u8] {
    ///         bytemuck::cast_slice(&self.0)
    ///     }
    /// }
    /// let bytes = Bytes::from_owner(Arc::new(Elements(vec![1.5, -2.0])));
    /// assert!(!bytes.is_mapped());
    /// let t = Tensor::from_buffer(vec![2], Buffer::from_bytes(bytes).unwrap()).unwrap();
    /// assert_eq!(t.data(), &[1.5, -2.0]);
    /// ```
    pub fn from_owner(owner: Arc<dyn AsRef<[u8]> + Send + Sync>) -> Self {
        let end = (*owner).as_ref().len();
        Bytes {
            owner,
            start: 0,
            end,
            mapped: false,
        }
    }

    /// All the bytes of a file mapping (only `archive::source` makes one).
    pub(crate) fn from_mapping(map: Arc<dyn AsRef<[u8]> + Send + Sync>) -> Self {
        let end = (*map).as_ref().len();
        Bytes {
            owner: map,
            start: 0,
            end,
            mapped: true,
        }
    }

    /// True when these bytes are part of a file mapping; false when they are
    /// memory the process holds (a vector, a copy read from a file).
    pub fn is_mapped(&self) -> bool {
        self.mapped
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // In bounds: `start..end` was checked against the owner's length when
        // this value was made, and owners never change length.
        &(*self.owner).as_ref()[self.start..self.end]
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// A sub-range, sharing the owner; `None` when it is out of bounds.
    pub fn slice(&self, offset: u64, len: u64) -> Option<Bytes> {
        let offset = usize::try_from(offset).ok()?;
        let len = usize::try_from(len).ok()?;
        let start = self.start.checked_add(offset)?;
        let end = start.checked_add(len)?;
        (end <= self.end).then(|| Bytes {
            owner: self.owner.clone(),
            start,
            end,
            mapped: self.mapped,
        })
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.mapped { "mapped" } else { "in memory" };
        write!(f, "Bytes({} bytes, {kind})", self.len())
    }
}
