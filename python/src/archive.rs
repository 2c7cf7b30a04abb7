//! The `Archive` class and `open`.
//!
//! What is checked when: `open` validates the header, the table of
//! contents and its SHA-256 (every offset and length, once). `archive[name]`
//! checks every byte it reads: a value's blob against its chunk digests
//! before decoding it, a compressed tensor's chunks before decompressing
//! them. The one thing it does not read, and so does not check, is the
//! elements of an uncompressed tensor it hands out as a view of the file:
//! hashing a 1 GiB tensor takes the better part of a second, the view takes
//! microseconds (`np.load(mmap_mode="r")` and safetensors check nothing at
//! all). `get(name)` (`verify=True` by default) checks those too before
//! returning, and `verify()` checks the whole file.

use std::sync::{Arc, RwLock};

use achronyme_env::{BindingInfo, Codec, EnvInfo, LoadOptions, Section, Value, VerifyReport};
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::errors::{self, Kind};
use crate::location::{location_from_py, open_location};
use crate::to_py::value_to_py;

/// An open `.ach` archive: a mapping from binding names to values, read
/// lazily.
///
/// Made by `achronyme_env.open(path)`. `archive[name]` loads one binding
/// (an uncompressed tensor as a read-only NumPy view of the file),
/// `get(name)` does the same and checks the tensor's bytes too, `names()`,
/// `len()`, `in` and iteration see the bindings section, `info()` describes
/// the archive from its table of contents, `verify()` checks every byte.
/// Use it as a context manager, or `close()` it: arrays already loaded
/// keep the file's mapping alive on their own.
#[pyclass(frozen, module = "achronyme_env")]
pub struct Archive {
    location: String,
    inner: RwLock<Option<Arc<achronyme_env::Archive>>>,
}

fn section_of(name: &str) -> PyResult<Section> {
    match name {
        "bindings" => Ok(Section::Bindings),
        "constants" => Ok(Section::Constants),
        "functions" => Ok(Section::Functions),
        other => Err(PyValueError::new_err(format!(
            "section must be \"bindings\", \"constants\" or \"functions\", got {other:?}"
        ))),
    }
}

impl Archive {
    /// The open archive, or `ValueError` once closed (as a closed file).
    fn get_open(&self) -> PyResult<Arc<achronyme_env::Archive>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| PyValueError::new_err(format!("archive {} is closed", self.location)))
    }

    fn load<'py>(
        &self,
        py: Python<'py>,
        section: Section,
        name: &str,
        opts: LoadOptions,
    ) -> PyResult<Bound<'py, PyAny>> {
        let archive = self.get_open()?;
        let value: Value = if opts.verify_checksum {
            // Hashing a large blob takes long: let other threads run.
            py.detach(|| archive.get_with(section, name, opts))
        } else {
            archive.get_with(section, name, opts)
        }
        .map_err(errors::load_to_py)?;
        value_to_py(py, value)
            .map_err(|e| errors::with_context(py, e, &format!("binding {name:?}")))
    }
}

