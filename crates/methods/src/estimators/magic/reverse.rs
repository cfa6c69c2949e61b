//! The reverse rule (vector-Jacobian product) of one optimizer update, [`OptimConfig::apply`].
//!
//! One training step maps `(theta_t, s_t, g_t)` to `(theta_{t+1}, s_{t+1})` elementwise. Given the
//! adjoints of the outputs, [`step_vjp`] returns `b_t`, the adjoint of the gradient `g_t`, and
//! overwrites the adjoints in place with those of `theta_t` (the *direct* part, through the update
//! alone: the caller adds `H_t b_t`, the part through `g_t = G_t(theta_t)`) and of the buffers `s_t`.
//! Every update is elementwise, so its Jacobian is diagonal and the rule is a loop over coordinates;
//! each formula below sits next to the forward formula it differentiates (the forward is
//! `nn::optim`, `OptimConfig::apply`; any change there must be mirrored here, and the tests of this
//! file check the two against each other by central differences).
//!
//! Adjoint notation: `A_x` is the adjoint of `x`, i.e. `d L / d x` for the scalar `L` being
//! differentiated (a target output `f(theta_T)`).

use engine::Float;
use nn::{OptimConfig, TrainState};

/// The adjoints of one target carried by the reverse sweep: of the parameters and of each optimizer
/// buffer (momentum; Adam's first and second moments), each as long as the parameter vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Adjoint<F> {
    /// `A_theta`.
    pub theta: Vec<F>,
    /// `A_s` for each buffer, in the order of `OptState::bufs`.
    pub bufs: Vec<Vec<F>>,
}

impl<F: Float> Adjoint<F> {
    /// The adjoint at the end of training: `A_theta_T = grad f(theta_T)` and zero buffer adjoints
    /// (the final buffers do not enter `f`).
    pub fn at_end(grad_f: Vec<F>, buffers: usize) -> Self {
        let n = grad_f.len();
        Adjoint {
            theta: grad_f,
            bufs: vec![vec![F::ZERO; n]; buffers],
        }
    }
}

/// Whether the reverse rule of `opt` reads the gradient `g_t` (only Adam's second moment
/// `v <- b2 v + (1 - b2) g^2` is nonlinear in `g`).
pub fn needs_gradient(opt: &OptimConfig) -> bool {
    matches!(opt, OptimConfig::Adam { .. } | OptimConfig::Adamw { .. })
}

/// Whether the reverse rule of `opt` reads the optimizer buffers of the state `s_t`. SGD's
/// momentum and Nesterov updates are linear in the buffer, so their rules read only `theta_t`
/// (through `H_t`) and the step counter; Adam's normalisation by `sqrt(v)` reads both moments. A
/// store-all replay keeps the buffers only when this holds ([`super::replay::Buffers`]).
pub fn reads_buffers(opt: &OptimConfig) -> bool {
    matches!(opt, OptimConfig::Adam { .. } | OptimConfig::Adamw { .. })
}

