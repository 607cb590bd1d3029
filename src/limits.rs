//! Limits checked before work starts: sizes that do not fit in memory, step counts that would
//! never finish, input paths that are not regular files. Every check names the size, what it
//! would need and what is available, so a mistyped `--n 1000000000000` or a file declaring a
//! dataset of 10¹⁰ values is refused at once instead of aborting on a failed allocation.

use crate::{Error, Result};
use std::path::Path;
use std::sync::OnceLock;

/// The most fixed steps one integration may take (10¹⁰: hours of work for the smallest systems).
pub const MAX_STEPS: f64 = 1e10;

/// Memory that one allocation may claim: `MemAvailable` of /proc/meminfo (read once), or
/// 16 GiB where that is not known. `LGN_MEMORY_LIMIT` (bytes) overrides it.
pub fn memory_budget() -> u128 {
    static BUDGET: OnceLock<u128> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        if let Some(b) = std::env::var("LGN_MEMORY_LIMIT")
            .ok()
            .and_then(|s| s.trim().parse::<u128>().ok())
        {
            return b;
        }
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemAvailable:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u128>().ok())
            })
            .map(|kb| kb * 1024)
            .unwrap_or(16 << 30)
    })
}

/// "1.5 GiB", "80 GB"-style size.
pub fn human_bytes(b: u128) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut x = b as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} bytes")
    } else if x >= 1024.0 {
        format!("{x:.3e} {}", UNITS[u])
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

/// Refuse `count` values of `bytes_each` bytes (for `what`) when they exceed the memory budget.
pub fn check_alloc(what: &str, count: u128, bytes_each: u128) -> Result<()> {
    let need = count.saturating_mul(bytes_each);
    let budget = memory_budget();
    if need > budget {
        return Err(Error::input(format!(
            "{what}: {count} values would need {} of memory, more than the {} available",
            human_bytes(need),
            human_bytes(budget)
        )));
    }
    Ok(())
}

/// Product of sizes without overflow (saturating at u128::MAX).
pub fn product(sizes: &[usize]) -> u128 {
    sizes
        .iter()
        .fold(1u128, |acc, &n| acc.saturating_mul(n as u128))
}

/// The memory of an MLP with `inputs` inputs, `layers` hidden layers of width `hidden` and one
/// output (weights plus the optimiser's and the gradient's copies, about 4× the weights).
pub fn check_mlp(what: &str, inputs: usize, hidden: usize, layers: usize) -> Result<()> {
    if hidden == 0 || layers == 0 {
        return Err(Error::input(format!(
            "{what}: the MLP needs at least one hidden layer of width ≥ 1, got {layers} layer(s) of width {hidden}"
        )));
    }
    let h = hidden as u128;
    let weights = (inputs as u128 + 1)
        .saturating_mul(h)
        .saturating_add((layers as u128 - 1).saturating_mul(h.saturating_mul(h + 1)))
        .saturating_add(h + 1);
    check_alloc(
        &format!("{what} (MLP of {layers} hidden layer(s) of width {hidden})"),
        weights.saturating_mul(4),
        8,
    )
}

/// An input file must be an existing regular file (not a directory, FIFO, device or socket,
/// which would block or never end). Returns its length in bytes.
pub fn check_input_file(path: &Path) -> Result<u64> {
    let meta =
        std::fs::metadata(path).map_err(|e| Error::file(path, format!("cannot open: {e}")))?;
    if meta.is_dir() {
        return Err(Error::file(path, "is a directory, expected a file"));
    }
    if !meta.is_file() {
        return Err(Error::file(
            path,
            "is not a regular file (a FIFO, device or socket?); lgn reads its inputs from regular files only",
        ));
    }
    Ok(meta.len())
}

/// Refuse a fixed-step integration over `span` with step `dt` that needs more than
/// [`MAX_STEPS`] steps.
pub fn check_steps(span: f64, dt: f64) -> Result<()> {
    let steps = span / dt;
    if steps.is_nan() || steps > MAX_STEPS {
        return Err(Error::input(format!(
            "a time step of {} needs about {} steps to cover a time span of {}, more than the limit of {MAX_STEPS:e}; use a larger step",
            num(dt),
            num(steps),
            num(span)
        )));
    }
    Ok(())
}

/// The most output frames of one run (10¹²).
pub const MAX_FRAMES: f64 = 1e12;

/// Frames at t = 0, dt, …, up to t_end (round-off tolerant), refused beyond [`MAX_FRAMES`].
pub fn frame_count(t_end: f64, dt: f64) -> Result<usize> {
    let f = (t_end / dt + 1e-9).floor() + 1.0;
    if !(1.0..=MAX_FRAMES).contains(&f) {
        return Err(Error::input(format!(
            "t_end {} (--t-end) with dt {} (--dt) asks for {} output frames, more than the limit of {MAX_FRAMES:e}; use a larger dt or a shorter t_end",
            num(t_end),
            num(dt),
            num(f)
        )));
    }
    Ok(f as usize)
}

/// Free bytes on the file system holding `path` (its parent directory), if known.
pub fn free_disk(path: &Path) -> Option<u128> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs fills a zeroed struct for a NUL-terminated path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return None;
        }
        Some(st.f_bavail as u128 * st.f_frsize as u128)
    }
}

