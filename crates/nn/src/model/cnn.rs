//! Small CNN: conv-norm-act stages with optional residual blocks, 2x2 pooling between stages, global
//! average pooling and a linear head. Group/layer norm only: examples never share statistics.

use engine::{Carrier, Float, Graph, Var};

use super::{activate, torch_bound};
use crate::config::{Activation, ModelConfig, Norm, Pool};
use crate::error::Result;
use crate::params::{Init, Layout};

/// The CNN's static structure.
#[derive(Debug, Clone)]
pub struct Cnn {
    stages: usize,
    kernel: usize,
    norm: Norm,
    groups: usize,
    activation: Activation,
    pool: Pool,
    residual: bool,
    output_scale: f64,
}

impl Cnn {
    pub(crate) fn new(
        layout: &mut Layout,
        cfg: &ModelConfig,
        shape: &[usize],
        out: usize,
    ) -> Result<Self> {
        let ModelConfig::Cnn {
            channels,
            kernel,
            norm,
            groups,
            activation,
            pool,
            residual,
            output_scale,
        } = cfg
        else {
            unreachable!("Cnn::new is called for cnn configs")
        };
        let k = *kernel;
        let conv = |layout: &mut Layout, name: &str, cin: usize, cout: usize| {
            let fan_in = cin * k * k;
            layout.push(
                format!("{name}.conv.weight"),
                &[cout, cin, k, k],
                torch_bound(fan_in),
            );
            layout.push(format!("{name}.conv.bias"), &[cout], torch_bound(fan_in));
            if *norm != Norm::None {
                layout.push(format!("{name}.norm.weight"), &[cout], Init::Ones);
                layout.push(format!("{name}.norm.bias"), &[cout], Init::Zeros);
            }
        };
        let mut cin = shape[0];
        for (i, &c) in channels.iter().enumerate() {
            conv(layout, &format!("stages.{i}"), cin, c);
            if *residual {
                conv(layout, &format!("stages.{i}.res1"), c, c);
                conv(layout, &format!("stages.{i}.res2"), c, c);
            }
            cin = c;
        }
        layout.push("head.weight", &[out, cin], torch_bound(cin));
        layout.push("head.bias", &[out], torch_bound(cin));
        Ok(Cnn {
            stages: channels.len(),
            kernel: k,
            norm: *norm,
            groups: *groups,
            activation: *activation,
            pool: *pool,
            residual: *residual,
            output_scale: *output_scale,
        })
    }

    /// conv -> norm (no activation); consumes parameters from `next`.
    fn conv_norm<F: Float, C: Carrier<F>>(
        &self,
        g: &Graph<F, C>,
        next: &mut impl FnMut() -> Var,
        h: Var,
    ) -> Var {
        let (w, b) = (next(), next());
        let y = g.conv2d(h, w, Some(b), 1, self.kernel / 2);
        let groups = match self.norm {
            Norm::None => return y,
            Norm::Group => self.groups,
            Norm::Layer => 1,
        };
        let (gamma, beta) = (next(), next());
        g.group_norm(y, groups, gamma, beta, F::from_f64(1e-5))
    }

    /// The linear head on the pooled channels, times the output scale.
    pub(crate) fn head<F: Float, C: Carrier<F>>(
        &self,
        g: &Graph<F, C>,
        p: &[Var],
        pooled: Var,
    ) -> Var {
        let n = p.len();
        let logits = g.linear(pooled, p[n - 2], Some(p[n - 1]));
        if self.output_scale != 1.0 {
            g.scale(logits, F::from_f64(self.output_scale))
        } else {
            logits
        }
    }

    /// Globally pooled channels entering the head `[b, c]`.
    pub(crate) fn features<F: Float, C: Carrier<F>>(
        &self,
        g: &Graph<F, C>,
        p: &[Var],
        x: Var,
    ) -> Var {
        let mut it = p.iter().copied();
        let mut next = || it.next().expect("parameter count matches the layout");
        let mut h = x;
        for i in 0..self.stages {
            let y = self.conv_norm(g, &mut next, h);
            h = activate(g, self.activation, y);
            if self.residual {
                let r = self.conv_norm(g, &mut next, h);
                let r = activate(g, self.activation, r);
                let r = self.conv_norm(g, &mut next, r);
                let s = g.add(h, r);
                h = activate(g, self.activation, s);
            }
            let s = g.shape(h);
            if i + 1 < self.stages && s[2] >= 2 && s[2].is_multiple_of(2) && s[3].is_multiple_of(2)
            {
                h = match self.pool {
                    Pool::Avg => g.avg_pool2d(h, 2),
                    Pool::Max => g.max_pool2d(h, 2),
                };
            }
        }
        g.global_avg_pool(h)
    }
}
