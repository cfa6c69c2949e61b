//! Optimizers (MATH.md E1) with their reverse rules (E2), one file each behind [`Optimizer`].
//!
//! | `optim.kind` | file | update | buffers |
//! |---|---|---|---|
//! | `sgd` | [`sgd`] | SGD, PyTorch momentum, Nesterov | 0, or 1 (velocity) |
//! | `adam`, `adamw` | [`adam`] | Adam with bias correction; AdamW's decoupled decay | 2 (moments) |
//!
//! Each file holds, side by side: the configuration struct (the `[optim]` table), the update
//! `theta <- step(theta, s, g, lr)`, its reverse rule (vector-Jacobian product, what MAGIC's
//! reverse sweep runs), the facts the sweep and the estimators ask for (buffers, what the rule
//! reads, the L2 coefficients), and the tests that check the rule against central differences of
//! the update. Adding an optimizer is one file and one line in the `optimizers!` list below.
//!
//! Every update is elementwise, so it is deterministic for any thread count and its Jacobian is
//! diagonal: each reverse rule is a loop over coordinates.
//!
//! Two L2 coefficients, because two questions are asked (the one source for both is each
//! optimizer's file):
//! - [`Optimizer::gradient_l2`]: the `lambda` inside `g_t = mean w_i grad l_i + lambda theta_t`
//!   (E1). The trainer adds it, and MAGIC's `H_t` contains `lambda I` (E2). AdamW's decay is
//!   decoupled (applied by its update, not through `g_t`), so it is 0 there.
//! - [`Optimizer::objective_l2`]: the `lambda` of the objective `mean l_i + (lambda/2)||theta||^2`
//!   whose optimum the classical estimators assume (E3, E4). For AdamW that is its `weight_decay`:
//!   decoupled decay regularises towards the same kind of optimum, approximately.

pub mod adam;
pub mod sgd;

use engine::Float;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;

pub use adam::{Adam, AdamW};
pub use sgd::Sgd;

/// Parameter vectors from this length on are updated in parallel tasks ([`update_in_chunks`]).
const PARALLEL_UPDATE_MIN: usize = 1 << 17;

/// Elements per task of a parallel update.
const UPDATE_TASK: usize = 1 << 15;

/// Runs the elementwise update `update(params, grad, bufs)` of an optimizer's step over matching
/// chunks of the parameters, the gradient and the `N` buffers, in parallel tasks for long vectors.
/// Each element's update is the same operations whatever chunk it falls in, so the bits do not
/// depend on the split or the thread count. (One thread streaming the parameters, gradient and
/// buffers of a 512x4 MLP was 5% of its step.)
///
/// # Panics
/// If the gradient or a buffer is not as long as the parameters.
fn update_in_chunks<F: Float, const N: usize>(
    params: &mut [F],
    grad: &[F],
    bufs: [&mut [F]; N],
    update: impl Fn(&mut [F], &[F], [&mut [F]; N]) + Sync,
) {
    let n = params.len();
    assert!(
        grad.len() == n && bufs.iter().all(|b| b.len() == n),
        "an optimizer step with a gradient or buffer of another length than the parameters"
    );
    if n < PARALLEL_UPDATE_MIN || rayon::current_num_threads() == 1 {
        return update(params, grad, bufs);
    }
    let mut buf_chunks = bufs.map(|b| b.chunks_mut(UPDATE_TASK));
    let tasks: Vec<_> = params
        .chunks_mut(UPDATE_TASK)
        .zip(grad.chunks(UPDATE_TASK))
        .map(|(p, g)| {
            let b = std::array::from_fn(|i| buf_chunks[i].next().expect("as long as params"));
            (p, g, b)
        })
        .collect();
    tasks.into_par_iter().for_each(|(p, g, b)| update(p, g, b));
}

