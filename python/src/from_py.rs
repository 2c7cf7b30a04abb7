//! Python values as engine values, for `save` (the README's "Python"
//! table, read right to left).
//!
//! A NumPy array of float64 or complex128, C-contiguous, aligned and in the
//! machine's byte order, is not copied: the engine's tensor borrows its
//! memory ([`Bytes::from_owner`]) and the save streams the elements from
//! it. Any other array is converted once, by NumPy, into a new C-ordered
//! float64 or complex128 array that the tensor then borrows.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use achronyme_env::{Buffer, Bytes, Complex, ComplexTensor, Edge, Function, Record, Tensor, Value};
use numpy::{
    Complex64, Element, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyComplex, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use crate::errors::Kind;
use crate::to_py::{builtin_class, edge_class, ref_class};

/// How deeply a value may nest: the engine's limit (archives refuse deeper
/// values so that reading can never overflow the stack). Also what stops a
/// list that contains itself.
const MAX_DEPTH: usize = 128;

/// The memory of a NumPy array, borrowed by an engine tensor for the length
/// of a save.
struct ArrayMemory {
    /// Keeps the array, and so its memory, alive.
    _array: Py<PyAny>,
    /// Address and length in bytes of the array's elements.
    addr: usize,
    len: usize,
}

impl AsRef<[u8]> for ArrayMemory {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `addr..addr + len` is the element memory of the
        // C-contiguous, non-empty NumPy array `_array` holds a reference
        // to (checked in `borrow_array`), so it is one live allocation of
        // `len` bytes. NumPy frees or moves an array's memory only when the
        // array dies (`_array` keeps it alive) or on `ndarray.resize`,
        // which is Python code. Python code may run while the rest of the
        // mapping is converted, so `Converter::check_borrowed_arrays`
        // confirms every array is still where it was, after conversion and
        // before the engine reads any; from then until the engine has
        // dropped every tensor that borrows it (before `save` returns) the
        // GIL is held and no Python code runs. The same holds for writes to
        // the elements from Python; the package documents that other
        // threads must not write to the arrays from native code during a
        // save, as with any NumPy function that reads them.
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }
}

static NDARRAY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static GENERIC: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static ASARRAY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Converts the values of one save, remembering each `Ref` it met so that
/// a reference shared by two values stays shared (and one that contains
/// itself becomes a cycle the engine reports).
pub struct Converter<'py> {
    py: Python<'py>,
    /// Each `Ref` met, by address, with the object itself: holding it for
    /// the whole save keeps its address from being reused by another
    /// `Ref` (a lazy mapping may create and free them one by one).
    refs: HashMap<usize, (Py<PyAny>, Arc<RwLock<Value>>)>,
    /// Arrays that had to be converted (another dtype or layout).
    pub copied_arrays: usize,
    /// Arrays streamed from their own memory.
    pub borrowed_arrays: usize,
    /// Every array whose memory a tensor borrows, and where that memory
    /// was (address, bytes) when it was borrowed.
    borrowed: Vec<(Py<PyUntypedArray>, Option<Extent>)>,
}

impl<'py> Converter<'py> {
    /// A converter for one save.
    pub fn new(py: Python<'py>) -> Self {
        Converter {
            py,
            refs: HashMap::new(),
            copied_arrays: 0,
            borrowed_arrays: 0,
            borrowed: Vec::new(),
        }
    }

