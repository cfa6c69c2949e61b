//! SGD, with optional momentum (PyTorch convention) or Nesterov momentum (MATH.md E1), and its
//! reverse rule (E2).
//!
//! Forward, with `g` the gradient including weight decay:
//! - plain: `theta' = theta - lr g`;
//! - momentum: `v' = mu v + g`, `theta' = theta - lr v'`;
//! - Nesterov: `v' = mu v + g`, `theta' = theta - lr (g + mu v')`.
//!
//! Each update is linear in `(theta, v, g)`, so the reverse rule reads neither `g` nor `v`: only
//! the step's learning rate (and `theta_t` through `H_t`, which the caller applies).

use engine::Float;
use serde::{Deserialize, Serialize};

use super::{update_in_chunks, Adjoint, OptState, Optimizer, Tangent};
use crate::config::{nonneg, positive, unit};
use crate::error::{invalid, Result};

/// `optim.kind = "sgd"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sgd {
    /// Peak learning rate (scaled by the schedule).
    pub lr: f64,
    /// Momentum `mu` in `[0, 1)`.
    #[serde(default)]
    pub momentum: f64,
    /// Nesterov momentum (`theta <- theta - lr (g + mu v)`).
    #[serde(default)]
    pub nesterov: bool,
    /// L2 coefficient added to the gradient.
    #[serde(default)]
    pub weight_decay: f64,
}

impl Optimizer for Sgd {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn gradient_l2(&self) -> f64 {
        self.weight_decay
    }

    fn objective_l2(&self) -> f64 {
        self.weight_decay
    }

    /// 0 for plain SGD, 1 (the velocity) with momentum.
    fn buffers(&self) -> usize {
        usize::from(self.momentum > 0.0)
    }

    fn reads_gradient(&self) -> bool {
        false
    }

    fn reads_buffers(&self) -> bool {
        false
    }

    fn validate(&self) -> Result<()> {
        positive("optim.lr", self.lr)?;
        unit("optim.momentum", self.momentum)?;
        nonneg("optim.weight_decay", self.weight_decay)?;
        if self.nesterov && self.momentum == 0.0 {
            return Err(invalid("optim.nesterov", "Nesterov needs a momentum > 0"));
        }
        Ok(())
    }

    fn apply<F: Float>(&self, params: &mut [F], grad: &[F], state: &mut OptState<F>, lr: F) {
        state.step += 1;
        if self.momentum == 0.0 {
            update_in_chunks(params, grad, [], |params, grad, []| {
                for (p, &g) in params.iter_mut().zip(grad) {
                    *p -= lr * g;
                }
            });
        } else {
            let mu = F::from_f64(self.momentum);
            let nesterov = self.nesterov;
            update_in_chunks(params, grad, [&mut state.bufs[0]], |params, grad, [v]| {
                for ((p, &g), v) in params.iter_mut().zip(grad).zip(v.iter_mut()) {
                    *v = mu * *v + g;
                    *p -= lr * if nesterov { g + mu * *v } else { *v };
                }
            });
        }
    }

    fn step_vjp<F: Float>(
        &self,
        _state: &OptState<F>,
        _grad: Option<&[F]>,
        lr: F,
        adj: &mut Adjoint<F>,
    ) -> Vec<F> {
        assert_eq!(
            adj.bufs.len(),
            self.buffers(),
            "adjoint shapes do not match the training state"
        );
        if self.momentum == 0.0 {
            // Forward: theta' = theta - lr g.
            // Reverse: A_g = -lr A_theta'; A_theta = A_theta' (direct part).
            return adj.theta.iter().map(|&a| -lr * a).collect();
        }
        let mu = F::from_f64(self.momentum);
        let lr_mu = lr * mu;
        let av = &mut adj.bufs[0];
        // One branch-free loop per variant (the sweep runs this for every target at every step,
        // so it must vectorise), collected without zero-filling `b` first.
        let lanes = adj.theta.iter().zip(av.iter_mut());
        if self.nesterov {
            // Forward: v' = mu v + g; theta' = theta - lr (g + mu v').
            // The total adjoint of the intermediate v' is
            //   C = A_v' + (d theta'/d v') A_theta' = A_v' - lr mu A_theta',
            // then A_g = (d theta'/d g) A_theta' + (d v'/d g) C = -lr A_theta' + C,
            // A_v = mu C, A_theta = A_theta'.
            lanes
                .map(|(&a_th, a_v)| {
                    let c = *a_v - lr_mu * a_th;
                    *a_v = mu * c;
                    c - lr * a_th
                })
                .collect()
        } else {
            // Forward (PyTorch momentum): v' = mu v + g; theta' = theta - lr v'.
            // C = A_v' - lr A_theta'; A_g = C; A_v = mu C; A_theta = A_theta'.
            lanes
                .map(|(&a_th, a_v)| {
                    let c = *a_v - lr * a_th;
                    *a_v = mu * c;
                    c
                })
                .collect()
        }
    }

    fn step_jvp<F: Float>(
        &self,
        _after: &OptState<F>,
        _grad: &[F],
        grad_tan: &[F],
        lr: F,
        tan: &mut Tangent<F>,
    ) {
        assert_eq!(tan.theta.len(), grad_tan.len(), "tangent lengths");
        if self.momentum == 0.0 {
            // theta' = theta - lr g  =>  u' = u - lr g'.
            for (u, &d) in tan.theta.iter_mut().zip(grad_tan) {
                *u -= lr * d;
            }
            return;
        }
        // v' = mu v + g; theta' = theta - lr v' (Nesterov: theta - lr (g + mu v')), linear in
        // every input, so the tangents follow the same recurrence.
        let mu = F::from_f64(self.momentum);
        let lanes = tan
            .theta
            .iter_mut()
            .zip(grad_tan)
            .zip(tan.bufs[0].iter_mut());
        for ((u, &d), vt) in lanes {
            *vt = mu * *vt + d;
            *u -= lr * if self.nesterov { d + mu * *vt } else { *vt };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::vjp_check::{
        assert_step_jvp_matches_central_differences, assert_step_vjp_matches_central_differences,
    };
    use super::super::OptimConfig;
    use super::*;

    fn sgd(momentum: f64, nesterov: bool) -> Sgd {
        Sgd {
            lr: 0.1,
            momentum,
            nesterov,
            weight_decay: 0.0,
        }
    }

    // PyTorch's documented recurrence (torch.optim.SGD docs), written out by hand.
    #[test]
    fn sgd_nesterov_matches_the_pytorch_recurrence() {
        let opt = OptimConfig::Sgd(sgd(0.9, true));
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
    fn step_vjp_matches_central_differences_of_apply() {
        for opt in [sgd(0.0, false), sgd(0.9, false), sgd(0.8, true)] {
            assert_step_vjp_matches_central_differences(&OptimConfig::Sgd(opt), &[]);
        }
    }

    #[test]
    fn the_velocity_is_the_only_buffer() {
        assert_eq!(sgd(0.0, false).buffers(), 0);
        assert_eq!(sgd(0.5, true).buffers(), 1);
        assert!(
            sgd(0.0, true).validate().is_err(),
            "Nesterov without momentum"
        );
    }

    #[test]
    fn step_jvp_matches_central_differences_of_apply() {
        for opt in [sgd(0.0, false), sgd(0.9, false), sgd(0.8, true)] {
            assert_step_jvp_matches_central_differences(&OptimConfig::Sgd(opt), &[]);
        }
    }
}
