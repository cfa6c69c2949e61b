//! Run configuration: `[data]`, `[model]`, `[optim]`, `[schedule]` and `[train]` tables of a TOML file.
//!
//! Every struct rejects unknown fields, every field has a documented default, and [`RunConfig::validate`]
//! checks values with messages that name the field and the fix. The resolved config (defaults filled
//! in) is what a run directory stores, so a run can be reproduced from its folder alone.

use std::path::Path;

use data::DataConfig;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, NnError, Result};
pub use crate::model::ModelConfig;
pub use crate::optim::OptimConfig;
use crate::optim::Optimizer;

/// Elementwise nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// Exact GELU (smooth: recommended for metagradients, MATH.md E2).
    Gelu,
    /// `tanh`.
    Tanh,
    /// `ln(1 + e^x)`.
    Softplus,
}

/// Normalisation inside CNN blocks (never batch statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// Group norm with `groups` groups.
    Group,
    /// Layer norm over channels and space (group norm with one group).
    Layer,
    /// No normalisation.
    None,
}

/// Downsampling between CNN stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pool {
    /// 2x2 average pooling (smooth).
    Avg,
    /// 2x2 max pooling.
    Max,
}

/// Learning-rate schedule: the optimizer's `lr` times a factor of the step `t` out of `T` steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// Factor 1.
    #[default]
    Constant,
    /// Multiply by `gamma` every `every` steps.
    Step {
        /// Steps between decays.
        every: usize,
        /// Decay factor.
        gamma: f64,
    },
    /// Linear from 1 to `end` over the run.
    Linear {
        /// Final factor.
        #[serde(default)]
        end: f64,
    },
    /// Cosine from 1 to `end`.
    Cosine {
        /// Final factor.
        #[serde(default)]
        end: f64,
    },
    /// One cycle: linear from `start` up to 1 at fraction `peak_at` of the run, then linear to `end`.
    OneCycle {
        /// Fraction of the run spent warming up.
        #[serde(default = "peak_at")]
        peak_at: f64,
        /// Initial factor.
        #[serde(default = "one_cycle_start")]
        start: f64,
        /// Final factor.
        #[serde(default)]
        end: f64,
    },
}

fn peak_at() -> f64 {
    0.25
}
fn one_cycle_start() -> f64 {
    0.04
}

/// Number type for training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit floats (fast).
    #[default]
    F32,
    /// 64-bit floats (for derivative checks and exact comparisons).
    F64,
}

fn default_epochs() -> usize {
    10
}
fn default_batch() -> usize {
    64
}

/// The training loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training set.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Examples per batch (the last batch of an epoch may be smaller unless `drop_last`).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Seed of initialisation and batch order (MATH.md E1: the order depends on nothing else).
    #[serde(default)]
    pub seed: u64,
    /// Number type.
    #[serde(default)]
    pub precision: Precision,
    /// Drop each epoch's last incomplete batch.
    #[serde(default)]
    pub drop_last: bool,
    /// Save the training state every this many steps (and at the end) as the trajectory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<usize>,
    /// Start from these parameters (a safetensors file, relative to the config) instead of the
    /// seeded initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<std::path::PathBuf>,
    /// Gradient-norm clipping of the weighted batch gradient (before weight decay); off when
    /// absent. In TOML: `clip = { max_norm = 1.0 }` (smooth) or `{ max_norm = 1.0, kind = "hard" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<Clip>,
    /// Data weights `w` of MATH.md E1 (relative to the config): a `.npy` array or a text/CSV file
    /// with one non-negative finite weight per training example, in source-row order (the rows of
    /// the data file that fall in the training split, in file order). All ones when absent; every
    /// attribution is then taken at these weights (E7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<std::path::PathBuf>,
}

/// Gradient-norm clipping: the batch loss gradient `g` becomes `s(||g||) g` (MATH.md E1; the
/// weight-decay term is not clipped).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clip {
    /// The norm `c` that clipping keeps the gradient near (hard) or below (smooth).
    pub max_norm: f64,
    /// The shape of `s`.
    #[serde(default)]
    pub kind: ClipKind,
}

/// How [`Clip`] scales the gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipKind {
    /// `s(r) = c / sqrt(c^2 + r^2)`: differentiable everywhere, so metagradients stay exact and
    /// predictive (MAGIC paper, Remark 2); `||s g|| < c` always, and `s ~ 1` for `r << c`.
    #[default]
    Smooth,
    /// `s(r) = min(1, c / r)` (PyTorch's `clip_grad_norm_`): a kink at `r = c`.
    Hard,
}

impl Clip {
    /// `(s(r), s'(r) / r)` at the gradient norm `r`: the scale, and the factor of the reverse rule
    /// `A_g = s A_out + (s'(r) / r) <g, A_out> g` of `out = s(||g||) g`.
    pub fn scale(&self, r: f64) -> (f64, f64) {
        let c = self.max_norm;
        match self.kind {
            ClipKind::Smooth => {
                let q = c * c + r * r;
                (c / q.sqrt(), -c / (q * q.sqrt()))
            }
            ClipKind::Hard if r > c => (c / r, -c / (r * r * r)),
            ClipKind::Hard => (1.0, 0.0),
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: default_epochs(),
            batch_size: default_batch(),
            seed: 0,
            precision: Precision::F32,
            drop_last: false,
            checkpoint_every: None,
            init_from: None,
            clip: None,
            weights: None,
        }
    }
}

/// A whole run: data, model, optimizer, schedule and loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The data.
    pub data: DataConfig,
    /// The model.
    pub model: ModelConfig,
    /// The optimizer.
    pub optim: OptimConfig,
    /// The learning-rate schedule.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// The training loop.
    #[serde(default)]
    pub train: TrainConfig,
}

