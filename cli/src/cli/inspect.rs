//! `ach ls` and `ach show`.

use achronyme_env::Location;

use achronyme_env::{Complex, Function, LoadOptions, Record, Value};
use serde::Serialize;

use super::{CliResult, find_section, human, printable, section_name, shape_of};

/// One row of `ach ls --json`.
#[derive(Serialize)]
struct LsRow<'a> {
    name: &'a str,
    section: &'static str,
    #[serde(rename = "type")]
    type_name: &'static str,
    shape: &'a [u64],
    stored_bytes: u64,
    raw_bytes: u64,
    codec: &'static str,
    offset: u64,
}

/// `ach ls FILE [--json] [--long]`.
pub fn ls(path: &Location, json: bool, long: bool) -> CliResult<()> {
    let archive = super::open_checked(path)?;
    let info = archive.info();
    let offset = |e: &achronyme_env::BindingInfo| {
        archive
            .blob_range(e.section, &e.name)
            .map_or(0, |(off, _)| off)
    };
    if json {
        let rows: Vec<LsRow> = info
            .entries
            .iter()
            .map(|e| LsRow {
                name: &e.name,
                section: section_name(e.section),
                type_name: e.type_name,
                shape: &e.shape,
                stored_bytes: e.stored_bytes,
                raw_bytes: e.raw_bytes,
                codec: e.codec.name(),
                offset: offset(e),
            })
            .collect();
        println!("{}", super::json_text(&rows));
        return Ok(());
    }
    let size = |b: u64| if long { b.to_string() } else { human(b) };
    let rows: Vec<Vec<String>> = info
        .entries
        .iter()
        .map(|e| {
            let mut r = vec![
                printable(&e.name),
                e.type_name.to_string(),
                shape_of(e.type_name, &e.shape),
                size(e.stored_bytes),
                size(e.raw_bytes),
                e.codec.name().to_string(),
                section_name(e.section).to_string(),
            ];
            if long {
                let ratio = if e.stored_bytes == 0 {
                    "-".to_string()
                } else {
                    format!("{:.2}", e.raw_bytes as f64 / e.stored_bytes as f64)
                };
                r.push(ratio);
                r.push(offset(e).to_string());
            }
            r
        })
        .collect();
    let mut head = vec!["NAME", "TYPE", "SHAPE", "STORED", "RAW", "CODEC", "SECTION"];
    let mut right = vec![3, 4];
    if long {
        head.extend(["RATIO", "OFFSET"]);
        right.extend([7, 8]);
    }
    super::print_table(&head, &rows, &right);
    Ok(())
}

/// `ach show FILE NAME`.
pub fn show(path: &Location, name: &str, load: LoadOptions) -> CliResult<()> {
    let archive = super::open_checked(path)?;
    let section = find_section(&archive, name)?;
    let value = archive.get_with(section, name, load)?;
    let label = printable(name);
    match &value {
        Value::Tensor(t) => {
            println!(
                "{label}: Tensor {}, float64, {}, {}",
                dims(t.shape()),
                elements(t.len()),
                human(t.len() as u64 * 8)
            );
            if !t.is_empty() {
                println!("{}", stats(t.data()));
            }
            print_grid(t.shape(), t.len(), |i| num(t.data()[i]));
        }
        Value::ComplexTensor(t) => {
            println!(
                "{label}: ComplexTensor {}, complex128, {}, {}",
                dims(t.shape()),
                elements(t.len()),
                human(t.len() as u64 * 16)
            );
            if !t.is_empty() {
                println!("{}", complex_stats(t.data()));
            }
            print_grid(t.shape(), t.len(), |i| complex(t.data()[i]));
        }
        v => {
            println!("{label}: {}", v.type_name());
            let mut out = String::new();
            pretty(&mut out, v, 0);
            println!("{out}");
        }
    }
    Ok(())
}

fn dims(shape: &[usize]) -> String {
    shape_of(
        "Tensor",
        &shape.iter().map(|&d| d as u64).collect::<Vec<_>>(),
    )
}

fn elements(n: usize) -> String {
    if n == 1 {
        "1 element".into()
    } else {
        format!("{n} elements")
    }
}

/// A float for people: the exact shortest form when it is short, else six
/// significant digits.
pub fn num(x: f64) -> String {
    let s = format!("{x:?}");
    if s.len() <= 10 {
        s
    } else if (1e-3..1e6).contains(&x.abs()) {
        format!("{x:.6}")
    } else {
        format!("{x:.6e}")
    }
}

fn complex(c: Complex) -> String {
    let im = num(c.im);
    if im.starts_with('-') {
        format!("{}{im}i", num(c.re))
    } else {
        format!("{}+{im}i", num(c.re))
    }
}

fn stats(data: &[f64]) -> String {
    let (mut min, mut max, mut sum, mut nans, mut n) =
        (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0, 0);
    for &x in data {
        if x.is_nan() {
            nans += 1;
            continue;
        }
        min = min.min(x);
        max = max.max(x);
        sum += x;
        n += 1;
    }
    let mut s = if n == 0 {
        "min -  max -  mean -".to_string()
    } else {
        format!(
            "min {}  max {}  mean {}",
            num(min),
            num(max),
            num(sum / n as f64)
        )
    };
    if nans > 0 {
        s.push_str(&format!("  ({nans} NaN, not counted)"));
    }
    s
}