#[pymethods]
impl Archive {
    /// `archive[name]`: the binding `name`, checked except for the elements
    /// of an uncompressed tensor, which come back as a read-only view of
    /// the file (checked by `get(name)` and `verify()`). Raises
    /// `NotFoundError` (a `KeyError`) when there is no such binding.
    fn __getitem__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let archive = self.get_open()?;
        let view = archive
            .binding_info(Section::Bindings, name)
            .is_some_and(|e| {
                e.codec == Codec::None && matches!(e.type_name, "Tensor" | "ComplexTensor")
            });
        let opts = LoadOptions {
            verify_checksum: !view,
            ..LoadOptions::default()
        };
        self.load(py, Section::Bindings, name, opts)
    }

    /// get(name, verify=True, *, section="bindings", max_decoded_bytes=4 GiB)
    ///
    /// The binding `name` of `section`. With `verify` (the default) every
    /// byte of its blob is checked against its digests first, the elements
    /// of an uncompressed tensor included (they are read once, then handed
    /// out as a read-only view of the file); `verify=False` checks nothing
    /// but the framing. `max_decoded_bytes` bounds the memory the value may
    /// take (`TooLargeError` past it).
    #[pyo3(signature = (name, verify = true, *, section = "bindings", max_decoded_bytes = LoadOptions::DEFAULT_MAX_DECODED_BYTES))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        verify: bool,
        section: &str,
        max_decoded_bytes: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = LoadOptions {
            verify_checksum: verify,
            max_decoded_bytes,
        };
        self.load(py, section_of(section)?, name, opts)
    }

    /// names(section="bindings"): the names of a section, sorted (by their
    /// UTF-8 bytes).
    #[pyo3(signature = (section = "bindings"))]
    fn names<'py>(&self, py: Python<'py>, section: &str) -> PyResult<Bound<'py, PyList>> {
        let archive = self.get_open()?;
        let section = section_of(section)?;
        // A listing walks the table, so all of it is checked first (only
        // what a lookup reads is checked otherwise, layout.md 6.8).
        archive.check_table().map_err(errors::to_py)?;
        // Listed first, so the Python list is made at its final size
        // (the table's iterator does not know its length in advance).
        let names: Vec<&str> = archive.names(section).collect();
        PyList::new(py, names.iter().map(|n| PyString::new(py, n)))
    }

    /// The names of the bindings section (so `dict(archive)` loads them
    /// all).
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.names(py, "bindings")
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.get_open()?.info().num_bindings as usize)
    }

    fn __contains__(&self, name: &Bound<'_, PyAny>) -> PyResult<bool> {
        let archive = self.get_open()?;
        Ok(match name.cast::<PyString>() {
            Ok(s) => archive.contains(Section::Bindings, s.to_str()?),
            Err(_) => false,
        })
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.names(py, "bindings")?.try_iter().map(Bound::into_any)
    }

    /// info(): the archive described from its header and table of contents
    /// (the spec's `env_info` record), as a dict: `version`, `created_at`,
    /// `created_timestamp`, `created_by`, `platform`, `achronyme_version`,
    /// `num_bindings`, `num_constants`, `num_functions`, `compressed`,
    /// `codec`, `compressed_blobs`, `storage_blobs`, `storage_bytes` and
    /// `shared_entries` (format 1.3: nested tensor blobs, their bytes, and
    /// entries sharing a blob), `file_size`, `description` (None when
    /// the save gave none), `tags`, `custom` (a dict) and `bindings` (the
    /// names, sorted). No blob is read.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let archive = self.get_open()?;
        archive.check_table().map_err(errors::to_py)?;
        info_dict(py, &archive.info())
    }

    /// entries(): every binding as the table of contents describes it, in
    /// table order (section, then name): dicts of `name`, `section`,
    /// `type`, `shape` (a tuple; empty but for tensors), `stored_bytes`,
    /// `raw_bytes` and `codec`. No blob is read.
    fn entries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let archive = self.get_open()?;
        archive.check_table().map_err(errors::to_py)?;
        let info = archive.info();
        let list = PyList::empty(py);
        for e in info.entries.iter() {
            list.append(entry_dict(py, e)?)?;
        }
        Ok(list)
    }

    /// entry(name, section="bindings"): one binding as the table of
    /// contents describes it (as in `entries()`), without reading its
    /// blob. Raises `NotFoundError` when there is none.
    #[pyo3(signature = (name, section = "bindings"))]
    fn entry<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        section: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let archive = self.get_open()?;
        let section = section_of(section)?;
        match archive.binding_info(section, name) {
            Some(e) => entry_dict(py, &e),
            // The engine's error, with its suggestion of a close name.
            None => Err(archive
                .get_with(section, name, LoadOptions::default())
                .err()
                .map_or_else(
                    || Kind::NotFound.err(format!("no binding named {name:?}")),
                    errors::to_py,
                )),
        }
    }

    /// verify(*, max_decoded_bytes=4 GiB): checks every byte of the
    /// archive (every blob against its digests, every value's encoding,
    /// padding, the closing SHA-256). Returns the report (a dict) when the
    /// archive is intact; raises `DamagedError`, whose `report` attribute
    /// holds it, when not.
    #[pyo3(signature = (*, max_decoded_bytes = LoadOptions::DEFAULT_MAX_DECODED_BYTES))]
    fn verify<'py>(&self, py: Python<'py>, max_decoded_bytes: u64) -> PyResult<Bound<'py, PyDict>> {
        let archive = self.get_open()?;
        let report = py.detach(|| archive.verify_report_within(max_decoded_bytes));
        let dict = report_dict(py, &report)?;
        if report.is_ok() {
            return Ok(dict);
        }
        let err = Kind::Damaged.err(report.to_string());
        err.value(py).setattr("report", dict)?;
        Err(err)
    }

    /// close(): releases the archive (its file and, once no array borrows
    /// it, its mapping). Arrays already loaded stay valid. Further use of
    /// the archive raises `ValueError`.
    fn close(&self) {
        self.inner.write().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// True once `close()` was called (or the `with` block ended).
    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// The path (or URL) the archive was opened from.
    #[getter]
    fn location(&self) -> &str {
        &self.location
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        match self.get_open() {
            Ok(a) => format!(
                "<achronyme_env.Archive {:?}: {} bindings, format {}.{}>",
                self.location,
                a.info().num_bindings,
                a.format_version().0,
                a.format_version().1
            ),
            Err(_) => format!("<achronyme_env.Archive {:?} (closed)>", self.location),
        }
    }
}

