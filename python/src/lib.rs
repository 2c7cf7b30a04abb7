//! `achronyme_env._native`: the compiled part of the `achronyme_env` Python
//! package (built by maturin from `python/pyproject.toml`).
//!
//! - [`location`]: the one place a path (later a URL) becomes an open
//!   archive or the destination of a save.
//! - [`archive`]: the `Archive` class (`open`, `archive[name]`, `get`,
//!   `verify`, `info`, ...).
//! - [`to_py`]: engine values to Python values; tensors become NumPy arrays
//!   that borrow the archive's mapping ([`to_py::TensorMemory`]).
//! - [`from_py`]: Python values to engine values; NumPy arrays are
//!   borrowed, not copied, when their layout allows it.
//! - [`save`]: `save(path, mapping, **options)`.
//! - [`errors`]: engine errors to the exception classes of
//!   `achronyme_env/_errors.py`.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

use pyo3::prelude::*;

pub mod archive;
pub mod errors;
pub mod from_py;
pub mod location;
pub mod save;
pub mod to_py;

/// The module `achronyme_env._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<archive::Archive>()?;
    m.add_class::<to_py::TensorMemory>()?;
    m.add_function(wrap_pyfunction!(archive::open, m)?)?;
    m.add_function(wrap_pyfunction!(save::save, m)?)?;
    m.add_function(wrap_pyfunction!(archive::_bench_names, m)?)?;
    Ok(())
}
