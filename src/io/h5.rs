//! Internal HDF5 helpers: opening with good errors, a problem-collecting reader, attribute
//! values and writers. Nothing here panics on user data.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use hdf5::types::{FloatSize, IntSize, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Dataset, Group, Location, LocationType};
use ndarray::{Array1, Array2, Array3, ArrayD, ArrayView, Dimension, Ix1, Ix2, Ix3};

use super::{AttrValue, Kind, MIN_SCHEMA_VERSION, SCHEMA_VERSION};
use crate::error::{Error, Result};

const HDF5_SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Runs `f`, turning a panic inside the hdf5 crate into an [`Error::File`].
pub(crate) fn guard<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::file(
                path,
                format!("internal error while accessing the HDF5 file: {what}"),
            ))
        }
    }
}

/// Short, single-line text of an hdf5 crate error.
pub(crate) fn h5msg(e: &hdf5::Error) -> String {
    e.to_string().replace('\n', " ")
}

/// Does the file carry the HDF5 signature (at 0, 512, 1024, 2048, ... as the format allows)?
fn has_signature(path: &Path) -> std::io::Result<bool> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut off = 0u64;
    let mut buf = [0u8; 8];
    while off + 8 <= len {
        f.seek(SeekFrom::Start(off))?;
        f.read_exact(&mut buf)?;
        if &buf == HDF5_SIGNATURE {
            return Ok(true);
        }
        off = if off == 0 { 512 } else { off * 2 };
    }
    Ok(false)
}

const READING_CAP: usize = 1024;
static READING: [std::sync::atomic::AtomicU8; READING_CAP] =
    [const { std::sync::atomic::AtomicU8::new(0) }; READING_CAP];
static READING_LEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Remember the path of the HDF5 file being opened for reading (for [`input_being_read`]).
fn note_reading(path: &Path) {
    use std::sync::atomic::Ordering::Relaxed;
    let b = path.as_os_str().as_encoded_bytes();
    let n = b.len().min(READING_CAP);
    READING_LEN.store(0, Relaxed);
    for (slot, x) in READING.iter().zip(&b[..n]) {
        slot.store(*x, Relaxed);
    }
    READING_LEN.store(n, Relaxed);
}

/// Copy the path of the HDF5 file most recently opened for reading into `buf`; returns its
/// length. Only atomic loads: safe to call from a signal handler (the CLI names the file when
/// the HDF5 C library crashes on a corrupt file).
pub fn input_being_read(buf: &mut [u8]) -> usize {
    use std::sync::atomic::Ordering::Relaxed;
    let n = READING_LEN.load(Relaxed).min(buf.len());
    for (o, slot) in buf.iter_mut().zip(READING.iter()).take(n) {
        *o = slot.load(Relaxed);
    }
    n
}

/// Open an existing HDF5 file read-only, with clear messages for the usual failures.
pub(crate) fn open_read(path: &Path) -> Result<hdf5::File> {
    note_reading(path);
    if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(Error::file(path, "is a directory, expected an HDF5 file"));
    }
    crate::limits::check_input_file(path)?;
    match has_signature(path) {
        Ok(true) => {}
        Ok(false) => {
            return Err(Error::file(
                path,
                "not an HDF5 file (no HDF5 signature found); lgn expects HDF5 files, see docs/SCHEMA.md",
            ))
        }
        Err(e) => return Err(Error::file(path, format!("cannot read: {e}"))),
    }
    hdf5::File::open(path).map_err(|e| {
        let msg = h5msg(&e);
        if msg.contains("unable to lock file") {
            Error::file(
                path,
                format!(
                    "the file is locked by another process (still open for writing in h5py or another program?); close it there, or set HDF5_USE_FILE_LOCKING=FALSE if you know it is complete ({msg})"
                ),
            )
        } else {
            Error::file(path, format!("corrupt or truncated HDF5 file, cannot open it: {msg}"))
        }
    })
}

/// Human-readable name of an HDF5 type ("float64", "int32", "string", ...).
pub(crate) fn type_name(td: &TypeDescriptor) -> String {
    fn isz(s: &IntSize) -> usize {
        8 * (*s as usize)
    }
    match td {
        TypeDescriptor::Integer(s) => format!("int{}", isz(s)),
        TypeDescriptor::Unsigned(s) => format!("uint{}", isz(s)),
        TypeDescriptor::Float(s) => match s {
            FloatSize::U4 => "float32".into(),
            FloatSize::U8 => "float64".into(),
            #[allow(unreachable_patterns)]
            _ => format!("float{}", 8 * (*s as usize)),
        },
        TypeDescriptor::Boolean => "bool".into(),
        TypeDescriptor::Enum(_) => "enum".into(),
        TypeDescriptor::Compound(_) => "compound".into(),
        TypeDescriptor::FixedArray(t, n) => format!("{}[{n}]", type_name(t)),
        TypeDescriptor::FixedAscii(n) => format!("string (fixed {n}, ascii)"),
        TypeDescriptor::FixedUnicode(n) => format!("string (fixed {n}, utf-8)"),
        TypeDescriptor::VarLenArray(t) => format!("vlen {}", type_name(t)),
        TypeDescriptor::VarLenAscii => "string (vlen ascii)".into(),
        TypeDescriptor::VarLenUnicode => "string (vlen utf-8)".into(),
        TypeDescriptor::Reference(_) => "reference".into(),
    }
}

/// The dtype of a dataset or attribute as a descriptor, or a readable description of the failure.
pub(crate) fn descriptor(c: &hdf5::Container) -> std::result::Result<TypeDescriptor, String> {
    c.dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|e| format!("unsupported or unreadable dtype ({})", h5msg(&e)))
}

fn is_string(td: &TypeDescriptor) -> bool {
    matches!(
        td,
        TypeDescriptor::FixedAscii(_)
            | TypeDescriptor::FixedUnicode(_)
            | TypeDescriptor::VarLenAscii
            | TypeDescriptor::VarLenUnicode
    )
}

/// The attribute reads in progress (thread, since when, which), for [`stalled_read`].
type InRead = (std::thread::ThreadId, std::time::Instant, String);
static IN_READ: std::sync::Mutex<Vec<InRead>> = std::sync::Mutex::new(Vec::new());

