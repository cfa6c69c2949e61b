//! Forward mode through a whole training run along a data-weight direction (MATH.md E7,
//! "Unlearning"): `J v` with `J = d theta_T / d w` at the run's weights `w0`, in ONE pass.
//!
//! Each step `t` carries the parameter tangent `u_t = J_t v` (`u_0 = 0`) and one tangent per
//! optimizer buffer. The tangent of the optimizer input is
//! `g'_t = H_t u_t + (1/|B_t|) sum_{i in B_t} v_i grad l_i(theta_t)` (`H_t` the Hessian of the
//! weighted batch objective, plus the coupled weight decay `lambda`, and through the clipping scale
//! when `train.clip` is set), from one dual reverse pass (the HVP) and, for batches where `v` is
//! not zero, one plain reverse pass with weights `v`. The optimizer's state tangents then follow
//! its update rule, differentiated below next to each rule. The primal trajectory is stepped by the
//! trainer itself, so its bits are the run's.

use engine::Float;
use nn::{OptimConfig, Precision, RunConfig, TrainState, Trainer};

use crate::error::{MethodError, Result};
use crate::run::Run;

/// The final parameters `theta_T` of the run (replayed, bitwise the trained ones) and the JVP
/// `J v = (d theta_T / d w) v` at the run's weights, both widened to f64.
#[derive(Debug, Clone)]
pub struct WeightJvp {
    /// `theta_T(w0)`.
    pub params: Vec<f64>,
    /// `J v`.
    pub tangent: Vec<f64>,
}

/// `J v` along the data-weight direction `v` (one entry per training example) by one forward-mode
/// pass through every step of the run, in the run's precision (module docs).
///
/// # Errors
/// A `v` of the wrong length or with a non-finite entry, or training errors.
pub fn weight_jvp(
    run: &Run,
    v: &[f64],
    on_step: &mut dyn FnMut(usize, usize),
) -> Result<WeightJvp> {
    if v.len() != run.n_train() || v.iter().any(|x| !x.is_finite()) {
        return Err(MethodError::Run {
            path: run.dir.clone().unwrap_or_default(),
            reason: format!(
                "the weight direction has {} finite-or-not entries for {} training examples; give \
                 one finite entry per training example",
                v.len(),
                run.n_train()
            ),
        });
    }
    match run.config.train.precision {
        Precision::F32 => go::<f32>(run, v, on_step),
        Precision::F64 => go::<f64>(run, v, on_step),
    }
}

fn go<F: Float>(run: &Run, v: &[f64], on_step: &mut dyn FnMut(usize, usize)) -> Result<WeightJvp> {
    let trainer = run.trainer::<F>()?;
    let cast = |x: &[f64]| x.iter().map(|&a| F::from_f64(a)).collect::<Vec<F>>();
    let mut state = trainer.init_state(
        run.init
            .as_ref()
            .map(|p| p.iter().map(|&x| F::from_f64(x)).collect()),
    )?;
    let n = state.params.len();
    let mut tan = Tangents {
        u: vec![F::ZERO; n],
        bufs: vec![vec![F::ZERO; n]; state.opt.bufs.len()],
    };
    let v = cast(v);
    let steps = trainer.steps();
    for t in 0..steps {
        let g_tan = input_tangent(&trainer, &run.config, &state, &tan.u, &v, t);
        let (_, g) = trainer.gradient(&state.params, t);
        let lr = trainer.lr_at(t);
        trainer.step(&mut state)?;
        optimizer_tangent(&run.config.optim, &state, &g, &g_tan, lr, &mut tan);
        on_step(t + 1, steps);
    }
    let widen = |x: &[F]| x.iter().map(|a| a.to_f64()).collect::<Vec<f64>>();
    Ok(WeightJvp {
        params: widen(&state.params),
        tangent: widen(&tan.u),
    })
}

/// The parameter tangent and one tangent per optimizer buffer.
struct Tangents<F> {
    u: Vec<F>,
    bufs: Vec<Vec<F>>,
}