fn complex_stats(data: &[Complex]) -> String {
    let (mut re, mut im, mut maxabs) = (0.0, 0.0, 0.0f64);
    for c in data {
        re += c.re;
        im += c.im;
        maxabs = maxabs.max(c.re.hypot(c.im));
    }
    let n = data.len() as f64;
    format!(
        "max |z| {}  mean {}",
        num(maxabs),
        complex(Complex::new(re / n, im / n))
    )
}

/// Rows of the last axis, at most 3 at each end, each at most 3 (5 for a
/// vector) elements at each end: never more than a screenful.
fn print_grid(shape: &[usize], len: usize, cell: impl Fn(usize) -> String) {
    if len == 0 {
        println!("[]");
        return;
    }
    let cols = shape.last().copied().unwrap_or(1).max(1);
    let rows = len / cols;
    let edge = if rows == 1 { 5 } else { 3 };
    let pick = |n: usize, edge: usize| -> Vec<Option<usize>> {
        if n <= 2 * edge {
            (0..n).map(Some).collect()
        } else {
            (0..edge)
                .map(Some)
                .chain([None])
                .chain((n - edge..n).map(Some))
                .collect()
        }
    };
    let row_idx = pick(rows, 3);
    let col_idx = pick(cols, edge);
    let lines: Vec<Vec<String>> = row_idx
        .iter()
        .map(|r| match r {
            Some(r) => col_idx
                .iter()
                .map(|c| c.map_or("...".into(), |c| cell(r * cols + c)))
                .collect(),
            None => vec![],
        })
        .collect();
    let mut widths = vec![0; col_idx.len()];
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.len());
        }
    }
    if shape.len() > 2 {
        println!("(rows of the last axis, {rows} rows in all)");
    }
    let many = rows > 1;
    for (i, l) in lines.iter().enumerate() {
        let open = match (many, i) {
            (false, _) => "[",
            (true, 0) => "[[",
            (true, _) => " [",
        };
        if l.is_empty() {
            println!(" ...");
            continue;
        }
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, &w)| format!("{c:>w$}"))
            .collect();
        let close = if !many || i + 1 < lines.len() {
            "]"
        } else {
            "]]"
        };
        let sep = if many && i + 1 < lines.len() { "," } else { "" };
        println!("{open}{}{close}{sep}", cells.join(", "));
    }
}

const MAX_ITEMS: usize = 20;

/// A value for people, indented, long vectors and records cut short.
fn pretty(out: &mut String, v: &Value, indent: usize) {
    let pad = "  ".repeat(indent + 1);
    match v {
        Value::Null => out.push_str("null"),
        Value::Boolean(b) => out.push_str(&b.to_string()),
        // Scalars exactly (the shortest text that reads back the same).
        Value::Number(x) => out.push_str(&format!("{x:?}")),
        Value::String(s) => out.push_str(&format!("\"{}\"", s.escape_debug())),
        Value::Complex(c) => {
            let sign = if c.im.is_sign_negative() { "" } else { "+" };
            out.push_str(&format!("{:?}{sign}{:?}i", c.re, c.im))
        }
        Value::Tensor(t) => {
            out.push_str(&format!("Tensor {} ", dims(t.shape())));
            inline(out, t.len(), |i| num(t.data()[i]));
        }
        Value::ComplexTensor(t) => {
            out.push_str(&format!("ComplexTensor {} ", dims(t.shape())));
            inline(out, t.len(), |i| complex(t.data()[i]));
        }
        Value::Vector(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push_str("[\n");
            for item in items.iter().take(MAX_ITEMS) {
                out.push_str(&pad);
                pretty(out, item, indent + 1);
                out.push_str(",\n");
            }
            if items.len() > MAX_ITEMS {
                out.push_str(&format!("{pad}... {} more\n", items.len() - MAX_ITEMS));
            }
            out.push_str(&"  ".repeat(indent));
            out.push(']');
        }
        Value::Record(r) => record(out, r, indent),
        Value::Function(Function::Builtin(name)) => {
            out.push_str(&format!("builtin {}", printable(name)))
        }
        Value::Function(Function::Lambda { source, .. }) => {
            out.push_str(&format!("lambda {}", printable(source)))
        }
        Value::Edge(e) => {
            let arrow = if e.directed { "->" } else { "--" };
            out.push_str(&format!(
                "\"{}\" {arrow} \"{}\" ",
                e.from.escape_debug(),
                e.to.escape_debug()
            ));
            record(out, &e.properties, indent);
        }
        Value::MutableRef(r) => {
            let inner = r.read().unwrap_or_else(|e| e.into_inner()).clone();
            out.push_str("mut ");
            pretty(out, &inner, indent);
        }
    }
}

fn record(out: &mut String, r: &Record, indent: usize) {
    if r.is_empty() {
        out.push_str("{}");
        return;
    }
    let pad = "  ".repeat(indent + 1);
    out.push_str("{\n");
    for (k, v) in r.fields().iter().take(MAX_ITEMS) {
        out.push_str(&format!("{pad}{}: ", printable(k)));
        pretty(out, v, indent + 1);
        out.push_str(",\n");
    }
    if r.len() > MAX_ITEMS {
        out.push_str(&format!("{pad}... {} more fields\n", r.len() - MAX_ITEMS));
    }
    out.push_str(&"  ".repeat(indent));
    out.push('}');
}

fn inline(out: &mut String, len: usize, cell: impl Fn(usize) -> String) {
    let shown: Vec<String> = if len <= 8 {
        (0..len).map(&cell).collect()
    } else {
        (0..3)
            .map(&cell)
            .chain(["...".to_string()])
            .chain((len - 3..len).map(&cell))
            .collect()
    };
    out.push_str(&format!("[{}]", shown.join(", ")));
}
