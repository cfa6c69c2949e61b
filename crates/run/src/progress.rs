//! How long computations inside methods report how far they are.
//!
//! A [`Run`](crate::Run) carries a [`Progress`] hook, silent by default; the `attrib` binary installs
//! one that draws a bar. Methods call [`Progress::report`] from their long loops (MAGIC's reverse
//! steps, datamodels' retrainings); reporting never changes a result.

use std::fmt;
use std::sync::Arc;

/// Receives `(what, done, total)`: `done` of `total` units of the work named `what`.
type Hook = dyn Fn(&str, usize, usize) + Send + Sync;

/// A progress hook (silent by default).
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<Hook>>);

impl Progress {
    /// A hook that calls `f(what, done, total)`.
    pub fn new(f: impl Fn(&str, usize, usize) + Send + Sync + 'static) -> Self {
        Progress(Some(Arc::new(f)))
    }

    /// Reports that `done` of `total` units of `what` are finished (may be called from any thread).
    pub fn report(&self, what: &str, done: usize, total: usize) {
        if let Some(f) = &self.0 {
            f(what, done, total);
        }
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(hook)"
        } else {
            "Progress(silent)"
        })
    }
}