/// `g'_t`: the tangent of the optimizer input `g_t = s(||r||) r + lambda theta` with
/// `r = (1/|B|) sum w_i grad l_i(theta)`: `r' = H u + (1/|B|) sum v_i grad l_i`, then
/// `(s r)' = s r' + (s'(||r||) / ||r||) <r, r'> r` (the clip's reverse-rule factor is the same
/// Jacobian, symmetric), then `+ lambda u`.
fn input_tangent<F: Float>(
    trainer: &Trainer<'_, F>,
    cfg: &RunConfig,
    state: &TrainState<F>,
    u: &[F],
    v: &[F],
    t: usize,
) -> Vec<F> {
    let model = trainer.model();
    let (batch, w) = trainer.batch(t);
    let (raw, hvps) = nn::per_example::objective_hvps(model, &state.params, &batch, &w, &[u]);
    let mut r_tan = hvps
        .into_iter()
        .next()
        .unwrap_or_else(|| vec![F::ZERO; u.len()]);
    let v_batch: Vec<F> = trainer.plan()[t].iter().map(|&i| v[i]).collect();
    if v_batch.iter().any(|&x| x != F::ZERO) {
        let (gv, _) = nn::per_example::objective_hvps(model, &state.params, &batch, &v_batch, &[]);
        for (a, b) in r_tan.iter_mut().zip(gv) {
            *a += b;
        }
    }
    if let Some(clip) = cfg.train.clip {
        let (s, ds_over_r) = clip.scale(nn::trainer::l2_norm(&raw));
        let dot: f64 = raw
            .iter()
            .zip(&r_tan)
            .map(|(a, b)| a.to_f64() * b.to_f64())
            .sum();
        let (s, k) = (F::from_f64(s), F::from_f64(ds_over_r * dot));
        for (a, &r) in r_tan.iter_mut().zip(&raw) {
            *a = s * *a + k * r;
        }
    }
    let wd = cfg.optim.coupled_weight_decay();
    if wd != 0.0 {
        let wd = F::from_f64(wd);
        for (a, &x) in r_tan.iter_mut().zip(u) {
            *a += wd * x;
        }
    }
    r_tan
}

/// Advances the tangents through the optimizer update that `state` has just taken (its buffers
/// are the new ones, its step counter the new count), with input `g` and input tangent `g_tan`.
fn optimizer_tangent<F: Float>(
    opt: &OptimConfig,
    state: &TrainState<F>,
    g: &[F],
    g_tan: &[F],
    lr: F,
    tan: &mut Tangents<F>,
) {
    match *opt {
        OptimConfig::Sgd {
            momentum, nesterov, ..
        } => {
            if momentum == 0.0 {
                // theta <- theta - lr g  =>  u <- u - lr g'
                for (u, &d) in tan.u.iter_mut().zip(g_tan) {
                    *u -= lr * d;
                }
            } else {
                // v <- mu v + g; theta <- theta - lr v (Nesterov: - lr (g + mu v))
                // =>  v' <- mu v' + g'; u <- u - lr v' (Nesterov: - lr (g' + mu v')).
                let mu = F::from_f64(momentum);
                for ((u, &d), vt) in tan.u.iter_mut().zip(g_tan).zip(tan.bufs[0].iter_mut()) {
                    *vt = mu * *vt + d;
                    *u -= lr * if nesterov { d + mu * *vt } else { *vt };
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
            // AdamW first scales theta by keep = 1 - lr wd: u <- keep u.
            if let OptimConfig::Adamw { weight_decay, .. } = *opt {
                let keep = F::ONE - lr * F::from_f64(weight_decay);
                tan.u.iter_mut().for_each(|u| *u *= keep);
            }
            // m <- b1 m + (1-b1) g; s <- b2 s + (1-b2) g^2; q = sqrt(s / bc2 + eps_root);
            // theta <- theta - lr (m / bc1) / (q + eps). Differentiating, with the NEW m and s:
            // m' <- b1 m' + (1-b1) g'; s' <- b2 s' + 2 (1-b2) g g'; q' = s' / (2 bc2 q);
            // u <- u - lr (m' / bc1 - (m / bc1) q' / (q + eps)) / (q + eps).
            let t = state.opt.step as i32;
            let (b1, b2) = (F::from_f64(beta1), F::from_f64(beta2));
            let bc1 = F::from_f64(1.0 - beta1.powi(t));
            let bc2 = F::from_f64(1.0 - beta2.powi(t));
            let (eps, eps_root) = (F::from_f64(eps), F::from_f64(eps_root));
            let two = F::from_f64(2.0);
            let (m, s) = (&state.opt.bufs[0], &state.opt.bufs[1]);
            let (mt, st) = tan.bufs.split_at_mut(1);
            for i in 0..tan.u.len() {
                mt[0][i] = b1 * mt[0][i] + (F::ONE - b1) * g_tan[i];
                st[0][i] = b2 * st[0][i] + two * (F::ONE - b2) * g[i] * g_tan[i];
                let q = (s[i] / bc2 + eps_root).sqrt();
                let q_tan = if q > F::ZERO {
                    st[0][i] / (two * bc2 * q)
                } else {
                    F::ZERO
                };
                let denom = q + eps;
                let step_tan = (mt[0][i] / bc1 - (m[i] / bc1) * q_tan / denom) / denom;
                tan.u[i] -= lr * step_tan;
            }
        }
    }
}
