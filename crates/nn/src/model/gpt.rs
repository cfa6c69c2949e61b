//! A small GPT-style causal language model: token and position embeddings, pre-norm transformer
//! blocks (causal self-attention, GELU MLP), a final layer norm and an untied output head.

use engine::{AttentionParams, Carrier, Float, Graph, Var};

use super::{push_linear, torch_bound};
use crate::params::{Init, Layout};

/// The GPT's static structure.
#[derive(Debug, Clone)]
pub struct Gpt {
    n_layer: usize,
    n_head: usize,
    context: usize,
}

impl Gpt {
    pub(crate) fn new(
        layout: &mut Layout,
        vocab: usize,
        context: usize,
        d: usize,
        n_layer: usize,
        n_head: usize,
    ) -> Self {
        layout.push("tok_emb", &[vocab, d], Init::Normal(0.02));
        layout.push("pos_emb", &[context, d], Init::Normal(0.02));
        let norm = |layout: &mut Layout, name: String| {
            layout.push(format!("{name}.weight"), &[d], Init::Ones);
            layout.push(format!("{name}.bias"), &[d], Init::Zeros);
        };
        for l in 0..n_layer {
            norm(layout, format!("blocks.{l}.ln1"));
            push_linear(layout, &format!("blocks.{l}.attn.qkv"), d, 3 * d);
            push_linear(layout, &format!("blocks.{l}.attn.out"), d, d);
            norm(layout, format!("blocks.{l}.ln2"));
            push_linear(layout, &format!("blocks.{l}.mlp.fc"), d, 4 * d);
            push_linear(layout, &format!("blocks.{l}.mlp.proj"), 4 * d, d);
        }
        norm(layout, "ln_f".into());
        layout.push("head.weight", &[vocab, d], torch_bound(d));
        Gpt {
            n_layer,
            n_head,
            context,
        }
    }

    /// Logits `[b, t, vocab]` from the final-norm hidden states (untied head, no bias).
    pub(crate) fn head<F: Float, C: Carrier<F>>(&self, g: &Graph<F, C>, p: &[Var], h: Var) -> Var {
        g.linear(h, p[p.len() - 1], None)
    }

    /// Final-norm hidden states `[b, len - 1, d]`.
    pub(crate) fn hidden<F: Float, C: Carrier<F>>(
        &self,
        g: &Graph<F, C>,
        p: &[Var],
        ids: &[usize],
        b: usize,
        len: usize,
    ) -> Var {
        let t = len - 1;
        assert!(
            t <= self.context,
            "window of {t} tokens exceeds the model's context {}",
            self.context
        );
        let inputs: Vec<usize> = (0..b)
            .flat_map(|i| ids[i * len..i * len + t].iter().copied())
            .collect();
        let mut it = p.iter().copied();
        let mut next = || it.next().expect("parameter count matches the layout");
        let (tok, pos) = (next(), next());
        let x = g.embedding(tok, &inputs, &[b, t]);
        let pos = g.narrow(pos, 0, 0, t);
        let mut h = g.add(x, pos);
        let eps = F::from_f64(1e-5);
        for _ in 0..self.n_layer {
            let (g1, b1) = (next(), next());
            let attn = AttentionParams {
                w_qkv: next(),
                b_qkv: next(),
                w_out: next(),
                b_out: next(),
            };
            let (g2, b2) = (next(), next());
            let (wf, bf, wp, bp) = (next(), next(), next(), next());
            let a = g.layer_norm(h, g1, b1, eps);
            let a = g.causal_self_attention(a, &attn, self.n_head);
            h = g.add(h, a);
            let m = g.layer_norm(h, g2, b2, eps);
            let m = g.linear(m, wf, Some(bf));
            let m = g.gelu(m);
            let m = g.linear(m, wp, Some(bp));
            h = g.add(h, m);
        }
        let (gf, bf) = (next(), next());
        g.layer_norm(h, gf, bf, eps)
    }
}
