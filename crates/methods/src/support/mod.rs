//! What several estimators share, by topic: passes over the training set in chunks
//! ([`chunks`]), curvature operators and the `auto` damping rule ([`curvature`]), penultimate
//! features ([`features`]) and random projections of gradients ([`projection`]). Estimators and groupings build on these; nothing here depends on an
//! estimator.

pub mod chunks;
pub mod curvature;
pub mod features;
pub mod projection;
