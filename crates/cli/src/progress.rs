//! Progress (stderr): training steps with epoch, loss and learning rate; counts of work units;
//! and the progress of long method computations ([`MethodBars`]).
//!
//! On a terminal this is a bar. When stderr is not a terminal (a log file, a pipe) it is a plain
//! line every [`PLAIN_EVERY`] (`ATTRIB_PROGRESS_EVERY` seconds if set; `progress: 120/800 retrained subsets, 15% in 12.3 s`), so that a
//! long command piped to a file shows that it is alive without writing control characters.
//! Hidden under `--quiet` or `--json`.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Time between two plain progress lines when stderr is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// [`PLAIN_EVERY`], or the seconds in `ATTRIB_PROGRESS_EVERY` (e.g. `0` for a line per update;
/// the tests use it).
fn plain_every() -> Duration {
    std::env::var("ATTRIB_PROGRESS_EVERY")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(PLAIN_EVERY, Duration::from_secs_f64)
}

/// A progress display over steps or work units, possibly hidden.
pub struct Progress {
    bar: ProgressBar,
    /// Set when lines are printed instead of a bar: the unit, and when the last line went out.
    plain: Option<Mutex<Plain>>,
}

/// State of the plain-line progress.
struct Plain {
    unit: String,
    every: Duration,
    started: Instant,
    last: Instant,
    printed: bool,
}

/// Where a visible progress display goes: a bar on a terminal, lines otherwise.
fn targets(visible: bool, unit: &str) -> (ProgressDrawTarget, Option<Mutex<Plain>>) {
    if !visible {
        return (ProgressDrawTarget::hidden(), None);
    }
    if std::io::stderr().is_terminal() {
        return (ProgressDrawTarget::stderr(), None);
    }
    let now = Instant::now();
    let plain = Plain {
        unit: unit.to_string(),
        every: plain_every(),
        started: now,
        last: now,
        printed: false,
    };
    (ProgressDrawTarget::hidden(), Some(Mutex::new(plain)))
}

impl Progress {
    /// A bar over `steps` steps, drawn only if `visible` and stderr is a terminal.
    pub fn steps(steps: usize, visible: bool) -> Progress {
        let (target, plain) = targets(visible, "steps");
        let bar = ProgressBar::with_draw_target(Some(steps as u64), target);
        let style = ProgressStyle::with_template(
            "[{elapsed_precise}] {pos:>6}/{len} steps  {msg}  {wide_bar:.cyan/blue} eta {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> ");
        bar.set_style(style);
        Progress { bar, plain }
    }

    /// A bar over `total` units of work (e.g. retrained subsets), drawn like [`Progress::steps`].
    pub fn count(total: usize, unit: &str, visible: bool) -> Progress {
        let (target, plain) = targets(visible, unit);
        let bar = ProgressBar::with_draw_target(Some(total as u64), target);
        let style = ProgressStyle::with_template(&format!(
            "[{{elapsed_precise}}] {{pos:>5}}/{{len}} {unit}  {{wide_bar:.cyan/blue}} eta {{eta}}"
        ))
        .expect("the template is valid")
        .progress_chars("=> ");
        bar.set_style(style);
        Progress { bar, plain }
    }

    /// Sets the number of finished units (callable from worker threads).
    pub fn set(&self, done: usize) {
        self.bar.set_position(done as u64);
        self.plain_line(false);
    }

    /// Records one step.
    pub fn step(&self, epoch: usize, epochs: usize, loss: f64, lr: f64) {
        self.bar.set_message(format!(
            "epoch {}/{epochs}  loss {loss:.4}  lr {lr:.2e}",
            epoch + 1
        ));
        self.bar.inc(1);
        self.plain_line(false);
    }

    /// Prints a plain progress line if lines are in use and [`PLAIN_EVERY`] has passed since the
    /// last one (or `force`, for the final line of a long task).
    fn plain_line(&self, force: bool) {
        let Some(plain) = &self.plain else {
            return;
        };
        let mut p = plain.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if !force && now.duration_since(p.last) < p.every {
            return;
        }
        p.last = now;
        p.printed = true;
        let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0));
        let percent = (100 * pos).checked_div(len).unwrap_or(100);
        let msg = self.bar.message();
        let msg = if msg.is_empty() {
            String::new()
        } else {
            format!(", {msg}")
        };
        // A failed progress line must not stop the work.
        let _ = writeln!(
            std::io::stderr().lock(),
            "progress: {pos}/{len} {}, {percent}% in {:.1} s{msg}",
            p.unit,
            now.duration_since(p.started).as_secs_f64()
        );
    }

    /// Runs `f` (which prints lines) with the bar cleared, then redraws it.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Removes the bar (with plain lines: prints a last one if the task printed any before).
    pub fn finish(&self) {
        let printed = self
            .plain
            .as_ref()
            .is_some_and(|p| p.lock().unwrap_or_else(|e| e.into_inner()).printed);
        if printed {
            self.plain_line(true);
        }
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
    /// Bars drawn only if `visible` (plain lines when stderr is not a terminal).
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
