//! Acting on attributions (MATH.md E7): rewrite a task in model outputs, plug in an estimate,
//! solve, and check by retraining.
//!
//! - [`jvp`]: `J v = (d theta_T / d w) v` by one forward-mode pass through the whole run;
//! - [`unlearn`]: outputs and a model as if a forget set had never been trained on;
//! - [`poison`]: label flips and input perturbations chosen by metagradients to hurt the model.
//!
//! Every retraining these commands report comes from `run::retrain::retrain_cached`.

pub mod jvp;
pub mod poison;
pub mod unlearn;
