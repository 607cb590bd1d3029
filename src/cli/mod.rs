//! The `lgn` command line: a thin layer over the library.

mod accel;
mod bench;
mod checks;
mod demo;
mod experiment;
mod generate;
mod info;
mod io_glue;
mod signals;
mod simulate;
mod train;

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
            eprintln!("error: {e}");
            1
        }
    }
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
