//! The `lgn` binary: see `lgn --help`.
mod cli;

fn main() {
    std::process::exit(cli::run());
}
