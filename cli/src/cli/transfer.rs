//! `ach export`, `ach import` and `ach repack`.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use achronyme_env::Location;

use achronyme_env::{
    Complex, ComplexTensor, Compression, Environment, Error, LARGE_VALUE_BYTES, LoadOptions,
    PublishOptions, SaveOptions, SaveReport, Section, Tensor, Value, atomic_write,
    save_environment,
};

use super::progress::{Bar, spin};
use achronyme_env::hash::Checksum;

use super::{CliResult, failed, find_section, human, npy, printable, usage};

/// Parses a `--compress` value: `none`, `zstd`, `zstd:LEVEL` or `lz4`
/// (clap calls this; errors exit 2).
pub fn parse_compression(s: &str) -> Result<Compression, String> {
    let (name, level) = match s.split_once(':') {
        Some((n, l)) => (n, Some(l)),
        None => (s, None),
    };
    match (name, level) {
        ("none", None) => Ok(Compression::None),
        ("lz4", None) => Ok(Compression::Lz4),
        ("zstd", None) => Ok(Compression::default()),
        ("zstd", Some(l)) => match l.parse::<i32>() {
            Ok(level) if (1..=22).contains(&level) => Ok(Compression::Zstd { level }),
            _ => Err(format!("zstd level must be 1 to 22, got {l:?}")),
        },
        ("none" | "lz4", Some(_)) => Err(format!("{name} takes no level")),
        _ => Err("expected none, zstd, zstd:LEVEL (1-22) or lz4".into()),
    }
}

fn ext(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Refuses, before any file is made, a value the output format cannot hold.
fn check_exportable(kind: &str, value: &Value, label: &str, what: &str) -> CliResult<()> {
    match (kind, value) {
        ("npy", Value::Tensor(_) | Value::ComplexTensor(_)) => Ok(()),
        ("npy", _) => Err(usage(format!(
            "{what}; .npy holds tensors only: export it as .json"
        ))),
        // Rows without fields would be one empty line each: unbounded by
        // the element count (a [2^40, 0] tensor is a few hundred bytes
        // stored), and no CSV reader, ours included, reads them back as rows.
        ("csv", Value::Tensor(t)) if matches!(t.shape(), &[rows, 0] if rows > 0) => {
            Err(usage(format!(
                "{label} has shape {} (rows with no columns), which a .csv cannot hold: export it as .npy or .json",
                super::shape_text(&t.shape().iter().map(|&d| d as u64).collect::<Vec<_>>())
            )))
        }
        ("csv", Value::Tensor(t)) if t.shape().len() == 1 || t.shape().len() == 2 => Ok(()),
        ("csv", Value::Tensor(t)) => Err(usage(format!(
            "{label} has {} dimensions; .csv holds 1-D and 2-D tensors: export it as .npy",
            t.shape().len()
        ))),
        ("csv", _) => Err(usage(format!(
            "{what}; .csv holds real 1-D and 2-D tensors: export it as .npy or .json"
        ))),
        _ => Ok(()),
    }
}

/// `ach export FILE NAME -o OUT`.
pub fn export(
    path: &Location,
    name: &str,
    out: &Path,
    load: LoadOptions,
    progress: bool,
) -> CliResult<()> {
    let kind = ext(out);
    if !matches!(kind.as_str(), "npy" | "csv" | "json") {
        return Err(usage(format!(
            "cannot export to {}: the output must end in .npy, .csv or .json",
            out.display()
        )));
    }
    let archive = super::open_checked(path)?;
    let section = find_section(&archive, name)?;
    let value = spin(progress, "loading", || {
        archive.get_with(section, name, load)
    })?;
    let label = printable(name);
    let what = format!("{label} is a {}", value.type_name());
    check_exportable(&kind, &value, &label, &what)?;
    // Published atomically beside OUT: a failed export leaves no
    // half-written file, and an existing OUT is replaced only when complete.
    let publish = PublishOptions {
        overwrite: true,
        ..PublishOptions::default()
    };
    let published = atomic_write(out, &publish, |file| {
        let io = |e: std::io::Error| Error::io("writing", out, e);
        let mut w = BufWriter::with_capacity(1 << 20, file);
        match (kind.as_str(), &value) {
            ("npy", Value::Tensor(t)) => {
                npy::write_header(&mut w, "<f8", t.shape()).map_err(io)?;
                write_chunks(&mut w, bytemuck::cast_slice(t.data()), progress).map_err(io)?;
            }
            ("npy", Value::ComplexTensor(t)) => {
                npy::write_header(&mut w, "<c16", t.shape()).map_err(io)?;
                write_chunks(&mut w, bytemuck::cast_slice(t.data()), progress).map_err(io)?;
            }
            ("csv", Value::Tensor(t)) => write_csv(&mut w, t, progress).map_err(io)?,
            (_, v) => {
                super::json::write_value(&mut w, v).map_err(io)?;
                w.write_all(b"\n").map_err(io)?;
            }
        }
        w.flush().map_err(io)
    })?;
    for w in &published.warnings {
        eprintln!("ach: warning: {}", printable(w));
    }
    let size = std::fs::metadata(out).map_or(0, |m| m.len());
    println!(
        "wrote {} ({}): {label} as .{kind}",
        out.display(),
        human(size)
    );
    Ok(())
}

/// Writes `bytes` in 4 MiB pieces, with a progress bar.
fn write_chunks(w: &mut impl Write, bytes: &[u8], progress: bool) -> std::io::Result<()> {
    let mut bar = Bar::bytes(progress, bytes.len() as u64, "exporting");
    for piece in bytes.chunks(4 << 20) {
        w.write_all(piece)?;
        bar.inc(piece.len() as u64);
    }
    bar.finish();
    Ok(())
}

fn write_csv(w: &mut impl Write, t: &Tensor, progress: bool) -> std::io::Result<()> {
    let cols = if t.shape().len() == 2 {
        t.shape()[1]
    } else {
        1
    };
    let rows = if t.shape().len() == 2 {
        t.shape()[0]
    } else {
        t.len()
    };
    if cols == 0 {
        // Only [0, 0] gets here (export refuses rows without columns):
        // nothing to write.
        return Ok(());
    }
    let mut bar = Bar::items(progress, rows as u64, "exporting rows");
    for row in t.data().chunks(cols) {
        for (i, x) in row.iter().enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            // Shortest text that reads back to the same f64 (NaN, inf, -inf
            // as NumPy and Python read them).
            if x.is_nan() {
                w.write_all(b"nan")?;
            } else {
                write!(w, "{x:?}")?;
            }
        }
        w.write_all(b"\n")?;
        bar.inc(1);
    }
    bar.finish();
    Ok(())
}

