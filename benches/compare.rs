//! Side-by-side benchmarks (issue #7): this crate against the systems people
//! would use instead, on the same data, in the same run.
//!
//! Systems:
//!
//! - `ach_raw`: this crate, `Compression::None`.
//! - `ach_zstd`: this crate with its default compression (zstd level 3,
//!   float filters, stored raw where compression saves less than 1/8).
//! - `safetensors`: the `safetensors` crate, holding the tensors-only subset
//!   of each workload (numbers as one-element F64 tensors, booleans as
//!   one-element BOOL tensors, record fields flattened to `name.field`;
//!   strings cannot be held and are left out).
//! - `msgpack` / `msgpack_zstd`: the whole-file design of the spec's open
//!   question Q1: the environment serialised as one MessagePack document
//!   (`rmp-serde`, a serde mirror of `Value`), optionally through a zstd
//!   level 3 stream, and read back whole.
//! - `ref_*`: reference limits on the same bytes: `std::fs::write`, write to
//!   a temporary + rename (what all three systems do on save), a memory copy
//!   and single-threaded SHA-256.
//!
//! All saves are non-durable (`durable: false` for this crate, plain writes
//! without fsync for the others), and every save replaces the previous file
//! by a rename (this crate and safetensors do so on their own; the
//! MessagePack baseline writes `path.tmp` and renames it). Loads run right
//! after the files were written: the page cache is warm.
//!
//! Conversions to the baselines' own data structures (the MessagePack
//! mirror, the safetensors tensor list) are made once, before timing; the
//! tensor data is borrowed, not copied. Reading back, converting into
//! `Value`s is part of the timed work wherever this crate's operation builds
//! `Value`s too.
//!
//! ```text
//! cargo bench --bench compare                 # everything (~15 minutes)
//! cargo bench --bench compare -- w2_          # one workload
//! ACH_BENCH_W1_MIB=64 cargo bench --bench compare   # a quick check
//! ```
//!
//! File sizes go to stderr and to `target/compare-sizes.tsv`;
//! `scripts/compare_report.py` turns criterion's results into the tables of
//! `BENCHMARKS.md`. `examples/peak_rss.rs` measures peak memory with the
//! functions of [`systems`].

use std::cell::OnceCell;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use achronyme_env::{Environment, Value};
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, measurement::WallTime};
use sha2::{Digest, Sha256};

/// The systems under comparison, each as plain functions on paths, shared
/// with `examples/peak_rss.rs`.
pub mod systems {
    use std::borrow::Cow;
    use std::fs::File;
    use std::io::{BufReader, BufWriter, Write};
    use std::path::{Path, PathBuf};

    use achronyme_env::{
        Archive, Complex, ComplexTensor, Compression, Edge, Environment, Function, LoadOptions,
        Record, RestoreOptions, SaveOptions, Section, Tensor, Value, env_info, env_load_var,
        restore_environment, save_environment, testdata,
    };
    use safetensors::{Dtype, SafeTensors, View};
    use serde::{Deserialize, Serialize};

    /// Columns of W1's tensor; rows follow from the size.
    pub const W1_COLS: usize = 8192;
    /// Seed of W1's normal data.
    pub const SEED: u64 = 42;
    /// W1's small binding loaded on its own.
    pub const W1_SMALL: &str = "step";
    /// W2's binding loaded on its own (a 16-element tensor mid-table).
    pub const W2_ONE: &str = "v050002";

