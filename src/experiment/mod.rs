//! The paper's experiments end to end (`lgn experiment NAME`): generate data → train →
//! simulate → metrics (JSON + Markdown) and PNG figures in an output folder.
//!
//! Every experiment takes [`ExperimentOptions`] and returns an [`ExperimentReport`] whose
//! `metrics` name the headline numbers plainly (e.g. `lnn_energy_error`). `--quick` runs are
//! small, seeded and finish in about two minutes: the tests use them and assert on outcomes.

pub mod damped;
mod damped_mesh;
pub mod dblpend;
pub mod mesh;
pub mod noisy;
pub mod relativistic;
pub mod wave1d;

use crate::train::Progress;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options shared by every experiment.
#[derive(Clone, Debug)]
pub struct ExperimentOptions {
    /// Output folder (created if missing).
    pub out: PathBuf,
    /// Small, fast configuration (≤ 2 min), used by tests.
    pub quick: bool,
    /// Base random seed.
    pub seed: u64,
    /// Overwrite existing files in `out`.
    pub force: bool,
    /// Receives the experiment's stages and training progress (the library prints nothing).
    pub observer: Observer,
}

impl ExperimentOptions {
    /// Options for a run writing into `out`: full size, seed 0, no overwriting, no observer.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        ExperimentOptions {
            out: out.into(),
            quick: false,
            seed: 0,
            force: false,
            observer: Observer::default(),
        }
    }
}

/// What a running experiment reports to its caller.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A stage begins ("generating 2000 samples", "rolling out 40 trajectories").
    Stage {
        experiment: &'a str,
        message: &'a str,
    },
    /// One optimisation step of the model named `label` ("lnn", "baseline", …).
    Training {
        label: &'a str,
        progress: &'a Progress,
    },
    /// The model named `label` finished training.
    TrainingDone { label: &'a str },
}

/// Receiver of [`Event`]s; cheap to clone. The default ignores everything.
#[derive(Clone, Default)]
pub struct Observer(Option<Arc<EventFn>>);

/// The function behind an [`Observer`].
type EventFn = dyn Fn(&Event) + Send + Sync;

impl Observer {
    /// An observer calling `f` for every event.
    pub fn new(f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        Observer(Some(Arc::new(f)))
    }
    /// Report `event`.
    pub fn emit(&self, event: &Event) {
        if let Some(f) = &self.0 {
            f(event)
        }
    }
    /// Report the start of a stage of `experiment`.
    pub fn stage(&self, experiment: &str, message: &str) {
        self.emit(&Event::Stage {
            experiment,
            message,
        })
    }
    /// A per-step callback for [`crate::train::fit`] reporting as model `label`.
    pub fn training<'a>(&'a self, label: &'a str) -> impl FnMut(&Progress) + 'a {
        move |p| self.emit(&Event::Training { label, progress: p })
    }
    /// Report that model `label` finished training.
    pub fn training_done(&self, label: &str) {
        self.emit(&Event::TrainingDone { label })
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Observer(..)"
        } else {
            "Observer(none)"
        })
    }
}

/// What an experiment measured and wrote.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ExperimentReport {
    /// Experiment name ("dblpend", "relativistic", "wave1d", "mesh").
    pub experiment: String,
    pub quick: bool,
    /// Headline metrics, plainly named.
    pub metrics: BTreeMap<String, f64>,
    /// Configuration used (network sizes, epochs, data sizes, …), for the record.
    pub config: BTreeMap<String, serde_json::Value>,
    /// Files written (HDF5, PNG, JSON, Markdown).
    pub files: Vec<PathBuf>,
    /// Remarks for the reader (e.g. "networks smaller than the paper's").
    pub notes: Vec<String>,
    /// Wall time of the whole experiment.
    pub seconds: f64,
}

impl ExperimentReport {
    pub fn new(name: &str, opts: &ExperimentOptions) -> Self {
        ExperimentReport {
            experiment: name.to_string(),
            quick: opts.quick,
            ..Default::default()
        }
    }

    pub fn metric(&mut self, name: &str, value: f64) {
        self.metrics.insert(name.to_string(), value);
    }

    pub fn config(&mut self, name: &str, value: impl Into<serde_json::Value>) {
        self.config.insert(name.to_string(), value.into());
    }