/// Defence against a corrupt file making the HDF5 C library loop forever (seen on a
/// variable-length string attribute whose heap reference was damaged; h5py hangs on the same
/// file). An attribute is at most a few kilobytes, so a read that has lasted longer than
/// `limit` is stuck: this returns which attribute of which file, and the caller (the CLI's
/// watchdog) ends the process with that error. The C call itself cannot be interrupted.
pub fn stalled_read(limit: std::time::Duration) -> Option<String> {
    stalled_reads(limit).into_iter().next()
}

/// All attribute reads (of any thread) running for longer than `limit`.
pub fn stalled_reads(limit: std::time::Duration) -> Vec<String> {
    let g = IN_READ.lock().unwrap_or_else(|p| p.into_inner());
    g.iter()
        .filter(|(_, t, _)| t.elapsed() > limit)
        .map(|(_, _, w)| w.clone())
        .collect()
}

/// Run `f` as a watched attribute read (see [`stalled_read`]).
pub(crate) fn watched<T>(what: impl FnOnce() -> String, f: impl FnOnce() -> T) -> T {
    let me = std::thread::current().id();
    let entry = (me, std::time::Instant::now(), what());
    IN_READ
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(entry);
    let r = f();
    let mut g = IN_READ.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = g.iter().rposition(|(t, _, _)| *t == me) {
        g.swap_remove(i);
    }
    r
}

/// Most attributes lgn lists on one object, longest attribute name it reads, and most
/// elements of one attribute value (lgn's own attributes are scalars or short vectors).
/// A corrupt file can declare anything; these bounds are checked before any allocation.
const MAX_ATTRS: u64 = 1_000_000;
const MAX_ATTR_NAME: usize = 1 << 16;
const MAX_ATTR_ELEMS: u128 = 1 << 22;

/// What the attribute-listing callback collects.
struct AttrCollect {
    names: Vec<String>,
    limit: usize,
    err: Option<String>,
}

/// `H5Aiterate2` callback: copy one name (at most [`MAX_ATTR_NAME`] bytes are looked at).
unsafe extern "C" fn collect_attr_name(
    _loc: hdf5_sys::h5i::hid_t,
    name: *const std::os::raw::c_char,
    _info: *const hdf5_sys::h5a::H5A_info_t,
    data: *mut std::os::raw::c_void,
) -> hdf5_sys::h5::herr_t {
    // SAFETY: `data` is the `AttrCollect` passed by `attr_names`, alive for the whole call.
    let Some(out) = (unsafe { data.cast::<AttrCollect>().as_mut() }) else {
        return -1;
    };
    let i = out.names.len();
    if name.is_null() {
        out.err = Some(format!("attribute #{i} has no name (corrupt file?)"));
        return -1;
    }
    if i >= out.limit {
        out.err = Some(format!(
            "more attributes than the {} the object header declares (corrupt file?)",
            out.limit
        ));
        return -1;
    }
    // SAFETY: HDF5 passes a nul-terminated name valid during the callback; strnlen reads at
    // most MAX_ATTR_NAME + 1 bytes of it.
    let len = unsafe { libc::strnlen(name, MAX_ATTR_NAME + 1) };
    if len > MAX_ATTR_NAME {
        out.err = Some(format!(
            "attribute #{i} has a name longer than the {MAX_ATTR_NAME} bytes lgn reads (corrupt file?)"
        ));
        return -1;
    }
    // SAFETY: the `len` bytes before the terminator were just measured.
    let bytes = unsafe { std::slice::from_raw_parts(name.cast::<u8>(), len) };
    out.names.push(String::from_utf8_lossy(bytes).into_owned());
    0
}

/// Names of the attributes of `loc`, sorted by name.
///
/// Through the C API rather than the hdf5 crate's iteration, with every size bounded before
/// anything is allocated: the count from `H5Oget_info` (at most [`MAX_ATTRS`]), then one
/// `H5Aiterate2` pass (linear in the number of attributes, unlike per-index look-ups, which
/// rebuild the attribute table on every call) whose callback copies each name with a bounded
/// `strnlen`. The hdf5 crate trusted what a corrupt file declared (a fuzzed file made it
/// attempt a 7e18-byte allocation).
pub(crate) fn attr_names(loc: &Location) -> std::result::Result<Vec<String>, String> {
    use hdf5_sys::h5::{H5_index_t, H5_iter_order_t};
    let n = loc
        .loc_info()
        .map_err(|e| format!("cannot count the attributes: {}", h5msg(&e)))?
        .num_attrs as u64;
    if n > MAX_ATTRS {
        return Err(format!(
            "declares {n} attributes, more than the {MAX_ATTRS} lgn reads (corrupt file?)"
        ));
    }
    let mut out = AttrCollect {
        names: Vec::with_capacity(n as usize),
        limit: n as usize,
        err: None,
    };
    let id = loc.id();
    let mut pos: hdf5_sys::h5::hsize_t = 0;
    let ret = hdf5::sync::sync(|| {
        // SAFETY: `out` outlives the call; the callback matches H5A_operator2_t.
        unsafe {
            hdf5_sys::h5a::H5Aiterate2(
                id,
                H5_index_t::H5_INDEX_NAME,
                H5_iter_order_t::H5_ITER_INC,
                &mut pos,
                Some(collect_attr_name),
                std::ptr::addr_of_mut!(out).cast(),
            )
        }
    });
    if let Some(e) = out.err {
        return Err(e);
    }
    if ret < 0 {
        return Err(format!(
            "cannot list the attributes (stopped after {} of {n}; corrupt file?)",
            out.names.len()
        ));
    }
    Ok(out.names)
}

/// Read any attribute into an [`AttrValue`] (scalars, 1-D numeric arrays, scalar strings).
pub(crate) fn read_attr_value(attr: &hdf5::Attribute) -> std::result::Result<AttrValue, String> {
    watched(
        || {
            let file = attr.filename();
            let obj = attr.name();
            format!("{file}: attribute {obj}")
        },
        || read_attr_value_unwatched(attr),
    )
}