    /// Size of W1's tensor in MiB: 1024 unless `ACH_BENCH_W1_MIB` says
    /// otherwise (for quick checks only; reported figures use 1024).
    pub fn w1_mib() -> usize {
        std::env::var("ACH_BENCH_W1_MIB")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1024)
    }

    /// Bindings of W2: 100,000 unless `ACH_BENCH_W2_N` says otherwise.
    pub fn w2_n() -> usize {
        std::env::var("ACH_BENCH_W2_N")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(100_000)
    }

    /// W1: one standard-normal f64 tensor `[16 * MiB, 8192]` (1 GiB at full
    /// size) plus three small bindings.
    pub fn w1_env() -> Environment {
        let rows = w1_mib() * 1024 * 1024 / 8 / W1_COLS;
        testdata::tensor_workspace(testdata::normal_tensor(rows, W1_COLS, SEED))
    }

    /// W2: small bindings cycling a number, a short string, a 16-element
    /// tensor and a two-field record.
    pub fn w2_env() -> Environment {
        testdata::many_small(w2_n())
    }

    /// The raw bytes of W1's tensor.
    pub fn tensor_bytes(env: &Environment) -> &[u8] {
        match env.get("data") {
            Some(Value::Tensor(t)) => bytemuck::cast_slice(t.data()),
            _ => panic!("W1 binds a tensor named data"),
        }
    }

    /// Sum with eight accumulators, so that every system's "load and sum"
    /// is bound by memory, not by the latency of one chain of additions.
    pub fn sum(xs: &[f64]) -> f64 {
        let mut acc = [0.0f64; 8];
        let chunks = xs.chunks_exact(8);
        let tail: f64 = chunks.remainder().iter().sum();
        for c in chunks {
            for (a, x) in acc.iter_mut().zip(c) {
                *a += x;
            }
        }
        acc.iter().sum::<f64>() + tail
    }

    /// Sum of little-endian f64 bytes: a cast when aligned, else decoded.
    pub fn sum_le_bytes(bytes: &[u8]) -> f64 {
        match bytemuck::try_cast_slice::<u8, f64>(bytes) {
            Ok(xs) => sum(xs),
            Err(_) => bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .sum(),
        }
    }

    // ---------------------------------------------------------------- ach

    /// This crate's save options: raw or compressed with the defaults, not
    /// durable (like the baselines, which do not fsync).
    pub fn ach_options(compress: bool) -> SaveOptions {
        SaveOptions {
            compression: if compress {
                Compression::default()
            } else {
                Compression::None
            },
            durable: false,
            allow_overwrite: true,
            large_value_warning: None,
            ..SaveOptions::default()
        }
    }

    /// Saves `env`; returns the file size.
    pub fn ach_save(env: &Environment, path: &Path, compress: bool) -> u64 {
        save_environment(env, path, &ach_options(compress))
            .expect("save")
            .bytes
    }

    /// `env_info`: number of bindings.
    pub fn ach_info(path: &Path) -> u64 {
        env_info(path).expect("info").num_bindings
    }

    /// `env_load_var`: open and load one binding, checksum checked.
    pub fn ach_load_one(path: &Path, name: &str) -> Value {
        env_load_var(path, name).expect("load")
    }

    /// Open and load one binding with or without its checksum.
    pub fn ach_load_with(path: &Path, name: &str, verify_checksum: bool) -> Value {
        Archive::open(path)
            .expect("open")
            .get_with(
                Section::Bindings,
                name,
                LoadOptions {
                    verify_checksum,
                    ..LoadOptions::default()
                },
            )
            .expect("load")
    }

    /// Open, load W1's tensor and sum every element.
    pub fn ach_load_sum(path: &Path, verify_checksum: bool) -> f64 {
        match ach_load_with(path, "data", verify_checksum) {
            Value::Tensor(t) => sum(t.data()),
            _ => panic!("data is a tensor"),
        }
    }

    /// `restore_environment` into a fresh environment (default options:
    /// checksums checked).
    pub fn ach_restore_all(path: &Path, verify_checksum: bool) -> Environment {
        let mut env = Environment::new();
        let opts = RestoreOptions {
            verify_checksum,
            ..RestoreOptions::default()
        };
        restore_environment(&mut env, path, &opts).expect("restore");
        env
    }

    // -------------------------------------------------------- safetensors

    /// One safetensors tensor: borrowed tensor data, or owned bytes of a
    /// scalar.
    pub struct StTensor<'a> {
        dtype: Dtype,
        shape: Vec<usize>,
        data: Cow<'a, [u8]>,
    }

    impl View for &StTensor<'_> {
        fn dtype(&self) -> Dtype {
            self.dtype
        }
        fn shape(&self) -> &[usize] {
            &self.shape
        }
        fn data(&self) -> Cow<'_, [u8]> {
            Cow::Borrowed(&self.data)
        }
        fn data_len(&self) -> usize {
            self.data.len()
        }
    }

    /// What safetensors can hold of an environment, and what it cannot.
    pub struct StSubset<'a> {
        /// Named tensors.
        pub tensors: Vec<(String, StTensor<'a>)>,
        /// Values left out (strings, complex numbers, edges, ...).
        pub left_out: Vec<String>,
    }

    fn st_add<'a>(out: &mut StSubset<'a>, name: String, v: &'a Value) {
        let scalar = |x: f64| StTensor {
            dtype: Dtype::F64,
            shape: vec![1],
            data: Cow::Owned(x.to_le_bytes().to_vec()),
        };
        match v {
            Value::Number(x) => out.tensors.push((name, scalar(*x))),
            Value::Boolean(b) => out.tensors.push((
                name,
                StTensor {
                    dtype: Dtype::BOOL,
                    shape: vec![1],
                    data: Cow::Owned(vec![u8::from(*b)]),
                },
            )),
            Value::Tensor(t) => out.tensors.push((
                name,
                StTensor {
                    dtype: Dtype::F64,
                    shape: t.shape().to_vec(),
                    data: Cow::Borrowed(bytemuck::cast_slice(t.data())),
                },
            )),
            Value::Record(r) => {
                for (field, fv) in r.fields() {
                    st_add(out, format!("{name}.{field}"), fv);
                }
            }
            _ => out.left_out.push(format!("{name} ({})", v.type_name())),
        }
    }

    /// The tensors-only subset of `env` (bindings only).
    pub fn st_subset(env: &Environment) -> StSubset<'_> {
        let mut out = StSubset {
            tensors: Vec::new(),
            left_out: Vec::new(),
        };
        for (name, v) in env.iter() {
            st_add(&mut out, name.to_string(), v);
        }
        out
    }

    /// `safetensors::serialize_to_file` (a temporary file, then a rename).
    pub fn st_save(subset: &StSubset<'_>, path: &Path) -> u64 {
        safetensors::serialize_to_file(
            subset.tensors.iter().map(|(n, t)| (n.as_str(), t)),
            None,
            path,
        )
        .expect("safetensors save");
        std::fs::metadata(path).expect("size").len()
    }

    fn st_map(path: &Path) -> memmap2::Mmap {
        let file = File::open(path).expect("open");
        // SAFETY: the benchmark's own file, not modified while mapped.
        unsafe { memmap2::Mmap::map(&file) }.expect("mmap")
    }

    /// Map the file and parse its header (the `env_info` equivalent).
    pub fn st_info(path: &Path) -> usize {
        let map = st_map(path);
        let (_, meta) = SafeTensors::read_metadata(&map).expect("header");
        meta.tensors().len()
    }

    /// Map, parse, look one tensor up and copy it into a `Value`.
    pub fn st_load_one(path: &Path, name: &str) -> Value {
        let map = st_map(path);
        let st = SafeTensors::deserialize(&map).expect("parse");
        st_value(&st.tensor(name).expect("tensor"))
    }

    /// Map, parse and return the length of a view of `name` (the handle is
    /// a borrow of the mapping, so it cannot outlive this call).
    pub fn st_handle(path: &Path, name: &str) -> usize {
        let map = st_map(path);
        let st = SafeTensors::deserialize(&map).expect("parse");
        let view = st.tensor(name).expect("tensor");
        std::hint::black_box(view.data()).len()
    }

    /// Map, parse, view W1's tensor and sum it.
    pub fn st_load_sum(path: &Path) -> f64 {
        let map = st_map(path);
        let st = SafeTensors::deserialize(&map).expect("parse");
        sum_le_bytes(st.tensor("data").expect("tensor").data())
    }

    fn st_value(view: &safetensors::tensor::TensorView<'_>) -> Value {
        match view.dtype() {
            Dtype::BOOL => Value::Boolean(view.data().first().is_some_and(|&b| b != 0)),
            Dtype::F64 => Value::Tensor(
                Tensor::new(
                    view.shape().to_vec(),
                    bytemuck::pod_collect_to_vec(view.data()),
                )
                .expect("shape"),
            ),
            other => panic!("unexpected dtype {other:?}"),
        }
    }

    /// Every tensor copied into an owned `Value` (what a restore into a
    /// REPL needs: the mapping would otherwise have to outlive the values).
    /// Numbers come back as one-element tensors and record fields as
    /// separate flat names: the format keeps no more.
    pub fn st_restore_all(path: &Path) -> Environment {
        let map = st_map(path);
        let st = SafeTensors::deserialize(&map).expect("parse");
        let mut env = Environment::new();
        for (name, view) in st.iter() {
            env.set(name, st_value(&view));
        }
        env
    }

    // ---------------------------------------------------------- msgpack

    /// A serde mirror of [`Value`], as a whole-file design would define
    /// it. Tensor data is borrowed when saving, owned when read back.
    #[derive(Serialize, Deserialize)]
    pub enum Mv<'a> {
        /// `Value::Null`.
        Null,
        /// `Value::Number`.
        Number(f64),
        /// `Value::Boolean`.
        Boolean(bool),
        /// `Value::String`.
        String(String),
        /// `Value::Complex`.
        Complex(f64, f64),
        /// `Value::Vector`.
        Vector(Vec<Mv<'a>>),
        /// `Value::Tensor`.
        Tensor {
            /// Dimensions.
            shape: Vec<usize>,
            /// Elements, row-major.
            data: Cow<'a, [f64]>,
        },
        /// `Value::ComplexTensor`, as interleaved re, im.
        ComplexTensor {
            /// Dimensions.
            shape: Vec<usize>,
            /// re, im, re, im, ...
            data: Cow<'a, [f64]>,
        },
        /// `Value::Record`.
        Record(Vec<(String, Mv<'a>)>),
        /// A builtin function, by name.
        Builtin(String),
        /// `Value::Edge`.
        Edge {
            /// Source node.
            from: String,
            /// Target node.
            to: String,
            /// Directed or not.
            directed: bool,
            /// Properties.
            properties: Vec<(String, Mv<'a>)>,
        },
    }

    /// The whole environment as one document.
    #[derive(Serialize, Deserialize)]
    pub struct Doc<'a> {
        /// Bindings, in the environment's order.
        pub bindings: Vec<(String, Mv<'a>)>,
        /// Constants.
        pub constants: Vec<(String, Mv<'a>)>,
    }

    fn record_mirror(r: &Record) -> Vec<(String, Mv<'_>)> {
        r.fields()
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), mirror(v)?)))
            .collect()
    }

    /// The mirror of `v` (None for a user lambda, which nothing saves).
    pub fn mirror(v: &Value) -> Option<Mv<'_>> {
        Some(match v {
            Value::Null => Mv::Null,
            Value::Number(x) => Mv::Number(*x),
            Value::Boolean(b) => Mv::Boolean(*b),
            Value::String(s) => Mv::String(s.clone()),
            Value::Complex(c) => Mv::Complex(c.re, c.im),
            Value::Vector(items) => Mv::Vector(items.iter().filter_map(mirror).collect()),
            Value::Tensor(t) => Mv::Tensor {
                shape: t.shape().to_vec(),
                data: Cow::Borrowed(t.data()),
            },
            Value::ComplexTensor(t) => Mv::ComplexTensor {
                shape: t.shape().to_vec(),
                data: Cow::Borrowed(bytemuck::cast_slice(t.data())),
            },
            Value::Record(r) => Mv::Record(record_mirror(r)),
            Value::Function(Function::Builtin(name)) => Mv::Builtin(name.clone()),
            Value::Function(Function::Lambda { .. }) => return None,
            Value::Edge(e) => Mv::Edge {
                from: e.from.clone(),
                to: e.to.clone(),
                directed: e.directed,
                properties: record_mirror(&e.properties),
            },
            // The current value, as this crate saves it; owned, since the
            // lock's guard cannot be borrowed from.
            Value::MutableRef(r) => {
                let inner = r.read().expect("lock");
                into_static(mirror(&inner)?)
            }
        })
    }

    fn into_static(m: Mv<'_>) -> Mv<'static> {
        let rec = |fields: Vec<(String, Mv<'_>)>| {
            fields
                .into_iter()
                .map(|(k, v)| (k, into_static(v)))
                .collect()
        };
        match m {
            Mv::Null => Mv::Null,
            Mv::Number(x) => Mv::Number(x),
            Mv::Boolean(b) => Mv::Boolean(b),
            Mv::String(s) => Mv::String(s),
            Mv::Complex(re, im) => Mv::Complex(re, im),
            Mv::Vector(items) => Mv::Vector(items.into_iter().map(into_static).collect()),
            Mv::Tensor { shape, data } => Mv::Tensor {
                shape,
                data: Cow::Owned(data.into_owned()),
            },
            Mv::ComplexTensor { shape, data } => Mv::ComplexTensor {
                shape,
                data: Cow::Owned(data.into_owned()),
            },
            Mv::Record(fields) => Mv::Record(rec(fields)),
            Mv::Builtin(name) => Mv::Builtin(name),
            Mv::Edge {
                from,
                to,
                directed,
                properties,
            } => Mv::Edge {
                from,
                to,
                directed,
                properties: rec(properties),
            },
        }
    }

    /// The document of `env`, borrowing its tensor data (made before any
    /// timing).
    pub fn doc(env: &Environment) -> Doc<'_> {
        fn side<'a>(it: impl Iterator<Item = (&'a str, &'a Value)>) -> Vec<(String, Mv<'a>)> {
            it.filter_map(|(k, v)| Some((k.to_string(), mirror(v)?)))
                .collect()
        }
        Doc {
            bindings: side(env.iter()),
            constants: side(env.constants()),
        }
    }

    fn record_value(fields: Vec<(String, Mv<'_>)>) -> Record {
        let mut r = Record::new();
        for (k, v) in fields {
            r.insert(k, value(v));
        }
        r
    }

    /// Back from the mirror to a `Value` (moves tensor data, no copy).
    pub fn value(m: Mv<'_>) -> Value {
        match m {
            Mv::Null => Value::Null,
            Mv::Number(x) => Value::Number(x),
            Mv::Boolean(b) => Value::Boolean(b),
            Mv::String(s) => Value::String(s),
            Mv::Complex(re, im) => Value::Complex(Complex::new(re, im)),
            Mv::Vector(items) => Value::Vector(items.into_iter().map(value).collect()),
            Mv::Tensor { shape, data } => {
                Value::Tensor(Tensor::new(shape, data.into_owned()).expect("shape"))
            }
            Mv::ComplexTensor { shape, data } => Value::ComplexTensor(
                ComplexTensor::new(
                    shape,
                    data.chunks_exact(2)
                        .map(|c| Complex::new(c[0], c[1]))
                        .collect(),
                )
                .expect("shape"),
            ),
            Mv::Record(fields) => Value::Record(record_value(fields)),
            Mv::Builtin(name) => Value::Function(Function::Builtin(name)),
            Mv::Edge {
                from,
                to,
                directed,
                properties,
            } => Value::Edge(Edge {
                from,
                to,
                directed,
                properties: record_value(properties),
            }),
        }
    }

    /// The environment a document describes.
    pub fn environment(d: Doc<'_>) -> Environment {
        let mut env = Environment::new();
        for (k, v) in d.bindings {
            env.set(k, value(v));
        }
        for (k, v) in d.constants {
            env.set_constant(k, value(v));
        }
        env
    }

    fn tmp_path(path: &Path) -> PathBuf {
        let mut s = path.as_os_str().to_owned();
        s.push(".tmp");
        PathBuf::from(s)
    }

    /// Writes the document to `path.tmp` (through zstd at `level` if some)
    /// and renames it over `path`, as a whole-file design replacing its file
    /// safely would. Returns the file size.
    pub fn mp_save(d: &Doc<'_>, path: &Path, zstd_level: Option<i32>) -> u64 {
        let tmp = tmp_path(path);
        let file = File::create(&tmp).expect("create");
        let mut w = BufWriter::with_capacity(1 << 20, file);
        match zstd_level {
            None => rmp_serde::encode::write(&mut w, d).expect("encode"),
            Some(level) => {
                // Buffered in front of the encoder too: MessagePack writes a
                // few bytes at a time, and each write into a zstd stream
                // costs a call into the compressor.
                let z = zstd::Encoder::new(&mut w, level).expect("zstd");
                let mut z = BufWriter::with_capacity(1 << 20, z);
                rmp_serde::encode::write(&mut z, d).expect("encode");
                let z = z.into_inner().map_err(|e| e.into_error()).expect("flush");
                z.finish().expect("zstd finish");
            }
        }
        w.flush().expect("flush");
        drop(w);
        std::fs::rename(&tmp, path).expect("rename");
        std::fs::metadata(path).expect("size").len()
    }

    /// Reads the whole document back (streaming through a buffer, so the
    /// file's bytes are never all in memory at once).
    pub fn mp_read(path: &Path, zstd: bool) -> Doc<'static> {
        let file = File::open(path).expect("open");
        if zstd {
            // Buffered after the decoder too, for the same reason.
            let z = zstd::Decoder::new(file).expect("zstd");
            rmp_serde::from_read(BufReader::with_capacity(1 << 20, z)).expect("decode")
        } else {
            rmp_serde::from_read(BufReader::with_capacity(1 << 20, file)).expect("decode")
        }
    }

    /// The `env_info` equivalent: the names, after reading everything.
    pub fn mp_info(path: &Path, zstd: bool) -> usize {
        mp_read(path, zstd).bindings.len()
    }

    /// One binding, after reading everything.
    pub fn mp_load_one(path: &Path, zstd: bool, name: &str) -> Value {
        let d = mp_read(path, zstd);
        let (_, m) = d
            .bindings
            .into_iter()
            .find(|(k, _)| k == name)
            .expect("bound");
        value(m)
    }

    /// Read everything, then sum W1's tensor.
    pub fn mp_load_sum(path: &Path, zstd: bool) -> f64 {
        let d = mp_read(path, zstd);
        let data = d.bindings.iter().find_map(|(k, m)| match m {
            Mv::Tensor { data, .. } if k == "data" => Some(data),
            _ => None,
        });
        sum(data.expect("data"))
    }

    /// Read everything and build the environment's `Value`s.
    pub fn mp_restore_all(path: &Path, zstd: bool) -> Environment {
        environment(mp_read(path, zstd))
    }
}

