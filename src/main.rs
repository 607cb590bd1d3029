//! The `lgn` binary: see `lgn --help`.
mod cli;

fn main() {
    // Behave like a Unix filter: `lgn info big.h5 | head` ends quietly instead of panicking.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(cli::run());
}
