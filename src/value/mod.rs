//! The values of the Achronyme runtime that an archive can hold.
//!
//! Equality ([`PartialEq`]) is exact: floats compare by bit pattern, so a
//! NaN equals the same NaN payload and `-0.0` differs from `0.0`. That is the
//! equality a round trip must keep.

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, RwLock};

use bytemuck::{Pod, Zeroable};
use once_cell::race::OnceBox;

/// How deeply values may nest (containers inside containers). Deeper values
/// are refused when saved and when read, so no recursion over a value can
/// exhaust the stack.
pub const MAX_DEPTH: usize = 128;

pub(crate) mod section;
pub use section::Section;
mod bytes;
pub use bytes::Bytes;
pub(crate) mod provenance;
use provenance::Provenance;

use crate::error::{Error, Result};

/// A complex number, laid out as two little-endian f64s (`re`, `im`).
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[repr(C)]
pub struct Complex {
    /// Real part.
    pub re: f64,
    /// Imaginary part.
    pub im: f64,
}

impl Complex {
    /// A complex number from its parts.
    pub const fn new(re: f64, im: f64) -> Self {
        Complex { re, im }
    }
}

impl PartialEq for Complex {
    fn eq(&self, other: &Self) -> bool {
        self.re.to_bits() == other.re.to_bits() && self.im.to_bits() == other.im.to_bits()
    }
}

/// Element storage of a tensor: owned (shared, copy-on-write) or a view of
/// an archive's bytes (a file mapping, or the memory of an archive opened
/// from bytes).
///
/// Cloning is cheap in both cases: it shares the storage. Writing through
/// [`Buffer::make_mut`] copies first when the storage is shared or a view.
///
/// A buffer may also know where its elements are stored, unchanged, in an
/// archive file ([`Buffer::has_provenance`]): then a save copies that
/// stored blob instead of writing the elements again. Clones share that
/// knowledge; any write forgets it.
pub struct Buffer<T: Pod> {
    storage: Storage<T>,
    /// The blob holding exactly these elements, once known: set when the
    /// reader makes the buffer, or by a save that wrote it (through `&self`,
    /// hence the cell); cleared by every `&mut` access that can write. A
    /// pointer-sized cell, so a `Value` stays 80 bytes.
    origin: OnceBox<Arc<Provenance>>,
}

impl<T: Pod> Clone for Buffer<T> {
    /// Shares the storage, and the provenance.
    fn clone(&self) -> Self {
        Buffer {
            storage: self.storage.clone(),
            origin: cell(self.origin.get()),
        }
    }
}

/// A provenance cell holding `p`, if any.
fn cell(p: Option<&Arc<Provenance>>) -> OnceBox<Arc<Provenance>> {
    let c = OnceBox::new();
    if let Some(p) = p {
        let _ = c.set(Box::new(p.clone()));
    }
    c
}

#[derive(Clone)]
enum Storage<T: Pod> {
    Owned(Arc<Vec<T>>),
    // Invariant: the bytes are aligned for T and a whole number of Ts long
    // (checked by `Buffer::from_bytes`); `Bytes` never moves or changes.
    View(Bytes),
}

impl<T: Pod> Buffer<T> {
    /// Owned storage holding `data`.
    pub fn from_vec(data: Vec<T>) -> Self {
        Self::of(Storage::Owned(Arc::new(data)))
    }

    fn of(storage: Storage<T>) -> Self {
        Buffer {
            storage,
            origin: OnceBox::new(),
        }
    }

    /// A view of `bytes` as elements of `T`, without a copy, or `None` when
    /// the bytes are not aligned for `T` or not a whole number of elements
    /// long. The view keeps `bytes`' owner alive (a file mapping, or memory
    /// borrowed with [`Bytes::from_owner`]) and copies on first write.
    pub fn from_bytes(bytes: Bytes) -> Option<Self> {
        bytemuck::try_cast_slice::<u8, T>(bytes.as_slice()).ok()?;
        Some(Self::of(Storage::View(bytes)))
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        match &self.storage {
            Storage::Owned(v) => v,
            // Cannot fail: alignment and length were checked in `from_bytes`
            // and the mapped bytes never move.
            Storage::View(b) => bytemuck::cast_slice(b.as_slice()),
        }
    }