use systems::*;

/// Settings of a group whose operations take about a second or more.
fn slow(g: &mut BenchmarkGroup<'_, WallTime>) {
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
}

/// Settings for operations of microseconds to tens of milliseconds.
fn fast(g: &mut BenchmarkGroup<'_, WallTime>) {
    g.sampling_mode(SamplingMode::Auto)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

fn record_size(workload: &str, system: &str, bytes: u64) {
    eprintln!("size {workload} {system}: {bytes} bytes");
    let line = format!("{workload}\t{system}\t{bytes}\n");
    let path = Path::new("target/compare-sizes.tsv");
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let key = format!("{workload}\t{system}\t");
    let mut kept: String = existing
        .lines()
        .filter(|l| !l.starts_with(&key))
        .map(|l| format!("{l}\n"))
        .collect();
    kept.push_str(&line);
    std::fs::write(path, kept).ok();
}

/// The files of one workload, written once on first use.
struct Files<'e> {
    dir: PathBuf,
    workload: &'static str,
    env: &'e Environment,
    ach_raw: OnceCell<PathBuf>,
    ach_zstd: OnceCell<PathBuf>,
    st: OnceCell<PathBuf>,
    mp: OnceCell<PathBuf>,
    mp_zstd: OnceCell<PathBuf>,
}

