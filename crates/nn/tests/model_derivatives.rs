//! Every model's derivatives against ground truth in f64: the gradient of the weighted objective and
//! Hessian-vector products against central differences, per-example JVPs against central differences
//! of per-example outputs, and every batched per-example quantity against a loop over single examples.

extern crate attrib_nn as nn;

mod common;

use common::*;
use data::Dataset;
use engine::Rng;
use nn::per_example::{objective_hvps, output_grads, output_jvps, outputs, single};
use nn::{Activation, Batch, Model, ModelConfig, Norm, Output, Pool};

const H: f64 = 1e-4;

/// Central difference with one Richardson step: `(4 D(h/2) - D(h)) / 3`, error O(h^4), so the ground
/// truth is sharper than the 1e-6 tolerance even along directions of large curvature.
fn richardson(f: impl Fn(f64) -> f64) -> f64 {
    let d = |h: f64| (f(h) - f(-h)) / (2.0 * h);
    (4.0 * d(H / 2.0) - d(H)) / 3.0
}

/// The same for vector-valued functions.
fn richardson_vec(f: impl Fn(f64) -> Vec<f64>) -> Vec<f64> {
    let d = |h: f64| {
        f(h).iter()
            .zip(f(-h))
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect::<Vec<f64>>()
    };
    d(H / 2.0)
        .iter()
        .zip(d(H))
        .map(|(a, b)| (4.0 * a - b) / 3.0)
        .collect()
}

fn unit(v: Vec<f64>) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-3)
}

fn objective(model: &Model, p: &[f64], batch: &Batch<f64>, w: &[f64]) -> f64 {
    let l = outputs(model, p, batch, Output::Loss);
    l.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() / w.len() as f64
}

fn axpy(p: &[f64], d: &[f64], h: f64) -> Vec<f64> {
    p.iter().zip(d).map(|(a, b)| a + h * b).collect()
}

fn check_model(name: &str, cfg: ModelConfig, ds: Dataset, outs: &[Output]) {
    let model = Model::new(&cfg, &ds).unwrap();
    let n = model.layout().total();
    let p: Vec<f64> = model.layout().init(3);
    let idx: Vec<usize> = (0..ds.len()).collect();
    let batch = Batch::<f64>::from_dataset(&ds, &idx);
    let mut r = Rng::new(11);
    let w: Vec<f64> = (0..ds.len()).map(|_| r.uniform_in(0.0, 2.0)).collect();
    let dir = unit((0..n).map(|_| r.normal()).collect());
    let dir2 = unit((0..n).map(|_| r.normal()).collect());

    // Gradient of the weighted objective vs central differences, on up to 40 coordinates.
    let (grad, hvps) = objective_hvps(&model, &p, &batch, &w, &[&dir, &dir2]);
    let step = (n / 40).max(1);
    let mut worst: f64 = 0.0;
    for j in (0..n).step_by(step) {
        let mut e = vec![0.0; n];
        e[j] = 1.0;
        let fd = richardson(|h| objective(&model, &axpy(&p, &e, h), &batch, &w));
        worst = worst.max(rel(grad[j], fd));
    }
    assert!(
        worst <= 1e-6,
        "{name}: gradient vs finite differences: {worst:e}"
    );

    // HVP vs central differences of the gradient, for both directions of the block.
    for (d, hv) in [&dir, &dir2].into_iter().zip(&hvps) {
        let fd = richardson_vec(|h| objective_hvps(&model, &axpy(&p, d, h), &batch, &w, &[]).0);
        let worst = (0..n).map(|j| rel(hv[j], fd[j])).fold(0.0, f64::max);
        assert!(
            worst <= 1e-6,
            "{name}: HVP vs finite differences: {worst:e}"
        );
    }

    for &out in outs {
        // Per-example JVPs (one dual pass) vs central differences of per-example outputs.
        let (vals, jvps) = output_jvps(&model, &p, &batch, out, &[&dir, &dir2]);
        let fd = richardson_vec(|h| outputs(&model, &axpy(&p, &dir, h), &batch, out));
        let worst = (0..ds.len())
            .map(|i| rel(jvps[0][i], fd[i]))
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-6,
            "{name} {out:?}: per-example JVP vs finite differences: {worst:e}"
        );

        // Batched per-example values and JVPs == a loop over single examples.
        let grads = output_grads(&model, &p, &batch, out);
        for i in 0..ds.len() {
            let one = single(&batch, i);
            let (v1, j1) = output_jvps(&model, &p, &one, out, &[&dir, &dir2]);
            assert!(
                rel(vals[i], v1[0]) <= 1e-12,
                "{name} {out:?}: batched value {i}"
            );
            for k in 0..2 {
                assert!(
                    rel(jvps[k][i], j1[k][0]) <= 1e-10,
                    "{name} {out:?}: batched JVP {i}/{k}"
                );
                // and the materialised per-example gradient dotted with the direction
                let d = if k == 0 { &dir } else { &dir2 };
                let dot: f64 = grads[i].iter().zip(d.iter()).map(|(a, b)| a * b).sum();
                assert!(
                    rel(dot, jvps[k][i]) <= 1e-9,
                    "{name} {out:?}: per-example gradient {i}/{k}"
                );
            }
        }
    }

    // sum_i w_i grad l_i / |B| from per-example gradients == the batch gradient.
    let per = output_grads(&model, &p, &batch, Output::Loss);
    let worst = (0..n)
        .map(|j| {
            rel(
                grad[j],
                per.iter().zip(&w).map(|(g, wi)| wi * g[j]).sum::<f64>() / w.len() as f64,
            )
        })
        .fold(0.0, f64::max);
    assert!(
        worst <= 1e-10,
        "{name}: per-example gradients do not sum to the batch gradient: {worst:e}"
    );
}