    /// The Markdown summary (metrics table, configuration, notes, files).
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# lgn experiment `{}`{}\n\n",
            self.experiment,
            if self.quick { " (quick)" } else { "" }
        );
        s.push_str("| metric | value |\n| --- | --- |\n");
        for (k, v) in &self.metrics {
            s.push_str(&format!("| {k} | {v:.6e} |\n"));
        }
        s.push_str("\n## Configuration\n\n");
        for (k, v) in &self.config {
            s.push_str(&format!("- {k}: {v}\n"));
        }
        if !self.notes.is_empty() {
            s.push_str("\n## Notes\n\n");
            for n in &self.notes {
                s.push_str(&format!("- {n}\n"));
            }
        }
        s.push_str("\n## Files\n\n");
        for f in &self.files {
            s.push_str(&format!("- {}\n", f.display()));
        }
        s.push_str(&format!("\nWall time: {:.1} s\n", self.seconds));
        s
    }

    /// Write `metrics.json` and `metrics.md` into the output folder (atomically).
    pub fn write(&mut self, opts: &ExperimentOptions) -> Result<()> {
        let json_path = opts.out.join("metrics.json");
        let md_path = opts.out.join("metrics.md");
        self.files.push(json_path.clone());
        self.files.push(md_path.clone());
        let json = serde_json::to_string_pretty(self).expect("serialisable");
        write_text(&json_path, &json, opts.force)?;
        write_text(&md_path, &self.markdown(), opts.force)?;
        Ok(())
    }
}

/// Write a text file atomically (temporary file + rename), refusing to overwrite without force.
pub fn write_text(path: &Path, text: &str, force: bool) -> Result<()> {
    let out = crate::io::AtomicOutput::new(path, force)?;
    std::fs::write(out.tmp_path(), text)
        .map_err(|e| Error::file(path, format!("cannot write: {e}")))?;
    out.commit()?;
    Ok(())
}

/// Create the output folder. Without `force` a folder that already holds files is refused
/// here, before any work: an experiment writes its results at the end, and finding out then
/// that they may not overwrite earlier ones would throw the run away.
pub fn prepare_dir(opts: &ExperimentOptions) -> Result<()> {
    if !opts.force {
        if let Some(first) = first_entry(&opts.out)? {
            return Err(Error::file(
                &opts.out,
                format!(
                    "the output folder is not empty (it holds '{first}', perhaps an earlier \
                     run's results): choose a new folder with --out, or pass --force to \
                     overwrite"
                ),
            ));
        }
    }
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| Error::file(&opts.out, format!("cannot create the output folder: {e}")))
}

/// The name of one entry of folder `dir` (sorted, so the message is stable), or `None` when
/// `dir` is empty or does not exist yet.
fn first_entry(dir: &Path) -> Result<Option<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory || dir.is_file() => {
            return Err(Error::file(
                dir,
                "is a file, not a folder: --out names the output folder",
            ))
        }
        Err(e) => {
            return Err(Error::file(
                dir,
                format!("cannot read the output folder: {e}"),
            ))
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names.into_iter().next())
}

/// The experiments [`run`] knows, by name.
pub const EXPERIMENTS: [&str; 6] = [
    "dblpend",
    "relativistic",
    "wave1d",
    "mesh",
    "noisy",
    "damped",
];

/// Run an experiment by name.
pub fn run(name: &str, opts: &ExperimentOptions) -> Result<ExperimentReport> {
    run_sized(name, opts, dblpend::Size::default())
}

/// [`run`] with the double-pendulum experiment's network size and epochs overridden (an error
/// for the other experiments when `size` overrides anything).
pub fn run_sized(
    name: &str,
    opts: &ExperimentOptions,
    size: dblpend::Size,
) -> Result<ExperimentReport> {
    if name != "dblpend" && (size.hidden, size.layers, size.epochs) != (None, None, None) {
        return Err(Error::input(format!(
            "--hidden, --layers and --epochs apply to the dblpend experiment, not to '{name}'"
        )));
    }
    if !EXPERIMENTS.contains(&name) {
        return Err(Error::input(format!(
            "unknown experiment '{name}': choose {}",
            EXPERIMENTS.join(", ")
        )));
    }
    prepare_dir(opts)?;
    let t0 = std::time::Instant::now();
    let mut report = match name {
        "dblpend" => dblpend::run_with(opts, size)?,
        "relativistic" => relativistic::run(opts)?,
        "wave1d" => wave1d::run(opts)?,
        "mesh" => mesh::run(opts)?,
        "noisy" => noisy::run(opts)?,
        "damped" => damped::run(opts)?,
        _ => unreachable!("checked against EXPERIMENTS above"),
    };
    report.seconds = t0.elapsed().as_secs_f64();
    report.write(opts)?;
    Ok(report)
}
