//! Progress bars (stderr): training steps with epoch, loss and learning rate; counts of work
//! units; and the bars of long method computations ([`MethodBars`]).
//!
//! Hidden under `--quiet` or `--json`, and whenever stderr is not a terminal, so that logs and
//! pipes never receive control characters.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar over optimizer steps, possibly hidden.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar over `steps` steps, drawn only if `visible` and stderr is a terminal.
    pub fn steps(steps: usize, visible: bool) -> Progress {
        let target = if visible && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(steps as u64), target);
        let style = ProgressStyle::with_template(
            "[{elapsed_precise}] {pos:>6}/{len} steps  {msg}  {wide_bar:.cyan/blue} eta {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> ");
        bar.set_style(style);
        Progress { bar }
    }

    /// A bar over `total` units of work (e.g. retrained subsets), drawn like [`Progress::steps`].
    pub fn count(total: usize, unit: &str, visible: bool) -> Progress {
        let target = if visible && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total as u64), target);
        let style = ProgressStyle::with_template(&format!(
            "[{{elapsed_precise}}] {{pos:>5}}/{{len}} {unit}  {{wide_bar:.cyan/blue}} eta {{eta}}"
        ))
        .expect("the template is valid")
        .progress_chars("=> ");
        bar.set_style(style);
        Progress { bar }
    }

    /// Sets the number of finished units (callable from worker threads).
    pub fn set(&self, done: usize) {
        self.bar.set_position(done as u64);
    }

    /// Records one step.
    pub fn step(&self, epoch: usize, epochs: usize, loss: f64, lr: f64) {
        self.bar.set_message(format!(
            "epoch {}/{epochs}  loss {loss:.4}  lr {lr:.2e}",
            epoch + 1
        ));
        self.bar.inc(1);
    }

    /// Runs `f` (which prints lines) with the bar cleared, then redraws it.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // On an error path the bar must not stay on screen above the message.
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}

/// Bars for the progress that methods report through [`run::Progress`]: one bar per kind of
/// work (the `what` of a report), replaced when the kind or its total changes, cleared when dropped.
pub struct MethodBars {
    visible: bool,
    /// The current bar, with the work and total it counts.
    bar: Arc<Mutex<Option<(String, usize, Progress)>>>,
}

impl MethodBars {
    /// Bars drawn only if `visible` and stderr is a terminal.
    pub fn new(visible: bool) -> MethodBars {
        MethodBars {
            visible,
            bar: Arc::new(Mutex::new(None)),
        }
    }

    /// The hook to install in a run.
    pub fn hook(&self) -> run::Progress {
        let (bar, visible) = (Arc::clone(&self.bar), self.visible);
        run::Progress::new(move |what, done, total| {
            let mut bar = bar.lock().unwrap_or_else(|e| e.into_inner());
            // A new kind of work, or a new count of the same (a second solve), starts a new bar.
            if bar
                .as_ref()
                .is_none_or(|(w, t, _)| w != what || *t != total)
            {
                *bar = Some((
                    what.to_string(),
                    total,
                    Progress::count(total, what, visible),
                ));
            }
            if let Some((_, _, b)) = bar.as_ref() {
                b.set(done);
            }
        })
    }
}

impl Drop for MethodBars {
    fn drop(&mut self) {
        if let Some((_, _, b)) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish();
        }
    }
}