/// Parses a `--checksum` value: `xxh3` (the default) or `sha256`.
pub fn parse_checksum(s: &str) -> Result<Checksum, String> {
    match s {
        "xxh3" => Ok(Checksum::Xxh3),
        "sha256" => Ok(Checksum::Sha256),
        _ => Err("expected xxh3 (fast, against accidental damage) or sha256 \
                  (cryptographic, authenticates every byte with the closing digest)"
            .into()),
    }
}

/// Options of `ach import` that become [`SaveOptions`], as clap parses them.
#[derive(clap::Args, Debug)]
pub struct ImportOptions {
    /// Codec: none, zstd, zstd:LEVEL (1-22) or lz4 [default: zstd:3].
    #[arg(long, value_parser = parse_compression, value_name = "CODEC")]
    pub compress: Option<Compression>,
    /// Do not try the float filters before compressing.
    #[arg(long)]
    pub no_filters: bool,
    /// Chunk checksum: xxh3 or sha256 [default: xxh3].
    #[arg(long, value_parser = parse_checksum, value_name = "ALGO")]
    pub checksum: Option<Checksum>,
    /// Description stored in the metadata.
    #[arg(long)]
    pub description: Option<String>,
    /// A tag stored in the metadata (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Custom metadata KEY=VALUE (repeatable).
    #[arg(long = "custom", value_parser = parse_key_value, value_name = "KEY=VALUE")]
    pub custom: Vec<(String, String)>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub allow_overwrite: bool,
    /// Fail (leaving any old OUT) if the archive would exceed this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_file_size: Option<u64>,
    /// Leave out names matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Keep only names matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub include_only: Vec<String>,
    /// No warning for values over 100 MiB.
    #[arg(long)]
    pub no_warn_large: bool,
}

pub fn parse_key_value(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// `NAME=FILE` or `FILE` (the name is then the file's stem).
fn name_and_file(spec: &str) -> CliResult<(String, PathBuf)> {
    if let Some((name, file)) = spec.split_once('=')
        && !name.is_empty()
        && !name.contains(['/', '\\'])
    {
        return Ok((name.to_string(), PathBuf::from(file)));
    }
    let file = PathBuf::from(spec);
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            usage(format!(
                "{spec}: cannot take a name from this path; write NAME={spec}"
            ))
        })?;
    Ok((stem.to_string(), file))
}

