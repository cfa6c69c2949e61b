//! # attrib-eval
//!
//! Ground truth for attribution (MATH.md E6): subset retraining cached on disk, brute-force
//! leave-one-out, and the linear datamodeling score (LDS).