    /// The elements as a vector of their own, without a copy when this
    /// buffer owns them alone; otherwise (a view of an archive or of
    /// borrowed memory, or storage shared with a clone) gives the buffer
    /// back unchanged, for the caller to borrow or copy.
    ///
    /// ```
    /// use achronyme_env::Buffer;
    /// let b = Buffer::from_vec(vec![1.0f64, 2.0]);
    /// let shared = b.clone();
    /// let b = b.try_into_vec().unwrap_err(); // shared with `shared`
    /// drop(shared);
    /// assert_eq!(b.try_into_vec().unwrap(), [1.0, 2.0]);
    /// ```
    pub fn try_into_vec(self) -> std::result::Result<Vec<T>, Self> {
        match self.storage {
            Storage::Owned(v) => Arc::try_unwrap(v).map_err(|v| Buffer {
                storage: Storage::Owned(v),
                origin: self.origin,
            }),
            view => Err(Buffer {
                storage: view,
                origin: self.origin,
            }),
        }
    }

    /// Copies the elements into memory of their own if they are borrowed
    /// from a file mapping, so they no longer depend on the file's bytes.
    /// Their provenance stays (the copy holds the same bytes): a save checks
    /// the file is unchanged before copying from it, and otherwise writes
    /// the elements.
    pub(crate) fn detach_from_file(&mut self) {
        if let Storage::View(b) = &self.storage
            && b.is_mapped()
        {
            let owned = bytemuck::cast_slice::<u8, T>(b.as_slice()).to_vec();
            self.storage = Storage::Owned(Arc::new(owned));
        }
    }

    /// Mutable access; copies the elements first if they are a view of an
    /// archive or shared with another value (a snapshot, a clone).
    ///
    /// Forgets the buffer's provenance (this clone's only): the elements
    /// may differ from the stored blob after the write.
    pub fn make_mut(&mut self) -> &mut [T] {
        self.origin = OnceBox::new();
        if let Storage::View(b) = &self.storage {
            let owned = bytemuck::cast_slice::<u8, T>(b.as_slice()).to_vec();
            self.storage = Storage::Owned(Arc::new(owned));
        }
        match &mut self.storage {
            Storage::Owned(v) => Arc::make_mut(v).as_mut_slice(),
            Storage::View(_) => unreachable!("converted to owned above"),
        }
    }

    /// True when the elements are borrowed from a file mapping: no copy was
    /// made when loading, and the file must stay unmodified while they live.
    /// False for owned elements and for views of an archive held in memory
    /// ([`Archive::from_bytes`](crate::Archive::from_bytes),
    /// [`Archive::open_copied`](crate::Archive::open_copied)).
    pub fn is_mapped(&self) -> bool {
        matches!(&self.storage, Storage::View(b) if b.is_mapped())
    }

    /// True when the elements are known to be stored, unchanged, in an
    /// archive file that is still open: loaded from a local archive
    /// ([`Archive::open`](crate::Archive::open), `restore_env`), or written
    /// by a save to a local path, and not written to since. A save with
    /// compatible options then copies that blob (`SaveReport::bytes_copied`)
    /// instead of writing the elements again. Holding it keeps the file
    /// open (and its disk space in use after a save replaced it), as a
    /// mapped view does.
    ///
    /// ```
    /// use achronyme_env::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("w.ach");
    /// let mut env = Environment::new();
    /// env.set("t", Value::Tensor(Tensor::from_vec(vec![1.0; 1000])));
    /// let raw = SaveOptions { compression: Compression::None, ..SaveOptions::default() };
    /// save_environment(&env, &path, &raw).unwrap();
    /// let Value::Tensor(mut t) = Archive::open(&path).unwrap().get("t").unwrap() else { panic!() };
    /// assert!(t.buffer().has_provenance());
    /// let copy = t.clone();
    /// t.data_mut()[0] = 2.0; // a write forgets it, in this clone only
    /// assert!(!t.buffer().has_provenance());
    /// assert!(copy.buffer().has_provenance());
    /// ```
    pub fn has_provenance(&self) -> bool {
        self.origin.get().is_some()
    }

    /// Where the elements are stored unchanged, if known.
    pub(crate) fn provenance(&self) -> Option<&Arc<Provenance>> {
        self.origin.get()
    }

    /// Records where the elements are stored, unless already known (a
    /// blob that holds them already is as good as a newer one).
    pub(crate) fn set_provenance(&self, p: Arc<Provenance>) {
        let _ = self.origin.set(Box::new(p));
    }

    /// True when `self` and `other` share the same storage (no copy between
    /// them).
    pub fn shares_storage_with(&self, other: &Self) -> bool {
        // Empty slices may share a dangling pointer without sharing storage.
        !self.is_empty() && std::ptr::eq(self.as_slice().as_ptr(), other.as_slice().as_ptr())
    }