impl<'e> Files<'e> {
    fn new(dir: &Path, workload: &'static str, env: &'e Environment) -> Self {
        Files {
            dir: dir.to_path_buf(),
            workload,
            env,
            ach_raw: OnceCell::new(),
            ach_zstd: OnceCell::new(),
            st: OnceCell::new(),
            mp: OnceCell::new(),
            mp_zstd: OnceCell::new(),
        }
    }

    fn ach(&self, compress: bool) -> &Path {
        let (cell, name) = if compress {
            (&self.ach_zstd, "ach_zstd")
        } else {
            (&self.ach_raw, "ach_raw")
        };
        cell.get_or_init(|| {
            let p = self.dir.join(format!("{name}.ach"));
            record_size(self.workload, name, ach_save(self.env, &p, compress));
            p
        })
    }

    fn st(&self) -> &Path {
        self.st.get_or_init(|| {
            let p = self.dir.join("st.safetensors");
            let subset = st_subset(self.env);
            eprintln!(
                "{}: safetensors holds {} tensors, leaves out {} values (e.g. {:?})",
                self.workload,
                subset.tensors.len(),
                subset.left_out.len(),
                subset.left_out.iter().take(3).collect::<Vec<_>>()
            );
            record_size(self.workload, "safetensors", st_save(&subset, &p));
            p
        })
    }

