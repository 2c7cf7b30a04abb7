//! `save(path, mapping, **options)`: a dict of NumPy arrays and Python
//! values written as an archive, with the save options of spec 3.1 under
//! their spec names.

use std::ffi::CString;

use achronyme_env::{Checksum, Compression, Environment, LARGE_VALUE_BYTES, SaveOptions};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::errors::{self, Kind};
use crate::from_py::Converter;
use crate::location::{location_from_py, save_location};

/// The `(name, value)` pairs of a mapping, converted, into `put`.
fn convert_all<'py>(
    conv: &mut Converter<'py>,
    mapping: &Bound<'py, PyAny>,
    what: &str,
    mut put: impl FnMut(String, achronyme_env::Value),
) -> PyResult<()> {
    let items = mapping.call_method0("items").map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "{what} must be a mapping of names to values (a dict), got {}",
            mapping
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    for item in items.try_iter()? {
        let (name, value): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item?.extract()?;
        let name: String = name.extract().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!("{what}: names must be str"))
        })?;
        // Say which binding held the value that could not be saved.
        let v = conv
            .value(&value)
            .map_err(|e| errors::with_context(mapping.py(), e, &format!("binding {name:?}")))?;
        put(name, v);
    }
    Ok(())
}

/// The `custom` option: a dict of str to str, in its order.
fn custom_pairs(d: &Bound<'_, PyDict>) -> PyResult<Vec<(String, String)>> {
    d.iter()
        .map(
            |(k, v)| match (k.extract::<String>(), v.extract::<String>()) {
                (Ok(k), Ok(v)) => Ok((k, v)),
                _ => Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "custom must be a dict of str to str, got {} for {}",
                    v.repr().map(|r| r.to_string()).unwrap_or_default(),
                    k.repr().map(|r| r.to_string()).unwrap_or_default()
                ))),
            },
        )
        .collect()
}

