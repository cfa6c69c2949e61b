//! Optimizer updates on flat parameter vectors (MATH.md E1). All updates are elementwise, so they are
//! trivially deterministic, and their Jacobians are diagonal (what the MAGIC reverse sweep needs).

use engine::Float;

use crate::config::OptimConfig;

/// Optimizer buffers: momentum for SGD, first and second moments for Adam/AdamW.
#[derive(Debug, Clone, PartialEq)]
pub struct OptState<F> {
    /// Steps taken so far.
    pub step: usize,
    /// The buffers, each as long as the parameter vector.
    pub bufs: Vec<Vec<F>>,
}

impl OptimConfig {
    /// Peak learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            OptimConfig::Sgd { lr, .. }
            | OptimConfig::Adam { lr, .. }
            | OptimConfig::Adamw { lr, .. } => lr,
        }
    }

    /// The L2 coefficient `lambda` added to the gradient, `g + lambda theta` (0 for AdamW, whose
    /// decay is decoupled).
    pub fn coupled_weight_decay(&self) -> f64 {
        match *self {
            OptimConfig::Sgd { weight_decay, .. } | OptimConfig::Adam { weight_decay, .. } => {
                weight_decay
            }
            OptimConfig::Adamw { .. } => 0.0,
        }
    }

    /// Number of optimizer buffers, each as long as the parameter vector: 0 for plain SGD, 1
    /// (the velocity) with momentum, 2 (the moments) for Adam and AdamW.
    pub fn buffers(&self) -> usize {
        match self {
            OptimConfig::Sgd { momentum, .. } if *momentum > 0.0 => 1,
            OptimConfig::Sgd { .. } => 0,
            OptimConfig::Adam { .. } | OptimConfig::Adamw { .. } => 2,
        }
    }

    /// Fresh buffers for `n` parameters.
    pub fn new_state<F: Float>(&self, n: usize) -> OptState<F> {
        OptState {
            step: 0,
            bufs: vec![vec![F::ZERO; n]; self.buffers()],
        }
    }

    /// One update `theta <- step(theta, state, g, lr)`; `grad` already includes coupled weight decay.
    ///
    /// - SGD: `v <- mu v + g`, `theta <- theta - lr v` (Nesterov: `theta <- theta - lr (g + mu v)`).
    /// - Adam: `m <- b1 m + (1-b1) g`, `v <- b2 v + (1-b2) g^2`,
    ///   `theta <- theta - lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t) + eps_root) + eps)`.
    /// - AdamW: `theta <- theta (1 - lr wd)` first, then the Adam step.
    pub fn apply<F: Float>(&self, params: &mut [F], grad: &[F], state: &mut OptState<F>, lr: F) {
        state.step += 1;
        match *self {
            OptimConfig::Sgd {
                momentum, nesterov, ..
            } => {
                if momentum == 0.0 {
                    for (p, &g) in params.iter_mut().zip(grad) {
                        *p -= lr * g;
                    }
                } else {
                    let mu = F::from_f64(momentum);
                    for ((p, &g), v) in params.iter_mut().zip(grad).zip(state.bufs[0].iter_mut()) {
                        *v = mu * *v + g;
                        *p -= lr * if nesterov { g + mu * *v } else { *v };
                    }
                }
            }
            OptimConfig::Adam {
                beta1,
                beta2,
                eps,
                eps_root,
                ..
            }
            | OptimConfig::Adamw {
                beta1,
                beta2,
                eps,
                eps_root,
                ..
            } => {
                if let OptimConfig::Adamw { weight_decay, .. } = *self {
                    let keep = F::ONE - lr * F::from_f64(weight_decay);
                    for p in params.iter_mut() {
                        *p *= keep;
                    }
                }
                let t = state.step as i32;
                let (b1, b2) = (F::from_f64(beta1), F::from_f64(beta2));
                let bc1 = F::from_f64(1.0 - beta1.powi(t));
                let bc2 = F::from_f64(1.0 - beta2.powi(t));
                let (eps, eps_root) = (F::from_f64(eps), F::from_f64(eps_root));
                let (m, v) = state.bufs.split_at_mut(1);
                for (((p, &g), m), v) in params
                    .iter_mut()
                    .zip(grad)
                    .zip(m[0].iter_mut())
                    .zip(v[0].iter_mut())
                {
                    *m = b1 * *m + (F::ONE - b1) * g;
                    *v = b2 * *v + (F::ONE - b2) * g * g;
                    let denom = (*v / bc2 + eps_root).sqrt() + eps;
                    *p -= lr * (*m / bc1) / denom;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // PyTorch's documented recurrences (torch.optim.SGD / Adam / AdamW docs), written out by hand.
    #[test]
    fn sgd_nesterov_matches_the_pytorch_recurrence() {
        let opt = OptimConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.0,
        };
        let mut p = vec![1.0f64, -2.0];
        let mut s = opt.new_state(2);
        opt.apply(&mut p, &[0.5, -1.0], &mut s, 0.1);
        opt.apply(&mut p, &[0.25, 2.0], &mut s, 0.1);
        // v1 = g1; p1 = p0 - lr (g1 + mu v1); v2 = mu v1 + g2; p2 = p1 - lr (g2 + mu v2)
        let v1 = [0.5, -1.0];
        let p1 = [
            1.0 - 0.1 * (0.5 + 0.9 * v1[0]),
            -2.0 - 0.1 * (-1.0 + 0.9 * v1[1]),
        ];
        let v2 = [0.9 * v1[0] + 0.25, 0.9 * v1[1] + 2.0];
        let want = [
            p1[0] - 0.1 * (0.25 + 0.9 * v2[0]),
            p1[1] - 0.1 * (2.0 + 0.9 * v2[1]),
        ];
        assert!((p[0] - want[0]).abs() < 1e-15 && (p[1] - want[1]).abs() < 1e-15);
    }

    #[test]
    fn adam_first_step_moves_by_lr_times_sign() {
        // With bias correction, Adam's first step is lr * g / (|g| + eps) ~ lr * sign(g).
        let opt = OptimConfig::Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            eps_root: 0.0,
            weight_decay: 0.0,
        };
        let mut p = vec![0.0f64, 0.0];
        let mut s = opt.new_state(2);
        opt.apply(&mut p, &[3.0, -0.5], &mut s, 0.01);
        assert!(
            (p[0] + 0.01).abs() < 1e-9 && (p[1] - 0.01).abs() < 1e-9,
            "{p:?}"
        );
    }

    #[test]
    fn adamw_decays_before_the_step() {
        let opt = OptimConfig::Adamw {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            eps_root: 0.0,
            weight_decay: 0.5,
        };
        let mut p = vec![2.0f64];
        let mut s = opt.new_state(1);
        opt.apply(&mut p, &[1.0], &mut s, 0.1);
        // 2 * (1 - 0.1 * 0.5) - 0.1 * 1/(1 + 1e-8)
        assert!((p[0] - (1.9 - 0.1 / (1.0 + 1e-8))).abs() < 1e-12, "{p:?}");
    }
}
