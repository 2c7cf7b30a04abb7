//! The NumPy `.npy` format through the `npyz` crate: the header of the
//! float64 and complex128 arrays `ach export` writes, and the numeric
//! arrays `ach import` reads, converted to float64 or complex128.
//!
//! npyz parses the header (a Python dict literal) and decodes elements of
//! every dtype below, f16 included; what stays here is which dtypes `ach`
//! accepts, the notes it prints about them, and two checks npyz leaves to
//! its caller (see [`read_header`]).
//!
//! See <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>.

use std::io::{self, Read, Write};

use npyz::{DType, Endianness, NpyFile, NpyHeader, TypeChar, TypeStr, WriterBuilder};

/// The magic string every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The largest header `read_header` accepts. NumPy's own reader stops at
/// 10,000 bytes unless told otherwise; a header is a few dozen bytes.
const MAX_HEADER: u64 = 1 << 20;

/// Writes a header for a C-order array of `descr` (`<f8` or `<c16`) and
/// `shape`; the data that follows starts on a multiple of 64 bytes.
pub fn write_header(w: &mut impl Write, descr: &str, shape: &[usize]) -> io::Result<()> {
    let type_str: TypeStr = descr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{descr}: {e}")))?;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    npyz::WriteOptions::new_header_only()
        .dtype(DType::Plain(type_str))
        .shape(&shape)
        .writer(w)
        .write_header_only()?;
    Ok(())
}

/// Element kinds `ach import` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// IEEE float of 2, 4 or 8 bytes.
    Float,
    /// Signed integer.
    Int,
    /// Unsigned integer.
    Uint,
    /// Boolean (one byte).
    Bool,
    /// Complex of two floats (8 or 16 bytes in all).
    Complex,
}

/// An accepted dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dtype {
    /// Element kind.
    pub kind: Kind,
    /// Bytes per element.
    pub size: usize,
    /// Big-endian data.
    pub big_endian: bool,
}

impl Dtype {
    /// The NumPy name (`float32`, `int64`, ...).
    pub fn name(&self) -> String {
        let bits = self.size * 8;
        match self.kind {
            Kind::Float => format!("float{bits}"),
            Kind::Int => format!("int{bits}"),
            Kind::Uint => format!("uint{bits}"),
            Kind::Bool => "bool".into(),
            Kind::Complex => format!("complex{bits}"),
        }
    }

    /// True when elements are stored as is (little-endian float64 or
    /// complex128): no conversion to report.
    pub fn is_native(&self) -> bool {
        !self.big_endian
            && matches!(
                (self.kind, self.size),
                (Kind::Float, 8) | (Kind::Complex, 16)
            )
    }

    /// The accepted dtype of a header's `descr`, or why it is refused.
    fn of(dtype: &DType) -> Result<Dtype, String> {
        let t = match dtype {
            DType::Plain(t) => t,
            DType::Record(_) => {
                return Err(
                    "structured dtypes are not supported; export one field at a time".into(),
                );
            }
            DType::Array(..) => return Err(unsupported(&dtype.descr())),
        };
        let kind = match t.type_char() {
            TypeChar::Float => Kind::Float,
            TypeChar::Int => Kind::Int,
            TypeChar::Uint => Kind::Uint,
            TypeChar::Bool => Kind::Bool,
            TypeChar::Complex => Kind::Complex,
            _ => return Err(unsupported(&t.to_string())),
        };
        let size = t.size_field();
        let ok = match kind {
            Kind::Float => matches!(size, 2 | 4 | 8),
            Kind::Int | Kind::Uint => matches!(size, 1 | 2 | 4 | 8),
            Kind::Bool => size == 1,
            Kind::Complex => matches!(size, 8 | 16),
        };
        if !ok {
            return Err(unsupported(&t.to_string()));
        }
        Ok(Dtype {
            kind,
            size: size as usize,
            big_endian: t.endianness() == Endianness::Big,
        })
    }
}

fn unsupported(descr: &str) -> String {
    format!(
        "dtype '{descr}' is not supported; ach imports float, int, uint, bool and complex arrays"
    )
}

/// A parsed `.npy` header.
pub struct Header {
    /// Element type.
    pub dtype: Dtype,
    /// Column-major data.
    pub fortran_order: bool,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Bytes of magic, version, length and header.
    pub data_offset: u64,
    /// npyz's header, to decode the elements with [`read_elements`].
    npyz: NpyHeader,
}

