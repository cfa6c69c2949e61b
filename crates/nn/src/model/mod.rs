//! Models built from a [`ModelConfig`] and the shape of the data, with one forward pass written for
//! every carrier (values, gradients, JVPs, HVPs).
//!
//! A new model kind is one file (its architecture and forward pass) plus, in this file, its
//! [`ModelConfig`] variant with its checks and name, and its arms in [`Model::new`] and the
//! forward dispatch.

mod cnn;
mod gpt;
mod mlp;

use data::{Dataset, Features, Labels};
use engine::{Carrier, Float, Graph, Var};

use crate::batch::{Batch, Input, Target};
use serde::{Deserialize, Serialize};

use crate::config::{positive, Activation, Norm, Pool};
use crate::error::{invalid, NnError, Result};
use crate::params::{Init, Layout};

pub use cnn::Cnn;
pub use gpt::Gpt;
pub use mlp::Mlp;

/// What the model predicts, which fixes its loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Softmax cross-entropy over `k >= 2` classes.
    Classes(usize),
    /// Two classes with one logit and the logistic loss (logistic regression).
    Binary,
    /// Real targets with squared error.
    Regression,
    /// Next-token cross-entropy, averaged over positions, over a vocabulary.
    NextToken(usize),
}

/// A per-example model output `f` that attribution explains (MATH.md notation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The training loss of the example.
    Loss,
    /// Classification margin `z_y - logsumexp_{k != y} z_k` (the label's logit for binary models).
    Margin,
    /// Log-likelihood of the target (minus the loss).
    LogLikelihood,
    /// The loss of one next-token prediction of a language model: target `s (L - 1) + p` of a
    /// split of windows of `L` tokens is the cross-entropy of token `p + 1` of window `s` given
    /// tokens `0..=p` (a window's [`Output::Loss`] is the mean of its `L - 1` token losses).
    Token,
}

fn one() -> f64 {
    1.0
}
fn default_activation() -> Activation {
    Activation::Gelu
}
fn default_kernel() -> usize {
    3
}
fn default_groups() -> usize {
    4
}
fn default_norm() -> Norm {
    Norm::Group
}
fn default_pool() -> Pool {
    Pool::Avg
}
fn yes() -> bool {
    true
}

/// The model architecture. The input size and the number of outputs come from the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelConfig {
    /// Linear regression `y = W x + b` with squared error (needs real-valued labels).
    Linear {},
    /// Logistic regression: one logit and the logistic loss for 2 classes, softmax regression otherwise.
    Logistic {},
    /// Multi-layer perceptron.
    Mlp {
        /// Hidden widths, e.g. `[128, 128]`.
        hidden: Vec<usize>,
        /// Nonlinearity after each hidden layer.
        #[serde(default = "default_activation")]
        activation: Activation,
        /// Factor on the output logits (seed paper Remark 2: a small factor smooths training).
        #[serde(default = "one")]
        output_scale: f64,
    },
    /// Small CNN: per stage a 3x3 conv, norm and activation (optionally a residual block), 2x2
    /// pooling between stages, global average pooling and a linear head. Input `[c, h, w]`.
    Cnn {
        /// Channels per stage, e.g. `[16, 32]`.
        channels: Vec<usize>,
        /// Convolution kernel size (odd; "same" padding).
        #[serde(default = "default_kernel")]
        kernel: usize,
        /// Normalisation.
        #[serde(default = "default_norm")]
        norm: Norm,
        /// Groups for group norm (must divide every stage's channels).
        #[serde(default = "default_groups")]
        groups: usize,
        /// Nonlinearity.
        #[serde(default = "default_activation")]
        activation: Activation,
        /// Pooling between stages.
        #[serde(default = "default_pool")]
        pool: Pool,
        /// Add a residual block (conv-norm-act-conv-norm + skip) to each stage.
        #[serde(default = "yes")]
        residual: bool,
        /// Factor on the output logits.
        #[serde(default = "one")]
        output_scale: f64,
    },
    /// Small GPT-style causal language model over token windows (pre-norm blocks).
    Gpt {
        /// Embedding width.
        d_model: usize,
        /// Number of transformer blocks.
        n_layer: usize,
        /// Attention heads (must divide `d_model`).
        n_head: usize,
    },
}