/// Optimizer buffers: momentum for SGD, first and second moments for Adam/AdamW.
#[derive(Debug, Clone, PartialEq)]
pub struct OptState<F> {
    /// Steps taken so far.
    pub step: usize,
    /// The buffers, each as long as the parameter vector.
    pub bufs: Vec<Vec<F>>,
}

/// The adjoints of one target carried by a reverse sweep through training (MATH.md E2): of the
/// parameters and of each optimizer buffer, each as long as the parameter vector.
///
/// Notation of the reverse rules: `A_x` is the adjoint of `x`, `d L / d x` for the scalar `L`
/// being differentiated (a target output `f(theta_T)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Adjoint<F> {
    /// `A_theta`.
    pub theta: Vec<F>,
    /// `A_s` for each buffer, in the order of [`OptState::bufs`].
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

/// Tangents of the training state in forward mode (MATH.md E7, "Unlearning"): the directional
/// derivatives `theta' = (d theta_t / d w) v` and one per optimizer buffer, along a data-weight
/// direction `v`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tangent<F> {
    /// The parameters' tangent.
    pub theta: Vec<F>,
    /// One tangent per buffer, each as long as the parameter vector.
    pub bufs: Vec<Vec<F>>,
}

impl<F: Float> Tangent<F> {
    /// The tangent at the start of training: the initial state does not depend on the weights.
    pub fn zeros(n: usize, buffers: usize) -> Self {
        Tangent {
            theta: vec![F::ZERO; n],
            bufs: vec![vec![F::ZERO; n]; buffers],
        }
    }
}

/// One optimizer: its update, its reverse rule, its forward-mode rule, and the facts callers
/// need about them.
pub trait Optimizer {
    /// Peak learning rate (scaled by the schedule).
    fn lr(&self) -> f64;

    /// The `lambda` added to the gradient, `g_t = ... + lambda theta_t` (MATH.md E1; MAGIC's
    /// `H_t` contains `lambda I`, E2).
    fn gradient_l2(&self) -> f64;

    /// The `lambda` of the regularised objective `mean l_i + (lambda/2) ||theta||^2` whose optimum
    /// the classical estimators assume (MATH.md E3).
    fn objective_l2(&self) -> f64;

    /// Number of buffers, each as long as the parameter vector.
    fn buffers(&self) -> usize;

    /// Whether [`Optimizer::step_vjp`] reads the step's gradient `g_t` (the update is nonlinear
    /// in `g`).
    fn reads_gradient(&self) -> bool;

    /// Whether [`Optimizer::step_vjp`] reads the buffers of the state before the step; when it
    /// does not, a replay may store states without them.
    fn reads_buffers(&self) -> bool;

    /// Checks every field, naming it as `optim.field`.
    ///
    /// # Errors
    /// The first invalid field with the allowed range.
    fn validate(&self) -> Result<()>;

    /// One update `theta <- step(theta, state, g, lr)` from `state` (whose counter is incremented
    /// first); `grad` already includes [`Optimizer::gradient_l2`].
    fn apply<F: Float>(&self, params: &mut [F], grad: &[F], state: &mut OptState<F>, lr: F);

    /// The reverse rule of [`Optimizer::apply`] for the step taken from `state` (counter `t`).
    ///
    /// On entry `adj` holds the adjoints of `(theta_{t+1}, s_{t+1})`; on return, the direct
    /// adjoint of `theta_t` (through the update alone, without the `H_t b_t` term that the caller
    /// adds) and the adjoints of `s_t`. Returns `b_t = A_g`. `grad` is `g_t` (the bits the step
    /// used), read only when [`Optimizer::reads_gradient`]; the buffers of `state` are read only
    /// when [`Optimizer::reads_buffers`]. `adj` always carries one adjoint per buffer.
    ///
    /// # Panics
    /// If the lengths of `state`, `grad` and `adj` disagree, or `grad` or the buffers are missing
    /// where the rule reads them (internal invariants of the sweep).
    fn step_vjp<F: Float>(
        &self,
        state: &OptState<F>,
        grad: Option<&[F]>,
        lr: F,
        adj: &mut Adjoint<F>,
    ) -> Vec<F>;

