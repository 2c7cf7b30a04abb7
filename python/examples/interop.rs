//! The Rust side of the Python package's interoperability tests
//! (`tests/test_interop.py`): archives written by the engine for Python to
//! read, and a canonical dump of any archive that the tests compare, line
//! for line, with the same dump made from Python values.
//!
//! ```text
//! cargo run -p achronyme-env-python --example interop -- write DIR
//! cargo run -p achronyme-env-python --example interop -- dump FILE
//! ```
//!
//! The dump is exact: every f64 is written as its 64 bits in hex (NaN
//! payloads and -0.0 included), every string as the hex of its UTF-8
//! bytes, so two dumps are equal only when the values are bit for bit.

use std::fmt::Write as _;
use std::path::Path;

use achronyme_env::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bits(x: f64) -> String {
    format!("{:016x}", x.to_bits())
}

fn shape(s: &[usize]) -> String {
    s.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}

fn record(r: &Record, out: &mut String) {
    out.push_str("rec{");
    for (i, (k, v)) in r.fields().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&hex(k.as_bytes()));
        out.push('=');
        dump(v, out);
    }
    out.push('}');
}

/// The canonical text of a value (mirrored by `dump_value` in
/// `tests/interop_dump.py`).
fn dump(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Number(n) => write!(out, "num:{}", bits(*n)).unwrap(),
        Value::Boolean(b) => write!(out, "bool:{b}").unwrap(),
        Value::String(s) => write!(out, "str:{}", hex(s.as_bytes())).unwrap(),
        Value::Complex(c) => write!(out, "complex:{},{}", bits(c.re), bits(c.im)).unwrap(),
        Value::Vector(items) => {
            out.push_str("vec[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                dump(item, out);
            }
            out.push(']');
        }
        Value::Tensor(t) => {
            write!(out, "tensor({}):", shape(t.shape())).unwrap();
            for x in t.data() {
                out.push_str(&bits(*x));
            }
        }
        Value::ComplexTensor(t) => {
            write!(out, "ctensor({}):", shape(t.shape())).unwrap();
            for c in t.data() {
                out.push_str(&bits(c.re));
                out.push_str(&bits(c.im));
            }
        }
        Value::Record(r) => record(r, out),
        Value::Function(Function::Builtin(name)) => {
            write!(out, "builtin:{}", hex(name.as_bytes())).unwrap()
        }
        Value::Function(f) => panic!("an archive cannot hold {f:?}"),
        Value::Edge(e) => {
            write!(
                out,
                "edge({},{},{},",
                hex(e.from.as_bytes()),
                hex(e.to.as_bytes()),
                e.directed
            )
            .unwrap();
            record(&e.properties, out);
            out.push(')');
        }
        Value::MutableRef(r) => {
            out.push_str("ref(");
            dump(&r.read().unwrap(), out);
            out.push(')');
        }
    }
}

fn section_name(s: Section) -> &'static str {
    match s {
        Section::Constants => "constants",
        Section::Functions => "functions",
        _ => "bindings",
    }
}

/// Every binding and constant, with its codec, and the metadata a save's
/// options set.
fn dump_archive(path: &Path) -> Result<String> {
    let archive = Archive::open(path)?;
    let info = archive.info();
    let mut out = String::new();
    let desc = info
        .description
        .as_deref()
        .map_or("-".into(), |d| hex(d.as_bytes()));
    writeln!(out, "description {desc}").unwrap();
    let tags: Vec<String> = info.tags.iter().map(|t| hex(t.as_bytes())).collect();
    writeln!(out, "tags {}", tags.join(",")).unwrap();
    let custom: Vec<String> = info
        .custom
        .iter()
        .map(|(k, v)| format!("{}={}", hex(k.as_bytes()), hex(v.as_bytes())))
        .collect();
    writeln!(out, "custom {}", custom.join(",")).unwrap();
    for section in [Section::Bindings, Section::Constants] {
        for name in archive.names(section) {
            let entry = archive.binding_info(section, name).expect("listed");
            let v = archive.get_with(section, name, LoadOptions::default())?;
            let mut text = String::new();
            dump(&v, &mut text);
            writeln!(
                out,
                "{} {} {} {text}",
                section_name(section),
                hex(name.as_bytes()),
                entry.codec.name()
            )
            .unwrap();
        }
    }
    Ok(out)
}

/// The archives Python reads: every value type (special floats included)
/// with each codec, the metadata options, and tensors large and smooth
/// enough to be stored compressed (so they load as owned arrays).
fn write_all(dir: &Path) -> Result<()> {
    let env = testdata::every_type();
    let mut env_big = env.clone();
    env_big.set(
        "smooth",
        Value::Tensor(Tensor::new(vec![256, 256], testdata::smooth(65536))?),
    );
    let waves: Vec<Complex> = testdata::smooth(32768)
        .chunks(2)
        .map(|p| Complex::new(p[0], p[1]))
        .collect();
    env_big.set(
        "waves",
        Value::ComplexTensor(ComplexTensor::new(vec![128, 128], waves)?),
    );
    env_big.set(
        "noise",
        Value::Tensor(Tensor::new(vec![300, 100], testdata::normal(30000, 7))?),
    );
    let save = |name: &str, env: &Environment, o: SaveOptions| {
        save_environment(
            env,
            dir.join(name),
            &SaveOptions {
                durable: false,
                ..o
            },
        )
        .map(|_| ())
    };
    save("every_type.ach", &env, SaveOptions::default())?;
    save(
        "every_type_raw.ach",
        &env,
        SaveOptions {
            compression: Compression::None,
            ..Default::default()
        },
    )?;
    save(
        "large_zstd.ach",
        &env_big,
        SaveOptions {
            compression: Compression::Zstd { level: 9 },
            description: Some("written by Rust".into()),
            tags: vec!["interop".into(), "ünïcode".into()],
            custom: vec![("owner".into(), "lab-a".into()), ("run".into(), "7".into())],
            ..Default::default()
        },
    )?;
    save(
        "large_lz4.ach",
        &env_big,
        SaveOptions {
            compression: Compression::Lz4,
            ..Default::default()
        },
    )?;
    save(
        "large_nofilters.ach",
        &env_big,
        SaveOptions {
            filters: false,
            ..Default::default()
        },
    )?;
    // Empty tensors with large dimensions: valid values, one of which no
    // NumPy array can have the shape of.
    let mut shapes = Environment::new();
    let empty = |shape: Vec<usize>| Tensor::new(shape, Vec::new()).map(Value::Tensor);
    shapes.set("fits", empty(vec![0, 1 << 40])?);
    shapes.set("too_big", empty(vec![1 << 61, 0, 4])?);
    save("empty_shapes.ach", &shapes, SaveOptions::default())?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["write", dir] => write_all(Path::new(dir)),
        ["dump", file] => dump_archive(Path::new(file)).map(|text| print!("{text}")),
        _ => {
            eprintln!("usage: interop write DIR | interop dump FILE");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("interop: {e}");
        std::process::exit(1);
    }
}
