//! Values as JSON, both ways, in a mapping that loses nothing but NaN
//! payloads:
//!
//! | Value | JSON |
//! |---|---|
//! | Null, Boolean, String | `null`, `true`/`false`, `"text"` |
//! | Number | a number; NaN and infinities as `{"$number": "NaN"}`, `"Infinity"`, `"-Infinity"` |
//! | Vector | an array |
//! | Record | an object, fields in order (`{"$record": {...}}` when its only field starts with `$`) |
//! | Complex | `{"$complex": [re, im]}` |
//! | Tensor | `{"$tensor": {"shape": [2, 3], "data": [...]}}` (row-major) |
//! | ComplexTensor | `{"$complex_tensor": {"shape": [...], "data": [[re, im], ...]}}` |
//! | builtin function | `{"$builtin": "sin"}` |
//! | Edge | `{"$edge": {"from": "A", "to": "B", "directed": true, "properties": {...}}}` |
//! | mut reference | `{"$ref": value}` |

use std::collections::HashSet;
use std::fmt;
use std::hash::Hash;
use std::io::{self, Write};

use achronyme_env::{Complex, ComplexTensor, Edge, Function, Record, Tensor, Value};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Writes `v` as JSON, streaming tensor elements.
pub fn write_value(w: &mut impl Write, v: &Value) -> io::Result<()> {
    match v {
        Value::Null => w.write_all(b"null"),
        Value::Boolean(b) => write!(w, "{b}"),
        Value::Number(x) => write_number(w, *x),
        Value::String(s) => write_str(w, s),
        Value::Complex(c) => {
            w.write_all(b"{\"$complex\": ")?;
            write_pair(w, c)?;
            w.write_all(b"}")
        }
        Value::Vector(items) => {
            w.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    w.write_all(b", ")?;
                }
                write_value(w, item)?;
            }
            w.write_all(b"]")
        }
        Value::Tensor(t) => {
            w.write_all(b"{\"$tensor\": {\"shape\": ")?;
            write_shape(w, t.shape())?;
            w.write_all(b", \"data\": [")?;
            for (i, x) in t.data().iter().enumerate() {
                if i > 0 {
                    w.write_all(b", ")?;
                }
                write_number(w, *x)?;
            }
            w.write_all(b"]}}")
        }
        Value::ComplexTensor(t) => {
            w.write_all(b"{\"$complex_tensor\": {\"shape\": ")?;
            write_shape(w, t.shape())?;
            w.write_all(b", \"data\": [")?;
            for (i, c) in t.data().iter().enumerate() {
                if i > 0 {
                    w.write_all(b", ")?;
                }
                write_pair(w, c)?;
            }
            w.write_all(b"]}}")
        }
        Value::Record(r) => {
            let wrap = r.len() == 1 && r.fields()[0].0.starts_with('$');
            if wrap {
                w.write_all(b"{\"$record\": ")?;
            }
            write_record(w, r)?;
            if wrap {
                w.write_all(b"}")?;
            }
            Ok(())
        }
        Value::Function(Function::Builtin(name)) => {
            w.write_all(b"{\"$builtin\": ")?;
            write_str(w, name)?;
            w.write_all(b"}")
        }
        Value::Function(Function::Lambda { source, .. }) => {
            w.write_all(b"{\"$lambda\": ")?;
            write_str(w, source)?;
            w.write_all(b"}")
        }
        Value::Edge(e) => {
            w.write_all(b"{\"$edge\": {\"from\": ")?;
            write_str(w, &e.from)?;
            w.write_all(b", \"to\": ")?;
            write_str(w, &e.to)?;
            write!(w, ", \"directed\": {}, \"properties\": ", e.directed)?;
            write_record(w, &e.properties)?;
            w.write_all(b"}}")
        }
        Value::MutableRef(r) => {
            let inner = r.read().unwrap_or_else(|e| e.into_inner()).clone();
            w.write_all(b"{\"$ref\": ")?;
            write_value(w, &inner)?;
            w.write_all(b"}")
        }
    }
}

fn write_record(w: &mut impl Write, r: &Record) -> io::Result<()> {
    w.write_all(b"{")?;
    for (i, (k, v)) in r.fields().iter().enumerate() {
        if i > 0 {
            w.write_all(b", ")?;
        }
        write_str(w, k)?;
        w.write_all(b": ")?;
        write_value(w, v)?;
    }
    w.write_all(b"}")
}

fn write_shape(w: &mut impl Write, shape: &[usize]) -> io::Result<()> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    write!(w, "[{}]", dims.join(", "))
}

fn write_pair(w: &mut impl Write, c: &Complex) -> io::Result<()> {
    w.write_all(b"[")?;
    write_number(w, c.re)?;
    w.write_all(b", ")?;
    write_number(w, c.im)?;
    w.write_all(b"]")
}

