//! Acting on attributions (MATH.md E7): rewrite a task in model outputs, plug in an estimate,
//! solve, and check by retraining.
//!
//! - [`jvp`]: `J v = (d theta_T / d w) v` by one forward-mode pass through the whole run;
//! - [`unlearn`]: outputs and a model as if a forget set had never been trained on;
//! - [`retrain_cache`]: every retraining these commands report, cached in the run directory.

pub mod jvp;
pub mod retrain_cache;
pub mod unlearn;