    /// The forward-mode rule of [`Optimizer::apply`] (MATH.md E7). On entry `tan` holds the
    /// tangents of `(theta_t, s_t)`; on return, those of `(theta_{t+1}, s_{t+1})`. `after` is the
    /// state after the step (new buffers, counter `t + 1`), `grad` is `g_t` (the bits the step
    /// used) and `grad_tan` its tangent.
    ///
    /// # Panics
    /// If the lengths of `after`, `grad`, `grad_tan` and `tan` disagree (internal invariants).
    fn step_jvp<F: Float>(
        &self,
        after: &OptState<F>,
        grad: &[F],
        grad_tan: &[F],
        lr: F,
        tan: &mut Tangent<F>,
    );
}

/// Declares [`OptimConfig`] from the list of optimizers and implements [`Optimizer`] for it by
/// dispatching to the variant's type, so that a new optimizer is one line here.
macro_rules! optimizers {
    ($($(#[$doc:meta])* $variant:ident($ty:ty),)*) => {
        /// The `[optim]` table: `kind` selects the optimizer, the other fields are its own.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum OptimConfig {
            $($(#[$doc])* $variant($ty),)*
        }

        impl Optimizer for OptimConfig {
            fn lr(&self) -> f64 {
                match self { $(OptimConfig::$variant(o) => o.lr(),)* }
            }
            fn gradient_l2(&self) -> f64 {
                match self { $(OptimConfig::$variant(o) => o.gradient_l2(),)* }
            }
            fn objective_l2(&self) -> f64 {
                match self { $(OptimConfig::$variant(o) => o.objective_l2(),)* }
            }
            fn buffers(&self) -> usize {
                match self { $(OptimConfig::$variant(o) => o.buffers(),)* }
            }
            fn reads_gradient(&self) -> bool {
                match self { $(OptimConfig::$variant(o) => o.reads_gradient(),)* }
            }
            fn reads_buffers(&self) -> bool {
                match self { $(OptimConfig::$variant(o) => o.reads_buffers(),)* }
            }
            fn validate(&self) -> Result<()> {
                match self { $(OptimConfig::$variant(o) => o.validate(),)* }
            }
            fn apply<F: Float>(
                &self,
                params: &mut [F],
                grad: &[F],
                state: &mut OptState<F>,
                lr: F,
            ) {
                match self { $(OptimConfig::$variant(o) => o.apply(params, grad, state, lr),)* }
            }
            fn step_vjp<F: Float>(
                &self,
                state: &OptState<F>,
                grad: Option<&[F]>,
                lr: F,
                adj: &mut Adjoint<F>,
            ) -> Vec<F> {
                match self { $(OptimConfig::$variant(o) => o.step_vjp(state, grad, lr, adj),)* }
            }
            fn step_jvp<F: Float>(
                &self,
                after: &OptState<F>,
                grad: &[F],
                grad_tan: &[F],
                lr: F,
                tan: &mut Tangent<F>,
            ) {
                match self {
                    $(OptimConfig::$variant(o) => o.step_jvp(after, grad, grad_tan, lr, tan),)*
                }
            }
        }
    };
}

optimizers! {
    /// SGD, optionally with momentum (PyTorch convention: `v <- mu v + g; theta <- theta - lr v`)
    /// or Nesterov; `weight_decay` is L2 added to the gradient.
    Sgd(Sgd),
    /// Adam with bias correction; `weight_decay` is L2 added to the gradient.
    Adam(Adam),
    /// AdamW: Adam with decoupled weight decay (`theta <- theta (1 - lr wd)` before the step).
    Adamw(AdamW),
}

impl OptimConfig {
    /// Fresh buffers for `n` parameters.
    pub fn new_state<F: Float>(&self, n: usize) -> OptState<F> {
        OptState {
            step: 0,
            bufs: vec![vec![F::ZERO; n]; self.buffers()],
        }
    }
}

#[cfg(test)]
pub(crate) mod vjp_check {
    //! The check every reverse rule must pass, in f64: for
    //! `L = <A_theta', theta'> + sum_s <A_s', s'>` after one [`Optimizer::apply`], the directional
    //! derivatives of `L` along random directions of `g`, `theta` and each buffer, by central
    //! differences (Richardson-extrapolated), must equal `<A_g, d>`, `<A_theta, d>`, `<A_s, d>`.

    use engine::Rng;

    use super::*;

    fn random(rng: &mut Rng, n: usize) -> Vec<f64> {
        (0..n).map(|_| rng.normal()).collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// Asserts that `opt.step_vjp` matches central differences of `opt.apply` at a random state
    /// of step 4 (buffers `positive` where the update takes their root).
    pub fn assert_step_vjp_matches_central_differences(opt: &OptimConfig, positive: &[usize]) {
        let (n, lr) = (7, 0.05);
        let mut rng = Rng::new(3);
        let mut state: OptState<f64> = opt.new_state(n);
        state.step = 4;
        for b in &mut state.bufs {
            *b = random(&mut rng, n);
        }
        for &k in positive {
            state.bufs[k].iter_mut().for_each(|v| *v = v.abs());
        }
        let params = random(&mut rng, n);
        let g = random(&mut rng, n);
        let out = Adjoint {
            theta: random(&mut rng, n),
            bufs: state.bufs.iter().map(|_| random(&mut rng, n)).collect(),
        };
        // L(theta, bufs, g) after one step.
        let loss = |theta: &[f64], s: &OptState<f64>, g: &[f64]| {
            let (mut theta, mut s) = (theta.to_vec(), s.clone());
            opt.apply(&mut theta, g, &mut s, lr);
            dot(&out.theta, &theta)
                + out
                    .bufs
                    .iter()
                    .zip(&s.bufs)
                    .map(|(a, b)| dot(a, b))
                    .sum::<f64>()
        };
        let mut adj = out.clone();
        let b = opt.step_vjp(&state, Some(&g), lr, &mut adj);
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
        check(
            "A_g",
            dot(&b, &dir),
            fd(&|h| loss(&params, &state, &along(&g, h))),
        );
        check(
            "A_theta",
            dot(&adj.theta, &dir),
            fd(&|h| loss(&along(&params, h), &state, &g)),
        );
        for k in 0..state.bufs.len() {
            check(
                "A_buf",
                dot(&adj.bufs[k], &dir),
                fd(&|h| {
                    let mut s = state.clone();
                    s.bufs[k] = along(&state.bufs[k], h);
                    loss(&params, &s, &g)
                }),
            );
        }
    }

    /// Asserts that `opt.step_jvp` matches central differences of `opt.apply` along a random
    /// direction of `(theta, buffers, g)` at a random state of step 4 (buffers `positive` where
    /// the update takes their root).
    pub fn assert_step_jvp_matches_central_differences(opt: &OptimConfig, positive: &[usize]) {
        let (n, lr) = (7, 0.05);
        let mut rng = Rng::new(4);
        let mut state: OptState<f64> = opt.new_state(n);
        state.step = 4;
        for b in &mut state.bufs {
            *b = random(&mut rng, n);
        }
        for &k in positive {
            state.bufs[k].iter_mut().for_each(|v| *v = v.abs());
        }
        let (params, g) = (random(&mut rng, n), random(&mut rng, n));
        let tan0 = Tangent {
            theta: random(&mut rng, n),
            bufs: state.bufs.iter().map(|_| random(&mut rng, n)).collect(),
        };
        let g_tan = random(&mut rng, n);
        // The state after one step from the point moved by h along the tangents.
        let after = |h: f64| {
            let along = |x: &[f64], d: &[f64]| -> Vec<f64> {
                x.iter().zip(d).map(|(a, b)| a + h * b).collect()
            };
            let mut theta = along(&params, &tan0.theta);
            let mut s = state.clone();
            for (b, d) in s.bufs.iter_mut().zip(&tan0.bufs) {
                *b = along(b, d);
            }
            opt.apply(&mut theta, &along(&g, &g_tan), &mut s, lr);
            (theta, s.bufs)
        };
        let (mut theta1, mut s1) = (params.clone(), state.clone());
        opt.apply(&mut theta1, &g, &mut s1, lr);
        let mut tan = tan0.clone();
        opt.step_jvp(&s1, &g, &g_tan, lr, &mut tan);
        type State = (Vec<f64>, Vec<Vec<f64>>);
        let fd = |pick: &dyn Fn(&State) -> Vec<f64>| -> Vec<f64> {
            let d = |h: f64| -> Vec<f64> {
                let (a, b) = (pick(&after(h)), pick(&after(-h)));
                a.iter().zip(&b).map(|(x, y)| (x - y) / (2.0 * h)).collect()
            };
            let (d1, d2) = (d(5e-5), d(1e-4));
            d1.iter()
                .zip(&d2)
                .map(|(a, b)| (4.0 * a - b) / 3.0)
                .collect()
        };
        let check = |what: &str, got: &[f64], want: &[f64]| {
            for (i, (x, y)) in got.iter().zip(want).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-8 * y.abs().max(1.0),
                    "{opt:?} {what}[{i}]: {x} vs {y}"
                );
            }
        };
        check("theta'", &tan.theta, &fd(&|s| s.0.clone()));
        for k in 0..state.bufs.len() {
            check("buf'", &tan.bufs[k], &fd(&|s| s.1[k].clone()));
        }
    }
}

#[cfg(test)]
mod chunked_update_tests {
    use super::*;

    /// Two steps of `opt` on a vector long enough for parallel tasks, against the same steps
    /// applied to pieces short enough to run in one loop each: the same bits.
    fn assert_chunks_change_no_bit(opt: &impl Optimizer) {
        let n = 3 * PARALLEL_UPDATE_MIN + 12_345;
        let piece = PARALLEL_UPDATE_MIN - 1;
        let wave = |seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * 7 + seed * 13) % 101) as f32 * 0.37).sin())
                .collect()
        };
        let mut whole = wave(1);
        let mut state = OptState {
            step: 0,
            bufs: vec![vec![0.0f32; n]; opt.buffers()],
        };
        let mut pieces = whole.clone();
        let mut piece_states: Vec<OptState<f32>> = (0..n.div_ceil(piece))
            .map(|c| OptState {
                step: 0,
                bufs: vec![vec![0.0f32; piece.min(n - c * piece)]; opt.buffers()],
            })
            .collect();
        for step in 0..2 {
            let grad = wave(2 + step);
            opt.apply(&mut whole, &grad, &mut state, 0.05);
            for (c, st) in piece_states.iter_mut().enumerate() {
                let r = c * piece..(c * piece + piece).min(n);
                opt.apply(&mut pieces[r.clone()], &grad[r], st, 0.05);
            }
        }
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&whole), bits(&pieces), "parameters");
        for b in 0..opt.buffers() {
            let joined: Vec<f32> = piece_states
                .iter()
                .flat_map(|s| s.bufs[b].clone())
                .collect();
            assert_eq!(bits(&state.bufs[b]), bits(&joined), "buffer {b}");
        }
    }

    #[test]
    fn parallel_updates_give_the_bits_of_one_loop() {
        // Three workers, so that the long vector takes the parallel path on any machine.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            for (momentum, nesterov) in [(0.0, false), (0.9, false), (0.9, true)] {
                assert_chunks_change_no_bit(&Sgd {
                    lr: 0.1,
                    momentum,
                    nesterov,
                    weight_decay: 0.0,
                });
            }
            assert_chunks_change_no_bit(&AdamW {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.99,
                eps: 1e-8,
                eps_root: 1e-8,
                weight_decay: 0.01,
            });
        });
    }
}