    /// `obj` as an engine value.
    pub fn value(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<Value> {
        self.value_at(obj, 0)
    }

    fn value_at(&mut self, obj: &Bound<'py, PyAny>, depth: usize) -> PyResult<Value> {
        let py = self.py;
        if obj.is_none() {
            return Ok(Value::Null);
        }
        if let Ok(b) = obj.cast::<PyBool>() {
            return Ok(Value::Boolean(b.is_true()));
        }
        if obj.is_instance(NDARRAY.import(py, "numpy", "ndarray")?)? {
            return self.array(obj.cast::<PyUntypedArray>()?);
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            return Ok(Value::Number(f.value()));
        }
        if obj.is_instance_of::<PyInt>() {
            return int_value(obj);
        }
        if let Ok(c) = obj.cast::<PyComplex>() {
            return Ok(Value::Complex(Complex::new(c.real(), c.imag())));
        }
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(Value::String(s.to_str()?.to_owned()));
        }
        if depth >= MAX_DEPTH {
            return Err(Kind::InvalidArgument.err(format!(
                "the value nests deeper than {MAX_DEPTH} levels (or contains itself); flatten \
                 it (archives refuse deeper nesting so that reading can never overflow the stack)"
            )));
        }
        if let Ok(d) = obj.cast::<PyDict>() {
            return Ok(Value::Record(self.record(d, depth)?));
        }
        if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
            let mut items = Vec::with_capacity(obj.len()?);
            for item in obj.try_iter()? {
                items.push(self.value_at(&item?, depth + 1)?);
            }
            return Ok(Value::Vector(items));
        }
        if obj.is_instance(ref_class(py)?)? {
            return self.reference(obj, depth);
        }
        if obj.is_instance(builtin_class(py)?)? {
            let name: String = obj.getattr("name")?.extract()?;
            return Ok(Value::Function(Function::Builtin(name)));
        }
        if obj.is_instance(edge_class(py)?)? {
            let props = obj.getattr("properties")?;
            let props = props.cast::<PyDict>().map_err(|_| {
                PyTypeError::new_err("Edge.properties must be a dict with str keys")
            })?;
            return Ok(Value::Edge(Edge {
                from: obj.getattr("source")?.extract()?,
                to: obj.getattr("target")?.extract()?,
                directed: obj.getattr("directed")?.extract()?,
                properties: self.record(props, depth)?,
            }));
        }
        if obj.is_instance(GENERIC.import(py, "numpy", "generic")?)? {
            // A NumPy scalar that is no Python float or complex (float32,
            // int64, bool_, complex64): its Python value.
            let item = obj.call_method0("item")?;
            if item.is_instance_of::<PyBool>()
                || item.is_instance_of::<PyInt>()
                || item.is_instance_of::<PyFloat>()
                || item.is_instance_of::<PyComplex>()
            {
                return self.value_at(&item, depth);
            }
        }
        Err(PyTypeError::new_err(format!(
            "cannot save a value of type {}: archives hold None, bool, int, float, complex, \
             str, list, tuple, dict (str keys), numpy arrays and scalars, and \
             achronyme_env.Edge, Builtin and Ref",
            obj.get_type().name()?
        )))
    }

    /// Checks that no array a tensor borrows was reallocated or reshaped
    /// while later values were converted (conversion can run Python code:
    /// a mapping's `items()`, a `Ref` subclass, NumPy's conversions, any
    /// of which could call `resize(refcheck=False)` on an array already
    /// borrowed). Called once everything is converted, right before the
    /// engine reads the arrays; from then until the save returns, the GIL
    /// is held and no Python code runs.
    pub fn check_borrowed_arrays(&self) -> PyResult<()> {
        for (array, then) in &self.borrowed {
            if extent(array.bind(self.py)) != *then {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "a numpy array being saved was resized while the save converted the other \
                     values; nothing was written, save again",
                ));
            }
        }
        Ok(())
    }

    fn record(&mut self, d: &Bound<'py, PyDict>, depth: usize) -> PyResult<Record> {
        let mut fields = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let k: String = k.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "record keys must be str, got {}",
                    k.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            fields.push((k, self.value_at(&v, depth + 1)?));
        }
        Ok(fields.into_iter().collect())
    }

    fn reference(&mut self, obj: &Bound<'py, PyAny>, depth: usize) -> PyResult<Value> {
        let id = obj.as_ptr() as usize;
        if let Some((_, cell)) = self.refs.get(&id) {
            return Ok(Value::MutableRef(cell.clone()));
        }
        // Registered before its value is converted, so a reference that
        // contains itself closes into a cycle instead of recursing.
        let cell = Arc::new(RwLock::new(Value::Null));
        self.refs.insert(id, (obj.clone().unbind(), cell.clone()));
        let inner = self.value_at(&obj.getattr("value")?, depth + 1)?;
        *cell.write().unwrap_or_else(|e| e.into_inner()) = inner;
        Ok(Value::MutableRef(cell))
    }

    /// A NumPy array as a tensor, borrowed when its layout allows it, else
    /// converted once.
    fn array(&mut self, a: &Bound<'py, PyUntypedArray>) -> PyResult<Value> {
        let py = self.py;
        let dtype = a.dtype();
        let kind = dtype.kind();
        let complex = match kind {
            b'c' => true,
            b'f' | b'i' | b'u' | b'b' => false,
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "cannot save a numpy array of dtype {}: archives hold float64 and \
                     complex128 tensors (bool, integer and float arrays are converted to \
                     float64, complex64 to complex128)",
                    dtype.str()?
                )));
            }
        };
        let target = if complex {
            numpy::dtype::<Complex64>(py)
        } else {
            numpy::dtype::<f64>(py)
        };
        let as_is = dtype.is_equiv_to(&target) && a.is_c_contiguous() && a.is_aligned();
        let a = if as_is {
            self.borrowed_arrays += 1;
            a.clone()
        } else {
            self.copied_arrays += 1;
            let asarray = ASARRAY.import(py, "numpy", "asarray")?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("dtype", &target)?;
            kwargs.set_item("order", "C")?;
            let converted = asarray.call((a,), Some(&kwargs))?;
            let converted = converted.cast_into::<PyUntypedArray>()?;
            if !(converted.is_c_contiguous() && converted.is_aligned()) {
                return Err(PyValueError::new_err(
                    "numpy did not give a C-contiguous, aligned copy of the array",
                ));
            }
            converted
        };
        self.borrowed.push((a.clone().unbind(), extent(&a)));
        let shape = a.shape().to_vec();
        let value = if complex {
            ComplexTensor::from_buffer(shape, buffer_of::<Complex64, Complex>(&a)?)
                .map(Value::ComplexTensor)
        } else {
            Tensor::from_buffer(shape, buffer_of::<f64, f64>(&a)?).map(Value::Tensor)
        };
        value.map_err(crate::errors::to_py)
    }
}