fn read_attr_value_unwatched(attr: &hdf5::Attribute) -> std::result::Result<AttrValue, String> {
    let td = descriptor(attr)?;
    let space = attr
        .space()
        .map_err(|e| format!("cannot read shape: {}", h5msg(&e)))?;
    if space.is_null() {
        return Err(format!(
            "empty (null dataspace) {} attribute",
            type_name(&td)
        ));
    }
    let shape = space.shape();
    let count = crate::limits::product(&shape);
    if count > MAX_ATTR_ELEMS {
        return Err(format!(
            "declares {count} values (shape {shape:?}), more than the {MAX_ATTR_ELEMS} lgn reads from one attribute (corrupt file?)"
        ));
    }
    let scalar = count == 1 && shape.len() <= 1;
    let first = |n: usize| -> std::result::Result<(), String> {
        if n == 0 {
            Err("attribute holds no value".into())
        } else {
            Ok(())
        }
    };
    let e = |e: hdf5::Error| format!("cannot read value: {}", h5msg(&e));
    match &td {
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) | TypeDescriptor::Boolean => {
            let v: Vec<i64> = if matches!(td, TypeDescriptor::Boolean) {
                attr.read_raw::<bool>()
                    .map_err(e)?
                    .into_iter()
                    .map(i64::from)
                    .collect()
            } else if matches!(td, TypeDescriptor::Unsigned(IntSize::U8)) {
                let raw = attr.read_raw::<u64>().map_err(e)?;
                let mut out = Vec::with_capacity(raw.len());
                for x in raw {
                    out.push(
                        i64::try_from(x).map_err(|_| format!("value {x} does not fit int64"))?,
                    );
                }
                out
            } else {
                attr.read_raw::<i64>().map_err(e)?
            };
            if scalar {
                first(v.len())?;
                Ok(AttrValue::Int(v[0]))
            } else if shape.len() == 1 {
                Ok(AttrValue::Ints(v))
            } else {
                Err(format!(
                    "{}-dimensional {} attribute",
                    shape.len(),
                    type_name(&td)
                ))
            }
        }
        TypeDescriptor::Float(_) => {
            let v = attr.read_raw::<f64>().map_err(e)?;
            if scalar {
                first(v.len())?;
                Ok(AttrValue::Float(v[0]))
            } else if shape.len() == 1 {
                Ok(AttrValue::Floats(v))
            } else {
                Err(format!(
                    "{}-dimensional {} attribute",
                    shape.len(),
                    type_name(&td)
                ))
            }
        }
        t if is_string(t) => {
            if !scalar {
                return Err(format!(
                    "string attribute with shape {shape:?}, expected a scalar"
                ));
            }
            // Bytes first: the hdf5 crate's `as_str` trusts the file to hold valid UTF-8.
            let bytes: Vec<u8> = match t {
                TypeDescriptor::VarLenUnicode => attr
                    .read_raw::<VarLenUnicode>()
                    .map_err(e)?
                    .first()
                    .ok_or("attribute holds no value")?
                    .as_bytes()
                    .to_vec(),
                TypeDescriptor::VarLenAscii => attr
                    .read_raw::<VarLenAscii>()
                    .map_err(e)?
                    .first()
                    .ok_or("attribute holds no value")?
                    .as_bytes()
                    .to_vec(),
                TypeDescriptor::FixedAscii(n) if *n <= 4096 => attr
                    .read_raw::<hdf5::types::FixedAscii<4096>>()
                    .map_err(e)?
                    .first()
                    .ok_or("attribute holds no value")?
                    .as_bytes()
                    .to_vec(),
                TypeDescriptor::FixedUnicode(n) if *n <= 4096 => attr
                    .read_raw::<hdf5::types::FixedUnicode<4096>>()
                    .map_err(e)?
                    .first()
                    .ok_or("attribute holds no value")?
                    .as_bytes()
                    .to_vec(),
                _ => return Err("fixed-length string longer than 4096 bytes".into()),
            };
            let s = match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(err) => {
                    return Err(format!(
                        "string is not valid UTF-8 (invalid byte at offset {}): {:?}",
                        err.utf8_error().valid_up_to(),
                        String::from_utf8_lossy(err.as_bytes())
                    ))
                }
            };
            let s = if matches!(
                t,
                TypeDescriptor::FixedAscii(_) | TypeDescriptor::FixedUnicode(_)
            ) {
                s.trim_end_matches(['\0', ' ']).to_string()
            } else {
                s
            };
            Ok(AttrValue::Str(s))
        }
        other => Err(format!("unsupported attribute dtype {}", type_name(other))),
    }
}

/// Values one hyperslab read holds at most when `lgn info` streams a dataset (8 MB of f64):
/// statistics and validation go through the file this much at a time (docs/SCHEMA.md).
pub const STREAM_CHUNK_ELEMS: usize = 1 << 20;

/// Visit every value of the float dataset `ds` of shape `shape` in C order, one hyperslab of
/// at most `budget` values at a time: `f(flat index of the first value, values)`, stopping
/// early when `f` returns false. The hyperslabs are whole trailing blocks where they fit
/// (rows of a matrix, frames of a trajectory), split along the first axis that does not fit.
pub(crate) fn stream_f64(
    ds: &Dataset,
    shape: &[usize],
    budget: usize,
    mut f: impl FnMut(usize, &[f64]) -> bool,
) -> hdf5::Result<()> {
    use hdf5::{Hyperslab, Selection, SliceOrIndex};
    let budget = budget.max(1);
    let r = shape.len();
    if r == 0 {
        let v = ds.read_raw::<f64>()?;
        f(0, &v);
        return Ok(());
    }
    if shape.contains(&0) {
        return Ok(());
    }
    // Split axis k: the first axis whose trailing block (product of the later extents) fits.
    let (mut k, mut inner) = (r - 1, 1usize);
    while k > 0 && inner.saturating_mul(shape[k]) <= budget {
        inner *= shape[k];
        k -= 1;
    }
    let step = (budget / inner).clamp(1, shape[k]);
    let outer: usize = shape[..k].iter().product();
    let mut buf: Vec<f64> = Vec::new();
    for o in 0..outer {
        let idx = unravel(o, &shape[..k]);
        let mut start = 0;
        while start < shape[k] {
            let end = (start + step).min(shape[k]);
            let mut sel: Vec<SliceOrIndex> = idx.iter().map(|&i| SliceOrIndex::Index(i)).collect();
            sel.push(SliceOrIndex::SliceTo {
                start,
                step: 1,
                end,
                block: 1,
            });
            for &n in &shape[k + 1..] {
                sel.push(SliceOrIndex::SliceTo {
                    start: 0,
                    step: 1,
                    end: n,
                    block: 1,
                });
            }
            let a =
                ds.read_slice::<f64, _, ndarray::IxDyn>(Selection::new(Hyperslab::from(sel)))?;
            let vals: &[f64] = match a.as_slice() {
                Some(v) => v,
                None => {
                    buf.clear();
                    buf.extend(a.iter());
                    &buf
                }
            };
            if !f((o * shape[k] + start) * inner, vals) {
                return Ok(());
            }
            start = end;
        }
    }
    Ok(())
}

