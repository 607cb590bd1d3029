//! [`Comm`] over `MPI_COMM_WORLD` (rsmpi's raw bindings to Open MPI; docs/DESIGN.md §16.2).
//!
//! Every operation is non-blocking underneath (`MPI_Isend`/`Irecv`, `MPI_Ibcast`,
//! `MPI_Igather(v)`, `MPI_Ibarrier`) and completed by polling `MPI_Testall` against a deadline,
//! so a dead or stuck peer gives [`CommError::Timeout`] instead of a hang. The library's error
//! handler is `MPI_ERRORS_RETURN`: MPI errors become [`CommError::Mpi`]. Messages travel in
//! buffers owned here (copied from and to the caller's): after a timeout they are leaked, never
//! freed under a pending request, and the communicator refuses further use
//! ([`CommError::Broken`]).

use super::{check_peers, check_root, Comm, CommError};
use crate::error::{Error, Result};
use mpi::ffi;
use std::cell::Cell;
use std::os::raw::{c_int, c_void};
use std::time::{Duration, Instant};

const TAG_SUM: c_int = 17_001;
const TAG_EXCHANGE: c_int = 17_002;
/// How long a wait polls without sleeping.
const SPIN: Duration = Duration::from_millis(200);

/// The MPI communicator of the whole job (`MPI_COMM_WORLD`). Holds the MPI environment: MPI is
/// finalised when it is dropped (so create it once, with [`super::world`] or [`MpiComm::init`]).
pub struct MpiComm {
    _universe: mpi::environment::Universe,
    comm: ffi::MPI_Comm,
    rank: usize,
    size: usize,
    timeout: Duration,
    broken: Cell<bool>,
}

fn len_c(op: &str, n: usize) -> Result<c_int> {
    c_int::try_from(n).map_err(|_| {
        Error::Comm(CommError::Usage {
            op: op.into(),
            msg: format!("{n} values do not fit one MPI message"),
        })
    })
}

impl MpiComm {
    /// Initialise MPI (threads: funnelled — only the thread that called this communicates;
    /// rayon's workers compute) and wrap `MPI_COMM_WORLD`. Each wait gives up after `timeout`.
    pub fn init(timeout: Duration) -> Result<MpiComm> {
        let (universe, _threading) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or_else(|| {
                Error::Comm(CommError::Usage {
                    op: "MPI_Init".into(),
                    msg: "MPI is already initialised in this process".into(),
                })
            })?;
        // SAFETY: MPI is initialised; the handles are the library's constants.
        let comm = unsafe { ffi::RSMPI_COMM_WORLD };
        let (mut rank, mut size): (c_int, c_int) = (0, 0);
        unsafe {
            ffi::MPI_Comm_set_errhandler(comm, ffi::RSMPI_ERRORS_RETURN);
            ffi::MPI_Comm_rank(comm, &mut rank);
            ffi::MPI_Comm_size(comm, &mut size);
        }
        Ok(MpiComm {
            _universe: universe,
            comm,
            rank: rank as usize,
            size: size as usize,
            timeout,
            broken: Cell::new(false),
        })
    }

    fn check_usable(&self, op: &str) -> Result<()> {
        if self.broken.get() {
            return Err(Error::Comm(CommError::Broken { op: op.into() }));
        }
        Ok(())
    }

    fn mpi_error(&self, op: &str, code: c_int) -> Error {
        self.broken.set(true);
        let mut buf = vec![0u8; 512];
        let mut len: c_int = 0;
        // SAFETY: the buffer is longer than MPI_MAX_ERROR_STRING (256 in Open MPI).
        unsafe { ffi::MPI_Error_string(code, buf.as_mut_ptr() as *mut _, &mut len) };
        buf.truncate(len.clamp(0, 512) as usize);
        Error::Comm(CommError::Mpi {
            op: op.into(),
            rank: self.rank,
            code,
            msg: String::from_utf8_lossy(&buf).into_owned(),
        })
    }

    fn ok(&self, op: &str, code: c_int) -> Result<()> {
        if code == 0 {
            Ok(())
        } else {
            Err(self.mpi_error(op, code))
        }
    }