    /// Identifies the storage within one borrow of the values: buffers
    /// that [share storage](Buffer::shares_storage_with) and hold as many
    /// elements have the same key (their elements' address and count).
    /// `None` when empty. A save uses it to write shared storage once.
    pub(crate) fn storage_key(&self) -> Option<(usize, usize)> {
        (!self.is_empty()).then(|| (self.as_slice().as_ptr() as usize, self.len()))
    }

    /// False when no other buffer can share this one's storage: owned
    /// elements that nothing else holds. A save then skips looking for
    /// other places that share it. Views are assumed shared.
    pub(crate) fn may_share(&self) -> bool {
        match &self.storage {
            Storage::Owned(v) => Arc::strong_count(v) > 1,
            Storage::View(_) => true,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.as_slice();
        let kind = match &self.storage {
            Storage::View(b) if b.is_mapped() => "mapped",
            Storage::View(_) => "view",
            Storage::Owned(_) => "owned",
        };
        if s.len() <= 8 {
            write!(f, "{kind}{s:?}")
        } else {
            write!(
                f,
                "{kind}[{:?}, {:?}, ... {} elements]",
                s[0],
                s[1],
                s.len()
            )
        }
    }
}

fn element_count(shape: &[usize]) -> Option<u64> {
    shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))
}

macro_rules! tensor_type {
    ($(#[$doc:meta])* $name:ident, $elem:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name {
            shape: Vec<usize>,
            data: Buffer<$elem>,
        }

        impl $name {
            /// A tensor of `shape` holding `data` in row-major order.
            ///
            /// Fails with [`Error::ShapeMismatch`] when the shape's product is
            /// not `data.len()`.
            pub fn new(shape: Vec<usize>, data: Vec<$elem>) -> Result<Self> {
                Self::from_buffer(shape, Buffer::from_vec(data))
            }

            /// A tensor over existing storage (owned or mapped).
            pub fn from_buffer(shape: Vec<usize>, data: Buffer<$elem>) -> Result<Self> {
                let found = data.len() as u64;
                match element_count(&shape) {
                    Some(expected) if expected == found => Ok($name { shape, data }),
                    other => Err(Error::ShapeMismatch {
                        shape,
                        expected: other.unwrap_or(u64::MAX),
                        found,
                    }),
                }
            }

            /// A one-dimensional tensor.
            pub fn from_vec(data: Vec<$elem>) -> Self {
                $name {
                    shape: vec![data.len()],
                    data: Buffer::from_vec(data),
                }
            }

            /// The dimensions.
            pub fn shape(&self) -> &[usize] {
                &self.shape
            }

            /// The elements in row-major order.
            pub fn data(&self) -> &[$elem] {
                self.data.as_slice()
            }

            /// Mutable elements; copies first if mapped or shared.
            pub fn data_mut(&mut self) -> &mut [$elem] {
                self.data.make_mut()
            }

            /// The storage.
            pub fn buffer(&self) -> &Buffer<$elem> {
                &self.data
            }

            pub(crate) fn buffer_mut(&mut self) -> &mut Buffer<$elem> {
                &mut self.data
            }

            /// True when the elements borrow a file mapping (see
            /// [`Buffer::is_mapped`]).
            pub fn is_mapped(&self) -> bool {
                self.data.is_mapped()
            }

            /// Number of elements.
            pub fn len(&self) -> usize {
                self.data.len()
            }

            /// True when the tensor has no elements.
            pub fn is_empty(&self) -> bool {
                self.data.is_empty()
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.shape == other.shape
                    && bytemuck::cast_slice::<$elem, u8>(self.data())
                        == bytemuck::cast_slice::<$elem, u8>(other.data())
            }
        }
    };
}

tensor_type!(
    /// An n-dimensional tensor of f64.
    ///
    /// ```
    /// use achronyme_env::Tensor;
    /// let mut t = Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    /// t.data_mut()[0] = 10.0;
    /// assert_eq!(t.data()[0], 10.0);
    /// assert!(Tensor::new(vec![2, 2], vec![1.0]).is_err());
    /// ```
    Tensor,
    f64
);

tensor_type!(
    /// An n-dimensional tensor of complex numbers.
    ComplexTensor,
    Complex
);

/// A record: named fields in the order they were defined.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    fields: Vec<(String, Value)>,
}

impl Record {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// A record from fields whose names are known to be distinct.
    pub(crate) fn from_unique(fields: Vec<(String, Value)>) -> Self {
        Record { fields }
    }