    fn mp(&self, zstd: bool) -> &Path {
        let (cell, name, level) = if zstd {
            (&self.mp_zstd, "msgpack_zstd", Some(3))
        } else {
            (&self.mp, "msgpack", None)
        };
        cell.get_or_init(|| {
            let p = self.dir.join(format!("{name}.msgpack"));
            record_size(self.workload, name, mp_save(&doc(self.env), &p, level));
            p
        })
    }
}

fn scratch_dir() -> tempfile::TempDir {
    // Under target/, on the same disk as everything else this project
    // writes.
    std::fs::create_dir_all("target").ok();
    tempfile::Builder::new()
        .prefix("compare-bench")
        .tempdir_in("target")
        .expect("tempdir")
}

/// The save benches shared by both workloads, plus the reference limits on
/// `ref_bytes`.
fn bench_saves<'e>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    env: &dyn Fn() -> &'e Environment,
    dir: &Path,
    ref_bytes: &dyn Fn() -> Vec<u8>,
) {
    let out = |name: &str| dir.join(format!("save_{name}"));
    g.bench_function("ach_raw", |b| {
        let (env, p) = (env(), out("raw.ach"));
        b.iter(|| ach_save(env, &p, false))
    });
    g.bench_function("ach_zstd", |b| {
        let (env, p) = (env(), out("zstd.ach"));
        b.iter(|| ach_save(env, &p, true))
    });
    g.bench_function("safetensors", |b| {
        let subset = st_subset(env());
        let p = out("st.safetensors");
        b.iter(|| st_save(&subset, &p))
    });
    g.bench_function("msgpack", |b| {
        let d = doc(env());
        let p = out("mp.msgpack");
        b.iter(|| mp_save(&d, &p, None))
    });
    g.bench_function("msgpack_zstd", |b| {
        let d = doc(env());
        let p = out("mpz.msgpack");
        b.iter(|| mp_save(&d, &p, Some(3)))
    });
    for name in [
        "raw.ach",
        "zstd.ach",
        "st.safetensors",
        "mp.msgpack",
        "mpz.msgpack",
    ] {
        std::fs::remove_file(out(name)).ok();
    }

    let bytes = OnceCell::new();
    let bytes = || bytes.get_or_init(ref_bytes).as_slice();
    g.bench_function("ref_fs_write", |b| {
        let p = out("ref.bin");
        let bytes = bytes();
        b.iter(|| std::fs::write(&p, black_box(bytes)).expect("write"))
    });
    g.bench_function("ref_fs_write_rename", |b| {
        let p = out("ref.bin");
        let tmp = out("ref.bin.tmp");
        let bytes = bytes();
        b.iter(|| {
            std::fs::write(&tmp, black_box(bytes)).expect("write");
            std::fs::rename(&tmp, &p).expect("rename");
        })
    });
    std::fs::remove_file(out("ref.bin")).ok();
    g.bench_function("ref_memcpy", |b| {
        let bytes = bytes();
        let mut dst = vec![0u8; bytes.len()];
        b.iter(|| {
            dst.copy_from_slice(black_box(bytes));
            black_box(&dst);
        })
    });
    g.bench_function("ref_sha256", |b| {
        let bytes = bytes();
        b.iter(|| black_box(Sha256::digest(black_box(bytes))))
    });
}

