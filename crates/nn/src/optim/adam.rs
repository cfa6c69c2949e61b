//! Adam with bias correction and AdamW's decoupled weight decay (MATH.md E1), and their reverse
//! rule (E2). The two share the moment update; AdamW first shrinks the parameters.
//!
//! Forward of the step from counter `t` (so `t + 1` after the increment), `g` including L2:
//! ```text
//! theta_ = theta (1 - lr wd)                     (AdamW only; Adam: theta_ = theta)
//! m' = b1 m + (1 - b1) g
//! v' = b2 v + (1 - b2) g^2
//! r  = sqrt(v' / bc2 + eps_root),   D = r + eps
//! theta' = theta_ - lr (m' / bc1) / D
//! ```
//! with `bc1 = 1 - b1^(t+1)`, `bc2 = 1 - b2^(t+1)`. The second moment is nonlinear in `g` and the
//! step divides by its root, so the reverse rule reads `g_t` and both moments.

use engine::Float;
use serde::{Deserialize, Serialize};

use super::{update_in_chunks, Adjoint, OptState, Optimizer, Tangent};
use crate::config::{nonneg, positive, unit};
use crate::error::{invalid, Result};

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn adam_eps() -> f64 {
    1e-8
}
fn adamw_wd() -> f64 {
    0.01
}

/// `optim.kind = "adam"`: Adam with bias correction, L2 weight decay in the gradient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adam {
    /// Peak learning rate.
    pub lr: f64,
    /// First-moment decay.
    #[serde(default = "beta1")]
    pub beta1: f64,
    /// Second-moment decay.
    #[serde(default = "beta2")]
    pub beta2: f64,
    /// Added to the root of the second moment.
    #[serde(default = "adam_eps")]
    pub eps: f64,
    /// Added inside the root (`sqrt(v_hat + eps_root)`): keeps the update smooth at `v = 0`.
    #[serde(default)]
    pub eps_root: f64,
    /// L2 coefficient added to the gradient.
    #[serde(default)]
    pub weight_decay: f64,
}

/// `optim.kind = "adamw"`: Adam with decoupled weight decay (`theta <- theta (1 - lr wd)` before
/// the step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamW {
    /// Peak learning rate.
    pub lr: f64,
    /// First-moment decay.
    #[serde(default = "beta1")]
    pub beta1: f64,
    /// Second-moment decay.
    #[serde(default = "beta2")]
    pub beta2: f64,
    /// Added to the root of the second moment.
    #[serde(default = "adam_eps")]
    pub eps: f64,
    /// Added inside the root.
    #[serde(default)]
    pub eps_root: f64,
    /// Decoupled decay coefficient.
    #[serde(default = "adamw_wd")]
    pub weight_decay: f64,
}

/// The moment constants of one Adam step, and the decoupled decay (AdamW) if any.
struct Moments {
    beta1: f64,
    beta2: f64,
    eps: f64,
    eps_root: f64,
    decoupled_decay: Option<f64>,
}

impl Adam {
    fn moments(&self) -> Moments {
        Moments {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            eps_root: self.eps_root,
            decoupled_decay: None,
        }
    }
}

impl AdamW {
    fn moments(&self) -> Moments {
        Moments {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            eps_root: self.eps_root,
            decoupled_decay: Some(self.weight_decay),
        }
    }
}

/// Checks the fields the two variants share.
fn validate(lr: f64, m: &Moments, weight_decay: f64) -> Result<()> {
    positive("optim.lr", lr)?;
    unit("optim.beta1", m.beta1)?;
    unit("optim.beta2", m.beta2)?;
    nonneg("optim.eps", m.eps)?;
    nonneg("optim.eps_root", m.eps_root)?;
    nonneg("optim.weight_decay", weight_decay)?;
    if m.eps == 0.0 && m.eps_root == 0.0 {
        return Err(invalid(
            "optim.eps",
            "eps and eps_root cannot both be 0 (division by zero)",
        ));
    }
    Ok(())
}

