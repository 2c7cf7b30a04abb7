//! The byte encoding of values inside a blob (spec 2.5, with u64 lengths;
//! `layout.md` section 5).
//!
//! Encoding streams into any `io::Write`; decoding reads a slice with a
//! depth limit and never allocates more than the bytes it was given could
//! describe.

use std::io::{self, Write};

use crate::format::layout::{MAX_NDIM, Tag};
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

/// Most items reserved ahead of decoding them. A count is only checked
/// against the bytes left, and every nesting level could claim that much, so
/// reservations beyond this grow with what actually decodes.
const PREALLOC_MAX: usize = 1024;

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

/// Writes `v` with its tag. Tensor elements go out as one slice write.
pub(crate) fn encode<W: Write>(w: &mut W, v: &Value, depth: usize) -> Result<(), EncodeError> {
    if depth >= MAX_DEPTH {
        return Err(EncodeError::TooDeep);
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
                encode(w, item, depth + 1)?;
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
        Value::Record(r) => encode_record_body(w, r, depth)?,
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
            encode_record_body(w, &e.properties, depth)?;
        }
        Value::MutableRef(r) => encode(w, &read_ref(r), depth + 1)?,
    }
    Ok(())
}

fn encode_record_body<W: Write>(w: &mut W, r: &Record, depth: usize) -> Result<(), EncodeError> {
    put_len(w, r.len())?;
    for (name, value) in r.fields() {
        put_str(w, name)?;
        encode(w, value, depth + 1)?;
    }
    Ok(())
}

/// Decodes exactly one value filling all of `bytes`.
pub(crate) fn decode_exact(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let v = r.value(0)?;
    if r.pos != bytes.len() {
        return Err(DecodeError::Invalid("bytes left over after the value"));
    }
    Ok(v)
}

/// Why decoding failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    TooDeep,
    Invalid(&'static str),
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

type D<T> = Result<T, DecodeError>;

impl<'a> Reader<'a> {
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

    fn string(&mut self) -> D<String> {
        let n = self.u64()?;
        let s = self.take(n)?;
        std::str::from_utf8(s)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Invalid("string is not valid UTF-8"))
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

    fn shape(&mut self, elem_size: u64) -> D<(Vec<usize>, &'a [u8])> {
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
        Ok((shape, self.take(len)?))
    }

    fn record(&mut self, depth: usize) -> D<Record> {
        // A field is at least a u64 name length and a tag.
        let n = self.count(9)?;
        let mut fields = Vec::with_capacity(n.min(PREALLOC_MAX));
        // A set keeps the repeated-name check linear: a crafted record of
        // many fields must not take quadratic time.
        let mut seen = std::collections::HashSet::with_capacity(n.min(PREALLOC_MAX));
        for _ in 0..n {
            let name = self.string()?;
            if !seen.insert(name.clone()) {
                return Err(DecodeError::Invalid("record has a repeated field name"));
            }
            let v = self.value(depth + 1)?;
            fields.push((name, v));
        }
        Ok(Record::from_unique(fields))
    }

    fn value(&mut self, depth: usize) -> D<Value> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let tag = Tag::from_u8(self.u8()?).ok_or(DecodeError::Invalid("unknown type tag"))?;
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
                let mut items = Vec::with_capacity(n.min(PREALLOC_MAX));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Vector(items)
            }
            Tag::Tensor => {
                let (shape, bytes) = self.shape(8)?;
                let data = bytes
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8")))
                    .collect();
                Value::Tensor(Tensor::new(shape, data).map_err(|_| DecodeError::Invalid("shape"))?)
            }
            Tag::ComplexTensor => {
                let (shape, bytes) = self.shape(16)?;
                let data = bytes
                    .chunks_exact(16)
                    .map(|c| {
                        let re = f64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
                        let im = f64::from_le_bytes(c[8..].try_into().expect("8 bytes"));
                        Complex::new(re, im)
                    })
                    .collect();
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
            Tag::MutableRef => Value::new_ref(self.value(depth + 1)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            decode_exact(&b),
            Err(DecodeError::Invalid("count exceeds the bytes that follow"))
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut b = vec![0x0B; 10_000];
        b.push(0x00);
        assert_eq!(decode_exact(&b), Err(DecodeError::TooDeep));
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
            decode_exact(&b),
            Err(DecodeError::Invalid("tensor shape overflows"))
        );
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut b = bytes_of(&Value::Boolean(true));
        b.push(0);
        assert!(decode_exact(&b).is_err());
    }
}