/// A problem found while validating a file: location inside the file and message.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Path inside the file, e.g. `/edges` or `/@n_nodes` for an attribute of the root group.
    pub location: String,
    /// What is wrong.
    pub msg: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.msg)
    }
}

/// What element type a dataset must have.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Want {
    Float,
    Int,
}

/// Absolute location string of a dataset or group name relative to the root.
pub(crate) fn loc(name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/{name}")
    }
}

/// Location string of attribute `name` on object `obj` ("/" for root): `/@name`, `/training@seed`.
pub(crate) fn attr_loc(obj: &str, name: &str) -> String {
    if obj == "/" || obj.is_empty() {
        format!("/@{name}")
    } else {
        format!("{}@{name}", loc(obj))
    }
}

/// Refuse to write data that fails its own checks, naming the first problem.
pub(crate) fn refuse_invalid(path: &Path, problems: Vec<Problem>) -> Result<()> {
    match problems.into_iter().next() {
        Some(p) => Err(Error::file_at(
            path,
            p.location,
            format!("refusing to write: {}", p.msg),
        )),
        None => Ok(()),
    }
}

/// Reading context: an open file plus the list of problems found so far. Readers keep going
/// after a problem so that `lgn info` can list all of them; `finish` turns the first into an error.
pub(crate) struct Ctx {
    pub path: PathBuf,
    pub file: hdf5::File,
    pub problems: Vec<Problem>,
    /// Streaming mode (`lgn info`): float datasets of more values than this are validated one
    /// hyperslab of at most this many values at a time, never loaded whole (see
    /// [`Ctx::streams`]). None: readers load what they return.
    pub stream: Option<usize>,
}

impl Ctx {
    pub fn open(path: &Path) -> Result<Ctx> {
        Ok(Ctx {
            path: path.to_path_buf(),
            file: open_read(path)?,
            problems: Vec::new(),
            stream: None,
        })
    }

    pub fn problem(&mut self, location: impl Into<String>, msg: impl Into<String>) {
        self.problems.push(Problem {
            location: location.into(),
            msg: msg.into(),
        });
    }

    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Open `path`, run a kind's `read_ctx` and turn the problems into the result (panic-guarded).
    pub fn read_with<T>(path: &Path, read_ctx: impl FnOnce(&mut Ctx) -> Option<T>) -> Result<T> {
        guard(path, || {
            let mut ctx = Ctx::open(path)?;
            let value = read_ctx(&mut ctx);
            ctx.finish(value)
        })
    }

    /// Accept a freshly read value unless it, or the reading, had problems.
    pub fn accept<T>(&mut self, value: T, problems: Vec<Problem>) -> Option<T> {
        let bad = !problems.is_empty() || !self.ok();
        self.problems.extend(problems);
        if bad {
            None
        } else {
            Some(value)
        }
    }

    /// Turn the collected problems into the result.
    pub fn finish<T>(self, value: Option<T>) -> Result<T> {
        if let Some(p) = self.problems.first() {
            let more = self.problems.len() - 1;
            let mut msg = p.msg.clone();
            if more > 0 {
                msg.push_str(&format!(
                    " (and {more} more problem{}; run `lgn info {}` for the full list)",
                    if more == 1 { "" } else { "s" },
                    self.path.display()
                ));
            }
            return Err(Error::file_at(&self.path, p.location.clone(), msg));
        }
        match value {
            Some(v) => Ok(v),
            None => Err(Error::file(
                &self.path,
                "file does not follow the lgn schema",
            )),
        }
    }