impl RunConfig {
    /// Parses TOML text; `origin` names the file in errors.
    ///
    /// # Errors
    /// Syntax errors, unknown fields and invalid values, naming `origin`, the field and the fix.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self> {
        let cfg: RunConfig = toml::from_str(text).map_err(|e| NnError::Config {
            path: origin.to_path_buf(),
            reason: format!(
                "{}. See `attrib train --help` for the fields of each table",
                e.to_string().trim_end()
            ),
        })?;
        cfg.validate().map_err(|e| NnError::Config {
            path: origin.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(cfg)
    }

    /// Reads and parses a TOML file.
    ///
    /// # Errors
    /// As [`RunConfig::from_toml_str`], plus I/O errors.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| NnError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, path)
    }

    /// The resolved configuration (every default written out) as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a RunConfig always serialises")
    }

    /// Checks every value.
    ///
    /// # Errors
    /// The first invalid field, named as `table.field`, with the allowed range.
    pub fn validate(&self) -> Result<()> {
        let d = &self.data;
        if !(d.test_fraction > 0.0 && d.test_fraction < 1.0) {
            return Err(invalid(
                "data.test_fraction",
                format!("{} must be strictly between 0 and 1", d.test_fraction),
            ));
        }
        if !(d.val_fraction >= 0.0 && d.val_fraction < 1.0) {
            return Err(invalid(
                "data.val_fraction",
                format!(
                    "{} must be 0 (no validation split) or strictly between 0 and 1",
                    d.val_fraction
                ),
            ));
        }
        self.model.validate()?;
        self.optim.validate()?;
        match &self.schedule {
            ScheduleConfig::Constant => {}
            ScheduleConfig::Step { every, gamma } => {
                if *every == 0 {
                    return Err(invalid("schedule.every", "must be at least 1 step"));
                }
                positive("schedule.gamma", *gamma)?;
            }
            ScheduleConfig::Linear { end } | ScheduleConfig::Cosine { end } => {
                nonneg("schedule.end", *end)?
            }
            ScheduleConfig::OneCycle {
                peak_at,
                start,
                end,
            } => {
                if !(*peak_at > 0.0 && *peak_at < 1.0) {
                    return Err(invalid(
                        "schedule.peak_at",
                        format!("{peak_at} must be strictly between 0 and 1"),
                    ));
                }
                nonneg("schedule.start", *start)?;
                nonneg("schedule.end", *end)?;
            }
        }
        let t = &self.train;
        if t.epochs == 0 {
            return Err(invalid("train.epochs", "must be at least 1"));
        }
        if let Some(c) = t.clip {
            if !(c.max_norm.is_finite() && c.max_norm > 0.0) {
                return Err(invalid(
                    "train.clip.max_norm",
                    "must be a positive finite number (remove `clip` to train without clipping)",
                ));
            }
        }
        if t.batch_size == 0 {
            return Err(invalid("train.batch_size", "must be at least 1"));
        }
        if t.checkpoint_every == Some(0) {
            return Err(invalid(
                "train.checkpoint_every",
                "must be at least 1 step (or omitted)",
            ));
        }
        Ok(())
    }
}

/// `Ok` for a positive finite `v`, else an error naming `field`.
pub(crate) fn positive(field: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{v} must be a positive finite number"),
        ))
    }
}

/// `Ok` for `v` in `[0, 1)`, else an error naming `field`.
pub(crate) fn unit(field: &str, v: f64) -> Result<()> {
    if (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(invalid(field, format!("{v} must be in [0, 1)")))
    }
}

/// `Ok` for a finite `v >= 0`, else an error naming `field`.
pub(crate) fn nonneg(field: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(invalid(field, format!("{v} must be a finite number >= 0")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[data]
source = "digits"
[model]
kind = "mlp"
hidden = [32]
[optim]
kind = "sgd"
lr = 0.1
momentum = 0.9
[schedule]
kind = "cosine"
[train]
epochs = 2
"#;

    #[test]
    fn parses_and_round_trips() {
        let cfg = RunConfig::from_toml_str(GOOD, Path::new("run.toml")).unwrap();
        let again = RunConfig::from_toml_str(&cfg.to_toml(), Path::new("resolved.toml")).unwrap();
        assert_eq!(cfg, again);
        assert_eq!(cfg.train.batch_size, 64);
    }

    #[test]
    fn unknown_field_names_file_field_and_line() {
        let bad = GOOD.replace("momentum = 0.9", "momentun = 0.9");
        let e = RunConfig::from_toml_str(&bad, Path::new("run.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("run.toml") && e.contains("momentun") && e.contains("line"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_the_field_and_the_range() {
        for (from, to, field) in [
            ("lr = 0.1", "lr = -1.0", "optim.lr"),
            ("momentum = 0.9", "momentum = 1.5", "optim.momentum"),
            ("epochs = 2", "epochs = 0", "train.epochs"),
            (
                "epochs = 2",
                "epochs = 2\nclip = { max_norm = 0.0 }",
                "train.clip.max_norm",
            ),
            ("hidden = [32]", "hidden = [0]", "model.hidden"),
        ] {
            let e = RunConfig::from_toml_str(&GOOD.replace(from, to), Path::new("run.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("run.toml") && e.contains(field), "{to}: {e}");
        }
    }

    #[test]
    fn bad_variant_is_reported() {
        let e = RunConfig::from_toml_str(
            &GOOD.replace("kind = \"sgd\"", "kind = \"rmsprop\""),
            Path::new("r.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rmsprop"), "{e}");
    }
}
