//! Build script: detects whether rustc has the AVX-512 intrinsics of `std::arch` (stable since
//! Rust 1.89; the crate's MSRV is older). With them the MLP passes use the register-tiled
//! backward step of src/density/contract512.rs on AVX-512 CPUs (cfg `lgn_avx512`); without
//! them the slice kernels run on every CPU (docs/DESIGN.md §15.5).

use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(lgn_avx512)");
    println!("cargo::rerun-if-changed=build.rs");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    // "rustc 1.95.0 (…)" → (1, 95)
    let mut parts = version
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().flatten(), parts.next().flatten());
    if matches!((major, minor), (Some(1), Some(m)) if m >= 89) || major.is_some_and(|m| m > 1) {
        println!("cargo::rustc-cfg=lgn_avx512");
    }
}