    /// What kind of object lives at `name` (relative to root), None if nothing.
    fn obj_type(&self, name: &str) -> Option<LocationType> {
        // Check every intermediate link so H5Oget_info_by_name never sees a missing parent.
        let mut prefix = String::new();
        for part in name.trim_start_matches('/').split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if !self.file.link_exists(&prefix) {
                return None;
            }
        }
        self.file.loc_type_by_name(name).ok()
    }

    pub fn exists(&self, name: &str) -> bool {
        self.obj_type(name).is_some()
    }

    pub fn group(&mut self, name: &str, required: bool) -> Option<Group> {
        self.open_object(name, required, LocationType::Group, "group", |f, n| {
            f.group(n)
        })
    }

    pub fn dataset(&mut self, name: &str, required: bool) -> Option<Dataset> {
        self.open_object(name, required, LocationType::Dataset, "dataset", |f, n| {
            f.dataset(n)
        })
    }

    /// Open the object `name` of type `want` (called `what` in messages); a missing object
    /// (when `required`), another kind of object, or a failure to open it is recorded as a
    /// problem at its location.
    fn open_object<T>(
        &mut self,
        name: &str,
        required: bool,
        want: LocationType,
        what: &str,
        open: impl FnOnce(&hdf5::File, &str) -> hdf5::Result<T>,
    ) -> Option<T> {
        match self.obj_type(name) {
            None => {
                if required {
                    self.problem(loc(name), format!("required {what} is missing"));
                }
                None
            }
            Some(t) if t == want => match open(&self.file, name) {
                Ok(o) => Some(o),
                Err(e) => {
                    self.problem(loc(name), format!("cannot open {what}: {}", h5msg(&e)));
                    None
                }
            },
            Some(t) => {
                let found = match t {
                    LocationType::Group => "a group",
                    LocationType::Dataset => "a dataset",
                    _ => "another kind of object",
                };
                self.problem(loc(name), format!("expected a {what}, found {found}"));
                None
            }
        }
    }

    /// Open a dataset, check element type and rank; returns it with its shape.
    pub(super) fn checked(
        &mut self,
        name: &str,
        required: bool,
        want: Want,
        ndim: usize,
    ) -> Option<(Dataset, Vec<usize>)> {
        let ds = self.dataset(name, required)?;
        let td = match descriptor(&ds) {
            Ok(t) => t,
            Err(m) => {
                self.problem(loc(name), m);
                return None;
            }
        };
        let ok = matches!(
            (want, &td),
            (Want::Float, TypeDescriptor::Float(_))
                | (
                    Want::Int,
                    TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_)
                )
        );
        if !ok {
            let expected = match want {
                Want::Float => "float64",
                Want::Int => "an integer type (int64)",
            };
            self.problem(
                loc(name),
                format!("has dtype {}, expected {expected}", type_name(&td)),
            );
            return None;
        }
        let space = match ds.space() {
            Ok(s) => s,
            Err(e) => {
                self.problem(loc(name), format!("cannot read shape: {}", h5msg(&e)));
                return None;
            }
        };
        if space.is_null() {
            self.problem(loc(name), "dataset has no dataspace (empty/null dataset)");
            return None;
        }
        let shape = space.shape();
        if let Err(e) = crate::limits::check_alloc(
            &format!("dataset of shape {shape:?}"),
            crate::limits::product(&shape),
            8,
        ) {
            let msg = e.to_string();
            let msg = msg.strip_prefix("invalid input: ").unwrap_or(&msg);
            self.problem(loc(name), format!("cannot be read: {msg}"));
            return None;
        }
        if shape.len() != ndim {
            self.problem(
                loc(name),
                format!(
                    "has rank {} (shape {:?}), expected rank {ndim}",
                    shape.len(),
                    shape
                ),
            );
            return None;
        }
        Some((ds, shape))
    }

    fn read_f64(&mut self, name: &str, ds: &Dataset, finite: bool) -> Option<ArrayD<f64>> {
        match ds.read_dyn::<f64>() {
            Ok(a) => {
                if finite {
                    if let Some((i, x)) = a.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                        let idx = unravel(i, a.shape());
                        self.problem(
                            loc(name),
                            format!("value at index {idx:?} is {x}, expected a finite number"),
                        );
                        return None;
                    }
                }
                Some(a)
            }
            Err(e) => {
                self.problem(
                    loc(name),
                    format!("cannot read data (corrupt file?): {}", h5msg(&e)),
                );
                None
            }
        }
    }

    fn read_i64(&mut self, name: &str, ds: &Dataset) -> Option<ArrayD<i64>> {
        let td = descriptor(ds).ok()?;
        let r = if matches!(td, TypeDescriptor::Unsigned(IntSize::U8)) {
            ds.read_dyn::<u64>()
                .map(|a| a.mapv(|x| i64::try_from(x).unwrap_or(i64::MAX)))
        } else {
            ds.read_dyn::<i64>()
        };
        match r {
            Ok(a) => Some(a),
            Err(e) => {
                self.problem(
                    loc(name),
                    format!("cannot read data (corrupt file?): {}", h5msg(&e)),
                );
                None
            }
        }
    }

    fn f64_nd<D: Dimension>(
        &mut self,
        name: &str,
        required: bool,
        finite: bool,
    ) -> Option<ndarray::Array<f64, D>> {
        let ndim = D::NDIM.unwrap_or(0);
        let (ds, _) = self.checked(name, required, Want::Float, ndim)?;
        let a = self.read_f64(name, &ds, finite)?;
        a.into_dimensionality::<D>().ok()
    }

    pub fn f64_1d(&mut self, name: &str, required: bool) -> Option<Array1<f64>> {
        self.f64_nd::<Ix1>(name, required, true)
    }
    pub fn f64_1d_any(&mut self, name: &str, required: bool) -> Option<Array1<f64>> {
        self.f64_nd::<Ix1>(name, required, false)
    }
    pub fn f64_2d(&mut self, name: &str, required: bool) -> Option<Array2<f64>> {
        self.f64_nd::<Ix2>(name, required, true)
    }
    pub fn f64_3d(&mut self, name: &str, required: bool) -> Option<Array3<f64>> {
        self.f64_nd::<Ix3>(name, required, true)
    }
    /// [`Ctx::f64_3d`] without the finiteness check (the caller names the bad frame).
    pub fn f64_3d_any(&mut self, name: &str, required: bool) -> Option<Array3<f64>> {
        self.f64_nd::<Ix3>(name, required, false)
    }

    /// Whether `name` is a dataset that this context validates by streaming: only in
    /// streaming mode ([`Ctx::stream`], set by `lgn info`), for datasets of more values than
    /// the budget. Readers then call [`Ctx::f64_streamed`] instead of loading it.
    pub fn streams(&self, name: &str) -> bool {
        let Some(budget) = self.stream else {
            return false;
        };
        if !matches!(self.obj_type(name), Some(LocationType::Dataset)) {
            return false;
        }
        match self.file.dataset(name) {
            Ok(ds) => crate::limits::product(&ds.shape()) > budget as u128,
            Err(_) => false,
        }
    }

    /// A float dataset of rank `ndim` checked as [`Ctx::f64_2d`] and friends do (dtype, rank,
    /// size, every value finite) but one hyperslab at a time; returns only its shape.
    pub fn f64_streamed(&mut self, name: &str, required: bool, ndim: usize) -> Option<Vec<usize>> {
        let (ds, shape) = self.checked(name, required, Want::Float, ndim)?;
        let budget = self.stream.unwrap_or(STREAM_CHUNK_ELEMS);
        let mut bad = None;
        let r = stream_f64(&ds, &shape, budget, |off, vals| {
            match vals.iter().position(|x| !x.is_finite()) {
                Some(i) => {
                    bad = Some((off + i, vals[i]));
                    false
                }
                None => true,
            }
        });
        if let Err(e) = r {
            self.problem(
                loc(name),
                format!("cannot read data (corrupt file?): {}", h5msg(&e)),
            );
            return None;
        }
        if let Some((i, x)) = bad {
            let idx = unravel(i, &shape);
            self.problem(
                loc(name),
                format!("value at index {idx:?} is {x}, expected a finite number"),
            );
            return None;
        }
        Some(shape)
    }

    /// A float dataset of rank 1 or 2 (read flattened in C order) plus its shape.
    pub fn f64_flat(&mut self, name: &str, required: bool) -> Option<(Array1<f64>, Vec<usize>)> {
        let ds = self.dataset(name, required)?;
        let ndim = ds.ndim();
        let want = if ndim == 2 { 2 } else { 1 };
        let (ds, shape) = self.checked(name, true, Want::Float, want)?;
        let a = self.read_f64(name, &ds, true)?;
        let n = a.len();
        Some((
            Array1::from_shape_vec(n, a.into_iter().collect()).ok()?,
            shape,
        ))
    }

    pub fn i64_1d(&mut self, name: &str, required: bool) -> Option<Array1<i64>> {
        let (ds, _) = self.checked(name, required, Want::Int, 1)?;
        self.read_i64(name, &ds)?.into_dimensionality::<Ix1>().ok()
    }
    pub fn i64_2d(&mut self, name: &str, required: bool) -> Option<Array2<i64>> {
        let (ds, _) = self.checked(name, required, Want::Int, 2)?;
        self.read_i64(name, &ds)?.into_dimensionality::<Ix2>().ok()
    }

    /// A 0/1 flag vector: bool, int8 or uint8 (any integer type is accepted if values are 0/1).
    pub fn flags_1d(&mut self, name: &str, required: bool) -> Option<Vec<bool>> {
        let ds = self.dataset(name, required)?;
        if let Ok(TypeDescriptor::Boolean) = descriptor(&ds) {
            if let Err(e) = crate::limits::check_alloc(
                &format!("dataset of shape {:?}", ds.shape()),
                crate::limits::product(&ds.shape()),
                1,
            ) {
                self.problem(loc(name), format!("cannot be read: {e}"));
                return None;
            }
            if ds.ndim() != 1 {
                self.problem(
                    loc(name),
                    format!("has rank {}, expected rank 1", ds.ndim()),
                );
                return None;
            }
            return match ds.read_raw::<bool>() {
                Ok(v) => Some(v),
                Err(e) => {
                    self.problem(loc(name), format!("cannot read data: {}", h5msg(&e)));
                    None
                }
            };
        }
        let v = self.i64_1d(name, true)?;
        if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| **x != 0 && **x != 1) {
            self.problem(
                loc(name),
                format!("value at index {i} is {x}, expected 0 or 1"),
            );
            return None;
        }
        Some(v.iter().map(|x| *x == 1).collect())
    }

    /// Attribute of the object at `obj` ("/" for root), as an [`AttrValue`].
    pub fn attr(&mut self, obj: &str, name: &str, required: bool) -> Option<AttrValue> {
        let Ok(location) = self.file.group(obj) else {
            return None;
        };
        // One lookup by name (listing every attribute per lookup made files with many
        // attributes quadratic to read).
        let exists = location.attr_info(name).is_ok();
        if !exists {
            if required {
                self.problem(attr_loc(obj, name), "required attribute is missing");
            }
            return None;
        }
        let res = location
            .attr(name)
            .map_err(|e| format!("cannot open attribute: {}", h5msg(&e)))
            .and_then(|a| read_attr_value(&a));
        match res {
            Ok(v) => Some(v),
            Err(m) => {
                self.problem(attr_loc(obj, name), m);
                None
            }
        }
    }

    pub fn attr_str(&mut self, obj: &str, name: &str, required: bool) -> Option<String> {
        match self.attr(obj, name, required)? {
            AttrValue::Str(s) => Some(s),
            other => {
                self.problem(
                    attr_loc(obj, name),
                    format!("is {}, expected a string", other.type_name()),
                );
                None
            }
        }
    }

    pub fn attr_i64(&mut self, obj: &str, name: &str, required: bool) -> Option<i64> {
        match self.attr(obj, name, required)? {
            AttrValue::Int(i) => Some(i),
            AttrValue::Ints(v) if v.len() == 1 => Some(v[0]),
            other => {
                self.problem(
                    attr_loc(obj, name),
                    format!("is {}, expected an integer (int64)", other.type_name()),
                );
                None
            }
        }
    }

    /// A non-negative integer attribute as usize.
    pub fn attr_usize(&mut self, obj: &str, name: &str, required: bool) -> Option<usize> {
        let v = self.attr_i64(obj, name, required)?;
        match usize::try_from(v) {
            Ok(u) => Some(u),
            Err(_) => {
                self.problem(
                    attr_loc(obj, name),
                    format!("is {v}, expected a non-negative integer"),
                );
                None
            }
        }
    }

    /// A non-negative integer attribute as u64 (uint64 attributes keep their full range).
    pub fn attr_u64(&mut self, obj: &str, name: &str, required: bool) -> Option<u64> {
        let Ok(g) = self.file.group(obj) else {
            return None;
        };
        let is_unsigned = g
            .attr(name)
            .ok()
            .and_then(|a| descriptor(&a).ok())
            .is_some_and(|t| matches!(t, TypeDescriptor::Unsigned(_)));
        if is_unsigned {
            let scalar = g
                .attr(name)
                .ok()
                .map(|a| a.shape().iter().product::<usize>() == 1);
            match g.attr(name).and_then(|a| a.read_raw::<u64>()) {
                Ok(v) if scalar == Some(true) && v.len() == 1 => return Some(v[0]),
                Ok(v) => {
                    self.problem(
                        attr_loc(obj, name),
                        format!("has {} values, expected a scalar", v.len()),
                    );
                    return None;
                }
                Err(e) => {
                    self.problem(
                        attr_loc(obj, name),
                        format!("cannot read value: {}", h5msg(&e)),
                    );
                    return None;
                }
            }
        }
        let v = self.attr_i64(obj, name, required)?;
        match u64::try_from(v) {
            Ok(u) => Some(u),
            Err(_) => {
                self.problem(
                    attr_loc(obj, name),
                    format!("is {v}, expected a non-negative integer"),
                );
                None
            }
        }
    }

    /// All attributes of the object at `obj` not listed in `reserved`.
    pub fn extra_attrs(&mut self, obj: &str, reserved: &[&str]) -> BTreeMap<String, AttrValue> {
        let names = match self.file.group(obj) {
            Ok(g) => match attr_names(&g) {
                Ok(n) => n,
                Err(m) => {
                    self.problem(loc(obj), format!("cannot list attributes: {m}"));
                    Vec::new()
                }
            },
            Err(_) => Vec::new(),
        };
        let mut out = BTreeMap::new();
        for n in names {
            if reserved.contains(&n.as_str()) {
                continue;
            }
            if let Some(v) = self.attr(obj, &n, false) {
                out.insert(n, v);
            }
        }
        out
    }

    /// Numeric (finite, scalar) extra attributes as f64 system parameters.
    pub fn params(&mut self, reserved: &[&str]) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (k, v) in self.extra_attrs("/", reserved) {
            let x = match v {
                AttrValue::Float(x) => x,
                AttrValue::Int(i) => i as f64,
                _ => continue,
            };
            if x.is_finite() {
                out.insert(k, x);
            } else {
                self.problem(
                    attr_loc("/", &k),
                    format!("parameter is {x}, expected a finite number"),
                );
            }
        }
        out
    }

    /// Check `lgn_kind` / `lgn_schema_version`. Files without `lgn_kind` (plain files made by
    /// other tools) are accepted; a different kind or a newer schema version is a problem.
    pub fn check_kind(&mut self, expected: Kind) {
        let Some(kind) = self.attr_str("/", "lgn_kind", false) else {
            return;
        };
        match Kind::parse(&kind) {
            Some(k) if k == expected => {}
            Some(k) => self.problem(
                "/@lgn_kind",
                format!(
                    "this is an lgn '{}' file, expected a '{}' file",
                    k.as_str(),
                    expected.as_str()
                ),
            ),
            None => self.problem("/@lgn_kind", format!("unknown lgn kind '{kind}'")),
        }
        self.check_version();
    }

    pub fn check_version(&mut self) {
        if let Some(v) = self.attr_i64("/", "lgn_schema_version", true) {
            if !(MIN_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&v) {
                self.problem(
                    "/@lgn_schema_version",
                    format!("schema version {v} is not supported (this lgn reads versions {MIN_SCHEMA_VERSION} to {SCHEMA_VERSION})"),
                );
            }
        }
    }
}

