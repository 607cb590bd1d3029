//! Progress bars and stage lines on stderr: the command line's observers of the library.

use lgn::experiment::{Event, Observer};
use lgn::train::Progress;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A training progress bar (hidden when `quiet`), prefixed by `label` when given.
pub fn training_bar(label: Option<&str>, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(1);
    let prefix = label.map_or(String::new(), |l| format!("{l:>10} "));
    b.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{prefix}{{bar:30}} {{pos}}/{{len}} steps  epoch {{prefix}}  {{msg}}  ETA {{eta}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

/// Show one training step on `bar`.
pub fn show_progress(bar: &indicatif::ProgressBar, p: &Progress) {
    bar.set_length(p.total_steps as u64);
    bar.set_position(p.step as u64);
    bar.set_prefix(p.epoch.to_string());
    let val = p.val_loss.map_or("–".to_string(), |v| format!("{v:.4e}"));
    let dropped = if p.dropped > 0 {
        format!("  dropped {}", p.dropped)
    } else {
        String::new()
    };
    bar.set_message(format!(
        "loss {:.4e}  val {val}  {:.0} samples/s{dropped}",
        p.loss, p.samples_per_second
    ));
}

/// The observer of `lgn experiment` and `lgn demo`: one bar per model being trained, stage
/// messages as lines; nothing at all when `quiet`.
pub fn experiment_observer(quiet: bool) -> Observer {
    if quiet {
        return Observer::default();
    }
    let bars: Mutex<BTreeMap<String, indicatif::ProgressBar>> = Mutex::new(BTreeMap::new());
    Observer::new(move |e| {
        let Ok(mut bars) = bars.lock() else { return };
        match e {
            Event::Stage {
                experiment,
                message,
            } => eprintln!("[{experiment}] {message}"),
            Event::Training { label, progress } => {
                let bar = bars
                    .entry(label.to_string())
                    .or_insert_with(|| training_bar(Some(label), false));
                show_progress(bar, progress);
            }
            Event::TrainingDone { label } => {
                if let Some(bar) = bars.remove(*label) {
                    bar.finish_and_clear();
                }
            }
        }
    })
}