impl Moments {
    fn apply<F: Float>(&self, params: &mut [F], grad: &[F], state: &mut OptState<F>, lr: F) {
        state.step += 1;
        let keep = self
            .decoupled_decay
            .map(|weight_decay| F::ONE - lr * F::from_f64(weight_decay));
        let t = state.step as i32;
        let (b1, b2) = (F::from_f64(self.beta1), F::from_f64(self.beta2));
        let bc1 = F::from_f64(1.0 - self.beta1.powi(t));
        let bc2 = F::from_f64(1.0 - self.beta2.powi(t));
        let (eps, eps_root) = (F::from_f64(self.eps), F::from_f64(self.eps_root));
        let (m, v) = state.bufs.split_at_mut(1);
        update_in_chunks(
            params,
            grad,
            [&mut m[0], &mut v[0]],
            |params, grad, [m, v]| {
                if let Some(keep) = keep {
                    // Decoupled decay first, as its own pass did: each element's operations and their
                    // order are unchanged.
                    for p in params.iter_mut() {
                        *p *= keep;
                    }
                }
                for (((p, &g), m), v) in params
                    .iter_mut()
                    .zip(grad)
                    .zip(m.iter_mut())
                    .zip(v.iter_mut())
                {
                    *m = b1 * *m + (F::ONE - b1) * g;
                    *v = b2 * *v + (F::ONE - b2) * g * g;
                    let denom = (*v / bc2 + eps_root).sqrt() + eps;
                    *p -= lr * (*m / bc1) / denom;
                }
            },
        );
    }

    fn step_vjp<F: Float>(
        &self,
        state: &OptState<F>,
        grad: Option<&[F]>,
        lr: F,
        adj: &mut Adjoint<F>,
    ) -> Vec<F> {
        let n = adj.theta.len();
        assert_eq!(
            adj.bufs.len(),
            2,
            "adjoint shapes do not match the training state"
        );
        let g = grad.expect("Adam's reverse rule needs the step's gradient");
        assert_eq!(g.len(), n, "gradient length");
        assert_eq!(
            state.bufs.len(),
            2,
            "Adam's reverse rule needs both moments"
        );
        // Reverse of the forward in the module doc, with m' and v' intermediates whose total
        // adjoints are
        //   C_m = A_m' + (d theta'/d m') A_theta' = A_m' - lr / (bc1 D) A_theta'
        //   C_v = A_v' + (d theta'/d v') A_theta'
        //       = A_v' + lr (m'/bc1) / D^2 * dD/dv' A_theta',   dD/dv' = 1 / (2 r bc2),
        // the adjoints of the inputs are
        //   A_g = (1 - b1) C_m + 2 (1 - b2) g C_v
        //   A_m = b1 C_m,  A_v = b2 C_v
        //   A_theta = (1 - lr wd) A_theta'   (AdamW; Adam: A_theta').
        // At r = 0 (only when eps_root = 0 and v' = 0, hence g = 0 at every step so far and
        // m' = 0) dD/dv' is infinite but multiplies m' = 0, and the step is differentiable in g
        // there (theta' ~ -lr (1 - b1) g / (bc1 (sqrt((1-b2)/bc2) |g| + eps)) has slope
        // -lr (1 - b1) / (bc1 eps) at g = 0, which the C_m term gives): the v' term is 0.
        let t = (state.step + 1) as i32;
        let (b1, b2) = (F::from_f64(self.beta1), F::from_f64(self.beta2));
        let bc1 = F::from_f64(1.0 - self.beta1.powi(t));
        let bc2 = F::from_f64(1.0 - self.beta2.powi(t));
        let (eps, eps_root) = (F::from_f64(self.eps), F::from_f64(self.eps_root));
        let keep = self
            .decoupled_decay
            .map(|weight_decay| F::ONE - lr * F::from_f64(weight_decay));
        let two = F::from_f64(2.0);
        let (m, v) = (&state.bufs[0], &state.bufs[1]);
        let (am, av) = adj.bufs.split_at_mut(1);
        let (am, av) = (&mut am[0], &mut av[0]);
        let mut b = Vec::with_capacity(n);
        for i in 0..n {
            let gi = g[i];
            let m1 = b1 * m[i] + (F::ONE - b1) * gi;
            let v1 = b2 * v[i] + (F::ONE - b2) * gi * gi;
            let r = (v1 / bc2 + eps_root).sqrt();
            let d = r + eps;
            let a_th = adj.theta[i];
            let c_m = am[i] - lr / (bc1 * d) * a_th;
            let dv = if r > F::ZERO {
                lr * (m1 / bc1) / (d * d) / (two * r * bc2)
            } else {
                F::ZERO
            };
            let c_v = av[i] + dv * a_th;
            b.push((F::ONE - b1) * c_m + two * (F::ONE - b2) * gi * c_v);
            am[i] = b1 * c_m;
            av[i] = b2 * c_v;
            if let Some(k) = keep {
                adj.theta[i] = k * a_th;
            }
        }
        b
    }

