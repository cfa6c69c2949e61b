//! Batches: the rows of a dataset that one step or one evaluation reads.

use data::{Dataset, Features, Labels};
use engine::{Float, Tensor};

/// Model input for a batch.
#[derive(Debug, Clone)]
pub enum Input<F: Float> {
    /// Real features `[b, ...example_shape]`.
    Dense(Tensor<F>),
    /// Token ids, `batch` windows of `len` tokens, row-major.
    Tokens {
        /// The ids.
        ids: Vec<usize>,
        /// Windows in the batch.
        batch: usize,
        /// Tokens per window.
        len: usize,
    },
}

/// What the model is trained to predict for a batch.
#[derive(Debug, Clone)]
pub enum Target<F: Float> {
    /// Class indices.
    Classes(Vec<usize>),
    /// Real values `[b, 1]`.
    Real(Tensor<F>),
    /// The next token at every position of the input windows.
    NextToken,
    /// The next token at one position per window: window `i` is scored on predicting token
    /// `positions[i] + 1` from tokens `0..=positions[i]` (per-token targets, [`crate::Output::Token`]).
    NextTokenAt(Vec<usize>),
}

/// `(window, position)` of per-token target `t` over windows of `seq_len` tokens: target
/// `s (L - 1) + p` is the prediction of token `p + 1` of window `s` ([`crate::Output::Token`]).
pub fn token_target(t: usize, seq_len: usize) -> (usize, usize) {
    (t / (seq_len - 1), t % (seq_len - 1))
}

/// Rows of the flattened `[b * t, ...]` per-position values (logits, hidden states) that the
/// positions of [`Target::NextTokenAt`] read: window `i`'s row `positions[i]`, `t` rows a window.
pub(crate) fn position_rows(positions: &[usize], t: usize) -> Vec<usize> {
    positions
        .iter()
        .enumerate()
        .map(|(i, &p)| i * t + p)
        .collect()
}

/// Rows of a dataset, converted to `F`.
#[derive(Debug, Clone)]
pub struct Batch<F: Float> {
    /// Inputs.
    pub input: Input<F>,
    /// Targets.
    pub target: Target<F>,
}

impl<F: Float> Batch<F> {
    /// Rows `idx` of `ds`, in that order.
    ///
    /// # Panics
    /// If an index is out of range (callers index validated datasets).
    pub fn from_dataset(ds: &Dataset, idx: &[usize]) -> Self {
        let input = match &ds.features {
            Features::Dense { values, shape } => {
                let d: usize = shape.iter().product();
                let mut x = Vec::with_capacity(idx.len() * d);
                for &i in idx {
                    x.extend(values[i * d..(i + 1) * d].iter().map(|&v| F::from_f32(v)));
                }
                let mut s = vec![idx.len()];
                s.extend_from_slice(shape);
                Input::Dense(Tensor::from_vec(x, &s))
            }
            Features::Tokens { ids, seq_len, .. } => {
                let mut out = Vec::with_capacity(idx.len() * seq_len);
                for &i in idx {
                    out.extend(
                        ids[i * seq_len..(i + 1) * seq_len]
                            .iter()
                            .map(|&t| t as usize),
                    );
                }
                Input::Tokens {
                    ids: out,
                    batch: idx.len(),
                    len: *seq_len,
                }
            }
        };
        let target = match &ds.labels {
            Labels::Classes { y, .. } => {
                Target::Classes(idx.iter().map(|&i| y[i] as usize).collect())
            }
            Labels::Real(y) => Target::Real(Tensor::from_vec(
                idx.iter().map(|&i| F::from_f32(y[i])).collect(),
                &[idx.len(), 1],
            )),
            Labels::None => Target::NextToken,
        };
        Batch { input, target }
    }

    /// Per-token targets of a token dataset: `flat[k] = s (L - 1) + p` names the prediction of
    /// token `p + 1` of window `s` (windows of `L` tokens). The batch holds window `s` once per
    /// target, in the order of `flat`, with [`Target::NextTokenAt`] positions.
    ///
    /// # Panics
    /// On a dense dataset or an index out of range (callers check [`Dataset`]s and targets).
    pub fn token_targets(ds: &Dataset, flat: &[usize]) -> Self {
        let Features::Tokens { seq_len, .. } = &ds.features else {
            panic!("per-token targets of a dataset without tokens")
        };
        let (windows, positions): (Vec<usize>, Vec<usize>) =
            flat.iter().map(|&t| token_target(t, *seq_len)).unzip();
        let mut batch = Batch::from_dataset(ds, &windows);
        batch.target = Target::NextTokenAt(positions);
        batch
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        match &self.input {
            Input::Dense(x) => x.shape()[0],
            Input::Tokens { batch, .. } => *batch,
        }
    }

    /// `true` for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Examples `start..start + len` as a batch of their own.
    ///
    /// # Panics
    /// If the range runs past the batch (an internal invariant of callers).
    pub fn rows(&self, start: usize, len: usize) -> Batch<F> {
        assert!(
            start + len <= self.len(),
            "rows {start}..{} of a batch of {}",
            start + len,
            self.len()
        );
        let input = match &self.input {
            Input::Dense(x) => {
                let d = x.len() / x.shape()[0].max(1);
                let mut s = x.shape().to_vec();
                s[0] = len;
                Input::Dense(Tensor::from_vec(
                    x.data()[start * d..(start + len) * d].to_vec(),
                    &s,
                ))
            }
            Input::Tokens { ids, len: l, .. } => Input::Tokens {
                ids: ids[start * l..(start + len) * l].to_vec(),
                batch: len,
                len: *l,
            },
        };
        let target = match &self.target {
            Target::Classes(y) => Target::Classes(y[start..start + len].to_vec()),
            Target::Real(t) => Target::Real(Tensor::from_vec(
                t.data()[start..start + len].to_vec(),
                &[len, 1],
            )),
            Target::NextToken => Target::NextToken,
            Target::NextTokenAt(p) => Target::NextTokenAt(p[start..start + len].to_vec()),
        };
        Batch { input, target }
    }
}
