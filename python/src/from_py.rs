//! Python values as engine values, for `save` (the README's "Python"
//! table, read right to left).
//!
//! A NumPy array of float64 or complex128, C-contiguous, aligned and in the
//! machine's byte order, is not copied: the engine's tensor borrows its
//! memory ([`Bytes::from_owner`]) and the save streams the elements from
//! it, provided the owner of that memory can be held in place and checked
//! (see [`Converter::check_borrowed_arrays`]). Any other array is copied
//! once, by NumPy, into a new C-ordered float64 or complex128 array that
//! the tensor then borrows.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use achronyme_env::{Buffer, Bytes, Complex, ComplexTensor, Edge, Function, Record, Tensor, Value};
use numpy::{
    Complex64, Element, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyComplex, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use crate::errors::Kind;
use crate::to_py::{TensorMemory, builtin_class, edge_class, ref_class};

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
        // SAFETY: `addr..addr + len` was, when the array was borrowed, the
        // element memory of the C-contiguous, non-empty NumPy array that
        // `_array` holds, and lay within the memory of the array's owner
        // (checked in `Converter::guard`): the last ndarray along its
        // `.base` chain when that one owns its data, else the object past
        // it, which is either a `TensorMemory` (frozen: its memory never
        // moves while it lives) or an exporter of a contiguous buffer that
        // the converter holds its own export of (`Borrowed::_pin`), which
        // the buffer protocol keeps valid and unmoved until released and
        // which no Python code can reach. The converter holds every object
        // of the chain for the whole save. An ndarray's memory is freed or
        // moved only when the array dies or by Python code (`resize`,
        // `__setstate__`), which may run while the rest of the mapping is
        // converted; so `Converter::check_borrowed_arrays` confirms that
        // every ndarray of the chain still has its elements at the same
        // address and length, after conversion and before the engine reads
        // any. An owner whose elements are still at the same address and
        // length holds a live allocation of that range (the original one,
        // or one made at the same place, which reads like a write), and
        // `addr..addr + len` lies within that range. From
        // then until the engine has dropped every tensor that borrows it
        // (before `save` returns) the GIL is held and no Python code runs.
        // Writes to the elements change no address; the package documents
        // that other threads must not write to the arrays from native code
        // during a save, as with any NumPy function that reads them.
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }
}