    /// Poll `reqs` to completion before the deadline (statuses into `statuses` when given).
    /// On failure the caller must leak the buffers of `reqs`.
    fn wait(
        &self,
        op: &str,
        reqs: &mut [ffi::MPI_Request],
        statuses: Option<&mut [ffi::MPI_Status]>,
    ) -> Result<()> {
        let n = reqs.len() as c_int;
        let st = match statuses {
            Some(s) => s.as_mut_ptr(),
            // SAFETY: a library constant.
            None => unsafe { ffi::RSMPI_STATUSES_IGNORE },
        };
        let start = Instant::now();
        let mut polls = 0u64;
        loop {
            let mut flag: c_int = 0;
            // SAFETY: the requests are live, their buffers owned by the caller until done.
            let code = unsafe { ffi::MPI_Testall(n, reqs.as_mut_ptr(), &mut flag, st) };
            self.ok(op, code)?;
            if flag != 0 {
                return Ok(());
            }
            // MPI progresses (long messages travel in fragments) only inside MPI calls: poll
            // without sleeping for the first SPIN, yielding the core to other processes; then
            // poll every 200 µs until the deadline.
            polls += 1;
            if polls % 64 == 0 {
                let t = start.elapsed();
                if t > self.timeout {
                    self.broken.set(true);
                    return Err(Error::Comm(CommError::Timeout {
                        op: op.into(),
                        rank: self.rank,
                        seconds: self.timeout.as_secs_f64(),
                    }));
                }
                if t > SPIN {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
            }
            std::thread::yield_now();
        }
    }

    fn isend(&self, op: &str, data: &[f64], to: usize, tag: c_int) -> Result<ffi::MPI_Request> {
        let n = len_c(op, data.len())?;
        let mut r = unsafe { ffi::RSMPI_REQUEST_NULL };
        // SAFETY: `data` outlives the request (the caller waits or leaks it).
        let code = unsafe {
            ffi::MPI_Isend(
                data.as_ptr() as *const c_void,
                n,
                ffi::RSMPI_DOUBLE,
                to as c_int,
                tag,
                self.comm,
                &mut r,
            )
        };
        self.ok(op, code)?;
        Ok(r)
    }

    fn irecv(
        &self,
        op: &str,
        buf: &mut [f64],
        from: usize,
        tag: c_int,
    ) -> Result<ffi::MPI_Request> {
        let n = len_c(op, buf.len())?;
        let mut r = unsafe { ffi::RSMPI_REQUEST_NULL };
        // SAFETY: `buf` outlives the request (the caller waits or leaks it).
        let code = unsafe {
            ffi::MPI_Irecv(
                buf.as_mut_ptr() as *mut c_void,
                n,
                ffi::RSMPI_DOUBLE,
                from as c_int,
                tag,
                self.comm,
                &mut r,
            )
        };
        self.ok(op, code)?;
        Ok(r)
    }

    /// Broadcast raw bytes of `buf` (same length on every rank) from `root`.
    fn bcast_raw(&self, op: &str, root: usize, buf: &mut Vec<u8>) -> Result<()> {
        // SAFETY: a library constant.
        self.bcast_typed(op, root, buf, unsafe { ffi::RSMPI_UINT8_T })
    }

    /// Broadcast `buf` (same length on every rank, elements of MPI type `ty`) from `root`.
    fn bcast_typed<T>(
        &self,
        op: &str,
        root: usize,
        buf: &mut Vec<T>,
        ty: ffi::MPI_Datatype,
    ) -> Result<()> {
        let n = len_c(op, buf.len())?;
        let mut req = [unsafe { ffi::RSMPI_REQUEST_NULL }];
        // SAFETY: `buf` is ours; leaked below if the wait fails.
        let code = unsafe {
            ffi::MPI_Ibcast(
                buf.as_mut_ptr() as *mut c_void,
                n,
                ty,
                root as c_int,
                self.comm,
                &mut req[0],
            )
        };
        self.ok(op, code)?;
        if let Err(e) = self.wait(op, &mut req, None) {
            std::mem::forget(std::mem::take(buf));
            return Err(e);
        }
        Ok(())
    }

    fn bcast_len(&self, op: &str, root: usize, len: usize) -> Result<usize> {
        let mut b = (len as u64).to_le_bytes().to_vec();
        self.bcast_raw(op, root, &mut b)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_le_bytes(a) as usize)
    }
}

