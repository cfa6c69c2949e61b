//! Causal multi-head self-attention as a composition of matmuls and a masked softmax:
//! `softmax(q k^T / sqrt(d_head) + M) v` with `M = -inf` above the diagonal (future positions).
//! The scaling, the mask and the softmax are one fused primitive ([`Graph::scaled_softmax`]).

use crate::carrier::Carrier;
use crate::graph::{Graph, Var};
use crate::kernels::softmax::Softmax;
use crate::Float;

/// Parameters of one attention block (PyTorch layout: weights `[out, in]`).
#[derive(Clone, Copy, Debug)]
pub struct AttentionParams {
    /// Query, key and value projections stacked: `[3 d, d]`.
    pub w_qkv: Var,
    /// Their biases: `[3 d]`.
    pub b_qkv: Var,
    /// Output projection `[d, d]`.
    pub w_out: Var,
    /// Its bias `[d]`.
    pub b_out: Var,
}

impl<F: Float, C: Carrier<F>> Graph<F, C> {
    /// Causal self-attention of `x` `[b, t, d]` with `heads` heads; returns `[b, t, d]`.
    ///
    /// # Panics
    /// If `d` is not a multiple of `heads`.
    pub fn causal_self_attention(&self, x: Var, p: &AttentionParams, heads: usize) -> Var {
        let s = self.shape(x);
        let (b, t, d) = (s[0], s[1], s[2]);
        assert!(
            d % heads == 0,
            "attention: width {d} is not a multiple of {heads} heads"
        );
        let dh = d / heads;
        let qkv = self.linear(x, p.w_qkv, Some(p.b_qkv)); // [b, t, 3d]
        let split = |i: usize| {
            let part = self.narrow(qkv, 2, i * d, d);
            let part = self.reshape(part, &[b, t, heads, dh]);
            self.permute(part, &[0, 2, 1, 3]) // [b, h, t, dh]
        };
        let (q, k, v) = (split(0), split(1), split(2));
        let scores = self.matmul_t(q, k, false, true); // [b, h, t, t]
        let attn = self.scaled_softmax(
            scores,
            Softmax {
                scale: F::ONE / F::from_f64((dh as f64).sqrt()),
                causal: true,
            },
        );
        let o = self.matmul(attn, v); // [b, h, t, dh]
        let o = self.permute(o, &[0, 2, 1, 3]);
        let o = self.reshape(o, &[b, t, d]);
        self.linear(o, p.w_out, Some(p.b_out))
    }
}