impl Header {
    /// Element count, or None on overflow.
    pub fn count(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }
}

/// Reads and checks the header of a `.npy` file; the reader is left at the
/// first data byte. `file_len` is the length of the whole file.
///
/// The header bytes are read here and handed to npyz to parse, after
/// three things npyz leaves out:
/// - the magic and the header length are checked first, against the file
///   and [`MAX_HEADER`] (npyz allocates whatever length a file claims, up to
///   4 GiB), and a file without the magic is "not a .npy file";
/// - [`legacy_spellings`] are rewritten as NumPy's own reader accepts them;
/// - the element count of the shape is checked (npyz multiplies the
///   dimensions unchecked).
pub fn read_header(r: &mut impl Read, file_len: u64) -> Result<Header, String> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre)
        .map_err(|_| "not a .npy file: it is shorter than the NumPy magic".to_string())?;
    if &pre[..6] != MAGIC {
        return Err("not a .npy file: it does not start with \\x93NUMPY".into());
    }
    let truncated = |_| "truncated .npy header".to_string();
    let (len, prefix) = match pre[6] {
        1 => {
            let mut l = [0u8; 2];
            r.read_exact(&mut l).map_err(truncated)?;
            (u64::from(u16::from_le_bytes(l)), 10)
        }
        2 | 3 => {
            let mut l = [0u8; 4];
            r.read_exact(&mut l).map_err(truncated)?;
            (u64::from(u32::from_le_bytes(l)), 12)
        }
        v => {
            return Err(format!(
                ".npy format version {v}.{} is not supported",
                pre[7]
            ));
        }
    };
    if len > MAX_HEADER || prefix + len > file_len {
        return Err(format!(
            ".npy header claims {len} bytes in a file of {file_len}; the file is damaged"
        ));
    }
    let mut text = vec![0u8; len as usize];
    r.read_exact(&mut text).map_err(truncated)?;
    // npyz reads a whole file's start: give it a version 3.0 prefix (UTF-8
    // text, 4-byte length), whatever the version, since the text may change
    // length below.
    let text = legacy_spellings(&text);
    let mut bytes = MAGIC.to_vec();
    bytes.extend([3, 0]);
    bytes.extend((text.len() as u32).to_le_bytes());
    bytes.extend(text);
    let npyz = NpyHeader::from_reader(bytes.as_slice())
        .map_err(|e| format!("bad .npy header: {}", e.to_string().replace('\n', " ")))?;
    let shape = npyz
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<Vec<usize>>>()
        .filter(|s| {
            s.iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .is_some()
        })
        .ok_or_else(|| format!("the shape {:?} is too large", npyz.shape()))?;
    Ok(Header {
        dtype: Dtype::of(&npyz.dtype())?,
        fortran_order: npyz.order() == npyz::Order::Fortran,
        shape,
        data_offset: prefix + len,
        npyz,
    })
}

/// Header text with two old spellings rewritten, as the old hand-written
/// reader of `ach` accepted them and npyz does not: Python 2 long integers
/// (`(3L, 4L)`, written by NumPy under Python 2, which NumPy still reads),
/// and a `descr` in native byte order (`'=f8'`), taken as little-endian.
/// Outside quotes a digit's `L` is dropped; a quoted string starting with
/// `=` starts with `<` instead.
fn legacy_spellings(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut quote = None;
    for (i, &c) in text.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|j| text.get(j)).copied();
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) if c == b'=' && prev.is_some_and(|p| p == b'\'' || p == b'"') => {
                out.push(b'<');
                continue;
            }
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b'L' && prev.is_some_and(|p| p.is_ascii_digit()) => continue,
            None => {}
        }
        out.push(c);
    }
    out
}