impl Comm for MpiComm {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }

    fn sum(&self, buf: &mut [f64]) -> Result<()> {
        const OP: &str = "sum over ranks";
        self.check_usable(OP)?;
        if self.size == 1 {
            return Ok(());
        }
        // Binary tree to rank 0 (rank r adds r + step at level step = 1, 2, 4, …), then a
        // broadcast: the grouping depends on the ranks only (docs/DESIGN.md §16.2).
        let mut acc = buf.to_vec();
        let mut tmp = vec![0.0; buf.len()];
        let mut step = 1;
        while step < self.size {
            if self.rank % (2 * step) == 0 {
                let peer = self.rank + step;
                if peer < self.size {
                    let mut req = [self.irecv(OP, &mut tmp, peer, TAG_SUM)?];
                    let mut st = [unsafe { std::mem::zeroed::<ffi::MPI_Status>() }];
                    if let Err(e) = self.wait(OP, &mut req, Some(&mut st)) {
                        std::mem::forget(tmp);
                        return Err(e);
                    }
                    self.check_count(OP, &st[0], peer, buf.len())?;
                    acc.iter_mut().zip(&tmp).for_each(|(a, t)| *a += t);
                }
            } else {
                let mut req = [self.isend(OP, &acc, self.rank - step, TAG_SUM)?];
                if let Err(e) = self.wait(OP, &mut req, None) {
                    std::mem::forget(acc);
                    return Err(e);
                }
                break;
            }
            step *= 2;
        }
        // SAFETY: a library constant.
        self.bcast_typed(OP, 0, &mut acc, unsafe { ffi::RSMPI_DOUBLE })?;
        buf.copy_from_slice(&acc);
        Ok(())
    }

    fn broadcast(&self, root: usize, buf: &mut [f64]) -> Result<()> {
        const OP: &str = "broadcast";
        self.check_usable(OP)?;
        check_root(OP, root, self.size)?;
        let mut own = buf.to_vec();
        // SAFETY: a library constant.
        self.bcast_typed(OP, root, &mut own, unsafe { ffi::RSMPI_DOUBLE })?;
        buf.copy_from_slice(&own);
        Ok(())
    }

    fn broadcast_bytes(&self, root: usize, buf: &mut Vec<u8>) -> Result<()> {
        const OP: &str = "broadcast";
        self.check_usable(OP)?;
        check_root(OP, root, self.size)?;
        let n = self.bcast_len(OP, root, buf.len())?;
        let mut b = if self.rank == root {
            std::mem::take(buf)
        } else {
            vec![0u8; n]
        };
        self.bcast_raw(OP, root, &mut b)?;
        *buf = b;
        Ok(())
    }

    fn exchange(&self, sends: &[(usize, &[f64])], recvs: &mut [(usize, &mut [f64])]) -> Result<()> {
        const OP: &str = "neighbour exchange";
        self.check_usable(OP)?;
        check_peers(OP, sends.iter().map(|s| s.0), self.size)?;
        check_peers(OP, recvs.iter().map(|r| r.0), self.size)?;
        let out: Vec<Vec<f64>> = sends.iter().map(|(_, d)| d.to_vec()).collect();
        let mut inb: Vec<Vec<f64>> = recvs.iter().map(|(_, b)| vec![0.0; b.len()]).collect();
        let mut reqs = Vec::with_capacity(out.len() + inb.len());
        for ((peer, _), b) in recvs.iter().zip(inb.iter_mut()) {
            reqs.push(self.irecv(OP, b, *peer, TAG_EXCHANGE)?);
        }
        for ((peer, _), d) in sends.iter().zip(&out) {
            reqs.push(self.isend(OP, d, *peer, TAG_EXCHANGE)?);
        }
        let mut st = vec![unsafe { std::mem::zeroed::<ffi::MPI_Status>() }; reqs.len()];
        if let Err(e) = self.wait(OP, &mut reqs, Some(&mut st)) {
            std::mem::forget(out);
            std::mem::forget(inb);
            return Err(e);
        }
        for (k, ((peer, dst), src)) in recvs.iter_mut().zip(&inb).enumerate() {
            self.check_count(OP, &st[k], *peer, dst.len())?;
            dst.copy_from_slice(src);
        }
        Ok(())
    }

    fn gather(&self, root: usize, local: &[f64]) -> Result<Option<Vec<Vec<f64>>>> {
        const OP: &str = "gather";
        self.check_usable(OP)?;
        check_root(OP, root, self.size)?;
        // The counts first (one u64 per rank), then the data (MPI_Igatherv).
        let mine = (local.len() as u64).to_le_bytes().to_vec();
        let mut counts_b = vec![0u8; 8 * self.size];
        let mut req = [unsafe { ffi::RSMPI_REQUEST_NULL }];
        let code = unsafe {
            ffi::MPI_Igather(
                mine.as_ptr() as *const c_void,
                8,
                ffi::RSMPI_UINT8_T,
                counts_b.as_mut_ptr() as *mut c_void,
                8,
                ffi::RSMPI_UINT8_T,
                root as c_int,
                self.comm,
                &mut req[0],
            )
        };
        self.ok(OP, code)?;
        if let Err(e) = self.wait(OP, &mut req, None) {
            std::mem::forget(mine);
            std::mem::forget(counts_b);
            return Err(e);
        }
        let counts: Vec<usize> = counts_b
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as usize)
            .collect();
        let total: usize = counts.iter().sum();
        let is_root = self.rank == root;
        let (cnt, displs): (Vec<c_int>, Vec<c_int>) = if is_root {
            let mut d = Vec::with_capacity(self.size);
            let mut at = 0usize;
            for &c in &counts {
                d.push(len_c(OP, at)?);
                at += c;
            }
            let c = counts
                .iter()
                .map(|&c| len_c(OP, c))
                .collect::<Result<Vec<_>>>()?;
            len_c(OP, total)?;
            (c, d)
        } else {
            (vec![0; self.size], vec![0; self.size])
        };
        let send = local.to_vec();
        let mut recv = vec![0.0; if is_root { total } else { 0 }];
        let n = len_c(OP, send.len())?;
        let code = unsafe {
            ffi::MPI_Igatherv(
                send.as_ptr() as *const c_void,
                n,
                ffi::RSMPI_DOUBLE,
                recv.as_mut_ptr() as *mut c_void,
                cnt.as_ptr(),
                displs.as_ptr(),
                ffi::RSMPI_DOUBLE,
                root as c_int,
                self.comm,
                &mut req[0],
            )
        };
        self.ok(OP, code)?;
        if let Err(e) = self.wait(OP, &mut req, None) {
            std::mem::forget(send);
            std::mem::forget(recv);
            std::mem::forget(cnt);
            std::mem::forget(displs);
            return Err(e);
        }
        if !is_root {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(self.size);
        let mut at = 0;
        for &c in &counts {
            out.push(recv[at..at + c].to_vec());
            at += c;
        }
        Ok(Some(out))
    }

    fn barrier(&self) -> Result<()> {
        const OP: &str = "barrier";
        self.check_usable(OP)?;
        let mut req = [unsafe { ffi::RSMPI_REQUEST_NULL }];
        let code = unsafe { ffi::MPI_Ibarrier(self.comm, &mut req[0]) };
        self.ok(OP, code)?;
        self.wait(OP, &mut req, None)
    }

    fn abort(&self, code: i32) -> ! {
        // SAFETY: MPI is initialised; MPI_Abort ends every rank and does not return.
        unsafe {
            ffi::MPI_Abort(self.comm, code as c_int);
        }
        std::process::exit(code)
    }
}

impl MpiComm {
    fn check_count(
        &self,
        op: &str,
        st: &ffi::MPI_Status,
        peer: usize,
        expected: usize,
    ) -> Result<()> {
        let mut got: c_int = 0;
        // SAFETY: `st` was filled by MPI_Testall for a completed receive.
        let code = unsafe { ffi::MPI_Get_count(st, ffi::RSMPI_DOUBLE, &mut got) };
        self.ok(op, code)?;
        if got as usize != expected {
            return Err(Error::Comm(CommError::Size {
                op: op.into(),
                rank: self.rank,
                peer,
                expected,
                got: got as usize,
            }));
        }
        Ok(())
    }
}