/// Refuse an output of `frames` frames of `bytes_per_frame` bytes that cannot fit on the file
/// system of `path`.
pub fn check_disk(path: &Path, frames: usize, bytes_per_frame: u128) -> Result<()> {
    let need = (frames as u128).saturating_mul(bytes_per_frame);
    if let Some(free) = free_disk(path) {
        if need > free {
            return Err(Error::file(
                path,
                format!(
                    "{frames} frames of {bytes_per_frame} bytes would need {} on disk, more than the {} free there; use a larger dt (--dt) or a shorter t_end (--t-end)",
                    human_bytes(need),
                    human_bytes(free)
                ),
            ));
        }
    }
    Ok(())
}

/// Short form of a number for messages: at most 6 significant digits ("1e300", not 301 digits).
pub fn num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if (1e-4..1e6).contains(&a) {
        let s = format!("{x:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        let s = format!("{x:.5e}");
        // 1.00000e300 -> 1e300
        match s.split_once('e') {
            Some((m, e)) => {
                let m = m.trim_end_matches('0').trim_end_matches('.');
                format!("{m}e{e}")
            }
            None => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_refuses_what_cannot_fit() {
        let e = check_alloc("dataset /q", 10_000_000_000_000, 8).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("dataset /q") && m.contains("10000000000000 values"),
            "{m}"
        );
        assert!(m.contains("TiB"), "{m}");
        assert!(check_alloc("x", 1000, 8).is_ok());
        assert!(check_alloc("x", u128::MAX, 8).is_err());
        assert_eq!(product(&[usize::MAX, usize::MAX, 4]), u128::MAX);
        assert_eq!(product(&[3, 4]), 12);
    }

    #[test]
    fn mlp_sizes() {
        assert!(check_mlp("--hidden", 4, 0, 2).is_err());
        assert!(check_mlp("--hidden", 4, 2, 0).is_err());
        assert!(check_mlp("--hidden", 4, 128, 3).is_ok());
        let m = check_mlp("--hidden", 4, 1_000_000_000_000, 2)
            .unwrap_err()
            .to_string();
        assert!(m.contains("width 1000000000000"), "{m}");
    }

    #[test]
    fn steps_and_numbers() {
        assert!(check_steps(10.0, 1e-300).is_err());
        assert!(check_steps(10.0, 0.001).is_ok());
        assert!(check_steps(10.0, f64::NAN).is_err());
        assert_eq!(num(1e300), "1e300");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(num(-2.0), "-2");
        assert_eq!(num(1.234567891e-7), "1.23457e-7");
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn non_regular_files_are_refused() {
        assert!(check_input_file(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        assert!(check_input_file(Path::new("/"))
            .unwrap_err()
            .to_string()
            .contains("directory"));
    }
}