/// A float as JSON: the shortest text that reads back to the same bits
/// (`-0.0` included); NaN and the infinities, which JSON lacks, tagged.
pub fn write_number(w: &mut impl Write, x: f64) -> io::Result<()> {
    if x.is_nan() {
        w.write_all(b"{\"$number\": \"NaN\"}")
    } else if x.is_infinite() {
        let s = if x > 0.0 { "Infinity" } else { "-Infinity" };
        write!(w, "{{\"$number\": \"{s}\"}}")
    } else {
        // Debug gives `1.0`, `-0.0`, `1e300`: valid JSON numbers.
        write!(w, "{x:?}")
    }
}

fn write_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    serde_json::to_writer(&mut *w, s).map_err(io::Error::other)
}

/// Parsed JSON with object keys in document order.
enum J {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<J, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = J;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<J, E> {
                Ok(J::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<J, E> {
                Ok(J::Bool(b))
            }
            fn visit_i64<E>(self, x: i64) -> Result<J, E> {
                Ok(J::Num(x as f64))
            }
            fn visit_u64<E>(self, x: u64) -> Result<J, E> {
                Ok(J::Num(x as f64))
            }
            fn visit_f64<E>(self, x: f64) -> Result<J, E> {
                Ok(J::Num(x))
            }
            fn visit_str<E>(self, s: &str) -> Result<J, E> {
                Ok(J::Str(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<J, E> {
                Ok(J::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(J::Arr(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                let mut v: Vec<(String, J)> = Vec::new();
                let mut seen = Keys::new();
                while let Some((k, x)) = a.next_entry::<String, J>()? {
                    if !seen.first(&k) {
                        return Err(de::Error::custom(format!("duplicate key \"{k}\"")));
                    }
                    v.push((k, x));
                }
                Ok(J::Obj(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The keys of one JSON object read so far, to reject a repeated key. A
/// hash set keeps the check constant time per key; scanning the keys read
/// so far made an object of 80,000 keys take a minute to import.
struct Keys<K>(HashSet<K>);

impl<K: Hash + Eq + Clone> Keys<K> {
    fn new() -> Self {
        Keys(HashSet::new())
    }

    /// Records `k`; false when it was seen before.
    fn first(&mut self, k: &K) -> bool {
        self.0.insert(k.clone())
    }
}

/// Parses JSON text in the mapping above into a value.
pub fn parse_value(text: &str) -> Result<Value, String> {
    let j: J = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    to_value(j, "$")
}

fn to_value(j: J, at: &str) -> Result<Value, String> {
    Ok(match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Boolean(b),
        J::Num(x) => Value::Number(x),
        J::Str(s) => Value::String(s),
        J::Arr(items) => Value::Vector(
            items
                .into_iter()
                .enumerate()
                .map(|(i, x)| to_value(x, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        J::Obj(mut fields) if fields.len() == 1 && fields[0].0.starts_with('$') => {
            let (tag, body) = fields.pop().expect("one field");
            let here = format!("{at}.{tag}");
            tagged(&tag, body, &here)?
        }
        J::Obj(fields) => Value::Record(record(fields, at)?),
    })
}

fn record(fields: Vec<(String, J)>, at: &str) -> Result<Record, String> {
    fields
        .into_iter()
        .map(|(k, v)| {
            let here = format!("{at}.{k}");
            Ok((k, to_value(v, &here)?))
        })
        .collect()
}

fn number(j: &J, at: &str) -> Result<f64, String> {
    match j {
        J::Num(x) => Ok(*x),
        J::Obj(f) if f.len() == 1 && f[0].0 == "$number" => match &f[0].1 {
            J::Str(s) if s == "NaN" => Ok(f64::NAN),
            J::Str(s) if s == "Infinity" => Ok(f64::INFINITY),
            J::Str(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(format!(
                "{at}: $number must be \"NaN\", \"Infinity\" or \"-Infinity\""
            )),
        },
        _ => Err(format!("{at}: expected a number")),
    }
}

fn pair(j: &J, at: &str) -> Result<Complex, String> {
    match j {
        J::Arr(v) if v.len() == 2 => Ok(Complex::new(number(&v[0], at)?, number(&v[1], at)?)),
        _ => Err(format!("{at}: expected [re, im]")),
    }
}

fn field<'a>(fields: &'a [(String, J)], name: &str, at: &str) -> Result<&'a J, String> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .ok_or_else(|| format!("{at}: missing \"{name}\""))
}

fn shape(j: &J, at: &str) -> Result<Vec<usize>, String> {
    let J::Arr(dims) = j else {
        return Err(format!("{at}.shape: expected an array of sizes"));
    };
    dims.iter()
        .map(|d| match d {
            J::Num(x) if *x >= 0.0 && x.fract() == 0.0 && *x <= u32::MAX as f64 => Ok(*x as usize),
            _ => Err(format!("{at}.shape: sizes are non-negative integers")),
        })
        .collect()
}

fn tagged(tag: &str, body: J, at: &str) -> Result<Value, String> {
    Ok(match (tag, body) {
        ("$number", b) => Value::Number(number(&J::Obj(vec![("$number".into(), b)]), at)?),
        ("$complex", b) => Value::Complex(pair(&b, at)?),
        ("$record", J::Obj(fields)) => Value::Record(record(fields, at)?),
        ("$builtin", J::Str(name)) => Value::Function(Function::Builtin(name)),
        ("$ref", b) => Value::new_ref(to_value(b, at)?),
        ("$tensor", J::Obj(f)) => {
            let shape = shape(field(&f, "shape", at)?, at)?;
            let J::Arr(data) = field(&f, "data", at)? else {
                return Err(format!("{at}.data: expected an array of numbers"));
            };
            let data = data
                .iter()
                .map(|x| number(x, &format!("{at}.data")))
                .collect::<Result<Vec<_>, _>>()?;
            Value::Tensor(Tensor::new(shape, data).map_err(|e| format!("{at}: {e}"))?)
        }
        ("$complex_tensor", J::Obj(f)) => {
            let shape = shape(field(&f, "shape", at)?, at)?;
            let J::Arr(data) = field(&f, "data", at)? else {
                return Err(format!("{at}.data: expected an array of [re, im] pairs"));
            };
            let data = data
                .iter()
                .map(|x| pair(x, &format!("{at}.data")))
                .collect::<Result<Vec<_>, _>>()?;
            Value::ComplexTensor(ComplexTensor::new(shape, data).map_err(|e| format!("{at}: {e}"))?)
        }
        ("$edge", J::Obj(f)) => {
            let text = |name: &str| match field(&f, name, at)? {
                J::Str(s) => Ok(s.clone()),
                _ => Err(format!("{at}.{name}: expected a string")),
            };
            let directed = match field(&f, "directed", at)? {
                J::Bool(b) => *b,
                _ => return Err(format!("{at}.directed: expected true or false")),
            };
            let (from, to) = (text("from")?, text("to")?);
            let properties = match f.into_iter().find(|(k, _)| k == "properties") {
                Some((_, J::Obj(p))) => record(p, &format!("{at}.properties"))?,
                None => Record::new(),
                Some(_) => return Err(format!("{at}.properties: expected an object")),
            };
            Value::Edge(Edge {
                from,
                to,
                directed,
                properties,
            })
        }
        ("$lambda", _) => {
            return Err(format!(
                "{at}: user functions cannot be stored in an archive (format v1)"
            ));
        }
        (t, _) => {
            return Err(format!(
                "{at}: unknown or malformed tag {t:?}; a record whose only field starts with $ is written {{\"$record\": {{...}}}}"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        static COMPARISONS: Cell<u64> = const { Cell::new(0) };
    }

    /// A key that counts how often it is compared for equality.
    #[derive(Clone, Eq)]
    struct Counted(u32);

    impl std::hash::Hash for Counted {
        fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
            self.0.hash(h);
        }
    }

    impl PartialEq for Counted {
        fn eq(&self, other: &Self) -> bool {
            COMPARISONS.with(|c| c.set(c.get() + 1));
            self.0 == other.0
        }
    }

    /// The duplicate-key check must cost about one comparison per key, not
    /// one per key already read: the latter made an import of 80,000 keys
    /// take a minute. Counted, not timed.
    #[test]
    fn duplicate_key_check_is_linear_in_the_number_of_keys() {
        const N: u32 = 20_000;
        COMPARISONS.with(|c| c.set(0));
        let mut keys = Keys::new();
        for i in 0..N {
            assert!(keys.first(&Counted(i)));
        }
        assert!(!keys.first(&Counted(0)), "the first key repeated last");
        assert!(!keys.first(&Counted(N - 1)));
        let comparisons = COMPARISONS.with(Cell::get);
        // A scan would make N * (N - 1) / 2 = 2e8 comparisons.
        assert!(
            comparisons < 2 * u64::from(N),
            "{comparisons} comparisons for {N} keys"
        );
    }

    #[test]
    fn a_repeated_key_is_an_error_at_any_distance_and_depth() {
        let keys: Vec<String> = (0..1000).map(|i| format!("\"k{i}\": {i}")).collect();
        let far = format!("{{{}, \"k0\": 1}}", keys.join(", "));
        let err = parse_value(&far).unwrap_err();
        assert!(err.contains("duplicate key \"k0\""), "{err}");
        let nested = r#"{"a": {"x": 1, "y": 2, "x": 3}}"#;
        let err = parse_value(nested).unwrap_err();
        assert!(err.contains("duplicate key \"x\""), "{err}");
        // The same key in different objects is no repeat.
        let Value::Record(r) = parse_value(r#"{"a": {"x": 1}, "b": {"x": 2}, "x": 3}"#).unwrap()
        else {
            panic!("a record")
        };
        let names: Vec<&str> = r.fields().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["a", "b", "x"]);
    }

    #[test]
    fn every_type_round_trips_through_json() {
        let env = achronyme_env::testdata::every_type();
        for (name, v) in env.iter() {
            let mut out = Vec::new();
            write_value(&mut out, v).unwrap();
            let text = String::from_utf8(out).unwrap();
            let back = parse_value(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
            if name != "nan" {
                assert_eq!(&back, v, "{name}: {text}");
            }
        }
    }
}
