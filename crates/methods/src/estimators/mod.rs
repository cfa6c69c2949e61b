//! The attribution estimators, one file (or folder) per method, and the GLM algebra of the closed
//! forms ([`glm`]). What several estimators share lives in [`crate::support`] (training-set chunks,
//! curvature and damping, features); numerics in [`crate::linalg`] and [`crate::solvers`].
//!
//! | name | file | MATH.md | what |
//! |---|---|---|---|
//! | `loo-ridge` | [`loo_ridge`] | E3 | exact leave-one-out of ridge least squares (Sherman-Morrison) |
//! | `loo-newton` | [`loo_newton`] | E3 | one-Newton-step leave-one-out of L2 logistic regression |
//! | `if-exact`, `if-cg`, `if-lissa`, `if-gn`, `if-arnoldi` | [`influence`] | E3 | influence functions |
//! | `ekfac`, `kfac`, `if-diag` | [`ekfac`] | E4 | influence with a layer-wise (E)K-FAC or diagonal Gauss-Newton |
//! | `tracin` | [`tracin`] | E4 | gradient dot products along the trajectory |
//! | `trak` | [`trak`] | E4 | kernel regression on random projections of gradients, model ensembles |
//! | `similarity` | [`similarity`] | E4 | cosine of penultimate features (weak baseline) |
//! | `magic` | [`magic`] | E2 | exact metagradients through the whole training run (REPLAY) |
//! | `datamodels` | [`datamodels`] | E4, E6 | lasso/ridge fit to cached subset retrainings |
//! | `knn-shapley`, `tmc-shapley` | [`shapley`] | E4 | Data Shapley: k-NN closed form, truncated Monte Carlo |
//!
//! Every method also scores groups of a [`crate::groups::Grouping`] (MATH.md E5,
//! [`crate::Method::attribute_groups`]): influence functions and TracIn from group gradients
//! ([`crate::support::chunks::TrainChunks::loss_dots`] with
//! [`crate::support::chunks::Columns::Groups`]), the others by summing their per-example
//! scores, which is exact for them and costs no more (MAGIC's reverse sweep yields every example's
//! derivative at once; TRAK's kernel needs every example's projected gradient anyway).
//!
//! ## The objective the classical estimators differentiate
//! A run minimises (MATH.md E1, in expectation over batches)
//! `L(theta, w) = (1/n) sum_i w_i l_i(theta) + (lambda/2) ||theta||^2`, with `lambda` the optimizer's
//! weight decay ([`nn::Optimizer::objective_l2`]; every parameter, biases included, is decayed;
//! for AdamW, whose decay is decoupled, its fixed point is only approximately that optimum). At an optimum,
//! `d theta / d w_j = -H^{-1} (1/n) grad l_j` with `H = (1/n) sum_i hess l_i + lambda I`, so the
//! influence-function score is
//! `tau_j = d f / d w_j = -(1/n) grad f^T (H + damping I)^{-1} grad l_j`.
//! Scores follow the crate's sign convention `tau_i = d f / d w_i`: dropping `D` predicts
//! `f(S \ D) ~ f(S) - sum_{i in D} tau_i`.

pub mod datamodels;
pub mod ekfac;
pub mod glm;
pub mod influence;
pub mod loo_newton;
pub mod loo_ridge;
pub mod magic;
pub mod shapley;
pub mod similarity;
pub mod tracin;
pub mod trak;

use crate::method::Registration;

/// Every method attrib knows, one line each, in the order of the summary table above (a test
/// checks that the two agree).
pub static REGISTRY: &[Registration] = &[
    loo_ridge::REGISTRATION,
    loo_newton::REGISTRATION,
    influence::EXACT,
    influence::CG,
    influence::LISSA,
    influence::GN,
    influence::ARNOLDI,
    ekfac::EKFAC,
    ekfac::KFAC,
    ekfac::DIAGONAL,
    tracin::REGISTRATION,
    trak::REGISTRATION,
    similarity::REGISTRATION,
    magic::REGISTRATION,
    datamodels::REGISTRATION,
    shapley::KNN,
    shapley::TMC,
];

#[cfg(test)]
pub(crate) mod invariance_tests;
