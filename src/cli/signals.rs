//! SIGINT, SIGTERM and SIGHUP: never leave a half-written output behind.
//!
//! [`install`] (called once by `cli::run` before any command) routes the three signals to a
//! watcher thread through a self-pipe: the async-signal handler only records the signal number
//! and writes one byte. The watcher then
//!
//! * for a command that registered a graceful stop ([`set_graceful`], `lgn train`), sets the
//!   stop flag on the first signal: the command finishes its current step and writes its
//!   result (the best model so far), as a batch scheduler's SIGTERM at the time limit expects;
//! * otherwise, or on a second signal, removes the temporary files of all pending outputs
//!   ([`lgn::io::remove_pending`]), says so on stderr and ends the process with the shell's
//!   code for that signal (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP). Committed files
//!   are never touched, and a target that did not exist is not created: an interrupted
//!   `lgn simulate` leaves nothing (no partial trajectory).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);
static GRACEFUL: Mutex<Option<Arc<AtomicBool>>> = Mutex::new(None);

extern "C" fn on_signal(sig: libc::c_int) {
    LAST_SIGNAL.store(sig, Ordering::SeqCst);
    let fd = WRITE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
        unsafe {
            libc::write(fd, (&b as *const u8).cast(), 1);
        }
    }
}

fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

/// Install the handlers and start the watcher thread (idempotent; errors leave the defaults).
pub fn install() {
    if WRITE_FD.load(Ordering::SeqCst) >= 0 {
        return;
    }
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: plain libc calls on local buffers; the handler only uses async-signal-safe calls.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            return;
        }
        for fd in fds {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    let (rd, wr) = (fds[0], fds[1]);
    let _ = std::thread::Builder::new()
        .name("lgn-hdf5-watchdog".into())
        .spawn(watchdog);
    WRITE_FD.store(wr, Ordering::SeqCst);
    let spawned = std::thread::Builder::new()
        .name("lgn-signals".into())
        .spawn(move || watch(rd));
    if spawned.is_err() {
        WRITE_FD.store(-1, Ordering::SeqCst);
        return;
    }
    install_crash_handler();
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installing an extern "C" handler with an empty mask.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Let the first signal set `stop` instead of ending the process (a second one still ends it).
pub fn set_graceful(stop: Arc<AtomicBool>) {
    *GRACEFUL.lock().unwrap_or_else(|p| p.into_inner()) = Some(stop);
}

fn watch(rd: libc::c_int) {
    let mut seen = 0usize;
    loop {
        let mut b = 0u8;
        // SAFETY: reading one byte into a local buffer from our own pipe.
        let r = unsafe { libc::read(rd, (&mut b as *mut u8).cast(), 1) };
        if r == 0 {
            return;
        }
        if r < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        seen += 1;
        let sig = match LAST_SIGNAL.load(Ordering::SeqCst) {
            0 => b as i32,
            s => s,
        };
        let graceful = GRACEFUL.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let (Some(stop), 1) = (graceful, seen) {
            stop.store(true, Ordering::SeqCst);
            eprintln!(
                "lgn: {} received: stopping after the current step and writing the result so far (send it again to abort without writing)",
                name(sig)
            );
            continue;
        }
        let removed = lgn::io::remove_pending();
        let what = if removed.is_empty() {
            "nothing was left half-written".to_string()
        } else {
            format!(
                "removed the unfinished temporary file{} {}; no output was written",
                if removed.len() == 1 { "" } else { "s" },
                removed
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        eprintln!("lgn: {} received: stopped; {what}", name(sig));
        // SAFETY: _exit skips atexit handlers (the HDF5 library may be in use on the main
        // thread); the temporary files are already gone.
        unsafe { libc::_exit(128 + sig) };
    }
}

/// How long one HDF5 attribute read may take before the file is declared corrupt.
const STALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Ends the process with an error when the HDF5 library is stuck inside an attribute read (a
/// corrupt file can make it loop forever; see [`lgn::io::stalled_read`]).
fn watchdog() {
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        if let Some(what) = lgn::io::stalled_read(STALL_LIMIT) {
            lgn::io::remove_pending();
            eprintln!(
                "error: {what}: the HDF5 library has been stuck for {} s reading this attribute (a few bytes at most); the file is corrupt (damaged variable-length data?). Nothing was written.",
                STALL_LIMIT.as_secs()
            );
            // SAFETY: the main thread is stuck inside the HDF5 library; skip its atexit handlers.
            unsafe { libc::_exit(1) };
        }
    }
}

/// SIGSEGV/SIGBUS/SIGFPE: the system HDF5 C library can crash on a corrupt file (found by the
/// `hdf5` fuzz target: H5A__close during attribute iteration). Nothing can be recovered, but
/// the user gets a message naming the file instead of a bare "Segmentation fault", and exit
/// status 1. Only async-signal-safe calls: write(2) and _exit(2). Runs on its own stack.
extern "C" fn on_crash(sig: libc::c_int) {
    let mut path = [0u8; 1024];
    let n = lgn::io::input_being_read(&mut path);
    let what: &[u8] = match sig {
        libc::SIGSEGV => b"SIGSEGV",
        libc::SIGBUS => b"SIGBUS",
        _ => b"SIGFPE",
    };
    let mut parts: [&[u8]; 5] = [b"error: ", &path[..n], b": ", b"", b""];
    if n == 0 {
        parts = [b"error: lgn crashed (", what, b")", b"", b"\n"];
    } else {
        parts[3] = b"the HDF5 library crashed while reading this file (";
        parts[4] = what;
    }
    for p in parts {
        // SAFETY: write(2) is async-signal-safe; the buffers are valid.
        unsafe { libc::write(2, p.as_ptr().cast(), p.len()) };
    }
    if n > 0 {
        let tail: &[u8] = b"); the file is corrupt. Nothing was written.\n";
        unsafe { libc::write(2, tail.as_ptr().cast(), tail.len()) };
    }
    // SAFETY: ends the process at once, as the crash would have.
    unsafe { libc::_exit(1) };
}

fn install_crash_handler() {
    const STACK: usize = 64 * 1024;
    // SAFETY: a leaked, never-freed alternate stack; the handler is an extern "C" fn.
    unsafe {
        let mem = Box::leak(vec![0u8; STACK].into_boxed_slice());
        let ss = libc::stack_t {
            ss_sp: mem.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: STACK,
        };
        if libc::sigaltstack(&ss, std::ptr::null_mut()) != 0 {
            return;
        }
        for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE] {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_crash as *const () as usize;
            sa.sa_flags = libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}