/// Where an array's elements are in memory: address and length in bytes.
type Extent = (usize, usize);

/// Where a float64 or complex128 NumPy array's elements are while it is
/// C-contiguous; `None` otherwise.
fn extent(a: &Bound<'_, PyUntypedArray>) -> Option<Extent> {
    fn of<T: Element>(a: &Bound<'_, PyUntypedArray>) -> Option<Extent> {
        let typed = a.cast::<PyArrayDyn<T>>().ok()?;
        let len = typed.len() * std::mem::size_of::<T>();
        a.is_c_contiguous().then_some((typed.data() as usize, len))
    }
    of::<f64>(a).or_else(|| of::<Complex64>(a))
}

/// The elements of a C-contiguous NumPy array of `N` as engine storage of
/// `T` (the same layout), borrowed; empty storage when it has none.
fn buffer_of<N: Element, T: bytemuck::Pod>(a: &Bound<'_, PyUntypedArray>) -> PyResult<Buffer<T>> {
    match borrow_array::<N>(a)? {
        Some(bytes) => Buffer::from_bytes(bytes).ok_or_else(misaligned),
        None => Ok(Buffer::from_vec(Vec::new())),
    }
}

fn misaligned() -> PyErr {
    PyValueError::new_err("the array's memory is not aligned for its elements")
}

/// The element bytes of a C-contiguous NumPy array of `T`, borrowed (the
/// array stays referenced while they live); `None` when it has no elements.
fn borrow_array<T: Element>(a: &Bound<'_, PyUntypedArray>) -> PyResult<Option<Bytes>> {
    let typed = a.cast::<PyArrayDyn<T>>()?;
    let len = typed.len() * std::mem::size_of::<T>();
    if len == 0 {
        return Ok(None);
    }
    Ok(Some(Bytes::from_owner(Arc::new(ArrayMemory {
        _array: a.clone().into_any().unbind(),
        addr: typed.data() as usize,
        len,
    }))))
}

/// A Python int as a Number, refused when an f64 cannot hold it exactly
/// (beyond 2^53, not a multiple of the spacing there).
fn int_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let inexact = || {
        PyValueError::new_err(format!(
            "the integer {} cannot be stored exactly: Achronyme numbers are float64, exact \
             for integers up to 2**53; store it as a str, or as float(n) to round it",
            obj.str().map(|s| s.to_string()).unwrap_or_default()
        ))
    };
    let f: f64 = obj.extract().map_err(|_| inexact())?;
    if obj.eq(f)? {
        Ok(Value::Number(f))
    } else {
        Err(inexact())
    }
}