/// Decodes the elements after `header` from `r`, in file order, calling
/// `each(re, im)` with each one as f64 (`im` is 0 unless complex).
pub fn read_elements(
    header: Header,
    r: impl Read,
    mut each: impl FnMut(f64, f64),
) -> io::Result<()> {
    use npyz::half::f16;
    use npyz::num_complex::Complex;
    let file = NpyFile::with_header(header.npyz, r);
    let real = |x: f64| (x, 0.0);
    match (header.dtype.kind, header.dtype.size) {
        (Kind::Float, 2) => decode(file, |x: f16| real(x.to_f64()), &mut each),
        (Kind::Float, 4) => decode(file, |x: f32| real(x.into()), &mut each),
        (Kind::Float, _) => decode(file, real, &mut each),
        (Kind::Int, 1) => decode(file, |x: i8| real(x.into()), &mut each),
        (Kind::Int, 2) => decode(file, |x: i16| real(x.into()), &mut each),
        (Kind::Int, 4) => decode(file, |x: i32| real(x.into()), &mut each),
        (Kind::Int, _) => decode(file, |x: i64| real(x as f64), &mut each),
        (Kind::Uint, 1) => decode(file, |x: u8| real(x.into()), &mut each),
        (Kind::Uint, 2) => decode(file, |x: u16| real(x.into()), &mut each),
        (Kind::Uint, 4) => decode(file, |x: u32| real(x.into()), &mut each),
        (Kind::Uint, _) => decode(file, |x: u64| real(x as f64), &mut each),
        (Kind::Bool, _) => decode(file, |x: bool| real(f64::from(u8::from(x))), &mut each),
        (Kind::Complex, 8) => decode(
            file,
            |c: Complex<f32>| (c.re.into(), c.im.into()),
            &mut each,
        ),
        (Kind::Complex, _) => decode(file, |c: Complex<f64>| (c.re, c.im), &mut each),
    }
}

/// The elements of `file` read as `T` and widened by `widen`.
fn decode<T: npyz::Deserialize, R: Read>(
    file: NpyFile<R>,
    widen: impl Fn(T) -> (f64, f64),
    each: &mut impl FnMut(f64, f64),
) -> io::Result<()> {
    let elements = file
        .data::<T>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    for x in elements {
        let (re, im) = widen(x?);
        each(re, im);
    }
    Ok(())
}

