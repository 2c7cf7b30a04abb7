//! The byte encoding of values inside a blob (spec 2.5, with u64 lengths;
//! `layout.md` section 5).
//!
//! Encoding streams into any `io::Write`. Decoding reads a slice with a
//! depth limit and a memory limit: it first walks the bytes to check them
//! and count what the value will hold in memory (a `Null` is 1 byte encoded
//! and `size_of::<Value>()` decoded), and builds only when that fits.

use std::io::{self, Write};
use std::sync::RwLock;

use crate::format::layout::{MAX_NDIM, TAG_BLOB_REF, Tag};
use crate::value::{
    Complex, ComplexTensor, Edge, Function, MAX_DEPTH, Record, Tensor, Value, read_ref,
};

/// The type tag a value is written with.
pub fn tag_of(v: &Value) -> Tag {
    match v {
        Value::Null => Tag::Null,
        Value::Number(_) => Tag::Number,
        Value::Boolean(_) => Tag::Boolean,
        Value::String(_) => Tag::String,
        Value::Complex(_) => Tag::Complex,
        Value::Vector(_) => Tag::Vector,
        Value::Tensor(_) => Tag::Tensor,
        Value::ComplexTensor(_) => Tag::ComplexTensor,
        Value::Record(_) => Tag::Record,
        Value::Function(Function::Builtin(_) | Function::Lambda { .. }) => Tag::Function,
        Value::Edge(_) => Tag::Edge,
        Value::MutableRef(_) => Tag::MutableRef,
    }
}

/// Builtin function kind byte.
const FUNCTION_BUILTIN: u8 = 0x01;

/// Why encoding stopped.
#[derive(Debug)]
pub(crate) enum EncodeError {
    Io(io::Error),
    TooDeep,
    Lambda,
    TooManyDims,
}

impl From<io::Error> for EncodeError {
    fn from(e: io::Error) -> Self {
        EncodeError::Io(e)
    }
}

fn put_len<W: Write>(w: &mut W, n: usize) -> io::Result<()> {
    w.write_all(&(n as u64).to_le_bytes())
}

fn put_str<W: Write>(w: &mut W, s: &str) -> io::Result<()> {
    put_len(w, s.len())?;
    w.write_all(s.as_bytes())
}

fn put_shape<W: Write>(w: &mut W, shape: &[usize]) -> Result<(), EncodeError> {
    if shape.len() > MAX_NDIM as usize {
        return Err(EncodeError::TooManyDims);
    }
    w.write_all(&(shape.len() as u32).to_le_bytes())?;
    for &d in shape {
        w.write_all(&(d as u64).to_le_bytes())?;
    }
    Ok(())
}

/// Where the nested tensors that have blobs of their own are (format 1.3):
/// the entry index a tensor's encoding refers to instead of holding its
/// elements, or `None` to encode it inline.
pub(crate) trait BlobIndex {
    /// The entry holding `v` (a tensor or complex tensor) as its blob.
    fn entry_of(&self, v: &Value) -> Option<u64>;
}

/// Every tensor inline, as before format 1.3.
pub(crate) struct Inline;

impl BlobIndex for Inline {
    fn entry_of(&self, _: &Value) -> Option<u64> {
        None
    }
}

/// Writes `v` with its tag. Tensor elements go out as one slice write.
pub(crate) fn encode<W: Write>(w: &mut W, v: &Value, depth: usize) -> Result<(), EncodeError> {
    encode_with(w, v, depth, &Inline)
}

