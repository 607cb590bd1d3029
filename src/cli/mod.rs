//! The `lgn` command line: a thin layer over the library.

mod accel;
mod bench;
mod checks;
mod choice;
mod demo;
mod experiment;
mod generate;
mod generate_driven;
mod info;
mod io_glue;
mod progress;
mod signals;
mod simulate;
mod train;
mod train_driven;
mod train_graph;
mod train_mpi;
mod train_positions;

use clap::{CommandFactory, Parser, Subcommand};
use std::ffi::OsString;

/// lgn — Lagrangian Neural Networks and Lagrangian Graph Networks.
///
/// A Lagrangian L(q, q̇) = Σ_s ρ(q_{I_s}, q̇_{I_s}) summed over graph sites gives accelerations
/// through the Euler–Lagrange equation q̈ = M⁻¹(∂L/∂q − C q̇). lgn evaluates ρ with exact
/// derivatives and solves with the sparsity of M: linear time where the paper's dense
/// pseudo-inverse is cubic.
#[derive(Parser, Debug)]
#[command(name = "lgn", version, about, long_about = None, after_help = "Examples:\n  lgn accel --system dblpend --state \"0.5,1.0,0.0,0.2\" --json\n  lgn accel --system wave1d --n 100 --density mlp --hidden 64 --state state.h5\n  lgn bench accel --n 100000 --hidden 128 --solver sparse --json")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Accelerations q̈ of a system at one state.
    Accel(accel::AccelArgs),
    /// Train an LNN / LGN / MLP / HNN on a samples file (exact adjoint gradients).
    Train(train::TrainArgs),
    /// Benchmarks: acceleration evaluation, training steps, GEMM peak.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The whole pipeline in a couple of minutes: generate → train → simulate (1D wave), files in --out.
    Demo(demo::DemoArgs),
    /// The paper's experiments end to end: metrics (JSON, Markdown) and PNG figures.
    Experiment(experiment::ExperimentArgs),
    /// Summarise an lgn HDF5 file (graph, state, samples, trajectories, model) and validate it.
    Info(info::InfoArgs),
    /// Generate training samples or ground-truth trajectories (HDF5) for a paper system.
    Generate(generate::GenerateArgs),
    /// Integrate a system from one state and stream the trajectory to HDF5.
    Simulate(simulate::SimulateArgs),
}

/// Run the CLI; returns the process exit code.
pub fn run() -> i32 {
    signals::install();
    let cli = Cli::parse_from(negative_values(std::env::args_os().collect()));
    lgn::bench::configure_allocator();
    let result = match cli.command {
        Command::Accel(a) => accel::run(a),
        Command::Bench(b) => bench::run(b),
        Command::Info(i) => info::run(i),
        Command::Demo(d) => demo::run(d),
        Command::Experiment(e) => experiment::run(e),
        Command::Train(t) => train::run(t),
        Command::Generate(g) => generate::run(g),
        Command::Simulate(s) => simulate::run(s),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", compact_numbers(&e.to_string()));
            1
        }
    }
}

/// Shorten the decimal expansions that Rust's `Display` gives huge or tiny floats (1e300 is
/// printed with 301 digits) to 6 significant digits, so messages stay readable. Numbers of up
/// to 21 characters (every integer index, count or seed) are left as they are.
fn compact_numbers(msg: &str) -> String {
    let b = msg.as_bytes();
    let mut out = String::with_capacity(msg.len());
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit()
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.'));
        if !starts {
            let ch = msg[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let mut j = i;
        while j < b.len()
            && (b[j].is_ascii_digit()
                || (b[j] == b'.' && j + 1 < b.len() && b[j + 1].is_ascii_digit()))
        {
            j += 1;
        }
        let tok = &msg[i..j];
        match tok.parse::<f64>() {
            Ok(x) if tok.len() > 21 => out.push_str(&lgn::limits::num(x)),
            _ => out.push_str(tok),
        }
        i = j;
    }
    out
}

/// Does `s` look like a negative number or a list starting with one ("-0.5", "-2",
/// "-1e-3,0.5", "-inf", ".5" is not negative)? Such a token after an option that takes a value
/// is that option's value, not an unknown option.
fn looks_negative(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('-') else {
        return false;
    };
    let first = rest.split(',').next().unwrap_or("").trim();
    let lower = first.to_ascii_lowercase();
    rest.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        || matches!(lower.as_str(), "inf" | "infinity" | "nan")
}

/// Rewrite `--opt -0.5,1` as `--opt=-0.5,1` for every option of the (sub)command that takes a
/// value, so negative numbers can be typed as users type them (`--g -2`, `--state "-0.5,1,0,0"`).
/// Flags and positionals are left alone; `--` ends option processing.
fn negative_values(args: Vec<OsString>) -> Vec<OsString> {
    let root = Cli::command();
    let mut cmd = &root;
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter().peekable();
    if let Some(a0) = it.next() {
        out.push(a0);
    }
    while let Some(a) = it.next() {
        let s = a.to_string_lossy().into_owned();
        if s == "--" {
            out.push(a);
            out.extend(it);
            break;
        }
        if let Some(sub) = cmd.find_subcommand(&s) {
            cmd = sub;
            out.push(a);
            continue;
        }
        if let Some(long) = s.strip_prefix("--").filter(|l| !l.contains('=')) {
            let takes_value = cmd
                .get_arguments()
                .find(|x| x.get_long() == Some(long))
                .is_some_and(|x| x.get_action().takes_values());
            let next_negative = it
                .peek()
                .and_then(|n| n.to_str())
                .is_some_and(looks_negative);
            if takes_value && next_negative {
                let v = it.next().unwrap_or_default();
                let mut joined = a;
                joined.push("=");
                joined.push(v);
                out.push(joined);
                continue;
            }
        }
        out.push(a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn long_numbers_are_compacted() {
        let big = format!("--dt must be positive, got {}", 1e300);
        assert!(big.len() > 300);
        assert_eq!(compact_numbers(&big), "--dt must be positive, got 1e300");
        let tiny = format!("step {} too small", -1e-300);
        assert_eq!(compact_numbers(&tiny), "step -1e-300 too small");
        let keep = "sample 12345 of seed 18446744073709551615 at t = 0.125, f64x2";
        assert_eq!(compact_numbers(keep), keep);
    }

    #[test]
    fn negative_values_join_only_value_options() {
        let got = negative_values(os(&[
            "lgn",
            "accel",
            "--system",
            "dblpend",
            "--state",
            "-0.5,1,0,0",
            "--g",
            "-2",
            "--json",
        ]));
        assert_eq!(
            got,
            os(&[
                "lgn",
                "accel",
                "--system",
                "dblpend",
                "--state=-0.5,1,0,0",
                "--g=-2",
                "--json"
            ])
        );
        // A flag followed by a negative-looking token is left for clap to reject.
        let got = negative_values(os(&["lgn", "accel", "--json", "-1"]));
        assert_eq!(got, os(&["lgn", "accel", "--json", "-1"]));
        // Options are looked up in the subcommand actually given.
        let got = negative_values(os(&[
            "lgn",
            "generate",
            "relativistic",
            "--g-range",
            "-1,1",
        ]));
        assert_eq!(
            got,
            os(&["lgn", "generate", "relativistic", "--g-range=-1,1"])
        );
        assert!(looks_negative("-inf") && looks_negative("-.5") && !looks_negative("--json"));
        assert!(!looks_negative("-x") && !looks_negative("0.5"));
    }
}