/// Row-major index order of a column-major array of `shape`: element `k`
/// of the result is the position in the Fortran-ordered data of the `k`-th
/// element in C order.
pub fn fortran_to_c(shape: &[usize]) -> impl Iterator<Item = usize> + '_ {
    let n: usize = shape.iter().product();
    // strides of the column-major layout
    let mut strides = vec![1usize; shape.len()];
    for d in 1..shape.len() {
        strides[d] = strides[d - 1] * shape[d - 1];
    }
    let mut idx = vec![0usize; shape.len()];
    let mut first = true;
    (0..n).map(move |_| {
        if !first {
            // advance the C-order multi-index: last axis fastest
            for d in (0..shape.len()).rev() {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        first = false;
        idx.iter().zip(&strides).map(|(i, s)| i * s).sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A .npy file of `header` text (padded with the newline) and `data`.
    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16 + 1).to_le_bytes());
        out.extend(header.as_bytes());
        out.push(b'\n');
        out.extend(data);
        out
    }

    fn header(bytes: &[u8]) -> Result<Header, String> {
        read_header(&mut &bytes[..], bytes.len() as u64)
    }

    fn elements(bytes: &[u8]) -> Vec<(f64, f64)> {
        let mut r = bytes;
        let h = read_header(&mut r, bytes.len() as u64).unwrap();
        let mut out = Vec::new();
        read_elements(h, r, |a, b| out.push((a, b))).unwrap();
        out
    }

    #[test]
    fn header_is_padded_to_64_and_parses_back() {
        for shape in [vec![], vec![3], vec![2, 3], vec![4, 5, 6]] {
            let mut out = Vec::new();
            write_header(&mut out, "<f8", &shape).unwrap();
            assert_eq!(out.len() % 64, 0);
            let h = header(&out).unwrap();
            assert_eq!(h.shape, shape);
            assert_eq!(h.data_offset as usize, out.len());
            assert!(h.dtype.is_native() && !h.fortran_order);
        }
    }

    #[test]
    fn fortran_order_maps_to_c_order() {
        // 2x3, column-major data [a00 a10 a01 a11 a02 a12]
        let order: Vec<usize> = fortran_to_c(&[2, 3]).collect();
        assert_eq!(order, [0, 2, 4, 1, 3, 5]);
    }

    #[test]
    fn every_accepted_dtype_converts_to_f64() {
        let one = |descr: &str, data: &[u8]| {
            let h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}");
            elements(&npy(&h, data))[0]
        };
        assert_eq!(one(">f8", &1.5f64.to_be_bytes()), (1.5, 0.0));
        assert_eq!(one("<f4", &(-0.25f32).to_le_bytes()), (-0.25, 0.0));
        assert_eq!(one("<f2", &[0x00, 0x3c]), (1.0, 0.0));
        assert_eq!(one(">f2", &[0xc0, 0x00]), (-2.0, 0.0));
        assert_eq!(one("<i2", &(-7i16).to_le_bytes()), (-7.0, 0.0));
        assert_eq!(one(">i4", &300_000i32.to_be_bytes()), (300_000.0, 0.0));
        assert_eq!(one("|i1", &[0x80]), (-128.0, 0.0));
        assert_eq!(
            one("<i8", &(-(1i64 << 62)).to_le_bytes()).0,
            -(2f64.powi(62))
        );
        assert_eq!(one("|u1", &[255]), (255.0, 0.0));
        assert_eq!(one("<u2", &[0xff, 0xff]), (65535.0, 0.0));
        assert_eq!(one("<u4", &u32::MAX.to_le_bytes()), (4294967295.0, 0.0));
        assert_eq!(one("<u8", &u64::MAX.to_le_bytes()).0, 2f64.powi(64));
        assert_eq!(one("|b1", &[1]), (1.0, 0.0));
        assert_eq!(one("=f8", &2.5f64.to_le_bytes()), (2.5, 0.0));
        let mut c8 = 1.5f32.to_le_bytes().to_vec();
        c8.extend((-4f32).to_le_bytes());
        assert_eq!(one("<c8", &c8), (1.5, -4.0));
        let mut c16 = 0.5f64.to_be_bytes().to_vec();
        c16.extend(2f64.to_be_bytes());
        assert_eq!(one(">c16", &c16), (0.5, 2.0));
    }

    /// NumPy under Python 2 wrote `3L` for a long; NumPy still reads it.
    #[test]
    fn python_2_long_dimensions_are_read() {
        let h = "{'descr': '<f8', 'fortran_order': True, 'shape': (2L, 1L), }";
        let bytes = npy(h, &[0; 16]);
        let h = header(&bytes).unwrap();
        assert_eq!(h.shape, [2, 1]);
        assert!(h.fortran_order);
        assert_eq!(h.data_offset as usize, bytes.len() - 16);
        assert_eq!(
            legacy_spellings(b"{'descr': '=f8', 'L1L': (10L, 2)}"),
            b"{'descr': '<f8', 'L1L': (10, 2)}"
        );
    }

    #[test]
    fn refused_headers_say_why() {
        let err = |bytes: &[u8]| header(bytes).err().unwrap();
        let h =
            |descr: &str| format!("{{'descr': {descr}, 'fortran_order': False, 'shape': (1,), }}");
        assert!(err(&npy(&h("'<U5'"), &[0; 20])).contains("'<U5' is not supported"));
        assert!(err(&npy(&h("'|O'"), &[])).contains("not supported"));
        assert!(err(&npy(&h("'<f16'"), &[0; 16])).contains("not supported"));
        assert!(
            err(&npy(&h("[('a', '<f8'), ('b', '<i4')]"), &[0; 12]))
                .contains("structured dtypes are not supported")
        );
        assert!(err(b"garbage, not numpy").contains("not a .npy file"));
        assert!(err(b"\x93NUM").contains("not a .npy file"));
        // A file shorter than its length said (it shrank while read).
        let cut = npy(&h("'<f8'"), &[]);
        let e = read_header(&mut &cut[..20], 1000).err().unwrap();
        assert!(e.contains("truncated"), "{e}");
        let mut v9 = npy(&h("'<f8'"), &[0; 8]);
        v9[6] = 9;
        assert!(err(&v9).contains("version 9.0 is not supported"));
        // A version 2 header claiming 4 GiB: refused before any allocation.
        let huge = b"\x93NUMPY\x02\x00\xff\xff\xff\xff{'descr': '<f8'";
        assert!(err(huge).contains("claims 4294967295 bytes"));
        let cut = npy(&h("'<f8'"), &[]);
        assert!(err(&cut[..cut.len() - 20]).contains("claims"));
        let big = format!(
            "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}, 4), }}",
            1u64 << 32,
            1u64 << 32
        );
        assert!(err(&npy(&big, &[])).contains("too large"));
    }
}