    /// Sets a field, replacing it in place if it exists, appending otherwise.
    pub fn insert(&mut self, name: impl Into<String>, value: Value) {
        let name = name.into();
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.fields.push((name, value)),
        }
    }

    /// The field called `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The fields in order.
    pub fn fields(&self) -> &[(String, Value)] {
        &self.fields
    }

    /// The fields in order, by value (a tensor among them keeps its storage
    /// to itself, with no clone sharing it).
    pub fn into_fields(self) -> Vec<(String, Value)> {
        self.fields
    }

    /// The fields' values, mutable (names stay as they are, so they stay
    /// distinct).
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut Value> {
        self.fields.iter_mut().map(|(_, v)| v)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl FromIterator<(String, Value)> for Record {
    /// Builds a record keeping field order; a repeated name keeps its first
    /// position and its last value.
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        // An index keeps this linear in the number of fields.
        let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut fields: Vec<(String, Value)> = Vec::new();
        for (k, v) in iter {
            match index.get(&k) {
                Some(&i) => fields[i].1 = v,
                None => {
                    index.insert(k.clone(), fields.len());
                    fields.push((k, v));
                }
            }
        }
        Record { fields }
    }
}

/// A function value.
#[derive(Clone, Debug, PartialEq)]
pub enum Function {
    /// A builtin of the runtime, saved by name (`sin`, `map`, ...).
    Builtin(String),
    /// A user-defined lambda or closure. Archives cannot hold these (spec
    /// 4.1): a save skips them and says so in its report.
    Lambda {
        /// Parameter names.
        params: Vec<String>,
        /// Source text, for messages.
        source: String,
    },
}

/// A graph edge.
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    /// Source node.
    pub from: String,
    /// Target node.
    pub to: String,
    /// Directed or not.
    pub directed: bool,
    /// Edge properties.
    pub properties: Record,
}

/// A value of the Achronyme runtime.
#[derive(Clone)]
pub enum Value {
    /// The absent value.
    Null,
    /// A 64-bit float.
    Number(f64),
    /// A boolean.
    Boolean(bool),
    /// UTF-8 text.
    String(String),
    /// A complex number.
    Complex(Complex),
    /// A heterogeneous vector.
    Vector(Vec<Value>),
    /// An f64 tensor.
    Tensor(Tensor),
    /// A complex tensor.
    ComplexTensor(ComplexTensor),
    /// A record.
    Record(Record),
    /// A function.
    Function(Function),
    /// A graph edge.
    Edge(Edge),
    /// A `mut` reference; archives save the current value (spec 4.2).
    MutableRef(Arc<RwLock<Value>>),
}

impl Value {
    /// A fresh mutable reference holding `v`.
    pub fn new_ref(v: Value) -> Value {
        Value::MutableRef(Arc::new(RwLock::new(v)))
    }

    /// The type's name as users see it (`"Tensor"`, `"Record"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "Null",
            Value::Number(_) => "Number",
            Value::Boolean(_) => "Boolean",
            Value::String(_) => "String",
            Value::Complex(_) => "Complex",
            Value::Vector(_) => "Vector",
            Value::Tensor(_) => "Tensor",
            Value::ComplexTensor(_) => "ComplexTensor",
            Value::Record(_) => "Record",
            Value::Function(_) => "Function",
            Value::Edge(_) => "Edge",
            Value::MutableRef(_) => "MutableRef",
        }
    }

    /// True when an archive can hold this value: it is not, and does not
    /// contain, a user lambda.
    ///
    /// Looks no deeper than archives may nest (a value nested deeper, or a
    /// reference cycle, is refused by the save with [`Error::TooDeep`]), so
    /// this never overflows the stack.
    pub fn is_saveable(&self) -> bool {
        self.saveable_below(0)
    }

    fn saveable_below(&self, depth: usize) -> bool {
        if depth >= MAX_DEPTH {
            return true;
        }
        let deeper = |v: &Value| v.saveable_below(depth + 1);
        match self {
            Value::Function(Function::Lambda { .. }) => false,
            Value::Vector(v) => v.iter().all(deeper),
            Value::Record(r) => r.fields().iter().all(|(_, v)| deeper(v)),
            Value::Edge(e) => e.properties.fields().iter().all(|(_, v)| deeper(v)),
            Value::MutableRef(r) => deeper(&read_ref(r)),
            _ => true,
        }
    }
}

