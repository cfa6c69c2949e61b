//! Forward mode through a whole training run along a data-weight direction (MATH.md E7,
//! "Unlearning"): `J v` with `J = d theta_T / d w` at the run's weights `w0`, in ONE pass.
//!
//! Each step `t` carries the parameter tangent `u_t = J_t v` (`u_0 = 0`) and one tangent per
//! optimizer buffer. The tangent of the optimizer input is
//! `g'_t = H_t u_t + (1/|B_t|) sum_{i in B_t} v_i grad l_i(theta_t)` (`H_t` the Hessian of the
//! weighted batch objective, plus the coupled weight decay `lambda`, and through the clipping scale
//! when `train.clip` is set), from one dual reverse pass (the HVP) and, for batches where `v` is
//! not zero, one plain reverse pass with weights `v`. The optimizer's state tangents then follow
//! its update rule, [`nn::Optimizer::step_jvp`], which lives beside each optimizer's update. The primal trajectory is stepped by the
//! trainer itself, so its bits are the run's.

use engine::Float;
use nn::{Optimizer, Precision, RunConfig, Tangent, TrainState, Trainer};

use crate::error::{MethodError, Result};
use run::Run;

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
    let mut tan = Tangent::zeros(n, state.opt.bufs.len());
    let v = cast(v);
    let steps = trainer.steps();
    for t in 0..steps {
        let g_tan = input_tangent(&trainer, &run.config, &state, &tan.theta, &v, t);
        let (_, g) = trainer.gradient(&state.params, t);
        let lr = trainer.lr_at(t);
        trainer.step(&mut state)?;
        run.config
            .optim
            .step_jvp(&state.opt, &g, &g_tan, lr, &mut tan);
        on_step(t + 1, steps);
    }
    let widen = |x: &[F]| x.iter().map(|a| a.to_f64()).collect::<Vec<f64>>();
    Ok(WeightJvp {
        params: widen(&state.params),
        tangent: widen(&tan.theta),
    })
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
    let wd = cfg.optim.gradient_l2();
    if wd != 0.0 {
        let wd = F::from_f64(wd);
        for (a, &x) in r_tan.iter_mut().zip(u) {
            *a += wd * x;
        }
    }
    r_tan
}
