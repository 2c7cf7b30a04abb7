//! Engine values as Python values (the README's "Python" table).
//!
//! A tensor whose elements the engine borrows (a view of the mapped file)
//! becomes a read-only NumPy array over those same bytes: its `base` is a
//! [`TensorMemory`] that holds the engine's buffer, and with it the
//! mapping, for as long as the array (or any view of it) lives. A tensor
//! whose elements the engine owns alone (decompressed) is handed to NumPy
//! without a copy, as an ordinary writable array.

use achronyme_env::{Buffer, Complex, Function, Record, Value};
use numpy::ndarray::{ArrayView, ArrayViewD, IxDyn};
use numpy::{Complex64, Element, PyArray, PyArrayDyn, PyArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyComplex, PyDict, PyList, PyString, PyType};

use crate::errors::Kind;

/// The elements of one tensor, shared with the engine.
#[derive(Clone)]
enum Elements {
    Real(Buffer<f64>),
    Complex(Buffer<Complex>),
}

/// The memory behind a read-only NumPy array that an archive handed out:
/// the array's `base`. It holds the engine's tensor storage (a view of the
/// mapped file), which keeps the mapping alive after the archive is closed,
/// and exposes nothing writable: NumPy refuses `setflags(write=True)` on an
/// array over it.
#[pyclass(frozen, module = "achronyme_env")]
pub struct TensorMemory {
    elements: Elements,
}

impl TensorMemory {
    /// Address and length in bytes of the elements: fixed for as long as
    /// this object lives (it is frozen and its buffer never moves).
    pub(crate) fn span(&self) -> (usize, usize) {
        match &self.elements {
            Elements::Real(b) => (b.as_slice().as_ptr() as usize, self.nbytes()),
            Elements::Complex(b) => (b.as_slice().as_ptr() as usize, self.nbytes()),
        }
    }
}

#[pymethods]
impl TensorMemory {
    /// Bytes of elements.
    #[getter]
    fn nbytes(&self) -> usize {
        match &self.elements {
            Elements::Real(b) => std::mem::size_of_val(b.as_slice()),
            Elements::Complex(b) => std::mem::size_of_val(b.as_slice()),
        }
    }

    /// True when the elements are pages of the archive's file mapping (no
    /// copy was made); False for bytes the archive read into memory.
    #[getter]
    fn mapped(&self) -> bool {
        match &self.elements {
            Elements::Real(b) => b.is_mapped(),
            Elements::Complex(b) => b.is_mapped(),
        }
    }

    fn __repr__(&self) -> String {
        let kind = if self.mapped() {
            "mapped from the archive"
        } else {
            "read from the archive"
        };
        format!(
            "<achronyme_env.TensorMemory {} bytes, {kind}>",
            self.nbytes()
        )
    }
}

/// A NumPy array of `shape` over `elements`: borrowed and read-only when
/// the engine shares them (a view of the file), moved without a copy and
/// writable when the engine owned them alone.
fn tensor_to_py<'py>(
    py: Python<'py>,
    shape: &[usize],
    elements: Elements,
) -> PyResult<Bound<'py, PyAny>> {
    let item = match &elements {
        Elements::Real(_) => size_of::<f64>(),
        Elements::Complex(_) => size_of::<Complex>(),
    };
    numpy_can_hold(shape, item)?;
    match elements {
        Elements::Real(b) => match b.try_into_vec() {
            Ok(v) => owned_array(py, shape, v),
            Err(b) => borrowed_array(py, shape, Elements::Real(b)),
        },
        Elements::Complex(b) => match b.try_into_vec() {
            Ok(v) => owned_array(
                py,
                shape,
                bytemuck::allocation::cast_vec::<Complex, Complex64>(v),
            ),
            Err(b) => borrowed_array(py, shape, Elements::Complex(b)),
        },
    }
}

fn shape_error(e: impl std::fmt::Display) -> PyErr {
    // Cannot happen: the engine checked the shape against the elements, and
    // `numpy_can_hold` the shape against NumPy's limit.
    pyo3::exceptions::PyRuntimeError::new_err(format!("tensor shape: {e}"))
}

/// Refuses a shape NumPy cannot make an array of: NumPy (and ndarray)
/// need the product of the non-zero dimensions, times the element size,
/// to fit in an `isize`, even for an empty array. The engine reads such
/// shapes (an empty tensor of shape `[0, 2**62]` is a valid value), so
/// this is an error, not a bug.
fn numpy_can_hold(shape: &[usize], item: usize) -> PyResult<()> {
    let bytes = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(item, |acc, &d| acc.checked_mul(d))
        .filter(|&b| isize::try_from(b).is_ok());
    match bytes {
        Some(_) => Ok(()),
        None => Err(Kind::TooLarge.err(format!(
            "a tensor of shape {shape:?} cannot be a NumPy array: NumPy needs the product of \
             its non-zero dimensions times {item} bytes to be below 2**63"
        ))),
    }
}