/// [`encode`], writing a blob reference (tag 0x0C and the entry index) for
/// each nested tensor that `blobs` places in an entry of its own.
pub(crate) fn encode_with<W: Write>(
    w: &mut W,
    v: &Value,
    depth: usize,
    blobs: &dyn BlobIndex,
) -> Result<(), EncodeError> {
    if depth >= MAX_DEPTH {
        return Err(EncodeError::TooDeep);
    }
    if let Some(index) = blobs.entry_of(v) {
        w.write_all(&[TAG_BLOB_REF])?;
        w.write_all(&index.to_le_bytes())?;
        return Ok(());
    }
    w.write_all(&[tag_of(v) as u8])?;
    match v {
        Value::Null => {}
        Value::Number(n) => w.write_all(&n.to_le_bytes())?,
        Value::Boolean(b) => w.write_all(&[*b as u8])?,
        Value::String(s) => put_str(w, s)?,
        Value::Complex(c) => {
            w.write_all(&c.re.to_le_bytes())?;
            w.write_all(&c.im.to_le_bytes())?;
        }
        Value::Vector(items) => {
            put_len(w, items.len())?;
            for item in items {
                encode_with(w, item, depth + 1, blobs)?;
            }
        }
        Value::Tensor(t) => {
            put_shape(w, t.shape())?;
            w.write_all(bytemuck::cast_slice(t.data()))?;
        }
        Value::ComplexTensor(t) => {
            put_shape(w, t.shape())?;
            w.write_all(bytemuck::cast_slice(t.data()))?;
        }
        Value::Record(r) => encode_record_body(w, r, depth, blobs)?,
        Value::Function(Function::Builtin(name)) => {
            w.write_all(&[FUNCTION_BUILTIN])?;
            put_str(w, name)?;
        }
        Value::Function(Function::Lambda { .. }) => return Err(EncodeError::Lambda),
        Value::Edge(e) => {
            put_str(w, &e.from)?;
            put_str(w, &e.to)?;
            w.write_all(&[e.directed as u8])?;
            w.write_all(&[Tag::Record as u8])?;
            encode_record_body(w, &e.properties, depth, blobs)?;
        }
        Value::MutableRef(r) => encode_with(w, &read_ref(r), depth + 1, blobs)?,
    }
    Ok(())
}

fn encode_record_body<W: Write>(
    w: &mut W,
    r: &Record,
    depth: usize,
    blobs: &dyn BlobIndex,
) -> Result<(), EncodeError> {
    put_len(w, r.len())?;
    for (name, value) in r.fields() {
        put_str(w, name)?;
        encode_with(w, value, depth + 1, blobs)?;
    }
    Ok(())
}

/// Checks that `bytes` hold exactly one valid value and returns the memory,
/// in bytes, that decoding it holds (see [`Reader::charge`] for what counts).
/// Stops with [`DecodeError::TooLarge`] as soon as the count passes `limit`.
/// Builds no value: the only memory it takes is, for each record being
/// read, the list of its field names (counted like the rest).
pub(crate) fn measure_exact(bytes: &[u8], limit: u64) -> Result<u64, DecodeError> {
    measure_exact_with(bytes, limit, &mut NoBlobs)
}

/// [`measure_exact`] for a value of an archive whose blob references
/// (format 1.3) `blobs` checks. The tensors they refer to are not counted:
/// they are loaded, and counted, only when the value is built.
pub(crate) fn measure_exact_with(
    bytes: &[u8],
    limit: u64,
    blobs: &mut dyn Blobs,
) -> Result<u64, DecodeError> {
    let mut r = Reader::<false>::new(bytes, limit, blobs);
    r.value(0)?;
    r.finish()
}

/// Decodes exactly one value filling all of `bytes`, when it holds at most
/// `limit` bytes of memory once decoded; returns it with that cost.
///
/// The bytes are measured first ([`measure_exact`]), so a value over the
/// limit, or malformed anywhere, is refused before anything is built; then
/// every container is allocated at its final size, fallibly.
pub(crate) fn decode_exact(bytes: &[u8], limit: u64) -> Result<(Value, u64), DecodeError> {
    let cost = measure_exact(bytes, limit)?;
    Ok((build_exact(bytes, cost)?, cost))
}

/// The second pass of [`decode_exact`], for a caller that measured `bytes`
/// already and found they cost `cost`. Still checks every rule, so it is
/// safe on any bytes; the same bytes give the same count, so it cannot
/// pass `cost`.
pub(crate) fn build_exact(bytes: &[u8], cost: u64) -> Result<Value, DecodeError> {
    let mut none = NoBlobs;
    let mut r = Reader::<true>::new(bytes, cost, &mut none);
    let v = r.value(0)?;
    let built = r.finish()?;
    debug_assert_eq!(built, cost);
    Ok(v)
}