static NDARRAY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static GENERIC: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static ARRAY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A borrowed array and what its memory belongs to, held for the save so
/// that `Converter::check_borrowed_arrays` can tell whether it moved.
struct Borrowed {
    /// The borrowed array, then each ndarray along its `.base` chain, with
    /// where its elements were (address, bytes) when it was borrowed.
    chain: Vec<(Py<PyUntypedArray>, Option<Extent>)>,
    /// The object past the last ndarray of the chain, if any, held so that
    /// it cannot die during the save.
    _owner: Option<Py<PyAny>>,
    /// The converter's own export of that object's buffer: while it is
    /// held, the exporter must keep the memory valid and in place.
    _pin: Option<PyUntypedBuffer>,
}

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
    /// Every array whose memory a tensor borrows, with its base chain.
    borrowed: Vec<Borrowed>,
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
    /// a mapping's `items()` or `__getitem__`, a `Ref` subclass, NumPy's
    /// conversions, any of which could call `resize(refcheck=False)` on an
    /// array already borrowed, or on the array it is a view of): the
    /// borrowed array must still be C-contiguous with its elements at the
    /// same address and length, and so must every ndarray along its
    /// `.base` chain (whatever its layout). What lies past the chain is
    /// held in place, not checked (see `guard`). Called once everything is
    /// converted, right before the engine reads the arrays; from then until
    /// the save returns, the GIL is held and no Python code runs.
    pub fn check_borrowed_arrays(&self) -> PyResult<()> {
        for b in &self.borrowed {
            for (i, (array, then)) in b.chain.iter().enumerate() {
                let array = array.bind(self.py);
                let now = if i == 0 {
                    extent(array)
                } else {
                    Some(fields(array).0)
                };
                if now != *then {
                    return Err(pyo3::exceptions::PyRuntimeError::new_err(
                        "a numpy array being saved (or the array it is a view of) was resized \
                         while the save converted the other values; nothing was written, save \
                         again",
                    ));
                }
            }
        }
        Ok(())
    }

    /// What keeps the memory of `a`, a C-contiguous float64 or complex128
    /// array, in place for the save, when that can be checked: `None`
    /// when it cannot (the array is then copied). Walks `a.base` through
    /// the ndarrays to the owner of the memory.
    fn guard(&self, a: &Bound<'py, PyUntypedArray>) -> PyResult<Option<Borrowed>> {
        let py = self.py;
        let Some(own) = extent(a) else {
            return Ok(None);
        };
        let ndarray = NDARRAY.import(py, "numpy", "ndarray")?;
        // ndarray's own `base` getter: a subclass cannot override it.
        let base_of = ndarray.getattr(pyo3::intern!(py, "base"))?;
        let within = |outer: Extent| {
            own.1 == 0
                || (own.0 >= outer.0
                    && own.0.saturating_add(own.1) <= outer.0.saturating_add(outer.1))
        };
        let mut chain = vec![(a.clone().unbind(), Some(own))];
        let mut link = a.clone();
        loop {
            let (span, owns) = fields(&link);
            let base = base_of.call_method1(pyo3::intern!(py, "__get__"), (&link,))?;
            if base.is_none() {
                // The memory is this array's own, or nobody's NumPy knows.
                return Ok((owns && within(span)).then_some(Borrowed {
                    chain,
                    _owner: None,
                    _pin: None,
                }));
            }
            if base.is_instance(ndarray)? {
                link = base.cast_into::<PyUntypedArray>()?;
                chain.push((link.clone().unbind(), Some(fields(&link).0)));
                continue;
            }
            let pin = if let Ok(memory) = base.cast::<TensorMemory>() {
                if !within(memory.get().span()) {
                    return Ok(None);
                }
                None
            } else {
                match PyUntypedBuffer::get(&base) {
                    Ok(pin)
                        if pin.is_c_contiguous()
                            && within((pin.buf_ptr() as usize, pin.len_bytes())) =>
                    {
                        Some(pin)
                    }
                    _ => return Ok(None),
                }
            };
            return Ok(Some(Borrowed {
                chain,
                _owner: Some(base.unbind()),
                _pin: pin,
            }));
        }
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
        let guard = if as_is { self.guard(a)? } else { None };
        let (a, guard) = if let Some(guard) = guard {
            self.borrowed_arrays += 1;
            (a.clone(), guard)
        } else {
            self.copied_arrays += 1;
            // Always a copy: the array may already have the target dtype
            // and layout but memory whose owner cannot be checked.
            let array = ARRAY.import(py, "numpy", "array")?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("dtype", &target)?;
            kwargs.set_item("order", "C")?;
            kwargs.set_item("copy", true)?;
            let converted = array.call((a,), Some(&kwargs))?;
            let converted = converted.cast_into::<PyUntypedArray>()?;
            let guard = match self.guard(&converted)? {
                Some(guard) if converted.is_aligned() => guard,
                _ => {
                    return Err(PyValueError::new_err(
                        "numpy did not give a C-contiguous, aligned copy of the array that owns \
                         its memory",
                    ));
                }
            };
            (converted, guard)
        };
        self.borrowed.push(guard);
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

/// Where any NumPy array's elements are (address, bytes, whatever its
/// layout), and whether it owns that memory (NumPy's `OWNDATA` flag).
fn fields(a: &Bound<'_, PyUntypedArray>) -> (Extent, bool) {
    // SAFETY: `a` is a live ndarray (a bound reference, with the GIL
    // held), so its object, and the fields NumPy's accessor points to, are
    // valid; two plain fields are copied out and no Python code runs.
    let (data, flags) = unsafe {
        let f = &*numpy::npyffi::_PyArray_GET_ITEM_DATA(a.as_array_ptr());
        (f.data as usize, f.flags)
    };
    let bytes = a.len() * a.dtype().itemsize();
    ((data, bytes), flags & numpy::npyffi::NPY_ARRAY_OWNDATA != 0)
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