/// open(path_or_url): opens an archive, reading its header and table of
/// contents only (their checksum included); blobs are read when loaded.
/// `path_or_url` is a `str` or `os.PathLike`. Raises an `AchronymeError`
/// subclass (`ArchiveIOError`, `NotAnArchiveError`, `TruncatedError`,
/// `DamagedError`, `NewerVersionError`) when it cannot be opened.
///
/// The file is mapped: it must not be modified in place while arrays
/// loaded from it live (this package's own saves never do; they write a new
/// file and rename it over the path).
#[pyfunction]
#[pyo3(signature = (path_or_url, /))]
pub fn open(py: Python<'_>, path_or_url: &Bound<'_, PyAny>) -> PyResult<Archive> {
    let location = location_from_py(path_or_url)?;
    let archive = py
        .detach(|| open_location(&location))
        .map_err(errors::to_py)?;
    Ok(Archive {
        location: location.to_string(),
        inner: RwLock::new(Some(Arc::new(archive))),
    })
}

fn strings<'py>(py: Python<'py>, items: &[String]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, items.iter().map(|s| PyString::new(py, s)))
}

fn section_name(s: Section) -> &'static str {
    match s {
        Section::Bindings => "bindings",
        Section::Constants => "constants",
        Section::Functions => "functions",
    }
}

/// An `EnvInfo` as the dict `Archive.info()` returns.
fn info_dict<'py>(py: Python<'py>, info: &EnvInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("version", &info.version)?;
    d.set_item("created_at", &info.created_at)?;
    d.set_item("created_timestamp", info.created_timestamp)?;
    d.set_item("created_by", &info.created_by)?;
    d.set_item("platform", &info.platform)?;
    d.set_item("achronyme_version", &info.achronyme_version)?;
    d.set_item("num_bindings", info.num_bindings)?;
    d.set_item("num_constants", info.num_constants)?;
    d.set_item("num_functions", info.num_functions)?;
    d.set_item("compressed", info.compressed)?;
    d.set_item("codec", info.codec.name())?;
    d.set_item("checksum", info.checksum.name())?;
    d.set_item("compressed_blobs", info.compressed_blobs)?;
    d.set_item("storage_blobs", info.storage_blobs)?;
    d.set_item("storage_bytes", info.storage_bytes)?;
    d.set_item("shared_entries", info.shared_entries)?;
    d.set_item("file_size", info.file_size)?;
    d.set_item("description", info.description.as_deref())?;
    d.set_item("tags", strings(py, &info.tags)?)?;
    let custom = PyDict::new(py);
    for (k, v) in &info.custom {
        custom.set_item(k, v)?;
    }
    d.set_item("custom", custom)?;
    d.set_item("bindings", strings(py, &info.bindings)?)?;
    Ok(d)
}