thread_local! {
    /// The references the current comparison or formatting is inside of, by
    /// address: references can form cycles, which must end somewhere.
    static REF_PATH: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` inside the reference pair `key`, or returns `cycle()` when
/// already inside it: a cycle is recognised the first time it closes, so
/// even a cycle that branches costs time linear in its size.
fn through_ref<T>(key: (usize, usize), cycle: impl FnOnce() -> T, f: impl FnOnce() -> T) -> T {
    if REF_PATH.with(|p| p.borrow().contains(&key)) {
        return cycle();
    }
    REF_PATH.with(|p| p.borrow_mut().push(key));
    let out = f();
    REF_PATH.with(|p| p.borrow_mut().pop());
    out
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Number(n) => f.debug_tuple("Number").field(n).finish(),
            Value::Boolean(b) => f.debug_tuple("Boolean").field(b).finish(),
            Value::String(s) => f.debug_tuple("String").field(s).finish(),
            Value::Complex(c) => f.debug_tuple("Complex").field(c).finish(),
            Value::Vector(v) => f.debug_tuple("Vector").field(v).finish(),
            Value::Tensor(t) => f.debug_tuple("Tensor").field(t).finish(),
            Value::ComplexTensor(t) => f.debug_tuple("ComplexTensor").field(t).finish(),
            Value::Record(r) => f.debug_tuple("Record").field(r).finish(),
            Value::Function(x) => f.debug_tuple("Function").field(x).finish(),
            Value::Edge(e) => f.debug_tuple("Edge").field(e).finish(),
            Value::MutableRef(r) => {
                let key = (Arc::as_ptr(r) as usize, 0);
                let inner = through_ref(key, || None, || Some(format!("{:?}", &*read_ref(r))));
                match inner {
                    Some(text) => write!(f, "MutableRef({text})"),
                    None => f.write_str("MutableRef(<cycle>)"),
                }
            }
        }
    }
}

/// Reads through a mutable reference, tolerating a poisoned lock (the value
/// is plain data; a panic elsewhere cannot leave it half-written).
pub(crate) fn read_ref(r: &RwLock<Value>) -> std::sync::RwLockReadGuard<'_, Value> {
    r.read().unwrap_or_else(|e| e.into_inner())
}

impl Value {
    /// Copies every tensor of this value that borrows a file mapping into
    /// memory of its own (restores with `copy: true`): afterwards nothing in
    /// it depends on the archive's file. Stops at [`MAX_DEPTH`], deeper than
    /// an archive holds.
    pub(crate) fn detach_from_files(&mut self) {
        self.detach_below(0);
    }

    fn detach_below(&mut self, depth: usize) {
        if depth >= MAX_DEPTH {
            return;
        }
        let fields = |r: &mut Record| {
            for v in r.values_mut() {
                v.detach_below(depth + 1);
            }
        };
        match self {
            Value::Tensor(t) => t.buffer_mut().detach_from_file(),
            Value::ComplexTensor(t) => t.buffer_mut().detach_from_file(),
            Value::Vector(items) => items.iter_mut().for_each(|v| v.detach_below(depth + 1)),
            Value::Record(r) => fields(r),
            Value::Edge(e) => fields(&mut e.properties),
            Value::MutableRef(r) => r
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .detach_below(depth + 1),
            _ => {}
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Number(a), Number(b)) => a.to_bits() == b.to_bits(),
            (Boolean(a), Boolean(b)) => a == b,
            (String(a), String(b)) => a == b,
            (Complex(a), Complex(b)) => a == b,
            (Vector(a), Vector(b)) => a == b,
            (Tensor(a), Tensor(b)) => a == b,
            (ComplexTensor(a), ComplexTensor(b)) => a == b,
            (Record(a), Record(b)) => a == b,
            (Function(a), Function(b)) => a == b,
            (Edge(a), Edge(b)) => a == b,
            // Two cycles compare equal when they unfold alike: a pair met
            // again on the current path adds no difference.
            (MutableRef(a), MutableRef(b)) => {
                let key = (Arc::as_ptr(a) as usize, Arc::as_ptr(b) as usize);
                Arc::ptr_eq(a, b) || through_ref(key, || true, || *read_ref(a) == *read_ref(b))
            }
            _ => false,
        }
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Number(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl From<Tensor> for Value {
    fn from(v: Tensor) -> Self {
        Value::Tensor(v)
    }
}
impl From<ComplexTensor> for Value {
    fn from(v: ComplexTensor) -> Self {
        Value::ComplexTensor(v)
    }
}
impl From<Record> for Value {
    fn from(v: Record) -> Self {
        Value::Record(v)
    }
}
impl From<Complex> for Value {
    fn from(v: Complex) -> Self {
        Value::Complex(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory budgets count decoded vectors at `size_of::<Value>()` each,
    /// and the docs say 80 bytes: a tensor's provenance must not grow it.
    #[test]
    fn a_value_stays_80_bytes_with_provenance_in_its_tensors() {
        assert_eq!(size_of::<Value>(), 80);
        assert_eq!(size_of::<Buffer<f64>>(), size_of::<Storage<f64>>() + 8);
    }
}