/// `ach import OUT.ach [NAME=]FILE...`.
pub fn import(
    out: &Location,
    specs: &[String],
    opts: &ImportOptions,
    progress: bool,
) -> CliResult<()> {
    let mut inputs = Vec::new();
    for spec in specs {
        let (name, file) = name_and_file(spec)?;
        if !matches!(ext(&file).as_str(), "npy" | "csv" | "json") {
            return Err(usage(format!(
                "{}: ach imports .npy, .csv and .json files",
                file.display()
            )));
        }
        if inputs.iter().any(|(n, _)| *n == name) {
            return Err(usage(format!(
                "the name {name} is given twice; choose names with NAME=FILE"
            )));
        }
        inputs.push((name, file));
    }
    // A URL is checked by the save itself (the store answers).
    if !opts.allow_overwrite && out.as_path().is_some_and(Path::exists) {
        return Err(failed(format!(
            "{out} already exists; pass --allow-overwrite to replace it, or choose another path"
        )));
    }
    let mut env = Environment::new();
    // Progress in bytes read, over every input that exists (a missing one
    // fails with its own error when its turn comes).
    let total = inputs
        .iter()
        .filter_map(|(_, f)| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let mut bar = Bar::bytes(progress, total, "reading");
    for (name, file) in &inputs {
        let value = read_input(file, &mut bar)?;
        env.set(name.clone(), value);
    }
    bar.finish();
    let mut save = SaveOptions {
        description: opts.description.clone(),
        tags: opts.tags.clone(),
        custom: opts.custom.clone(),
        allow_overwrite: opts.allow_overwrite,
        max_file_size: opts.max_file_size,
        exclude: opts.exclude.clone(),
        include_only: (!opts.include_only.is_empty()).then(|| opts.include_only.clone()),
        large_value_warning: (!opts.no_warn_large).then_some(LARGE_VALUE_BYTES),
        filters: !opts.no_filters,
        checksum: opts.checksum.unwrap_or_default(),
        created_by: format!("ach import {}", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    };
    if let Some(c) = opts.compress {
        save.compression = c;
    }
    let report = spin(progress, "saving", || save_environment(&env, out, &save))?;
    print_saved(&report);
    Ok(())
}

fn print_saved(report: &SaveReport) {
    for w in &report.warnings {
        eprintln!("ach: warning: {}", printable(w));
    }
    for s in &report.skipped {
        eprintln!(
            "ach: warning: {} not saved: {}",
            printable(&s.name),
            printable(&s.reason)
        );
    }
    let n = report.written.len() + report.constants_written.len();
    println!(
        "wrote {} ({}, {n} binding{})",
        report.path.display(),
        human(report.bytes),
        if n == 1 { "" } else { "s" }
    );
}

fn read_input(file: &Path, bar: &mut Bar) -> CliResult<Value> {
    let shown = file.display();
    let open = || File::open(file).map_err(|e| failed(format!("opening {shown}: {e}")));
    match ext(file).as_str() {
        "npy" => read_npy(file, open()?, bar),
        "csv" => read_csv(file, open()?, bar),
        _ => {
            let mut text = String::new();
            open()?
                .read_to_string(&mut text)
                .map_err(|e| failed(format!("reading {shown}: {e}")))?;
            bar.inc(text.len() as u64);
            super::json::parse_value(&text).map_err(|e| failed(format!("{shown}: {e}")))
        }
    }
}

fn read_npy(path: &Path, file: File, bar: &mut Bar) -> CliResult<Value> {
    let shown = path.display();
    let len = file
        .metadata()
        .map_err(|e| failed(format!("reading {shown}: {e}")))?
        .len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let h = npy::read_header(&mut r, len).map_err(|e| failed(format!("{shown}: {e}")))?;
    let count = h
        .count()
        .ok_or_else(|| failed(format!("{shown}: the shape {:?} is too large", h.shape)))?;
    let expected = (count as u64)
        .checked_mul(h.dtype.size as u64)
        .and_then(|b| b.checked_add(h.data_offset));
    if expected != Some(len) {
        return Err(failed(format!(
            "{shown}: a {} array of shape {:?} needs {} bytes of data, the file has {}; it is truncated or not what its header says",
            h.dtype.name(),
            h.shape,
            expected.map_or("too many".into(), |e| (e - h.data_offset).to_string()),
            len.saturating_sub(h.data_offset)
        )));
    }
    if !h.dtype.is_native() {
        eprintln!(
            "ach: note: {shown}: {}{} converted to {}",
            h.dtype.name(),
            if h.dtype.big_endian {
                " (big-endian)"
            } else {
                ""
            },
            if h.dtype.kind == npy::Kind::Complex {
                "complex128"
            } else {
                "float64"
            }
        );
    }
    let fortran = h.fortran_order && h.shape.len() > 1;
    if fortran {
        eprintln!("ach: note: {shown}: Fortran-ordered data transposed to C order");
    }
    let io = |e: std::io::Error| failed(format!("reading {shown}: {e}"));
    let complex = h.dtype.kind == npy::Kind::Complex;
    let shape = h.shape.clone();
    // Elements as (re, im) pairs, in file order.
    let mut re = Vec::with_capacity(count);
    let mut im = Vec::with_capacity(if complex { count } else { 0 });
    if h.dtype.is_native() && !complex {
        // Little-endian float64: the bytes are the elements.
        re.resize(count, 0.0);
        for piece in bytemuck::cast_slice_mut::<f64, u8>(&mut re).chunks_mut(4 << 20) {
            r.read_exact(piece).map_err(io)?;
            bar.inc(piece.len() as u64);
        }
    } else {
        let step = (h.dtype.size * 65536) as u64;
        npy::read_elements(h, &mut r, |a, b| {
            re.push(a);
            if complex {
                im.push(b);
            }
            if re.len() % 65536 == 0 {
                bar.inc(step);
            }
        })
        .map_err(io)?;
    }
    if fortran {
        let order: Vec<usize> = npy::fortran_to_c(&shape).collect();
        re = order.iter().map(|&k| re[k]).collect();
        if complex {
            im = order.iter().map(|&k| im[k]).collect();
        }
    }
    let err = |e: achronyme_env::Error| failed(format!("{shown}: {e}"));
    Ok(if complex {
        let data = re
            .into_iter()
            .zip(im)
            .map(|(a, b)| Complex::new(a, b))
            .collect();
        Value::ComplexTensor(ComplexTensor::new(shape, data).map_err(err)?)
    } else {
        Value::Tensor(Tensor::new(shape, re).map_err(err)?)
    })
}

/// A CSV of numbers: one row per line, fields separated by commas; blank
/// lines and lines starting with `#` are skipped. One column gives a 1-D
/// tensor, more give a 2-D one.
fn read_csv(path: &Path, file: File, bar: &mut Bar) -> CliResult<Value> {
    let shown = path.display();
    let mut data = Vec::new();
    let mut cols: Option<usize> = None;
    let mut rows = 0usize;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| failed(format!("reading {shown}: {e}")))?;
        bar.inc(line.len() as u64 + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut n = 0;
        for (j, field) in line.split(',').enumerate() {
            let field = field.trim();
            let x: f64 = field.parse().map_err(|_| {
                failed(format!(
                    "{shown}: line {}, field {}: {:?} is not a number; ach imports CSV files of numbers only (no header row)",
                    i + 1,
                    j + 1,
                    printable(field)
                ))
            })?;
            data.push(x);
            n += 1;
        }
        match cols {
            None => cols = Some(n),
            Some(c) if c != n => {
                return Err(failed(format!(
                    "{shown}: line {} has {n} fields, earlier lines have {c}",
                    i + 1
                )));
            }
            _ => {}
        }
        rows += 1;
    }
    let shape = match cols {
        None => vec![0],
        Some(1) => vec![rows],
        Some(c) => vec![rows, c],
    };
    Ok(Value::Tensor(
        Tensor::new(shape, data).map_err(|e| failed(format!("{shown}: {e}")))?,
    ))
}

/// `ach repack IN OUT`.
pub fn repack(
    input: &Location,
    out: &Location,
    (compression, no_filters, checksum): (Compression, bool, Checksum),
    allow_overwrite: bool,
    load: LoadOptions,
    progress: bool,
) -> CliResult<()> {
    let archive = super::open_checked(input)?;
    if archive.names(Section::Functions).next().is_some() {
        return Err(failed(format!(
            "{} has a functions section, which this version cannot write; nothing was changed",
            input
        )));
    }
    let meta = archive.metadata().clone();
    let mut env = Environment::new();
    let mut bar = Bar::items(progress, archive.len() as u64, "loading");
    for section in [Section::Bindings, Section::Constants] {
        let names: Vec<String> = archive.names(section).map(str::to_string).collect();
        for name in names {
            let v = archive
                .get_with(section, &name, load)
                .map_err(|e| failed(format!("{}: {e}", input)))?;
            match section {
                Section::Constants => env.set_constant(name, v),
                _ => env.set(name, v),
            };
            bar.inc(1);
        }
    }
    bar.finish();
    let save = SaveOptions {
        compression,
        checksum,
        description: meta.description,
        tags: meta.tags,
        custom: meta.custom,
        created_by: meta.created_by,
        achronyme_version: archive.achronyme_version(),
        allow_overwrite,
        filters: !no_filters,
        large_value_warning: None,
        ..Default::default()
    };
    let report = spin(progress, "saving", || save_environment(&env, out, &save))?;
    print_saved(&report);
    Ok(())
}
