//! The NumPy `.npy` format (versions 1.0, 2.0 and 3.0): writing the header
//! of a float64 or complex128 array, and reading numeric arrays.
//!
//! See <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>.

use std::io::{self, Read, Write};

/// The magic string every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Writes a version 1.0 header for a C-order array of `descr` (`<f8` or
/// `<c16`) and `shape`, padded so that the data starts on a multiple of
/// 64 bytes.
pub fn write_header(w: &mut impl Write, descr: &str, shape: &[usize]) -> io::Result<()> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // magic (6) + version (2) + length (2) + dict + '\n'
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let len = u16::try_from(dict.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "npy header too long"))?;
    w.write_all(MAGIC)?;
    w.write_all(&[1, 0])?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(dict.as_bytes())
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

/// A parsed `descr`.
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

    fn parse(descr: &str) -> Result<Dtype, String> {
        let unsupported = || {
            format!(
                "dtype '{descr}' is not supported; ach imports float, int, uint, bool and complex arrays"
            )
        };
        let mut chars = descr.chars();
        let order = chars.next().ok_or_else(unsupported)?;
        let big_endian = match order {
            '<' | '=' | '|' => false,
            '>' => true,
            _ => return Err(unsupported()),
        };
        let kind = match chars.next() {
            Some('f') => Kind::Float,
            Some('i') => Kind::Int,
            Some('u') => Kind::Uint,
            Some('b') => Kind::Bool,
            Some('c') => Kind::Complex,
            _ => return Err(unsupported()),
        };
        let size: usize = chars.as_str().parse().map_err(|_| unsupported())?;
        let ok = match kind {
            Kind::Float => matches!(size, 2 | 4 | 8),
            Kind::Int | Kind::Uint => matches!(size, 1 | 2 | 4 | 8),
            Kind::Bool => size == 1,
            Kind::Complex => matches!(size, 8 | 16),
        };
        if !ok {
            return Err(unsupported());
        }
        Ok(Dtype {
            kind,
            size,
            big_endian,
        })
    }

    /// The element at `b` (exactly `size` bytes) as an f64 pair (re, im).
    pub fn convert(&self, b: &[u8]) -> (f64, f64) {
        let mut buf = [0u8; 16];
        buf[..b.len()].copy_from_slice(b);
        if self.big_endian {
            match self.kind {
                Kind::Complex => {
                    let h = self.size / 2;
                    buf[..h].reverse();
                    buf[h..self.size].reverse();
                }
                _ => buf[..self.size].reverse(),
            }
        }
        let f = |bytes: &[u8]| -> f64 {
            match bytes.len() {
                2 => f16_to_f64(u16::from_le_bytes([bytes[0], bytes[1]])),
                4 => f32::from_le_bytes(bytes.try_into().unwrap_or_default()) as f64,
                _ => f64::from_le_bytes(bytes.try_into().unwrap_or_default()),
            }
        };
        let s = self.size;
        match self.kind {
            Kind::Float => (f(&buf[..s]), 0.0),
            Kind::Complex => (f(&buf[..s / 2]), f(&buf[s / 2..s])),
            Kind::Bool => (if buf[0] != 0 { 1.0 } else { 0.0 }, 0.0),
            Kind::Int => {
                let v = match s {
                    1 => buf[0] as i8 as i64,
                    2 => i16::from_le_bytes([buf[0], buf[1]]) as i64,
                    4 => i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as i64,
                    _ => i64::from_le_bytes(buf[..8].try_into().unwrap_or_default()),
                };
                (v as f64, 0.0)
            }
            Kind::Uint => {
                let mut le = [0u8; 8];
                le[..s].copy_from_slice(&buf[..s]);
                (u64::from_le_bytes(le) as f64, 0.0)
            }
        }
    }
}

fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// A parsed `.npy` header.
#[derive(Debug, PartialEq)]
pub struct Header {
    /// Element type.
    pub dtype: Dtype,
    /// Column-major data.
    pub fortran_order: bool,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Bytes of magic, version, length and header.
    pub data_offset: u64,
}

impl Header {
    /// Element count, or None on overflow.
    pub fn count(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }
}