fn owned_array<'py, T: Element>(
    py: Python<'py>,
    shape: &[usize],
    v: Vec<T>,
) -> PyResult<Bound<'py, PyAny>> {
    let a = numpy::ndarray::Array::from_shape_vec(IxDyn(shape), v).map_err(shape_error)?;
    Ok(PyArray::from_owned_array(py, a).into_any())
}

fn borrowed_array<'py>(
    py: Python<'py>,
    shape: &[usize],
    elements: Elements,
) -> PyResult<Bound<'py, PyAny>> {
    let memory = Bound::new(py, TensorMemory { elements })?;
    let array = match &memory.get().elements {
        Elements::Real(b) => view_of(shape, b.as_slice(), &memory)?.into_any(),
        Elements::Complex(b) => {
            let c: &[Complex64] = bytemuck::cast_slice(b.as_slice());
            view_of(shape, c, &memory)?.into_any()
        }
    };
    Ok(array)
}

/// A read-only NumPy array over `data` (which `memory` owns), with
/// `memory` as its base.
fn view_of<'py, T: Element>(
    shape: &[usize],
    data: &[T],
    memory: &Bound<'py, TensorMemory>,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let view: ArrayViewD<'_, T> = ArrayView::from_shape(IxDyn(shape), data).map_err(shape_error)?;
    // SAFETY: `memory` becomes the array's base and so lives at least as
    // long as the array. It owns the engine's buffer that `data` borrows
    // (an `Arc` over the file mapping or over bytes read from the file),
    // which never moves, shrinks or changes while any clone of it lives:
    // `TensorMemory` is frozen and exposes no way to write or replace it.
    let array = unsafe { PyArray::borrow_from_array(&view, memory.clone().into_any()) };
    // The elements are the file's: Python must not write to them. With a
    // base that exports no writable buffer, NumPy also refuses to set the
    // flag back.
    drop(array.readwrite().make_nonwriteable());
    Ok(array)
}

/// The class `achronyme_env._values.NAME`, imported once.
fn value_class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyType>> {
    cell.import(py, "achronyme_env._values", name)
}

pub(crate) static BUILTIN: PyOnceLock<Py<PyType>> = PyOnceLock::new();
pub(crate) static EDGE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
pub(crate) static REF: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `achronyme_env.Builtin`.
pub fn builtin_class(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    value_class(py, &BUILTIN, "Builtin")
}

/// `achronyme_env.Edge`.
pub fn edge_class(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    value_class(py, &EDGE, "Edge")
}

/// `achronyme_env.Ref`.
pub fn ref_class(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    value_class(py, &REF, "Ref")
}

fn record_to_py<'py>(py: Python<'py>, r: Record) -> PyResult<Bound<'py, PyAny>> {
    let d = PyDict::new(py);
    for (k, v) in r.into_fields() {
        d.set_item(PyString::new(py, &k), value_to_py(py, v)?)?;
    }
    Ok(d.into_any())
}

/// An engine value as a Python value.
pub fn value_to_py(py: Python<'_>, v: Value) -> PyResult<Bound<'_, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Number(n) => n.into_pyobject(py)?.into_any(),
        Value::Boolean(b) => pyo3::types::PyBool::new(py, b).to_owned().into_any(),
        Value::String(s) => PyString::new(py, &s).into_any(),
        Value::Complex(c) => PyComplex::from_doubles(py, c.re, c.im).into_any(),
        Value::Vector(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_py(py, item)?)?;
            }
            list.into_any()
        }
        // The tensor is dropped before its buffer is handed over, so a
        // buffer it owned alone moves to NumPy without a copy.
        Value::Tensor(t) => {
            let (shape, b) = (t.shape().to_vec(), t.buffer().clone());
            drop(t);
            tensor_to_py(py, &shape, Elements::Real(b))?
        }
        Value::ComplexTensor(t) => {
            let (shape, b) = (t.shape().to_vec(), t.buffer().clone());
            drop(t);
            tensor_to_py(py, &shape, Elements::Complex(b))?
        }
        Value::Record(r) => record_to_py(py, r)?,
        Value::Function(Function::Builtin(name)) => builtin_class(py)?.call1((name,))?,
        Value::Function(f) => {
            // Archives cannot hold user lambdas; a loaded value never is one.
            return Err(PyTypeError::new_err(format!(
                "a user function has no Python value: {f:?}"
            )));
        }
        Value::Edge(e) => {
            let props = record_to_py(py, e.properties)?;
            edge_class(py)?.call1((e.from, e.to, e.directed, props))?
        }
        Value::MutableRef(r) => {
            let inner = match std::sync::Arc::try_unwrap(r) {
                Ok(lock) => lock.into_inner().unwrap_or_else(|e| e.into_inner()),
                Err(shared) => shared.read().unwrap_or_else(|e| e.into_inner()).clone(),
            };
            ref_class(py)?.call1((value_to_py(py, inner)?,))?
        }
    })
}
