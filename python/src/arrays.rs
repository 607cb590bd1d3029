//! Reading array arguments: float64 C-contiguous arrays are read in place (no copy); other
//! array-likes (lists, non-contiguous or other-dtype arrays, JAX/PyTorch CPU arrays through
//! `numpy.asarray`) are converted once, and only when the conversion is exact.

use crate::errors::input;
use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// 2⁵³: integers up to this magnitude are exactly representable as float64.
const EXACT_INT: f64 = 9007199254740992.0;

/// `obj` as a read-only float64 C-contiguous array; `name` is the argument's name for messages.
pub fn f64_array<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<PyReadonlyArrayDyn<'py, f64>> {
    let py = obj.py();
    if let Ok(a) = obj.cast::<PyArrayDyn<f64>>() {
        if a.is_c_contiguous() {
            return Ok(a.readonly());
        }
    }
    let np = py.import("numpy")?;
    let arr = np.call_method1("asarray", (obj,)).map_err(|e| {
        input(format!(
            "{name}: cannot be read as an array of numbers ({})",
            e.value(py)
        ))
    })?;
    let dtype = arr.getattr("dtype")?;
    let kind: String = dtype.getattr("kind")?.extract()?;
    let size: usize = dtype.getattr("itemsize")?.extract()?;
    let dname: String = dtype.getattr("name")?.extract()?;
    match kind.as_str() {
        "f" if size <= 8 => {}
        "f" => {
            return Err(input(format!(
                "{name}: dtype {dname} would lose precision as float64; convert it explicitly (x.astype(numpy.float64))"
            )))
        }
        "i" | "u" => {
            let size_: usize = arr.getattr("size")?.extract()?;
            if size_ > 0 {
                let m: f64 = np
                    .call_method1("max", (np.call_method1("abs", (&arr,))?,))?
                    .call_method1("__float__", ())?
                    .extract()?;
                if m > EXACT_INT {
                    return Err(input(format!(
                        "{name}: integer array ({dname}) with values beyond 2**53 cannot be converted to float64 exactly"
                    )));
                }
            }
        }
        "b" => {
            return Err(input(format!(
                "{name}: boolean array given, expected numbers (float64)"
            )))
        }
        "c" => {
            return Err(input(format!(
                "{name}: complex array given, expected real numbers (float64)"
            )))
        }
        _ => {
            return Err(input(format!(
                "{name}: array of dtype {dname} given, expected numbers (float64)"
            )))
        }
    }
    let kw = pyo3::types::PyDict::new(py);
    kw.set_item("dtype", np.getattr("float64")?)?;
    let c = np.call_method("ascontiguousarray", (&arr,), Some(&kw))?;
    Ok(c.cast_into::<PyArrayDyn<f64>>()?.readonly())
}

/// Describe a shape as numpy prints it: (3,), (2, 4).
pub fn shape_str(s: &[usize]) -> String {
    match s {
        [a] => format!("({a},)"),
        _ => format!(
            "({})",
            s.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The first non-finite value of a row-major (B, D) block (or (D,) when `batched` is false),
/// as an error naming the argument and the index.
pub fn check_finite(name: &str, xs: &[f64], d: usize, batched: bool) -> PyResult<()> {
    // Branch-free per block of 64 (vectorised), the position searched only in a failing block.
    let ok = |c: &[f64]| c.iter().fold(true, |a, x| a & x.is_finite());
    let bad = xs.chunks(64).position(|c| !ok(c)).and_then(|k| {
        let o = 64 * k;
        xs[o..].iter().position(|x| !x.is_finite()).map(|i| o + i)
    });
    if let Some(i) = bad {
        let at = if batched {
            format!("[{}, {}]", i / d.max(1), i % d.max(1))
        } else {
            format!("[{i}]")
        };
        return Err(input(format!("{name}{at} = {} is not finite", xs[i])));
    }
    Ok(())
}

/// A state batch: q and qdot of shape (D,) or (B, D) with the same shape.
pub struct States<'py> {
    pub q: PyReadonlyArrayDyn<'py, f64>,
    pub v: PyReadonlyArrayDyn<'py, f64>,
    pub batch: Option<usize>,
    pub d: usize,
}

impl States<'_> {
    pub fn b(&self) -> usize {
        self.batch.unwrap_or(1)
    }
}

/// Read (q, qdot) for a system of `n` coordinates.
pub fn states<'py>(
    q: &Bound<'py, PyAny>,
    qdot: &Bound<'py, PyAny>,
    n: usize,
    names: (&str, &str),
) -> PyResult<States<'py>> {
    let qa = f64_array(q, names.0)?;
    let va = f64_array(qdot, names.1)?;
    let (sq, sv) = (qa.shape().to_vec(), va.shape().to_vec());
    let batch = match sq.as_slice() {
        [d] => {
            if *d != n {
                return Err(input(format!(
                    "{} has {d} values but the system has {n} coordinates (expected shape ({n},) or (B, {n}))",
                    names.0
                )));
            }
            None
        }
        [b, d] => {
            if *d != n {
                return Err(input(format!(
                    "{} has shape {} but the system has {n} coordinates (expected shape ({n},) or (B, {n}))",
                    names.0,
                    shape_str(&sq)
                )));
            }
            Some(*b)
        }
        _ => {
            return Err(input(format!(
                "{} must have shape ({n},) or (B, {n}), got {}",
                names.0,
                shape_str(&sq)
            )))
        }
    };
    if sq != sv {
        return Err(input(format!(
            "{} has shape {} but {} has shape {}: they must match",
            names.1,
            shape_str(&sv),
            names.0,
            shape_str(&sq)
        )));
    }
    let st = States {
        q: qa,
        v: va,
        batch,
        d: n,
    };
    check_finite(names.0, st.q.as_slice()?, n, batch.is_some())?;
    check_finite(names.1, st.v.as_slice()?, n, batch.is_some())?;
    Ok(st)
}

/// A 1-D float64 vector argument of length `n` (no batch), finite.
pub fn vector(obj: &Bound<'_, PyAny>, name: &str, n: usize) -> PyResult<Vec<f64>> {
    let a = f64_array(obj, name)?;
    if a.shape() != [n] {
        return Err(input(format!(
            "{name} must have shape ({n},), got {}",
            shape_str(a.shape())
        )));
    }
    let s = a.as_slice()?;
    check_finite(name, s, n, false)?;
    Ok(s.to_vec())
}

/// A (rows, cols) float64 matrix argument, finite; `cols` None accepts any width.
pub fn matrix(
    obj: &Bound<'_, PyAny>,
    name: &str,
    rows: Option<usize>,
    cols: Option<usize>,
) -> PyResult<ndarray::Array2<f64>> {
    let a = f64_array(obj, name)?;
    let s = a.shape().to_vec();
    let ok = s.len() == 2 && rows.is_none_or(|r| s[0] == r) && cols.is_none_or(|c| s[1] == c);
    if !ok {
        let want = |x: Option<usize>, l: &str| x.map_or(l.to_string(), |v| v.to_string());
        return Err(input(format!(
            "{name} must have shape ({}, {}), got {}",
            want(rows, "N"),
            want(cols, "F"),
            shape_str(&s)
        )));
    }
    let vals = a.as_slice()?;
    check_finite(name, vals, s[1], true)?;
    Ok(ndarray::Array2::from_shape_vec((s[0], s[1]), vals.to_vec()).expect("shape"))
}