/// Reads and checks the header of a `.npy` stream; the reader is left at
/// the first data byte.
pub fn read_header(r: &mut impl Read) -> Result<Header, String> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre)
        .map_err(|_| "not a .npy file: it is shorter than the NumPy magic".to_string())?;
    if &pre[..6] != MAGIC {
        return Err("not a .npy file: it does not start with \\x93NUMPY".into());
    }
    let (len, prefix) = match pre[6] {
        1 => {
            let mut l = [0u8; 2];
            r.read_exact(&mut l).map_err(|_| "truncated .npy header")?;
            (u16::from_le_bytes(l) as usize, 10)
        }
        2 | 3 => {
            let mut l = [0u8; 4];
            r.read_exact(&mut l).map_err(|_| "truncated .npy header")?;
            (u32::from_le_bytes(l) as usize, 12)
        }
        v => {
            return Err(format!(
                ".npy format version {v}.{} is not supported",
                pre[7]
            ));
        }
    };
    if len > 1 << 20 {
        return Err(format!(
            ".npy header claims {len} bytes; the file is damaged"
        ));
    }
    let mut text = vec![0u8; len];
    r.read_exact(&mut text)
        .map_err(|_| "truncated .npy header")?;
    let text = String::from_utf8(text).map_err(|_| ".npy header is not text")?;
    let dict = parse_dict(&text).map_err(|e| format!("bad .npy header ({e}): {}", text.trim()))?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (k, v) in dict {
        match (k.as_str(), v) {
            ("descr", Lit::Str(s)) => descr = Some(s),
            ("descr", _) => {
                return Err(
                    "structured dtypes are not supported; export one field at a time".into(),
                );
            }
            ("fortran_order", Lit::Bool(b)) => fortran = Some(b),
            ("shape", Lit::Tuple(t)) => shape = Some(t),
            _ => {}
        }
    }
    let (Some(descr), Some(fortran_order), Some(shape)) = (descr, fortran, shape) else {
        return Err("the .npy header lacks descr, fortran_order or shape".into());
    };
    Ok(Header {
        dtype: Dtype::parse(&descr)?,
        fortran_order,
        shape,
        data_offset: (prefix + len) as u64,
    })
}

enum Lit {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
    Other,
}

/// Parses the Python dict literal NumPy writes: string keys; string,
/// boolean or tuple-of-integers values (anything else is skipped as
/// `Other` when it is a list, which is how structured dtypes look).
fn parse_dict(s: &str) -> Result<Vec<(String, Lit)>, &'static str> {
    let mut p = Parser {
        s: s.as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let mut out = Vec::new();
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        let value = p.value()?;
        out.push((key, value));
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), &'static str> {
        if self.eat(c) {
            Ok(())
        } else {
            Err("unexpected character")
        }
    }
    fn string(&mut self) -> Result<String, &'static str> {
        let q = *self.s.get(self.i).ok_or("unexpected end")?;
        if q != b'\'' && q != b'"' {
            return Err("expected a string");
        }
        self.i += 1;
        let start = self.i;
        while self.s.get(self.i).ok_or("unterminated string")? != &q {
            self.i += 1;
        }
        let out = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.i += 1;
        Ok(out)
    }
    fn value(&mut self) -> Result<Lit, &'static str> {
        match self.s.get(self.i) {
            Some(b'\'' | b'"') => Ok(Lit::Str(self.string()?)),
            Some(b'(') => {
                self.i += 1;
                let mut dims = Vec::new();
                loop {
                    self.ws();
                    if self.eat(b')') {
                        break;
                    }
                    let start = self.i;
                    while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                        self.i += 1;
                    }
                    // NumPy 1.x wrote Python 2 longs as `3L`.
                    let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                    dims.push(digits.parse().map_err(|_| "bad dimension")?);
                    self.eat(b'L');
                    self.ws();
                    if !self.eat(b',') {
                        self.ws();
                        self.expect(b')')?;
                        break;
                    }
                }
                Ok(Lit::Tuple(dims))
            }
            Some(b'[') => {
                // A structured dtype: skip to the matching bracket.
                let mut depth = 0;
                while let Some(&c) = self.s.get(self.i) {
                    self.i += 1;
                    match c {
                        b'[' => depth += 1,
                        b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Ok(Lit::Other);
                            }
                        }
                        _ => {}
                    }
                }
                Err("unterminated list")
            }
            _ => {
                for (word, b) in [("True", true), ("False", false)] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        return Ok(Lit::Bool(b));
                    }
                }
                Err("unexpected value")
            }
        }
    }
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

    #[test]
    fn header_is_padded_to_64_and_parses_back() {
        for shape in [vec![], vec![3], vec![2, 3], vec![4, 5, 6]] {
            let mut out = Vec::new();
            write_header(&mut out, "<f8", &shape).unwrap();
            assert_eq!(out.len() % 64, 0);
            let h = read_header(&mut out.as_slice()).unwrap();
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
    fn conversions() {
        let d = Dtype::parse(">f8").unwrap();
        assert_eq!(d.convert(&1.5f64.to_be_bytes()).0, 1.5);
        let d = Dtype::parse("<i2").unwrap();
        assert_eq!(d.convert(&(-7i16).to_le_bytes()).0, -7.0);
        let d = Dtype::parse("<f2").unwrap();
        assert_eq!(d.convert(&[0x00, 0x3c]).0, 1.0);
        assert!(Dtype::parse("<U5").is_err());
        assert!(Dtype::parse("|O").is_err());
    }
}