/// W1: one 1 GiB tensor plus three small bindings.
fn bench_w1(c: &mut Criterion) {
    let env = OnceCell::new();
    let env = || {
        env.get_or_init(|| {
            let t = std::time::Instant::now();
            let e = w1_env();
            eprintln!(
                "built W1 ({} MiB) in {:.2?}",
                tensor_bytes(&e).len() >> 20,
                t.elapsed()
            );
            e
        })
    };
    let dir = scratch_dir();
    let files = OnceCell::new();
    let files = || files.get_or_init(|| Files::new(dir.path(), "w1", env()));
    let bytes = (w1_mib() as u64) << 20;

    // Save.
    let mut g = c.benchmark_group("w1_save");
    slow(&mut g);
    g.throughput(Throughput::Bytes(bytes));
    bench_saves(&mut g, &env, dir.path(), &|| tensor_bytes(env()).to_vec());
    g.finish();

    // env_info.
    let mut g = c.benchmark_group("w1_info");
    fast(&mut g);
    g.bench_function("ach_raw", |b| {
        let p = files().ach(false);
        b.iter(|| ach_info(p))
    });
    g.bench_function("ach_zstd", |b| {
        let p = files().ach(true);
        b.iter(|| ach_info(p))
    });
    g.bench_function("safetensors", |b| {
        let p = files().st();
        b.iter(|| st_info(p))
    });
    // The whole-file design has no index: its env_info, its handle and its
    // load of one small binding are all "read everything". Measured once
    // here, as `read_whole`, and reported for those three rows.
    slow(&mut g);
    g.bench_function("msgpack_read_whole", |b| {
        let p = files().mp(false);
        b.iter(|| mp_info(p, false))
    });
    g.bench_function("msgpack_zstd_read_whole", |b| {
        let p = files().mp(true);
        b.iter(|| mp_info(p, true))
    });
    g.finish();

    // The tensor as a handle; one small binding.
    let mut g = c.benchmark_group("w1_handle");
    fast(&mut g);
    g.bench_function("ach_raw_view", |b| {
        let p = files().ach(false);
        let Value::Tensor(t) = ach_load_with(p, "data", false) else {
            panic!("tensor")
        };
        assert!(t.is_mapped(), "a raw tensor loads as a mapped view");
        b.iter(|| ach_load_with(p, "data", false))
    });
    g.bench_function("ach_zstd_view", |b| {
        let p = files().ach(true);
        let Value::Tensor(t) = ach_load_with(p, "data", false) else {
            panic!("tensor")
        };
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| eprintln!("w1 ach_zstd: the tensor loads mapped: {}", t.is_mapped()));
        b.iter(|| ach_load_with(p, "data", false))
    });
    g.bench_function("safetensors_view", |b| {
        let p = files().st();
        b.iter(|| st_handle(p, "data"))
    });
    slow(&mut g);
    g.bench_function("ach_raw_verified", |b| {
        let p = files().ach(false);
        b.iter(|| ach_load_with(p, "data", true))
    });
    g.bench_function("ach_zstd_verified", |b| {
        let p = files().ach(true);
        b.iter(|| ach_load_with(p, "data", true))
    });
    g.finish();

    let mut g = c.benchmark_group("w1_load_small");
    fast(&mut g);
    g.bench_function("ach_raw", |b| {
        let p = files().ach(false);
        b.iter(|| ach_load_one(p, W1_SMALL))
    });
    g.bench_function("ach_zstd", |b| {
        let p = files().ach(true);
        b.iter(|| ach_load_one(p, W1_SMALL))
    });
    g.bench_function("safetensors", |b| {
        let p = files().st();
        b.iter(|| st_load_one(p, W1_SMALL))
    });
    g.finish();

    // Load and sum every element.
    let mut g = c.benchmark_group("w1_sum");
    slow(&mut g);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("ach_raw_verified", |b| {
        let p = files().ach(false);
        b.iter(|| ach_load_sum(p, true))
    });
    g.bench_function("ach_raw_unverified", |b| {
        let p = files().ach(false);
        b.iter(|| ach_load_sum(p, false))
    });
    g.bench_function("ach_zstd_verified", |b| {
        let p = files().ach(true);
        b.iter(|| ach_load_sum(p, true))
    });
    g.bench_function("safetensors", |b| {
        let p = files().st();
        b.iter(|| st_load_sum(p))
    });
    g.bench_function("msgpack", |b| {
        let p = files().mp(false);
        b.iter(|| mp_load_sum(p, false))
    });
    g.bench_function("msgpack_zstd", |b| {
        let p = files().mp(true);
        b.iter(|| mp_load_sum(p, true))
    });
    g.bench_function("ref_fs_read", |b| {
        let p = files().ach(false);
        b.iter(|| std::fs::read(p).expect("read").len())
    });
    g.bench_function("ref_sum_in_memory", |b| {
        let Some(Value::Tensor(t)) = env().get("data") else {
            panic!("tensor")
        };
        b.iter(|| sum(black_box(t.data())))
    });
    g.finish();
}

