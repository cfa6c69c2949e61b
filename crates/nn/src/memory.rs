//! Memory estimates made before allocating, so that a model, a trajectory or a score matrix too
//! large for the machine is refused with the figure and the knob to turn instead of ending in an
//! allocation abort or the OOM killer (issue 13).
//!
//! The budget is the memory the system reports available (`MemAvailable` in `/proc/meminfo`),
//! or `ATTRIB_MEMORY_LIMIT` (bytes, with an optional `K`, `M`, `G`, `T` suffix) when set; where
//! neither can be read nothing is refused. Estimates are lower bounds of what the computation
//! holds at once (activations and temporary buffers come on top), computed in `f64` so that
//! absurd sizes (`10^12` epochs) never overflow.

use crate::error::{NnError, Result};
use crate::{Batch, Model, Output};

/// Environment variable that overrides the memory budget (bytes, e.g. `8G`).
pub const LIMIT_VAR: &str = "ATTRIB_MEMORY_LIMIT";

/// The memory budget in bytes: `ATTRIB_MEMORY_LIMIT`, else the system's available memory, else
/// `None` (unknown: nothing is refused).
pub fn budget() -> Option<f64> {
    if let Ok(text) = std::env::var(LIMIT_VAR) {
        if let Some(b) = parse_bytes(&text) {
            return Some(b);
        }
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// `123`, `64M`, `8G`, `1.5T` (powers of 1024) as bytes.
pub fn parse_bytes(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, mult) = match t.chars().last()?.to_ascii_uppercase() {
        'K' => (&t[..t.len() - 1], 1024f64),
        'M' => (&t[..t.len() - 1], 1024f64.powi(2)),
        'G' => (&t[..t.len() - 1], 1024f64.powi(3)),
        'T' => (&t[..t.len() - 1], 1024f64.powi(4)),
        _ => (t, 1.0),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * mult)
}

/// `1.5 GB` (powers of 1024; `B`, `KB`, `MB`, `GB`, `TB`, `PB`).
pub fn show_bytes(bytes: f64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Refuses `what`, which needs `bytes`, when that exceeds the [`budget`].
///
/// # Errors
/// [`NnError::Invalid`] naming `field` (the knob), the estimate, the budget, and `fix`.
pub fn check(field: &str, what: &str, bytes: f64, fix: &str) -> Result<()> {
    check_against(budget(), field, what, bytes, fix)
}

/// [`check`] against a given budget (`None`: unknown, nothing refused).
///
/// # Errors
/// As [`check`].
pub fn check_against(
    budget: Option<f64>,
    field: &str,
    what: &str,
    bytes: f64,
    fix: &str,
) -> Result<()> {
    match budget {
        Some(b) if bytes > b => Err(NnError::Invalid {
            field: field.into(),
            reason: format!(
                "{what} needs at least {} of memory, more than the {} available (set \
                 {LIMIT_VAR} to change the budget); {fix}",
                show_bytes(bytes),
                show_bytes(b)
            ),
        }),
        _ => Ok(()),
    }
}

/// The floats a plain tape of `model`'s losses holds for a batch of `b` examples:
/// `fixed + b * per_example` (see [`tape_floats`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TapeFloats {
    /// What does not grow with the batch: the parameter leaves and constants.
    pub fixed: f64,
    /// What every example adds: the activations of every layer, with a convolution's im2col
    /// patches, a norm's statistics and every intermediate value of a composite op.
    pub per_example: f64,
}

impl TapeFloats {
    /// Floats held for a batch of `b` examples.
    pub fn at(&self, b: usize) -> f64 {
        self.fixed + b as f64 * self.per_example
    }
}

/// The floats a plain (value, not dual) tape of the per-example losses holds, read off the model
/// run on one example and on two copies of it ([`engine::Graph::stored_elements`]): every layer's
/// shape is exercised exactly as a real pass does, so no per-architecture formula can drift from
/// the code, and the probe itself holds only the tape of two examples (a few MB for the built-in
/// models). The tape grows linearly in the batch (examples never share activations: group and
/// layer norms only), so the two points give `fixed` and `per_example`. A dual pass with `k`
/// tangent directions holds `1 + k` times the per-example part; its reverse sweep holds the
/// cotangents on top. An empty `ds` gives zeros.
pub fn tape_floats(model: &Model, ds: &data::Dataset) -> TapeFloats {
    if ds.is_empty() {
        return TapeFloats {
            fixed: 0.0,
            per_example: 0.0,
        };
    }
    let floats = |idx: &[usize]| {
        let batch = Batch::<f64>::from_dataset(ds, idx);
        let g = engine::Graph::<f64>::new();
        let p = model
            .layout()
            .leaves(&g, &vec![0.0; model.layout().total()], true);
        model.output(&g, &p, &batch, Output::Loss);
        g.stored_elements() as f64
    };
    let (one, two) = (floats(&[0]), floats(&[0, 0]));
    let per_example = (two - one).max(0.0);
    TapeFloats {
        fixed: (one - per_example).max(0.0),
        per_example,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_bytes("64M"), Some(64.0 * 1024.0 * 1024.0));
        assert_eq!(parse_bytes("12"), Some(12.0));
        assert_eq!(parse_bytes("1.5k"), Some(1536.0));
        assert_eq!(parse_bytes("-1G"), None);
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(show_bytes(512.0), "512 B");
        assert_eq!(show_bytes(1.5 * 1024f64.powi(3)), "1.5 GB");
    }

    #[test]
    fn refusals_name_the_knob_and_the_figures() {
        check_against(Some(100.0), "model.hidden", "x", 50.0, "shrink it").unwrap();
        check_against(None, "model.hidden", "x", 1e30, "shrink it").unwrap();
        let e = check_against(
            Some(1024.0),
            "model.hidden",
            "the model",
            4096.0,
            "shrink it",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("model.hidden")
                && e.contains("4.0 KB")
                && e.contains("1.0 KB")
                && e.contains("shrink it"),
            "{e}"
        );
    }
}