    /// Differentiating the forward in the module doc with the NEW moments `m'`, `v'` of `after`:
    /// `m'' = b1 m_ + (1-b1) g_`, `v'' = b2 v_ + 2 (1-b2) g g_`, `r_ = v'' / (2 bc2 r)`,
    /// `u' = keep u - lr (m'' / bc1 - (m' / bc1) r_ / D) / D` (a trailing `_` marks a tangent;
    /// `keep = 1 - lr wd` for AdamW, 1 for Adam; the `r_` term is 0 at `r = 0` as in the reverse
    /// rule).
    fn step_jvp<F: Float>(
        &self,
        after: &OptState<F>,
        grad: &[F],
        grad_tan: &[F],
        lr: F,
        tan: &mut Tangent<F>,
    ) {
        let n = tan.theta.len();
        assert!(
            grad.len() == n && grad_tan.len() == n && tan.bufs.len() == 2,
            "tangent shapes do not match the training state"
        );
        if let Some(weight_decay) = self.decoupled_decay {
            let keep = F::ONE - lr * F::from_f64(weight_decay);
            tan.theta.iter_mut().for_each(|u| *u *= keep);
        }
        let t = after.step as i32;
        let (b1, b2) = (F::from_f64(self.beta1), F::from_f64(self.beta2));
        let bc1 = F::from_f64(1.0 - self.beta1.powi(t));
        let bc2 = F::from_f64(1.0 - self.beta2.powi(t));
        let (eps, eps_root) = (F::from_f64(self.eps), F::from_f64(self.eps_root));
        let two = F::from_f64(2.0);
        let (m, v) = (&after.bufs[0], &after.bufs[1]);
        let (mt, vt) = tan.bufs.split_at_mut(1);
        let (mt, vt) = (&mut mt[0], &mut vt[0]);
        for i in 0..n {
            mt[i] = b1 * mt[i] + (F::ONE - b1) * grad_tan[i];
            vt[i] = b2 * vt[i] + two * (F::ONE - b2) * grad[i] * grad_tan[i];
            let r = (v[i] / bc2 + eps_root).sqrt();
            let r_tan = if r > F::ZERO {
                vt[i] / (two * bc2 * r)
            } else {
                F::ZERO
            };
            let d = r + eps;
            tan.theta[i] -= lr * (mt[i] / bc1 - (m[i] / bc1) * r_tan / d) / d;
        }
    }
}

/// The parts of [`Optimizer`] in which Adam and AdamW agree.
macro_rules! adam_family {
    ($ty:ty, gradient_l2 = |$s:ident| $l2:expr) => {
        impl Optimizer for $ty {
            fn lr(&self) -> f64 {
                self.lr
            }
            fn gradient_l2(&self) -> f64 {
                let $s = self;
                $l2
            }
            fn objective_l2(&self) -> f64 {
                self.weight_decay
            }
            /// The first and second moments.
            fn buffers(&self) -> usize {
                2
            }
            fn reads_gradient(&self) -> bool {
                true
            }
            fn reads_buffers(&self) -> bool {
                true
            }
            fn validate(&self) -> Result<()> {
                validate(self.lr, &self.moments(), self.weight_decay)
            }
            fn apply<F: Float>(
                &self,
                params: &mut [F],
                grad: &[F],
                state: &mut OptState<F>,
                lr: F,
            ) {
                self.moments().apply(params, grad, state, lr)
            }
            fn step_vjp<F: Float>(
                &self,
                state: &OptState<F>,
                grad: Option<&[F]>,
                lr: F,
                adj: &mut Adjoint<F>,
            ) -> Vec<F> {
                self.moments().step_vjp(state, grad, lr, adj)
            }
            fn step_jvp<F: Float>(
                &self,
                after: &OptState<F>,
                grad: &[F],
                grad_tan: &[F],
                lr: F,
                tan: &mut Tangent<F>,
            ) {
                self.moments().step_jvp(after, grad, grad_tan, lr, tan)
            }
        }
    };
}