#[test]
fn linear_regression() {
    check_model(
        "linear",
        ModelConfig::Linear {},
        dense(6, &[4], reals(6, 1), 1),
        &[Output::Loss, Output::Margin],
    );
}

#[test]
fn logistic_regression_binary() {
    check_model(
        "logistic",
        ModelConfig::Logistic {},
        dense(6, &[4], classes(6, 2, 2), 2),
        &[Output::Loss, Output::Margin],
    );
}

#[test]
fn softmax_regression() {
    check_model(
        "softmax",
        ModelConfig::Logistic {},
        dense(6, &[4], classes(6, 3, 3), 3),
        &[Output::Loss, Output::Margin],
    );
}

#[test]
fn mlp_gelu_with_output_scale() {
    let cfg = ModelConfig::Mlp {
        hidden: vec![5, 4],
        activation: Activation::Gelu,
        output_scale: 0.5,
    };
    check_model(
        "mlp-gelu",
        cfg,
        dense(5, &[3], classes(5, 3, 4), 4),
        &[Output::Loss, Output::Margin, Output::LogLikelihood],
    );
}

#[test]
fn mlp_tanh_softplus_relu() {
    for act in [Activation::Tanh, Activation::Softplus, Activation::Relu] {
        let cfg = ModelConfig::Mlp {
            hidden: vec![6],
            activation: act,
            output_scale: 1.0,
        };
        check_model(
            &format!("mlp-{act:?}"),
            cfg,
            dense(4, &[3], classes(4, 2, 5), 5),
            &[Output::Margin],
        );
    }
}

#[test]
fn cnn_group_norm_residual_avg_pool() {
    let cfg = ModelConfig::Cnn {
        channels: vec![4, 4],
        kernel: 3,
        norm: Norm::Group,
        groups: 2,
        activation: Activation::Gelu,
        pool: Pool::Avg,
        residual: true,
        output_scale: 1.0,
    };
    check_model(
        "cnn",
        cfg,
        dense(3, &[2, 4, 4], classes(3, 3, 6), 6),
        &[Output::Margin],
    );
}

#[test]
fn cnn_layer_norm_max_pool() {
    let cfg = ModelConfig::Cnn {
        channels: vec![3, 2],
        kernel: 3,
        norm: Norm::Layer,
        groups: 1,
        activation: Activation::Tanh,
        pool: Pool::Max,
        residual: false,
        output_scale: 1.0,
    };
    check_model(
        "cnn-max",
        cfg,
        dense(3, &[1, 4, 4], classes(3, 2, 7), 7),
        &[Output::Loss],
    );
}

#[test]
fn gpt() {
    let cfg = ModelConfig::Gpt {
        d_model: 8,
        n_layer: 2,
        n_head: 2,
    };
    check_model(
        "gpt",
        cfg,
        tokens(3, 5, 6, 8),
        &[Output::Loss, Output::Margin],
    );
}