/// Multi-index of flat C-order index `i` in an array of `shape`.
pub(crate) fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (k, &n) in shape.iter().enumerate().rev() {
        if n > 0 {
            idx[k] = i % n;
            i /= n;
        }
    }
    idx
}

// ---------------------------------------------------------------- writing

/// An HDF5 file being written to a temporary path, renamed into place by `commit`.
pub(crate) struct Out {
    pub file: Option<hdf5::File>,
    pub atomic: super::atomic::AtomicOutput,
}

impl Out {
    pub fn create(path: &Path, force: bool, kind: Kind) -> Result<Out> {
        let atomic = super::atomic::AtomicOutput::new(path, force)?;
        let file = hdf5::File::create(atomic.tmp_path())
            .map_err(|e| Error::file(path, format!("cannot create HDF5 file: {}", h5msg(&e))))?;
        let out = Out {
            file: Some(file),
            atomic,
        };
        out.attr("/", "lgn_kind", &AttrValue::Str(kind.as_str().into()))?;
        out.attr("/", "lgn_schema_version", &AttrValue::Int(SCHEMA_VERSION))?;
        Ok(out)
    }

    pub fn path(&self) -> &Path {
        self.atomic.target()
    }

    pub fn file(&self) -> &hdf5::File {
        // Always Some until commit consumes self.
        self.file.as_ref().expect("file is open until commit")
    }