adam_family!(Adam, gradient_l2 = |s| s.weight_decay);
// AdamW's decay acts in the update, not through the gradient (module doc of `super`).
adam_family!(AdamW, gradient_l2 = |_s| 0.0);

#[cfg(test)]
mod tests {
    use super::super::vjp_check::{
        assert_step_jvp_matches_central_differences, assert_step_vjp_matches_central_differences,
    };
    use super::super::OptimConfig;
    use super::*;

    fn adam() -> Adam {
        Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-3,
            eps_root: 0.0,
            weight_decay: 0.0,
        }
    }

    fn adamw() -> AdamW {
        AdamW {
            lr: 0.01,
            beta1: 0.8,
            beta2: 0.95,
            eps: 1e-4,
            eps_root: 1e-3,
            weight_decay: 0.1,
        }
    }

    #[test]
    fn adam_first_step_moves_by_lr_times_sign() {
        // With bias correction, Adam's first step is lr * g / (|g| + eps) ~ lr * sign(g).
        let opt = OptimConfig::Adam(Adam {
            lr: 0.01,
            beta2: 0.999,
            eps: 1e-8,
            ..adam()
        });
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
        let opt = OptimConfig::Adamw(AdamW {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            eps_root: 0.0,
            weight_decay: 0.5,
        });
        let mut p = vec![2.0f64];
        let mut s = opt.new_state(1);
        opt.apply(&mut p, &[1.0], &mut s, 0.1);
        // 2 * (1 - 0.1 * 0.5) - 0.1 * 1/(1 + 1e-8)
        assert!((p[0] - (1.9 - 0.1 / (1.0 + 1e-8))).abs() < 1e-12, "{p:?}");
    }

    #[test]
    fn step_vjp_matches_central_differences_of_apply() {
        // The second moment is a running mean of squares: keep buffer 1 positive.
        assert_step_vjp_matches_central_differences(&OptimConfig::Adam(adam()), &[1]);
        assert_step_vjp_matches_central_differences(&OptimConfig::Adamw(adamw()), &[1]);
    }

    #[test]
    fn step_jvp_matches_central_differences_of_apply() {
        assert_step_jvp_matches_central_differences(&OptimConfig::Adam(adam()), &[1]);
        assert_step_jvp_matches_central_differences(&OptimConfig::Adamw(adamw()), &[1]);
    }

    #[test]
    fn adam_rule_is_finite_where_the_second_moment_is_zero() {
        // A coordinate that never had a gradient: v' = 0, m' = 0, eps_root = 0.
        let opt = adam();
        let mut s: OptState<f64> = OptimConfig::Adam(opt.clone()).new_state(1);
        s.step = 2;
        let mut adj = Adjoint::at_end(vec![1.0], 2);
        let b = opt.step_vjp(&s, Some(&[0.0]), 0.1, &mut adj);
        // slope of theta' in g at g = 0: -lr (1 - b1) / (bc1 eps)
        let bc1 = 1.0 - 0.9f64.powi(3);
        assert!((b[0] + 0.1 * 0.1 / (bc1 * 1e-3)).abs() < 1e-9, "{b:?}");
        assert!(adj.bufs.iter().flatten().all(|x| x.is_finite()));
    }

    #[test]
    fn adamw_decays_outside_the_gradient_but_regularises_the_objective() {
        let w = adamw();
        assert_eq!(w.gradient_l2(), 0.0, "decoupled: not added to g_t");
        assert_eq!(w.objective_l2(), 0.1);
        let a = Adam {
            weight_decay: 0.1,
            ..adam()
        };
        assert_eq!((a.gradient_l2(), a.objective_l2()), (0.1, 0.1));
    }
}