/// [`build_exact`] for a value measured with [`measure_exact_with`] at
/// `cost`: the tensors its blob references name are loaded through
/// `blobs` as they are met, and their memory counted against `limit` on
/// top of what the measure counted. Returns the value and its whole cost.
pub(crate) fn build_exact_with(
    bytes: &[u8],
    cost: u64,
    limit: u64,
    blobs: &mut dyn Blobs,
) -> Result<(Value, u64), DecodeError> {
    let (v, built) = decode_small_with(bytes, limit, blobs)?;
    debug_assert!(built >= cost);
    Ok((v, built))
}

/// Payloads up to this size may be decoded in one pass ([`decode_small`]).
pub(crate) const SMALL_PAYLOAD: usize = 64 << 10;

/// Memory one encoded byte can become, at most, while a value is decoded in
/// one pass: a `Null` (one byte) is a whole `Value` in a vector reserved
/// from its declared count, before its items are charged.
pub(crate) const MAX_BYTES_PER_ENCODED_BYTE: u64 = 128;

/// Decodes exactly one value in one pass, counting its memory against
/// `limit` as it goes; returns it with that cost. The rules and errors are
/// those of [`decode_exact`], but a container is reserved at the count its
/// bytes declare before its items are charged, so before it refuses it may
/// allocate up to [`MAX_BYTES_PER_ENCODED_BYTE`] times the payload: callers
/// use it for payloads of at most [`SMALL_PAYLOAD`] bytes whose worst case
/// fits the budget anyway, and save the measuring pass (most values of an
/// environment are a few bytes).
#[cfg(test)]
pub(crate) fn decode_small(bytes: &[u8], limit: u64) -> Result<(Value, u64), DecodeError> {
    decode_small_with(bytes, limit, &mut NoBlobs)
}

/// [`decode_small`] loading blob references through `blobs`, counted as
/// they are loaded.
pub(crate) fn decode_small_with(
    bytes: &[u8],
    limit: u64,
    blobs: &mut dyn Blobs,
) -> Result<(Value, u64), DecodeError> {
    let mut r = Reader::<true>::new(bytes, limit, blobs);
    let v = r.value(0)?;
    let cost = r.finish()?;
    Ok((v, cost))
}

/// Why decoding failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    TooDeep,
    Invalid(&'static str),
    /// The value needs at least this many bytes of memory: more than the
    /// limit, or more than the allocator granted.
    TooLarge(u64),
    /// Loading a blob a reference names failed; the [`Blobs`] that loaded
    /// it holds the error.
    Blob,
}

/// The blobs of the archive a value is decoded from, for its blob
/// references (tag 0x0C, format 1.3).
pub(crate) trait Blobs {
    /// The tag (Tensor or ComplexTensor) of entry `index`, or why a
    /// reference may not name it.
    fn check(&self, index: u64) -> Result<Tag, DecodeError>;
    /// [`Blobs::check`], for a walk that also notes which entries the
    /// value names (the measuring pass calls this one).
    fn check_and_note(&mut self, index: u64) -> Result<Tag, DecodeError> {
        self.check(index)
    }
    /// Loads entry `index`, checked as [`Blobs::check`] does, holding at
    /// most `left` bytes of memory for it; returns the tensor and the bytes
    /// it newly holds (none for a blob loaded already, which the value
    /// shares).
    fn load(&mut self, index: u64, left: u64) -> Result<(Value, u64), DecodeError>;
}

/// No archive: a blob reference is an error.
pub(crate) struct NoBlobs;

impl Blobs for NoBlobs {
    fn check(&self, _: u64) -> Result<Tag, DecodeError> {
        Err(DecodeError::Invalid(
            "blob reference outside an archive's table of contents",
        ))
    }
    fn load(&mut self, index: u64, _: u64) -> Result<(Value, u64), DecodeError> {
        self.check(index).map(|_| (Value::Null, 0))
    }
}