/// W2: 100,000 small bindings.
fn bench_w2(c: &mut Criterion) {
    let env = OnceCell::new();
    let env = || env.get_or_init(w2_env);
    let dir = scratch_dir();
    let files = OnceCell::new();
    let files = || files.get_or_init(|| Files::new(dir.path(), "w2", env()));

    let mut g = c.benchmark_group("w2_save");
    fast(&mut g);
    g.measurement_time(Duration::from_secs(4));
    // The reference limits work on the bytes of this crate's raw archive.
    bench_saves(&mut g, &env, dir.path(), &|| {
        std::fs::read(files().ach(false)).expect("read")
    });
    g.finish();

    let mut g = c.benchmark_group("w2_info");
    fast(&mut g);
    g.bench_function("ach_raw", |b| {
        let p = files().ach(false);
        b.iter(|| ach_info(p))
    });
    g.bench_function("ach_zstd", |b| {
        let p = files().ach(true);
        b.iter(|| ach_info(p))
    });
    g.bench_function("safetensors", |b| {
        let p = files().st();
        b.iter(|| st_info(p))
    });
    g.bench_function("msgpack", |b| {
        let p = files().mp(false);
        b.iter(|| mp_info(p, false))
    });
    g.bench_function("msgpack_zstd", |b| {
        let p = files().mp(true);
        b.iter(|| mp_info(p, true))
    });
    g.finish();

    let mut g = c.benchmark_group("w2_load_one");
    fast(&mut g);
    g.bench_function("ach_raw", |b| {
        let p = files().ach(false);
        b.iter(|| ach_load_one(p, W2_ONE))
    });
    g.bench_function("ach_zstd", |b| {
        let p = files().ach(true);
        b.iter(|| ach_load_one(p, W2_ONE))
    });
    g.bench_function("safetensors", |b| {
        let p = files().st();
        b.iter(|| st_load_one(p, W2_ONE))
    });
    g.bench_function("msgpack", |b| {
        let p = files().mp(false);
        b.iter(|| mp_load_one(p, false, W2_ONE))
    });
    g.bench_function("msgpack_zstd", |b| {
        let p = files().mp(true);
        b.iter(|| mp_load_one(p, true, W2_ONE))
    });
    g.finish();

    let mut g = c.benchmark_group("w2_restore_all");
    fast(&mut g);
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("ach_raw", |b| {
        let p = files().ach(false);
        b.iter(|| ach_restore_all(p, true))
    });
    g.bench_function("ach_raw_unverified", |b| {
        let p = files().ach(false);
        b.iter(|| ach_restore_all(p, false))
    });
    g.bench_function("ach_zstd", |b| {
        let p = files().ach(true);
        b.iter(|| ach_restore_all(p, true))
    });
    g.bench_function("safetensors", |b| {
        let p = files().st();
        b.iter(|| st_restore_all(p))
    });
    g.bench_function("msgpack", |b| {
        let p = files().mp(false);
        b.iter(|| mp_restore_all(p, false))
    });
    g.bench_function("msgpack_zstd", |b| {
        let p = files().mp(true);
        b.iter(|| mp_restore_all(p, true))
    });
    g.finish();
}

/// Runs W2 first (minutes), then W1 (the 1 GiB workload).
pub fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_w2(&mut c);
    bench_w1(&mut c);
    c.final_summary();
}