    pub fn err(&self, location: &str, e: hdf5::Error) -> Error {
        Error::file_at(
            self.path(),
            location,
            format!("cannot write: {}", h5msg(&e)),
        )
    }

    pub fn group(&self, name: &str) -> Result<Group> {
        self.file()
            .create_group(name)
            .map_err(|e| self.err(&loc(name), e))
    }

    fn location(&self, obj: &str) -> Result<Group> {
        self.file().group(obj).map_err(|e| self.err(&loc(obj), e))
    }

    /// Write an attribute on group `obj` ("/" for root).
    pub fn attr(&self, obj: &str, name: &str, v: &AttrValue) -> Result<()> {
        let l = self.location(obj)?;
        write_attr(&l, name, v).map_err(|e| self.err(&attr_loc(obj, name), e))
    }

    /// Write a scalar uint64 attribute.
    pub fn attr_u64(&self, obj: &str, name: &str, v: u64) -> Result<()> {
        let l = self.location(obj)?;
        l.new_attr::<u64>()
            .shape(())
            .create(name)
            .and_then(|a| a.write_scalar(&v))
            .map_err(|e| self.err(&attr_loc(obj, name), e))
    }

    /// Write free-form attributes, skipping names reserved by the schema.
    pub fn extra_attrs(
        &self,
        obj: &str,
        attrs: &BTreeMap<String, AttrValue>,
        reserved: &[&str],
    ) -> Result<()> {
        for (k, v) in attrs {
            if !reserved.contains(&k.as_str()) {
                self.attr(obj, k, v)?;
            }
        }
        Ok(())
    }

    pub fn f64<'a, D: Dimension>(
        &self,
        name: &str,
        a: impl Into<ArrayView<'a, f64, D>>,
    ) -> Result<()> {
        self.array(name, a.into())
    }

    pub fn i64<'a, D: Dimension>(
        &self,
        name: &str,
        a: impl Into<ArrayView<'a, i64, D>>,
    ) -> Result<()> {
        self.array(name, a.into())
    }

    /// Dataset `name` holding `v` in C order (h5py reads it with the same shape).
    fn array<T: hdf5::H5Type + Clone, D: Dimension>(
        &self,
        name: &str,
        v: ArrayView<'_, T, D>,
    ) -> Result<()> {
        let v = v.as_standard_layout();
        self.file()
            .new_dataset_builder()
            .with_data(&v)
            .create(name)
            .map(|_| ())
            .map_err(|e| self.err(&loc(name), e))
    }

    pub fn u8_1d(&self, name: &str, a: &[u8]) -> Result<()> {
        self.file()
            .new_dataset_builder()
            .with_data(a)
            .create(name)
            .map(|_| ())
            .map_err(|e| self.err(&loc(name), e))
    }

    /// Close the file and move it into place.
    pub fn commit(mut self) -> Result<PathBuf> {
        if let Some(f) = self.file.take() {
            let path = self.path().to_path_buf();
            f.close()
                .map_err(|e| Error::file(&path, format!("cannot finish writing: {}", h5msg(&e))))?;
        }
        self.atomic.commit()
    }
}