/// Walks one encoded value, checking every rule of `layout.md` 5.3 and
/// counting the memory the decoded value holds. With `BUILD` it also builds
/// the value; without, it returns placeholders and allocates nothing but
/// the field-name lists that find repeated names.
struct Reader<'a, const BUILD: bool> {
    bytes: &'a [u8],
    pos: usize,
    /// Bytes of memory counted so far.
    spent: u64,
    limit: u64,
    /// What blob references name.
    blobs: &'a mut dyn Blobs,
}

type D<T> = Result<T, DecodeError>;

/// Heap bytes of an `Arc<T>` beyond `T`: the two reference counts.
const ARC_COUNTS: u64 = 2 * size_of::<usize>() as u64;

/// Bytes of `n` items of `T` in a vector of exactly that capacity.
fn array_of<T>(n: usize) -> u64 {
    (n as u64).saturating_mul(size_of::<T>() as u64)
}

impl<'a, const BUILD: bool> Reader<'a, BUILD> {
    fn new(bytes: &'a [u8], limit: u64, blobs: &'a mut dyn Blobs) -> Self {
        Reader {
            bytes,
            pos: 0,
            spent: 0,
            limit,
            blobs,
        }
    }

    /// A blob reference (format 1.3): an entry index naming a tensor blob.
    /// Checked in both passes; loaded, and its memory counted, only when
    /// building.
    fn blob_ref(&mut self) -> D<Value> {
        let index = self.u64()?;
        if !BUILD {
            self.blobs.check_and_note(index)?;
            return Ok(Value::Null);
        }
        // Loading checks the entry as `check` does.
        let left = self.limit.saturating_sub(self.spent);
        let (v, cost) = self.blobs.load(index, left)?;
        self.charge(cost)?;
        Ok(v)
    }

    /// Checks that the value filled the bytes; returns what it cost.
    fn finish(&self) -> D<u64> {
        if self.pos != self.bytes.len() {
            return Err(DecodeError::Invalid("bytes left over after the value"));
        }
        Ok(self.spent)
    }

    /// Counts `bytes` of memory about to be held, and refuses them past the
    /// limit. Counted: each vector element and record field at its size in
    /// its `Vec` (`size_of::<Value>()`, `size_of::<(String, Value)>()`), the
    /// bytes of every string, field name and builtin name, a nested tensor's
    /// elements and shape, the shared cell of a mutable reference, and each
    /// record's list of names while it is checked for repeats. Charged as
    /// each item is read, so a false count costs only what really follows.
    fn charge(&mut self, bytes: u64) -> D<()> {
        self.spent = self.spent.saturating_add(bytes);
        if self.spent > self.limit {
            return Err(DecodeError::TooLarge(self.spent));
        }
        Ok(())
    }