/// One table entry as a dict (`entries()`, `entry()`).
fn entry_dict<'py>(py: Python<'py>, e: &BindingInfo) -> PyResult<Bound<'py, PyDict>> {
    let x = PyDict::new(py);
    x.set_item(intern!(py, "name"), &e.name)?;
    x.set_item(intern!(py, "section"), section_name(e.section))?;
    x.set_item(intern!(py, "type"), e.type_name)?;
    x.set_item(intern!(py, "shape"), PyTuple::new(py, &e.shape)?)?;
    x.set_item(intern!(py, "stored_bytes"), e.stored_bytes)?;
    x.set_item(intern!(py, "raw_bytes"), e.raw_bytes)?;
    x.set_item(intern!(py, "codec"), e.codec.name())?;
    Ok(x)
}

/// A `VerifyReport` as a dict (the fields of `ach verify --json`, and
/// `ok`).
fn report_dict<'py>(py: Python<'py>, r: &VerifyReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("ok", r.is_ok())?;
    d.set_item("bindings_checked", r.bindings_checked)?;
    d.set_item("bytes_hashed", r.bytes_hashed)?;
    let damaged = PyList::empty(py);
    for x in &r.damaged {
        let e = PyDict::new(py);
        e.set_item("name", &x.name)?;
        e.set_item("section", section_name(x.section))?;
        e.set_item("error", &x.error)?;
        damaged.append(e)?;
    }
    d.set_item("damaged", damaged)?;
    d.set_item("nonzero_padding", PyList::new(py, &r.nonzero_padding)?)?;
    d.set_item("closing_checksum_ok", r.closing_checksum_ok)?;
    d.set_item("read_errors", strings(py, &r.read_errors)?)?;
    d.set_item("table", r.table.as_deref())?;
    Ok(d)
}

/// For the benchmark (`python/bench/bench.py`, W2): the median time, in
/// nanoseconds over `rounds` rounds, of one part of `names()` measured
/// alone in the engine. `what="engine"`: listing the bindings' names as
/// `&str` (the Rust figure). `what="strings"`: making a Python `str` of each
/// of those names, already listed, all alive at once (the cost of building
/// Python strings; freeing them is not timed).
#[pyfunction]
pub fn _bench_names(py: Python<'_>, archive: &Archive, rounds: usize, what: &str) -> PyResult<u64> {
    let archive = archive.get_open()?;
    let listed: Vec<&str> = archive.names(Section::Bindings).collect();
    let mut times = Vec::with_capacity(rounds.max(1));
    for _ in 0..rounds.max(1) {
        let t = std::time::Instant::now();
        match what {
            "engine" => {
                let names: Vec<&str> = archive.names(Section::Bindings).collect();
                std::hint::black_box(&names);
            }
            "strings" => {
                // All alive at once, as in the list names() returns, and
                // freed after the clock stops, as that list is.
                let made: Vec<Bound<'_, PyString>> =
                    listed.iter().map(|n| PyString::new(py, n)).collect();
                times.push(t.elapsed().as_nanos() as u64);
                drop(made);
                continue;
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "what must be \"engine\" or \"strings\", got {other:?}"
                )));
            }
        }
        times.push(t.elapsed().as_nanos() as u64);
    }
    times.sort_unstable();
    Ok(times[times.len() / 2])
}