impl ModelConfig {
    /// The kind's name as written in `model.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::Linear {} => "linear",
            ModelConfig::Logistic {} => "logistic",
            ModelConfig::Mlp { .. } => "mlp",
            ModelConfig::Cnn { .. } => "cnn",
            ModelConfig::Gpt { .. } => "gpt",
        }
    }

    /// Checks the kind's fields, naming each as `model.field`.
    ///
    /// # Errors
    /// The first invalid field with the allowed values.
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::Linear {} | ModelConfig::Logistic {} => {}
            ModelConfig::Mlp {
                hidden,
                output_scale,
                ..
            } => {
                if hidden.contains(&0) {
                    return Err(invalid("model.hidden", "every width must be at least 1"));
                }
                positive("model.output_scale", *output_scale)?;
            }
            ModelConfig::Cnn {
                channels,
                kernel,
                groups,
                norm,
                output_scale,
                ..
            } => {
                if channels.is_empty() || channels.contains(&0) {
                    return Err(invalid(
                        "model.channels",
                        "give at least one stage, each with at least 1 channel",
                    ));
                }
                if kernel % 2 == 0 {
                    return Err(invalid(
                        "model.kernel",
                        format!("{kernel} must be odd so that padding keeps the size"),
                    ));
                }
                if *norm == Norm::Group
                    && (*groups == 0 || channels.iter().any(|c| c % groups != 0))
                {
                    return Err(invalid(
                        "model.groups",
                        format!("{groups} must divide every stage's channels {channels:?}"),
                    ));
                }
                positive("model.output_scale", *output_scale)?;
            }
            ModelConfig::Gpt {
                d_model,
                n_layer,
                n_head,
            } => {
                if *d_model == 0 || *n_layer == 0 || *n_head == 0 || d_model % n_head != 0 {
                    return Err(invalid(
                    "model.n_head",
                    format!("d_model = {d_model} must be a positive multiple of n_head = {n_head}, and n_layer >= 1"),
                ));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Arch {
    /// `y = x W^T + b` on flattened inputs (linear and logistic regression).
    Affine,
    Mlp(Mlp),
    Cnn(Cnn),
    Gpt(Gpt),
}

/// A model: its architecture, parameter layout and task.
#[derive(Debug, Clone)]
pub struct Model {
    arch: Arch,
    layout: Layout,
    task: Task,
    example_shape: Vec<usize>,
}

/// PyTorch's default bound for linear and conv weights and biases: `1 / sqrt(fan_in)`.
pub(crate) fn torch_bound(fan_in: usize) -> Init {
    Init::Uniform(1.0 / (fan_in.max(1) as f64).sqrt())
}

/// Adds `{prefix}.weight` `[out, inp]` and `{prefix}.bias` `[out]` with PyTorch's initialisation.
pub(crate) fn push_linear(layout: &mut Layout, prefix: &str, inp: usize, out: usize) {
    layout.push(format!("{prefix}.weight"), &[out, inp], torch_bound(inp));
    layout.push(format!("{prefix}.bias"), &[out], torch_bound(inp));
}

/// Applies an activation.
pub(crate) fn activate<F: Float, C: Carrier<F>>(g: &Graph<F, C>, a: Activation, x: Var) -> Var {
    match a {
        Activation::Relu => g.relu(x),
        Activation::Gelu => g.gelu(x),
        Activation::Tanh => g.tanh(x),
        Activation::Softplus => g.softplus(x),
    }
}

fn mismatch<T>(m: String) -> Result<T> {
    Err(NnError::Mismatch(m))
}

impl Model {
    /// Builds the model for data shaped like `ds`.
    ///
    /// # Errors
    /// When the data does not fit the architecture (labels of the wrong kind, an image model on
    /// flat features, a language model on real features), with the fix.
    pub fn new(cfg: &ModelConfig, ds: &Dataset) -> Result<Model> {
        let example_shape = ds.example_shape();
        let flat: usize = example_shape.iter().product();
        let classes = ds.num_classes();
        let classification_task = |what: &str| match classes {
            Some(k) if k >= 2 => Ok(Task::Classes(k)),
            Some(k) => mismatch(format!("{what} needs at least 2 classes, the data has {k}")),
            None if matches!(ds.labels, Labels::Real(_)) => Ok(Task::Regression),
            None => mismatch(format!(
                "{what} needs labels; this dataset has none (use model.kind = \"gpt\" for text)"
            )),
        };
        let mut layout = Layout::default();
        let (arch, task) = match cfg {
            ModelConfig::Linear {} => {
                if !matches!(ds.labels, Labels::Real(_)) {
                    return mismatch(
                        "model.kind = \"linear\" is least-squares regression and needs real-valued labels \
                         (data.task = \"regression\"); for classes use model.kind = \"logistic\""
                            .into(),
                    );
                }
                push_linear(&mut layout, "linear", flat, 1);
                (Arch::Affine, Task::Regression)
            }
            ModelConfig::Logistic {} => {
                let task = match classification_task("model.kind = \"logistic\"")? {
                    Task::Classes(2) => Task::Binary,
                    Task::Regression => {
                        return mismatch(
                            "model.kind = \"logistic\" needs class labels; for real labels use model.kind = \"linear\""
                                .into(),
                        )
                    }
                    t => t,
                };
                let out = if let Task::Classes(k) = task { k } else { 1 };
                push_linear(&mut layout, "linear", flat, out);
                (Arch::Affine, task)
            }
            ModelConfig::Mlp {
                hidden,
                activation,
                output_scale,
            } => {
                let task = classification_task("model.kind = \"mlp\"")?;
                let out = if let Task::Classes(k) = task { k } else { 1 };
                (
                    Arch::Mlp(Mlp::new(
                        &mut layout,
                        flat,
                        hidden,
                        out,
                        *activation,
                        *output_scale,
                    )),
                    task,
                )
            }
            ModelConfig::Cnn { .. } => {
                if example_shape.len() != 3 {
                    return mismatch(format!(
                        "model.kind = \"cnn\" needs image examples [channels, height, width], the data has \
                         examples of shape {example_shape:?}; set data.example_shape (e.g. [1, 8, 8] for digits)"
                    ));
                }
                let task = classification_task("model.kind = \"cnn\"")?;
                let out = if let Task::Classes(k) = task { k } else { 1 };
                (
                    Arch::Cnn(Cnn::new(&mut layout, cfg, &example_shape, out)?),
                    task,
                )
            }
            ModelConfig::Gpt {
                d_model,
                n_layer,
                n_head,
            } => {
                let Features::Tokens { vocab, seq_len, .. } = &ds.features else {
                    return mismatch(
                        "model.kind = \"gpt\" needs token windows (data.source = \"text\"), the data has real features"
                            .into(),
                    );
                };
                if *seq_len < 2 {
                    return mismatch(format!("model.kind = \"gpt\" needs windows of at least 2 tokens, got {seq_len}; raise data.seq_len"));
                }
                let gpt = Gpt::new(
                    &mut layout,
                    *vocab,
                    *seq_len - 1,
                    *d_model,
                    *n_layer,
                    *n_head,
                );
                (Arch::Gpt(gpt), Task::NextToken(*vocab))
            }
        };
        Ok(Model {
            arch,
            layout,
            task,
            example_shape,
        })
    }

    /// The parameter layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The task (and so the loss).
    pub fn task(&self) -> Task {
        self.task
    }

    /// Shape of one input example.
    pub fn example_shape(&self) -> &[usize] {
        &self.example_shape
    }

    /// Checks that a dataset can be fed to this model.
    ///
    /// # Errors
    /// Shape, label-kind or class-count mismatches, naming both sides.
    pub fn check_data(&self, ds: &Dataset, what: &str) -> Result<()> {
        if ds.example_shape() != self.example_shape {
            return Err(NnError::Mismatch(format!(
                "{what} has examples of shape {:?} but the model was built for {:?}",
                ds.example_shape(),
                self.example_shape
            )));
        }
        match (self.task, ds.num_classes()) {
            (Task::Classes(k), Some(c)) if c > k => Err(NnError::Mismatch(format!(
                "{what} has {c} classes but the model predicts {k}"
            ))),
            (Task::Binary, Some(c)) if c > 2 => Err(NnError::Mismatch(format!(
                "{what} has {c} classes but the model is binary"
            ))),
            _ => Ok(()),
        }
    }

    /// The representation entering the last layer: `[b, d]`, or `[b, t, d]` for language models.
    fn body<F: Float, C: Carrier<F>>(&self, g: &Graph<F, C>, p: &[Var], input: &Input<F>) -> Var {
        match (&self.arch, input) {
            (Arch::Gpt(m), Input::Tokens { ids, batch, len }) => m.hidden(g, p, ids, *batch, *len),
            (_, Input::Dense(x)) => self.dense_body(g, p, g.constant(x.clone())),
            _ => panic!("model input kind does not match the architecture (checked by check_data)"),
        }
    }

    /// [`Model::body`] of real features already on the tape as `xv` (`[b, ...example_shape]`).
    fn dense_body<F: Float, C: Carrier<F>>(&self, g: &Graph<F, C>, p: &[Var], xv: Var) -> Var {
        let shape = g.shape(xv);
        let b = shape[0];
        match &self.arch {
            Arch::Affine => g.reshape(xv, &[b, shape.iter().product::<usize>() / b.max(1)]),
            Arch::Mlp(m) => m.features(g, p, xv, b),
            Arch::Cnn(m) => m.features(g, p, xv),
            Arch::Gpt(_) => panic!("a language model reads token ids, not real features"),
        }
    }

    /// The last layer on the representation `h` of [`Model::body`].
    fn head<F: Float, C: Carrier<F>>(&self, g: &Graph<F, C>, p: &[Var], h: Var) -> Var {
        match &self.arch {
            Arch::Affine => g.linear(h, p[0], Some(p[1])),
            Arch::Mlp(m) => m.head(g, p, h),
            Arch::Cnn(m) => m.head(g, p, h),
            Arch::Gpt(m) => m.head(g, p, h),
        }
    }

    /// Whether the model reads real features, so that its outputs can be differentiated in the
    /// inputs ([`Model::output_at_input`]); language models read token ids.
    pub fn has_dense_input(&self) -> bool {
        !matches!(self.arch, Arch::Gpt(_))
    }

    /// `(logits, output)`: [`Model::forward`] and [`Model::output`] with the batch's real features
    /// given as the tape variable `x` (`[b, ...example_shape]`, e.g. a tracked leaf, so that the
    /// reverse pass also yields the cotangents of the inputs, MATH.md E7 (b)); the targets come
    /// from `batch`. The same operations in the same order as [`Model::output`], so the same bits.
    ///
    /// # Panics
    /// For a language model (token input; see [`Model::has_dense_input`]).
    pub fn output_at_input<F: Float, C: Carrier<F>>(
        &self,
        g: &Graph<F, C>,
        p: &[Var],
        x: Var,
        batch: &Batch<F>,
        out: Output,
    ) -> (Var, Var) {
        let z = self.head(g, p, self.dense_body(g, p, x));
        (z, self.output_of_logits(g, z, batch, out))
    }

    /// [`Model::features`] of a batch's targets: for per-token targets ([`Target::NextTokenAt`])
    /// the hidden state `[b, d]` at each target's position, the representation its prediction
    /// reads; otherwise [`Model::features`] of the batch's input.
    pub fn target_features<F: Float, C: Carrier<F>>(
        &self,
        g: &Graph<F, C>,
        p: &[Var],
        batch: &Batch<F>,
    ) -> Var {
        match &batch.target {
            Target::NextTokenAt(positions) => {
                let h = self.body(g, p, &batch.input);
                let s = g.shape(h);
                let (b, t, d) = (s[0], s[1], s[2]);
                let rows = crate::batch::position_rows(positions, t);
                g.index_select(g.reshape(h, &[b * t, d]), 0, &rows)
            }
            _ => self.features(g, p, &batch.input),
        }
    }

    /// The model's raw output: logits `[b, k]` (or `[b, 1]`; `[b, t, vocab]` for language models).
    pub fn forward<F: Float, C: Carrier<F>>(
        &self,
        g: &Graph<F, C>,
        p: &[Var],
        input: &Input<F>,
    ) -> Var {
        let h = self.body(g, p, input);
        self.head(g, p, h)
    }

    /// Penultimate-layer features `[b, d]`: the input to the last linear layer (the flattened input
    /// for linear models, the last hidden activations of an MLP, the pooled channels of a CNN, the
    /// final-norm hidden state averaged over positions for a GPT).
    pub fn features<F: Float, C: Carrier<F>>(
        &self,
        g: &Graph<F, C>,
        p: &[Var],
        input: &Input<F>,
    ) -> Var {
        let h = self.body(g, p, input);
        match &self.arch {
            Arch::Gpt(_) => g.mean(h, &[1], false),
            _ => h,
        }
    }

    /// Per-example training losses `[b]`.
    pub fn losses<F: Float, C: Carrier<F>>(
        &self,
        g: &Graph<F, C>,
        p: &[Var],
        batch: &Batch<F>,
    ) -> Var {
        self.output(g, p, batch, Output::Loss)
    }

    /// A per-example output `[b]`.
    pub fn output<F: Float, C: Carrier<F>>(
        &self,
        g: &Graph<F, C>,
        p: &[Var],
        batch: &Batch<F>,
        out: Output,
    ) -> Var {
        let z = self.forward(g, p, &batch.input);
        self.output_of_logits(g, z, batch, out)
    }

    /// The next-token loss (or margin) at every position of every window of the token batch
    /// `batch`, `[b * (len - 1)]` window by window, from its logits `z` over `vocab` tokens.
    ///
    /// # Panics
    /// If the batch holds no tokens.
    pub(crate) fn per_position<F: Float, C: Carrier<F>>(
        &self,
        g: &Graph<F, C>,
        z: Var,
        batch: &Batch<F>,
        vocab: usize,
        margin: bool,
    ) -> Var {
        let Input::Tokens { ids, batch: b, len } = &batch.input else {
            panic!("per-position outputs of a batch without tokens")
        };
        let logits = g.reshape(z, &[b * (len - 1), vocab]);
        let next: Vec<usize> = (0..*b)
            .flat_map(|i| ids[i * len + 1..(i + 1) * len].iter().copied())
            .collect();
        if margin {
            g.margin(logits, &next)
        } else {
            g.cross_entropy(logits, &next)
        }
    }

    /// The per-example output `[b]` of the logits `z` of `batch`.
    pub(crate) fn output_of_logits<F: Float, C: Carrier<F>>(
        &self,
        g: &Graph<F, C>,
        z: Var,
        batch: &Batch<F>,
        out: Output,
    ) -> Var {
        let loss_or_margin = |margin: bool| match (&self.task, &batch.target) {
            (Task::Classes(_), Target::Classes(y)) => {
                if margin {
                    g.margin(z, y)
                } else {
                    g.cross_entropy(z, y)
                }
            }
            (Task::Binary, Target::Classes(y)) => {
                if margin {
                    g.binary_margin(z, y)
                } else {
                    g.binary_logistic(z, y)
                }
            }
            (Task::Regression, Target::Real(t)) => {
                let l = g.mse(z, t.clone());
                if margin {
                    g.neg(l)
                } else {
                    l
                }
            }
            (Task::NextToken(v), Target::NextToken) => {
                let Input::Tokens { batch: b, len, .. } = &batch.input else {
                    unreachable!()
                };
                let per_pos = self.per_position(g, z, batch, *v, margin);
                let per_pos = g.reshape(per_pos, &[*b, len - 1]);
                g.mean(per_pos, &[1], false)
            }
            (Task::NextToken(v), Target::NextTokenAt(positions)) => {
                let Input::Tokens { ids, batch: b, len } = &batch.input else {
                    unreachable!()
                };
                let t = len - 1;
                // Only the scored rows of the logits: window i's row positions[i].
                let rows = crate::batch::position_rows(positions, t);
                let next: Vec<usize> = positions
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| ids[i * len + p + 1])
                    .collect();
                let logits = g.index_select(g.reshape(z, &[b * t, *v]), 0, &rows);
                if margin {
                    g.margin(logits, &next)
                } else {
                    g.cross_entropy(logits, &next)
                }
            }
            _ => panic!("batch targets do not match the model's task (checked by check_data)"),
        };
        match out {
            Output::Loss | Output::Token => loss_or_margin(false),
            Output::Margin => loss_or_margin(true),
            Output::LogLikelihood => {
                let l = loss_or_margin(false);
                g.neg(l)
            }
        }
    }

    /// How many examples of `batch` its `logits` classify correctly; `None` for a model or batch
    /// without classes.
    pub fn correct_predictions<F: Float>(
        &self,
        logits: &engine::Tensor<F>,
        batch: &Batch<F>,
    ) -> Option<usize> {
        match (&batch.target, self.task) {
            (Target::Classes(y), Task::Classes(_) | Task::Binary) => Some(
                self.predict_classes(logits)
                    .iter()
                    .zip(y)
                    .filter(|(a, b)| a == b)
                    .count(),
            ),
            _ => None,
        }
    }

    /// Predicted class per example, from logits.
    pub fn predict_classes<F: Float>(&self, logits: &engine::Tensor<F>) -> Vec<usize> {
        let k = *logits.shape().last().unwrap();
        logits
            .data()
            .chunks(k)
            .map(|row| {
                if k == 1 {
                    usize::from(row[0] > F::ZERO)
                } else {
                    let mut best = 0;
                    for j in 1..k {
                        if row[j] > row[best] {
                            best = j;
                        }
                    }
                    best
                }
            })
            .collect()
    }
}
