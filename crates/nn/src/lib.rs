//! # attrib-nn
//!
//! Models (linear and logistic regression, MLP, small CNN, small GPT), per-example losses and outputs,
//! each task's loss Hessian in the logits ([`LogitHessian`]), optimizers (SGD, momentum, Nesterov,
//! Adam, AdamW; [`optim`]: one file each with its update, its MAGIC reverse rule and its L2
//! coefficients, behind [`Optimizer`]), learning-rate schedules and the deterministic weighted
//! trainer of MATH.md E1, on top of `attrib-engine`.
//!
//! ```
//! use attrib_nn::{Model, RunConfig, Trainer};
//! let cfg = RunConfig::from_toml_str(r#"
//!     data = { source = "breast_cancer" }
//!     model = { kind = "logistic" }
//!     optim = { kind = "sgd", lr = 0.1, momentum = 0.9 }
//!     train = { epochs = 10, batch_size = 32 }
//! "#, "inline.toml".as_ref()).unwrap();
//! let splits = data::load_splits(&cfg.data, ".".as_ref()).unwrap();
//! let model = Model::new(&cfg.model, &splits.train).unwrap();
//! let trainer = Trainer::<f64>::new(&model, &cfg, &splits.train).unwrap();
//! let state = trainer.run(trainer.init_state(None).unwrap(), &mut |_, _| {}).unwrap();
//! let eval = attrib_nn::evaluate(&model, &state.params, &splits.test, 256);
//! assert!(eval.accuracy.unwrap() > 0.9); // ten epochs of logistic regression on breast cancer
//! ```
//!
//! Sibling crates, in the order data flows: `attrib-data` (readers, splits, the atomic write),
//! `attrib-engine` (tensors, differentiation, randomness, the hash), `attrib-nn` (models,
//! optimizers, trainer), `attrib-run` (the run directory, retraining, the artefact store),
//! `attrib-methods` (attribution methods), `attrib-eval` (measurements against retraining),
//! `attrib-cli` (the binary).

pub mod batch;
pub mod config;
pub mod error;
pub mod eval;
pub mod io;
pub mod logit_hessian;
pub mod memory;
pub mod model;
pub mod optim;
pub mod params;
pub mod per_example;
pub mod schedule;
pub mod trainer;

pub use batch::{Batch, Input, Target};
pub use config::{
    Activation, Clip, ClipKind, ModelConfig, Norm, OptimConfig, Pool, Precision, RunConfig,
    ScheduleConfig, TrainConfig,
};
pub use error::{NnError, Result};
pub use eval::{eval_batch_size, evaluate, Evaluation};
pub use logit_hessian::LogitHessian;
pub use model::{Model, Output, Task};
pub use optim::{Adjoint, OptState, Optimizer, Tangent};
pub use params::{Init, Layout, ParamSpec};
pub use trainer::{batch_plan, StepInfo, TrainState, Trainer};