/// Write one attribute (replacing an existing one of the same name).
pub(crate) fn write_attr(l: &Location, name: &str, v: &AttrValue) -> hdf5::Result<()> {
    if attr_names(l)
        .map_err(|m| hdf5::Error::from(m.as_str()))?
        .iter()
        .any(|n| n == name)
    {
        l.delete_attr(name)?;
    }
    match v {
        AttrValue::Str(s) => {
            let s: VarLenUnicode = s
                .parse()
                .map_err(|_| hdf5::Error::from("string contains a NUL byte"))?;
            l.new_attr::<VarLenUnicode>()
                .shape(())
                .create(name)?
                .write_scalar(&s)
        }
        AttrValue::Int(i) => l.new_attr::<i64>().shape(()).create(name)?.write_scalar(i),
        AttrValue::Float(x) => l.new_attr::<f64>().shape(()).create(name)?.write_scalar(x),
        AttrValue::Ints(v) => l
            .new_attr_builder()
            .with_data(v.as_slice())
            .create(name)
            .map(|_| ()),
        AttrValue::Floats(v) => l
            .new_attr_builder()
            .with_data(v.as_slice())
            .create(name)
            .map(|_| ()),
    }
}

/// Check values to be written are finite; name the first offender.
pub(crate) fn check_finite_out<'a, D: Dimension>(
    path: &Path,
    name: &str,
    a: impl Into<ArrayView<'a, f64, D>>,
) -> Result<()> {
    let a: ArrayView<'a, f64, D> = a.into();
    if let Some((i, x)) = a.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        let idx = unravel(i, a.shape());
        return Err(Error::file_at(
            path,
            loc(name),
            format!("refusing to write non-finite value {x} at index {idx:?}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("lgn-h5unit-{}-{name}", std::process::id()))
    }

    #[test]
    fn stalled_reads_are_reported_only_while_running() {
        use std::time::Duration;
        // Other tests read attributes concurrently: look for this read only.
        let mine = |v: Vec<String>| v.iter().any(|w| w == "f.h5: attribute x");
        assert!(!mine(stalled_reads(Duration::ZERO)));
        let seen = watched(
            || "f.h5: attribute x".to_string(),
            || {
                let t = std::time::Instant::now();
                while t.elapsed() == Duration::ZERO {}
                (
                    mine(stalled_reads(Duration::ZERO)),
                    mine(stalled_reads(Duration::from_secs(3600))),
                )
            },
        );
        assert_eq!(seen, (true, false));
        assert!(!mine(stalled_reads(Duration::ZERO)));
    }

    #[test]
    fn unravel_is_c_order() {
        assert_eq!(unravel(0, &[2, 3]), vec![0, 0]);
        assert_eq!(unravel(5, &[2, 3]), vec![1, 2]);
        assert_eq!(unravel(7, &[2, 2, 3]), vec![1, 0, 1]);
        assert_eq!(unravel(4, &[5]), vec![4]);
    }

    #[test]
    fn locations() {
        assert_eq!(loc("edges"), "/edges");
        assert_eq!(loc("/layers/0/weight"), "/layers/0/weight");
        assert_eq!(attr_loc("/", "n_nodes"), "/@n_nodes");
        assert_eq!(attr_loc("training", "seed"), "/training@seed");
    }

    #[test]
    fn signature_detection() {
        let p = tmp("sig.txt");
        std::fs::write(&p, b"hello, not hdf5 at all").unwrap();
        assert!(!has_signature(&p).unwrap());
        let e = open_read(&p).unwrap_err().to_string();
        assert!(e.contains("not an HDF5 file"), "{e}");
        // Signature after a 512-byte user block is found.
        let mut v = vec![0u8; 512];
        v.extend_from_slice(HDF5_SIGNATURE);
        std::fs::write(&p, &v).unwrap();
        assert!(has_signature(&p).unwrap());
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn type_names() {
        assert_eq!(type_name(&TypeDescriptor::Float(FloatSize::U8)), "float64");
        assert_eq!(type_name(&TypeDescriptor::Float(FloatSize::U4)), "float32");
        assert_eq!(type_name(&TypeDescriptor::Integer(IntSize::U8)), "int64");
        assert_eq!(type_name(&TypeDescriptor::Unsigned(IntSize::U1)), "uint8");
        assert!(type_name(&TypeDescriptor::VarLenUnicode).starts_with("string"));
    }

    #[test]
    fn attribute_values_round_trip() {
        let p = tmp("attrs.h5");
        let f = hdf5::File::create(&p).unwrap();
        let vals = [
            ("s", AttrValue::Str("héllo".into())),
            ("i", AttrValue::Int(-7)),
            ("x", AttrValue::Float(0.1)),
            ("iv", AttrValue::Ints(vec![1, 2, 3])),
            ("xv", AttrValue::Floats(vec![0.5, -1e300])),
        ];
        for (n, v) in &vals {
            write_attr(&f, n, v).unwrap();
        }
        // Overwriting replaces.
        write_attr(&f, "i", &AttrValue::Int(8)).unwrap();
        for (n, v) in &vals {
            let got = read_attr_value(&f.attr(n).unwrap()).unwrap();
            if *n == "i" {
                assert_eq!(got, AttrValue::Int(8));
            } else {
                assert_eq!(&got, v);
            }
        }
        // Null dataspace (h5py.Empty) is reported, not a panic.
        f.new_attr::<f64>()
            .shape(hdf5::Extents::Null)
            .create("empty")
            .unwrap();
        let e = read_attr_value(&f.attr("empty").unwrap()).unwrap_err();
        assert!(e.contains("null dataspace"), "{e}");
        // uint64 beyond int64 is reported, not wrapped.
        f.new_attr::<u64>()
            .shape(())
            .create("big")
            .unwrap()
            .write_scalar(&u64::MAX)
            .unwrap();
        let e = read_attr_value(&f.attr("big").unwrap()).unwrap_err();
        assert!(e.contains("does not fit"), "{e}");
        drop(f);
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn finish_reports_first_problem_and_count() {
        let p = tmp("finish.h5");
        hdf5::File::create(&p).unwrap();
        let mut ctx = Ctx::open(&p).unwrap();
        assert!(ctx.f64_1d("q", true).is_none());
        assert!(ctx.attr_usize("/", "dof", true).is_none());
        let e = ctx.finish::<()>(Some(())).unwrap_err();
        match e {
            Error::File { location, msg, .. } => {
                assert_eq!(location.as_deref(), Some("/q"));
                assert!(msg.contains("and 1 more problem;"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_file(&p).unwrap();
    }
}