/// save(path_or_url, mapping, /, *, constants=None, include_constants=True,
/// include_functions=False, include_builtins=False, exclude=None,
/// include_only=None, compress=True, compression_level=None, codec="zstd",
/// filters=True, description=None, tags=None, custom=None,
/// allow_overwrite=False, max_file_size=None, warn_large_values=True,
/// strict=False, durable=True, checksum="xxh3")
///
/// Writes `mapping` (names to values: NumPy arrays, numbers, strings,
/// lists, dicts, ...) as the bindings of a new archive at `path_or_url`,
/// and `constants` (another mapping) as its constants section. The file
/// appears whole or not at all: the archive is written to a temporary
/// file beside the target, synced, and renamed over it.
///
/// NumPy arrays of float64 or complex128 that are C-contiguous, aligned and
/// in the machine's byte order are streamed from their own memory, without
/// a copy; any other array (another dtype, Fortran order, a strided view)
/// is converted once into a float64 or complex128 copy, as is one whose
/// memory belongs to something the save cannot hold in place (neither a
/// NumPy array that owns it nor an object that exports it as a contiguous
/// buffer). The arrays must not be written to by other threads during the
/// save (the save holds the GIL, so Python code cannot).
///
/// Options, as spec 3.1 names them: `include_constants`,
/// `include_functions` (Python values hold no Achronyme lambdas; accepted
/// for compatibility), `include_builtins` (no effect: there is no host
/// runtime whose builtins could be left out), `exclude` and `include_only`
/// (lists of names or glob patterns such as `"temp_*"`), `compress`,
/// `compression_level` (1-22, zstd only), `codec` (`"zstd"`, `"lz4"`,
/// `"none"`), `filters` (float filters before compression), `description`,
/// `tags`, `custom` (dict of str to str), `allow_overwrite`,
/// `max_file_size` (bytes; the save aborts past it and the old file stays),
/// `warn_large_values`, `strict` (refuse, rather than skip, a `Ref` that
/// contains itself), `durable` (sync before returning; `False` for
/// scratch files and benchmarks), and `checksum` (the per-chunk digest:
/// `"xxh3"`, fast, against accidental damage, or `"sha256"`, against
/// tampering too, and readable by format 1.0/1.1 readers).
///
/// Returns a report (a dict): `path`, `bytes`, `written`,
/// `constants_written`, `skipped` (dicts of `name` and `reason`),
/// `filtered_out`, `not_found`, `warnings`, `arrays_borrowed`,
/// `arrays_copied`, `bytes_encoded`, `bytes_hashed`, `bytes_copied`
/// (blob bytes written from values, run through the chunk checksum, and
/// copied from archives that stored them unchanged: always 0 from Python,
/// whose arrays carry no provenance), `write_seconds` (writing and
/// hashing) and `sync_seconds`. Each warning is also issued as an `AchronymeWarning`.
#[pyfunction]
#[pyo3(signature = (
    path_or_url, mapping, /, *, constants = None, include_constants = true,
    include_functions = false, include_builtins = false, exclude = None, include_only = None,
    compress = true, compression_level = None, codec = "zstd", filters = true,
    description = None, tags = None, custom = None, allow_overwrite = false,
    max_file_size = None, warn_large_values = true, strict = false, durable = true,
    checksum = "xxh3"
))]
#[allow(clippy::too_many_arguments)]
pub fn save<'py>(
    py: Python<'py>,
    path_or_url: &Bound<'py, PyAny>,
    mapping: &Bound<'py, PyAny>,
    constants: Option<&Bound<'py, PyAny>>,
    include_constants: bool,
    include_functions: bool,
    include_builtins: bool,
    exclude: Option<Vec<String>>,
    include_only: Option<Vec<String>>,
    compress: bool,
    compression_level: Option<i32>,
    codec: &str,
    filters: bool,
    description: Option<String>,
    tags: Option<Vec<String>>,
    custom: Option<&Bound<'py, PyDict>>,
    allow_overwrite: bool,
    max_file_size: Option<u64>,
    warn_large_values: bool,
    strict: bool,
    durable: bool,
    checksum: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let location = location_from_py(path_or_url)?;
    let checksum = match checksum {
        "xxh3" => Checksum::Xxh3,
        "sha256" => Checksum::Sha256,
        other => {
            return Err(Kind::InvalidArgument.err(format!(
                "invalid option checksum: must be \"xxh3\" or \"sha256\", got {other:?}"
            )));
        }
    };
    let compression = match codec {
        "zstd" => Compression::Zstd {
            level: compression_level.unwrap_or(3),
        },
        "lz4" | "none" if compression_level.is_some() => {
            return Err(Kind::InvalidArgument.err(format!(
                "invalid option compression_level: it applies to codec \"zstd\" only; {codec} \
                 has no levels"
            )));
        }
        "lz4" => Compression::Lz4,
        "none" => Compression::None,
        other => {
            return Err(Kind::InvalidArgument.err(format!(
                "invalid option codec: must be \"zstd\", \"lz4\" or \"none\", got {other:?}"
            )));
        }
    };
    let options = SaveOptions {
        include_constants,
        include_functions,
        include_builtins,
        include_only,
        exclude: exclude.unwrap_or_default(),
        compression: if compress {
            compression
        } else {
            Compression::None
        },
        filters,
        description,
        tags: tags.unwrap_or_default(),
        custom: match custom {
            Some(d) => custom_pairs(d)?,
            None => Vec::new(),
        },
        allow_overwrite,
        max_file_size,
        large_value_warning: warn_large_values.then_some(LARGE_VALUE_BYTES),
        durable,
        strict,
        checksum,
        created_by: format!("achronyme_env (Python) {}", env!("CARGO_PKG_VERSION")),
        ..SaveOptions::default()
    };

    let mut conv = Converter::new(py);
    let mut env = Environment::new();
    convert_all(&mut conv, mapping, "mapping", |n, v| {
        env.set(n, v);
    })?;
    if let Some(c) = constants {
        convert_all(&mut conv, c, "constants", |n, v| {
            env.set_constant(n, v);
        })?;
    }
    // The GIL stays held: tensors borrow the arrays' memory, which no
    // Python code may change or free until the save is done (from_py.rs).
    conv.check_borrowed_arrays()?;
    let report = save_location(&location, &env, &options).map_err(errors::to_py)?;
    drop(env);

    let warning = crate::errors::warning_class(py)?;
    for w in &report.warnings {
        let msg = CString::new(w.replace('\0', " ")).unwrap_or_default();
        PyErr::warn(py, warning.as_any(), &msg, 1)?;
    }
    let d = PyDict::new(py);
    d.set_item("path", location.to_string())?;
    d.set_item("bytes", report.bytes)?;
    d.set_item("written", &report.written)?;
    d.set_item("constants_written", &report.constants_written)?;
    let skipped = PyList::empty(py);
    for s in &report.skipped {
        let x = PyDict::new(py);
        x.set_item("name", PyString::new(py, &s.name))?;
        x.set_item("reason", PyString::new(py, &s.reason))?;
        skipped.append(x)?;
    }
    d.set_item("skipped", skipped)?;
    d.set_item("filtered_out", &report.filtered_out)?;
    d.set_item("not_found", &report.not_found)?;
    d.set_item("warnings", &report.warnings)?;
    d.set_item("arrays_borrowed", conv.borrowed_arrays)?;
    d.set_item("arrays_copied", conv.copied_arrays)?;
    d.set_item("bytes_encoded", report.bytes_encoded)?;
    d.set_item("bytes_hashed", report.bytes_hashed)?;
    d.set_item("bytes_copied", report.bytes_copied)?;
    d.set_item("write_seconds", report.write_time.as_secs_f64())?;
    d.set_item("sync_seconds", report.sync_time.as_secs_f64())?;
    Ok(d)
}