    /// An empty vector with room for exactly `n` items (none when only
    /// measuring). Items are charged as they are read, not here: by the
    /// time a build runs, the measure has shown that all `n` are there.
    fn with_capacity<T>(&self, n: usize) -> D<Vec<T>> {
        let mut v = Vec::new();
        if BUILD {
            v.try_reserve_exact(n)
                .map_err(|_| DecodeError::TooLarge(self.spent.saturating_add(array_of::<T>(n))))?;
        }
        Ok(v)
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: u64) -> D<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| DecodeError::Invalid("length too large"))?;
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError::Invalid("length too large"))?;
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or(DecodeError::Invalid("value runs past the end of its blob"))?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> D<[u8; N]> {
        let s = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> D<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> D<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> D<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> D<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A string, borrowed from the bytes and charged at its length.
    fn str(&mut self) -> D<&'a str> {
        let n = self.u64()?;
        let s = self.take(n)?;
        let s = std::str::from_utf8(s)
            .map_err(|_| DecodeError::Invalid("string is not valid UTF-8"))?;
        self.charge(s.len() as u64)?;
        Ok(s)
    }

    /// A string as an owned `String` when building, an empty one otherwise.
    fn string(&mut self) -> D<String> {
        let s = self.str()?;
        let mut owned = String::new();
        if BUILD {
            owned
                .try_reserve_exact(s.len())
                .map_err(|_| DecodeError::TooLarge(self.spent))?;
            owned.push_str(s);
        }
        Ok(owned)
    }

    /// A count of items each at least `min_size` bytes long: larger counts
    /// than the remaining bytes could hold are rejected before allocating.
    fn count(&mut self, min_size: usize) -> D<usize> {
        let n = self.u64()?;
        let cap = (self.remaining() / min_size) as u64;
        if n > cap {
            return Err(DecodeError::Invalid("count exceeds the bytes that follow"));
        }
        Ok(n as usize)
    }

    /// A nested tensor's shape and element bytes, both charged.
    fn shape<T>(&mut self) -> D<(Vec<usize>, &'a [u8])> {
        let elem_size = size_of::<T>() as u64;
        let ndim = self.u32()?;
        if ndim > MAX_NDIM {
            return Err(DecodeError::Invalid("tensor has too many dimensions"));
        }
        let mut shape = Vec::with_capacity(ndim as usize);
        let mut count: u64 = 1;
        for _ in 0..ndim {
            let d = self.u64()?;
            count = count
                .checked_mul(d)
                .ok_or(DecodeError::Invalid("tensor shape overflows"))?;
            shape
                .push(usize::try_from(d).map_err(|_| DecodeError::Invalid("dimension too large"))?);
        }
        let len = count
            .checked_mul(elem_size)
            .ok_or(DecodeError::Invalid("tensor shape overflows"))?;
        let bytes = self.take(len)?;
        // The elements, the shape, and the shared vector that holds them.
        self.charge(
            len + array_of::<usize>(shape.len()) + ARC_COUNTS + size_of::<Vec<T>>() as u64,
        )?;
        Ok((shape, bytes))
    }

    /// A nested tensor's elements, copied out of `bytes` (whole elements).
    fn elements<T: bytemuck::Pod>(&self, bytes: &[u8]) -> D<Vec<T>> {
        let n = bytes.len() / size_of::<T>();
        let mut data = self.with_capacity::<T>(n)?;
        if BUILD {
            data.extend(
                bytes
                    .chunks_exact(size_of::<T>())
                    .map(bytemuck::pod_read_unaligned::<T>),
            );
        }
        Ok(data)
    }

    fn record(&mut self, depth: usize) -> D<Record> {
        // A field is at least a u64 name length and a tag.
        let n = self.count(9)?;
        let mut fields = self.with_capacity::<(String, Value)>(n)?;
        // Repeated names are found by sorting the names once all are read:
        // n log n for a crafted record of many fields, never quadratic. The
        // list is real memory in both passes, so it is charged too, and
        // grown with the fields that really follow, not the claimed count.
        let mut names: Vec<&'a str> = Vec::new();
        for _ in 0..n {
            self.charge(array_of::<(String, Value)>(1) + array_of::<&str>(1))?;
            let name = self.str()?;
            names
                .try_reserve(1)
                .map_err(|_| DecodeError::TooLarge(self.spent))?;
            names.push(name);
            let v = self.value(depth + 1)?;
            if BUILD {
                let mut owned = String::new();
                owned
                    .try_reserve_exact(name.len())
                    .map_err(|_| DecodeError::TooLarge(self.spent))?;
                owned.push_str(name);
                fields.push((owned, v));
            }
        }
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(DecodeError::Invalid("record has a repeated field name"));
        }
        Ok(Record::from_unique(fields))
    }

    fn value(&mut self, depth: usize) -> D<Value> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let byte = self.u8()?;
        if byte == TAG_BLOB_REF {
            return self.blob_ref();
        }
        let tag = Tag::from_u8(byte).ok_or(DecodeError::Invalid("unknown type tag"))?;
        Ok(match tag {
            Tag::Null => Value::Null,
            Tag::Number => Value::Number(self.f64()?),
            Tag::Boolean => match self.u8()? {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                _ => return Err(DecodeError::Invalid("boolean is neither 0 nor 1")),
            },
            Tag::String => Value::String(self.string()?),
            Tag::Complex => Value::Complex(Complex::new(self.f64()?, self.f64()?)),
            Tag::Vector => {
                let n = self.count(1)?;
                let mut items = self.with_capacity::<Value>(n)?;
                for _ in 0..n {
                    self.charge(array_of::<Value>(1))?;
                    let v = self.value(depth + 1)?;
                    if BUILD {
                        items.push(v);
                    }
                }
                Value::Vector(items)
            }
            Tag::Tensor => {
                let (shape, bytes) = self.shape::<f64>()?;
                let data = self.elements::<f64>(bytes)?;
                if !BUILD {
                    return Ok(Value::Null);
                }
                Value::Tensor(Tensor::new(shape, data).map_err(|_| DecodeError::Invalid("shape"))?)
            }
            Tag::ComplexTensor => {
                let (shape, bytes) = self.shape::<Complex>()?;
                let data = self.elements::<Complex>(bytes)?;
                if !BUILD {
                    return Ok(Value::Null);
                }
                Value::ComplexTensor(
                    ComplexTensor::new(shape, data).map_err(|_| DecodeError::Invalid("shape"))?,
                )
            }
            Tag::Record => Value::Record(self.record(depth)?),
            Tag::Function => match self.u8()? {
                FUNCTION_BUILTIN => Value::Function(Function::Builtin(self.string()?)),
                _ => return Err(DecodeError::Invalid("unknown function kind")),
            },
            Tag::Edge => {
                let from = self.string()?;
                let to = self.string()?;
                let directed = match self.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError::Invalid("edge direction is neither 0 nor 1")),
                };
                if self.u8()? != Tag::Record as u8 {
                    return Err(DecodeError::Invalid("edge properties are not a record"));
                }
                let properties = self.record(depth)?;
                Value::Edge(Edge {
                    from,
                    to,
                    directed,
                    properties,
                })
            }
            Tag::MutableRef => {
                self.charge(size_of::<RwLock<Value>>() as u64 + ARC_COUNTS)?;
                let v = self.value(depth + 1)?;
                if !BUILD {
                    return Ok(Value::Null);
                }
                Value::new_ref(v)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_and_two_pass_decoding_agree() {
        for (name, v) in crate::testdata::every_type().iter() {
            let bytes = bytes_of(v);
            let exact = decode_exact(&bytes, u64::MAX).unwrap();
            let small = decode_small(&bytes, u64::MAX).unwrap();
            assert_eq!(small, exact, "{name}");
            // Just under its cost, both refuse it (a Null or a number costs
            // nothing beyond the Value that holds it).
            if let Some(under) = exact.1.checked_sub(1) {
                assert!(matches!(
                    decode_small(&bytes, under),
                    Err(DecodeError::TooLarge(_))
                ));
                assert!(matches!(
                    decode_exact(&bytes, under),
                    Err(DecodeError::TooLarge(_))
                ));
            }
            // Cut short anywhere, both give the same error.
            for cut in 0..bytes.len() {
                let prefix = &bytes[..cut];
                assert_eq!(
                    decode_small(prefix, u64::MAX).map(|(_, c)| c),
                    decode_exact(prefix, u64::MAX).map(|(_, c)| c),
                    "{name} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn tag_names_are_the_value_type_names() {
        let env = crate::testdata::every_type();
        for (name, v) in env.iter() {
            assert_eq!(tag_of(v).name(), v.type_name(), "binding {name}");
        }
    }

    fn bytes_of(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, v, 0).unwrap();
        out
    }

    #[test]
    fn number_matches_spec_bytes() {
        let b = bytes_of(&Value::Number(1.5));
        assert_eq!(b[0], 0x01);
        assert_eq!(&b[1..], &1.5f64.to_le_bytes());
    }

    #[test]
    fn tensor_2x3_layout() {
        let t = Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let b = bytes_of(&Value::Tensor(t));
        assert_eq!(b[0], 0x06);
        assert_eq!(u32::from_le_bytes(b[1..5].try_into().unwrap()), 2);
        assert_eq!(u64::from_le_bytes(b[5..13].try_into().unwrap()), 2);
        assert_eq!(u64::from_le_bytes(b[13..21].try_into().unwrap()), 3);
        assert_eq!(b.len(), 21 + 6 * 8);
    }

    #[test]
    fn huge_vector_count_is_rejected_before_allocating() {
        let mut b = vec![0x05];
        b.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert_eq!(
            decode_exact(&b, u64::MAX),
            Err(DecodeError::Invalid("count exceeds the bytes that follow"))
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut b = vec![0x0B; 10_000];
        b.push(0x00);
        assert_eq!(decode_exact(&b, u64::MAX), Err(DecodeError::TooDeep));
        let mut v = Value::Null;
        for _ in 0..MAX_DEPTH {
            v = Value::Vector(vec![v]);
        }
        assert!(matches!(
            encode(&mut Vec::new(), &v, 0),
            Err(EncodeError::TooDeep)
        ));
    }

    #[test]
    fn overflowing_shape_is_rejected() {
        let mut b = vec![0x06];
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&(1u64 << 40).to_le_bytes());
        b.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert_eq!(
            decode_exact(&b, u64::MAX),
            Err(DecodeError::Invalid("tensor shape overflows"))
        );
    }

    #[test]
    fn a_vector_of_nulls_costs_one_value_per_null() {
        let b = bytes_of(&Value::Vector(vec![Value::Null; 1000]));
        let cost = 1000 * size_of::<Value>() as u64;
        assert_eq!(measure_exact(&b, u64::MAX), Ok(cost));
        assert_eq!(measure_exact(&b, cost), Ok(cost));
        assert_eq!(
            measure_exact(&b, cost - 1),
            Err(DecodeError::TooLarge(cost))
        );
        assert_eq!(decode_exact(&b, cost - 1), Err(DecodeError::TooLarge(cost)));
    }

    #[test]
    fn a_build_costs_what_its_measure_said() {
        for (name, v) in crate::testdata::every_type().iter() {
            let b = bytes_of(v);
            let measured = measure_exact(&b, u64::MAX).unwrap();
            let (built, cost) = decode_exact(&b, measured).unwrap();
            assert_eq!((&built, cost), (v, measured), "binding {name}");
        }
    }

    #[test]
    fn a_false_count_costs_only_the_items_that_follow() {
        // A vector claiming 1000 elements, the first of which is no value:
        // refused as invalid, not as too large for a 100-byte budget.
        let mut b = vec![0x05];
        b.extend_from_slice(&1000u64.to_le_bytes());
        b.resize(b.len() + 1000, 0xFF);
        assert_eq!(
            measure_exact(&b, 100),
            Err(DecodeError::Invalid("unknown type tag"))
        );
    }

    /// A nested tensor the index places in an entry is written as a blob
    /// reference (0x0C, the entry's index), and a reference decodes only
    /// against an archive's table.
    #[test]
    fn a_placed_tensor_is_written_as_a_reference_that_needs_a_table() {
        struct At(u64);
        impl BlobIndex for At {
            fn entry_of(&self, v: &Value) -> Option<u64> {
                matches!(v, Value::Tensor(_)).then_some(self.0)
            }
        }
        let v = Value::Vector(vec![Value::Tensor(Tensor::from_vec(vec![1.0; 4]))]);
        let mut b = Vec::new();
        encode_with(&mut b, &v, 0, &At(7)).unwrap();
        let mut expected = vec![0x05];
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.push(TAG_BLOB_REF);
        expected.extend_from_slice(&7u64.to_le_bytes());
        assert_eq!(b, expected);
        let outside = DecodeError::Invalid("blob reference outside an archive's table of contents");
        assert_eq!(decode_exact(&b, u64::MAX), Err(outside));
        // Inline, the same value decodes alone.
        assert_eq!(decode_exact(&bytes_of(&v), u64::MAX).unwrap().0, v);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut b = bytes_of(&Value::Boolean(true));
        b.push(0);
        assert!(decode_exact(&b, u64::MAX).is_err());
    }
}