/// Reverse of `opt.apply(theta_t, g_t, s_t, lr)` (the step from `state`, whose counter is `t`).
///
/// On entry `adj` holds the adjoints of `(theta_{t+1}, s_{t+1})`; on return, the direct adjoint of
/// `theta_t` (without the `H_t b_t` term) and the adjoints of `s_t`. Returns `b_t = A_g`.
/// `grad` is `g_t` (the same bits the step used); it is read only when [`needs_gradient`]. The
/// buffers of `state` are read only when [`reads_buffers`], so a state stored without them will do
/// for the other rules; `adj` always carries one adjoint per buffer of `opt`.
///
/// # Panics
/// If the lengths of `state`, `grad` and `adj` disagree, or `grad` or the buffers are missing
/// for Adam (internal invariants of the sweep).
pub fn step_vjp<F: Float>(
    opt: &OptimConfig,
    state: &TrainState<F>,
    grad: Option<&[F]>,
    lr: F,
    adj: &mut Adjoint<F>,
) -> Vec<F> {
    let n = state.params.len();
    assert!(
        adj.theta.len() == n && adj.bufs.len() == opt.buffers(),
        "adjoint shapes do not match the training state"
    );
    match *opt {
        OptimConfig::Sgd {
            momentum, nesterov, ..
        } => {
            if momentum == 0.0 {
                // Forward: theta' = theta - lr g.
                // Reverse: A_g = -lr A_theta'; A_theta = A_theta' (direct part).
                adj.theta.iter().map(|&a| -lr * a).collect()
            } else {
                let mu = F::from_f64(momentum);
                let lr_mu = lr * mu;
                let av = &mut adj.bufs[0];
                // One branch-free loop per variant (the sweep runs this for every target at every
                // step, so it must vectorise), collected without zero-filling `b` first.
                let lanes = adj.theta.iter().zip(av.iter_mut());
                if nesterov {
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
            let g = grad.expect("Adam's reverse rule needs the step's gradient");
            assert_eq!(g.len(), n, "gradient length");
            assert_eq!(
                state.opt.bufs.len(),
                2,
                "Adam's reverse rule needs both moments"
            );
            // The forward of step t+1 (counter after the increment), exactly as `apply` computes it:
            //   theta_ = theta (1 - lr wd)                     (AdamW only; Adam: theta_ = theta)
            //   m' = b1 m + (1 - b1) g
            //   v' = b2 v + (1 - b2) g^2
            //   r  = sqrt(v' / bc2 + eps_root),   D = r + eps
            //   theta' = theta_ - lr (m' / bc1) / D
            // with bc1 = 1 - b1^(t+1), bc2 = 1 - b2^(t+1).
            //
            // Reverse, with m' and v' intermediates whose total adjoints are
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
            let t = (state.opt.step + 1) as i32;
            let (b1, b2) = (F::from_f64(beta1), F::from_f64(beta2));
            let bc1 = F::from_f64(1.0 - beta1.powi(t));
            let bc2 = F::from_f64(1.0 - beta2.powi(t));
            let (eps, eps_root) = (F::from_f64(eps), F::from_f64(eps_root));
            let keep = match *opt {
                OptimConfig::Adamw { weight_decay, .. } => {
                    Some(F::ONE - lr * F::from_f64(weight_decay))
                }
                _ => None,
            };
            let two = F::from_f64(2.0);
            let (m, v) = (&state.opt.bufs[0], &state.opt.bufs[1]);
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
    }
}

#[cfg(test)]
mod tests {
    //! The rule against central differences of `OptimConfig::apply` itself, in f64: for
    //! `L = <A_theta', theta'> + sum_s <A_s', s'>`, the directional derivatives of `L` along random
    //! directions of `g`, `theta` and each buffer must equal `<A_g, d>`, `<A_theta, d>`, `<A_s, d>`.

    use engine::Rng;
    use nn::OptState;

    use super::*;

    fn optimizers() -> Vec<OptimConfig> {
        vec![
            OptimConfig::Sgd {
                lr: 0.1,
                momentum: 0.0,
                nesterov: false,
                weight_decay: 0.0,
            },
            OptimConfig::Sgd {
                lr: 0.1,
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            },
            OptimConfig::Sgd {
                lr: 0.1,
                momentum: 0.8,
                nesterov: true,
                weight_decay: 0.0,
            },
            OptimConfig::Adam {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.99,
                eps: 1e-3,
                eps_root: 0.0,
                weight_decay: 0.0,
            },
            OptimConfig::Adamw {
                lr: 0.01,
                beta1: 0.8,
                beta2: 0.95,
                eps: 1e-4,
                eps_root: 1e-3,
                weight_decay: 0.1,
            },
        ]
    }

    fn random(rng: &mut Rng, n: usize) -> Vec<f64> {
        (0..n).map(|_| rng.normal()).collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn step_vjp_matches_central_differences_of_apply() {
        let n = 7;
        let lr = 0.05;
        for opt in optimizers() {
            let mut rng = Rng::new(3);
            let mut opt_state: OptState<f64> = opt.new_state(n);
            opt_state.step = 4;
            for b in &mut opt_state.bufs {
                *b = random(&mut rng, n);
            }
            if needs_gradient(&opt) {
                // The second moment is a running mean of squares: keep it positive.
                opt_state.bufs[1].iter_mut().for_each(|v| *v = v.abs());
            }
            let state = TrainState {
                params: random(&mut rng, n),
                opt: opt_state,
            };
            let g = random(&mut rng, n);
            let out = Adjoint {
                theta: random(&mut rng, n),
                bufs: state.opt.bufs.iter().map(|_| random(&mut rng, n)).collect(),
            };
            // L(theta, bufs, g) after one step.
            let loss = |s: &TrainState<f64>, g: &[f64]| {
                let mut s = s.clone();
                opt.apply(&mut s.params, g, &mut s.opt, lr);
                dot(&out.theta, &s.params)
                    + out
                        .bufs
                        .iter()
                        .zip(&s.opt.bufs)
                        .map(|(a, b)| dot(a, b))
                        .sum::<f64>()
            };
            let mut adj = out.clone();
            let b = step_vjp(&opt, &state, Some(&g), lr, &mut adj);
            let fd = |f: &dyn Fn(f64) -> f64| {
                let d = |h: f64| (f(h) - f(-h)) / (2.0 * h);
                (4.0 * d(5e-5) - d(1e-4)) / 3.0
            };
            let check = |what: &str, got: f64, want: f64| {
                assert!(
                    (got - want).abs() <= 1e-8 * want.abs().max(1.0),
                    "{opt:?} {what}: {got} vs {want}"
                );
            };
            let dir = random(&mut rng, n);
            let along = |x: &[f64], h: f64| -> Vec<f64> {
                x.iter().zip(&dir).map(|(a, d)| a + h * d).collect()
            };
            check("A_g", dot(&b, &dir), fd(&|h| loss(&state, &along(&g, h))));
            check(
                "A_theta",
                dot(&adj.theta, &dir),
                fd(&|h| {
                    let mut s = state.clone();
                    s.params = along(&state.params, h);
                    loss(&s, &g)
                }),
            );
            for k in 0..state.opt.bufs.len() {
                check(
                    "A_buf",
                    dot(&adj.bufs[k], &dir),
                    fd(&|h| {
                        let mut s = state.clone();
                        s.opt.bufs[k] = along(&state.opt.bufs[k], h);
                        loss(&s, &g)
                    }),
                );
            }
        }
    }

    #[test]
    fn adam_rule_is_finite_where_the_second_moment_is_zero() {
        // A coordinate that never had a gradient: v' = 0, m' = 0, eps_root = 0.
        let opt = &optimizers()[3];
        let mut s: OptState<f64> = opt.new_state(1);
        s.step = 2;
        let state = TrainState {
            params: vec![0.5],
            opt: s,
        };
        let mut adj = Adjoint::at_end(vec![1.0], 2);
        let b = step_vjp(opt, &state, Some(&[0.0]), 0.1, &mut adj);
        // slope of theta' in g at g = 0: -lr (1 - b1) / (bc1 eps)
        let bc1 = 1.0 - 0.9f64.powi(3);
        assert!((b[0] + 0.1 * 0.1 / (bc1 * 1e-3)).abs() < 1e-9, "{b:?}");
        assert!(adj.bufs.iter().flatten().all(|x| x.is_finite()));
    }
}
