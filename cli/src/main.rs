//! `ach`: the command line for `.ach` archives.
//!
//! Exit codes: 0 success (an intact archive, identical archives), 1 a
//! failure or a negative answer (damage found, archives differ), 2 a usage
//! error. Errors are one line on stderr starting with `ach: error: `.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use achronyme_env::testdata;
use achronyme_env::*;
use clap::{Parser, Subcommand};

use achronyme_env::hash::Checksum;
use cli::transfer::{ImportOptions, parse_checksum, parse_compression};
use cli::{CliResult, human, printable, progress};

/// Inspect, check, convert and build Achronyme environment archives (.ach).
#[derive(Parser)]
#[command(name = "ach", version)]
struct Cli {
    /// No progress bars (they are drawn only on a terminal anyway).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Most memory one value may take once loaded (show, export, repack,
    /// verify), in bytes or with a K, M, G or T suffix (powers of 1024).
    /// Values over it are refused, not loaded; raise it for archives you
    /// trust that hold bigger values. [default: 4G]
    #[arg(long, global = true, value_parser = parse_size, value_name = "SIZE")]
    max_memory: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a realistic workspace, save it, inspect it, load one variable
    /// lazily, verify it, restore it, and print the time of each step.
    Demo {
        /// Size of the large tensor in MiB.
        #[arg(long, default_value_t = 256)]
        size_mib: usize,
        /// Keep the archive in this directory instead of a temporary one.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Show what an archive holds (header and table of contents only).
    Info {
        /// The archive.
        #[arg(value_parser = location)]
        file: Location,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the bindings: name, type, shape, sizes, codec, section.
    Ls {
        /// The archive.
        #[arg(value_parser = location)]
        file: Location,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
        /// Exact byte counts, compression ratio and file offset.
        #[arg(short, long)]
        long: bool,
    },
    /// Print one value for a person (large tensors are summarised).
    Show {
        /// The archive.
        #[arg(value_parser = location)]
        file: Location,
        /// The binding (or constant).
        name: String,
    },
    /// Check every byte of an archive; exit 1 naming damaged bindings.
    Verify {
        /// The archive.
        #[arg(value_parser = location)]
        file: Location,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write one value to a .npy, .csv or .json file.
    Export {
        /// The archive.
        #[arg(value_parser = location)]
        file: Location,
        /// The binding (or constant).
        name: String,
        /// Output file; its extension (.npy, .csv, .json) picks the format.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Build an archive from .npy, .csv and .json files.
    Import {
        /// The archive to write.
        #[arg(value_parser = location)]
        out: Location,
        /// Input files, each FILE (named after its stem) or NAME=FILE.
        #[arg(required = true, value_name = "[NAME=]FILE")]
        inputs: Vec<String>,
        #[command(flatten)]
        options: ImportOptions,
    },
    /// Rewrite an archive with another codec, keeping its metadata.
    Repack {
        /// The archive to read.
        #[arg(value_parser = location)]
        input: Location,
        /// The archive to write.
        #[arg(value_parser = location)]
        out: Location,
        /// Codec: none, zstd, zstd:LEVEL (1-22) or lz4.
        #[arg(long, value_parser = parse_compression, value_name = "CODEC", default_value = "zstd:3")]
        compress: Compression,
        /// Do not try the float filters before compressing.
        #[arg(long)]
        no_filters: bool,
        /// Chunk checksum: xxh3 (fast, against accidental damage) or
        /// sha256 (cryptographic).
        #[arg(long, value_parser = parse_checksum, value_name = "ALGO", default_value = "xxh3")]
        checksum: Checksum,
        /// Replace OUT if it exists.
        #[arg(long)]
        allow_overwrite: bool,
    },
    /// Compare two archives; exit 0 when identical, 1 when different.
    Diff {
        /// The first archive.
        #[arg(value_parser = location)]
        a: Location,
        /// The second archive.
        #[arg(value_parser = location)]
        b: Location,
        /// Print the differences as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// An archive's path or URL (`s3://bucket/key.ach`, ...).
fn location(s: &str) -> std::result::Result<Location, String> {
    Ok(Location::from(s))
}

/// A byte count: digits, then optionally K, M, G or T (powers of 1024),
/// optionally followed by "iB" or "B".
fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let bad = || format!("expected a size such as 512M or 8G, got {s:?}");
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = unit.to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(bad()),
    };
    number.checked_mul(1 << shift).ok_or_else(bad)
}

fn main() -> ExitCode {
    // Like other Unix tools, stop quietly when the reader of our output
    // goes away (`ach ls big.ach | head`) instead of failing to print.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE at start-up,
    // before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A bug must still end as one line, not a backtrace.
    std::panic::set_hook(Box::new(|p| {
        eprintln!("ach: internal error (a bug; please report it): {p}");
    }));
    let cli = Cli::parse();
    let bars = progress::wanted(cli.quiet);
    let load = LoadOptions {
        max_decoded_bytes: cli
            .max_memory
            .unwrap_or(LoadOptions::DEFAULT_MAX_DECODED_BYTES),
        ..LoadOptions::default()
    };
    let outcome = match cli.command {
        Command::Demo { size_mib, keep } => demo(size_mib, keep),
        Command::Info { file, json } => info(&file, json),
        Command::Ls { file, json, long } => {
            cli::inspect::ls(&file, json, long).map(|()| ExitCode::SUCCESS)
        }
        Command::Show { file, name } => {
            cli::inspect::show(&file, &name, load).map(|()| ExitCode::SUCCESS)
        }
        Command::Verify { file, json } => verify(&file, json, load, bars),
        Command::Export { file, name, output } => {
            cli::transfer::export(&file, &name, &output, load, bars).map(|()| ExitCode::SUCCESS)
        }
        Command::Import {
            out,
            inputs,
            options,
        } => cli::transfer::import(&out, &inputs, &options, bars).map(|()| ExitCode::SUCCESS),
        Command::Repack {
            input,
            out,
            compress,
            no_filters,
            checksum,
            allow_overwrite,
        } => cli::transfer::repack(
            &input,
            &out,
            (compress, no_filters, checksum),
            allow_overwrite,
            load,
            bars,
        )
        .map(|()| ExitCode::SUCCESS),
        Command::Diff { a, b, json } => cli::diff::diff(&a, &b, json).map(|same| {
            if same {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ach: error: {e}");
            e.code()
        }
    }
}

fn shape_text(shape: &[u64]) -> String {
    cli::shape_text(shape)
}

fn print_info(path: &Location, info: &EnvInfo) {
    println!(
        "archive      {} ({}, format {})",
        path,
        human(info.file_size),
        info.version
    );
    println!(
        "created      {} by {} on {}",
        info.created_at,
        printable(&info.created_by),
        printable(&info.platform)
    );
    println!("runtime      {}", printable(&info.achronyme_version));
    println!(
        "compressed   {}",
        if info.compressed { "yes" } else { "no" }
    );
    println!("checksums    {}", info.checksum.name());
    if let Some(d) = &info.description {
        println!("description  {}", printable(d));
    }
    if !info.tags.is_empty() {
        println!("tags         {}", printable(&info.tags.join(", ")));
    }
    for (k, v) in &info.custom {
        println!("custom       {} = {}", printable(k), printable(v));
    }
    println!(
        "contents     {} bindings, {} constants, {} functions",
        info.num_bindings, info.num_constants, info.num_functions
    );
    if info.storage_blobs > 0 || info.shared_entries > 0 {
        println!(
            "shared       {} nested tensor blobs ({}), {} entries sharing a blob",
            info.storage_blobs,
            human(info.storage_bytes),
            info.shared_entries
        );
    }
    let rows: Vec<[String; 7]> = info
        .entries
        .iter()
        .map(|e| {
            [
                printable(&e.name),
                format!("{:?}", e.section).to_lowercase(),
                e.type_name.to_string(),
                shape_text(&e.shape),
                human(e.stored_bytes),
                human(e.raw_bytes),
                e.codec.name().to_string(),
            ]
        })
        .collect();
    let head = ["NAME", "SECTION", "TYPE", "SHAPE", "STORED", "RAW", "CODEC"];
    let mut widths = head.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    println!();
    let line = |cells: &[&str]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if (4..6).contains(&i) {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(&head);
    for r in &rows {
        line(&r.each_ref().map(String::as_str));
    }
}

fn info(path: &Location, json: bool) -> CliResult<ExitCode> {
    let info = cli::open_checked(path)?.info();
    if json {
        println!("{}", cli::json_text(&info));
    } else {
        print_info(path, &info);
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(path: &Location, json: bool, load: LoadOptions, bars: bool) -> CliResult<ExitCode> {
    let archive = Archive::open_location(path)?;
    let report = progress::spin(bars, "verifying", || {
        archive.verify_report_within(load.max_decoded_bytes)
    });
    if json {
        println!("{}", cli::json_text(&report));
    } else if report.is_ok() {
        println!(
            "{}: intact ({} bindings, {} checked)",
            path,
            report.bindings_checked,
            human(report.bytes_hashed)
        );
    } else {
        for d in &report.damaged {
            eprintln!(
                "damaged: {} ({}): {}",
                printable(&d.name),
                cli::section_name(d.section),
                printable(&d.error)
            );
        }
        eprintln!("{}: {report}", path);
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn demo_env(size_mib: usize) -> Environment {
    let mut env = Environment::new();
    let cols = 8192;
    let rows = (size_mib * (1 << 20) / 8 / cols).max(1);
    env.set(
        "signal",
        Value::Tensor(testdata::normal_tensor(rows, cols, 7)),
    );
    let spectrum: Vec<Complex> = testdata::smooth(1 << 18)
        .chunks(2)
        .map(|c| Complex::new(c[0], c[1]))
        .collect();
    env.set(
        "spectrum",
        Value::ComplexTensor(ComplexTensor::new(vec![256, 512], spectrum).expect("256x512")),
    );
    let mut model = Record::new();
    model.insert("name", Value::from("ridge regression"));
    model.insert("alpha", Value::Number(0.1));
    model.insert(
        "weights",
        Value::Tensor(Tensor::from_vec(testdata::normal(64, 3))),
    );
    model.insert(
        "predict",
        Value::Function(Function::Lambda {
            params: vec!["x".into()],
            source: "x => dot(weights, x)".into(),
        }),
    );
    env.set("model", Value::Record(model));
    env.set("title", Value::from("Temperature study, run 7"));
    env.set(
        "samples",
        Value::Vector(vec![
            Value::Number(1.5),
            Value::from("outlier"),
            Value::Boolean(true),
            Value::Complex(Complex::new(0.0, 1.0)),
        ]),
    );
    let mut props = Record::new();
    props.insert("distance_km", Value::Number(12.4));
    env.set(
        "route",
        Value::Edge(Edge {
            from: "Lab A".into(),
            to: "Lab B".into(),
            directed: true,
            properties: props,
        }),
    );
    env.set(
        "activation",
        Value::Function(Function::Builtin("tanh".into())),
    );
    env.set("counter", Value::new_ref(Value::Number(42.0)));
    env.set(
        "scale",
        Value::Function(Function::Lambda {
            params: vec!["x".into()],
            source: "x => x * 2".into(),
        }),
    );
    env.set_constant("PI", Value::Number(std::f64::consts::PI));
    env.set_constant("E", Value::Number(std::f64::consts::E));
    env
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 1.0 {
        format!("{:8.3} ms", ms)
    } else {
        format!("{:8.1} ms", ms)
    }
}

fn demo(size_mib: usize, keep: Option<PathBuf>) -> CliResult<ExitCode> {
    let tmp = tempfile::tempdir().map_err(|e| Error::Io {
        action: "creating",
        path: std::env::temp_dir(),
        source: e,
    })?;
    let dir = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    let path = dir.join("demo.ach");
    let mut timings: Vec<(String, Duration)> = Vec::new();

    println!("== building a workspace with a {size_mib} MiB tensor");
    let t = Instant::now();
    let env = demo_env(size_mib);
    timings.push(("build workspace (not the engine)".into(), t.elapsed()));

    println!("== save_env(\"{}\")", path.display());
    let opts = SaveOptions {
        allow_overwrite: true,
        description: Some("ach demo workspace".into()),
        tags: vec!["demo".into(), "temperature_study".into()],
        ..Default::default()
    };
    let report = save_environment(&env, &path, &opts)?;
    println!(
        "wrote {} ({}): {}",
        human(report.bytes),
        report.bytes,
        report.written.join(", ")
    );
    for w in &report.warnings {
        println!("warning: {w}");
    }
    timings.push(("save: write + hash".into(), report.write_time));
    timings.push(("save: fsync file + directory".into(), report.sync_time));

    println!("\n== env_info");
    let t = Instant::now();
    let info = env_info(&path)?;
    timings.push(("env_info (open + table of contents)".into(), t.elapsed()));
    print_info(&Location::from(&path), &info);

    println!("\n== load one variable lazily");
    let t = Instant::now();
    let archive = Archive::open(&path)?;
    let Value::Tensor(signal) = archive.get_with(
        Section::Bindings,
        "signal",
        LoadOptions {
            verify_checksum: false,
            ..LoadOptions::default()
        },
    )?
    else {
        unreachable!("signal is a tensor");
    };
    timings.push(("load `signal` as a mapped view".into(), t.elapsed()));
    println!(
        "signal: shape {:?}, mapped view: {}, first values {:?}",
        signal.shape(),
        signal.is_mapped(),
        &signal.data()[..3]
    );
    let t = Instant::now();
    archive.get("signal")?;
    timings.push((
        "load `signal` with its checksums checked".into(),
        t.elapsed(),
    ));
    let t = Instant::now();
    let model = archive.get("model")?;
    timings.push(("load `model` (a record)".into(), t.elapsed()));
    if let Value::Record(r) = &model {
        let fields: Vec<&str> = r.fields().iter().map(|(k, _)| k.as_str()).collect();
        println!("model fields: {}", fields.join(", "));
    }

    println!("\n== verify");
    let t = Instant::now();
    let v = archive.verify()?;
    let took = t.elapsed();
    timings.push(("verify every byte".into(), took));
    println!(
        "{v}; {} hashed at {:.2} GB/s",
        human(v.bytes_hashed),
        v.bytes_hashed as f64 / took.as_secs_f64() / 1e9
    );
    drop(archive);

    println!("\n== restore_env into a fresh environment");
    let t = Instant::now();
    let mut restored = Environment::new();
    let r = restore_environment(&mut restored, &path, &RestoreOptions::default())?;
    timings.push((
        "restore_env (all bindings, checksums on)".into(),
        t.elapsed(),
    ));
    let same =
        restored.get("signal") == env.get("signal") && restored.get("title") == env.get("title");
    println!(
        "restored {} bindings; `signal` and `title` identical to the originals: {same}",
        r.restored.len()
    );

    println!("\n== timings");
    for (what, d) in &timings {
        println!("{}  {what}", ms(*d));
    }
    if !same {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
