//! Small runs for the estimators' tests (embedded data, f64, seconds to build).

use data::{DataConfig, Labels, Source};
use nn::{Model, ModelConfig, RunConfig};

use crate::estimators::glm::Glm;
use run::Run;

/// A run config on breast cancer with `model` and SGD weight decay `wd`.
pub fn config(model: &str, wd: f64, epochs: usize, batch: usize, lr: f64) -> RunConfig {
    let text = format!(
        r#"
data = {{ source = "breast_cancer" }}
model = {model}
optim = {{ kind = "sgd", lr = {lr}, weight_decay = {wd} }}
train = {{ epochs = {epochs}, batch_size = {batch}, precision = "f64" }}
"#
    );
    RunConfig::from_toml_str(&text, "t.toml".as_ref()).unwrap()
}

/// L2 logistic regression on breast cancer at the exact optimum of its objective (Newton).
pub fn logistic_at_optimum(wd: f64) -> Run {
    let cfg = config(r#"{ kind = "logistic" }"#, wd, 1, 64, 0.1);
    let splits = data::load_splits(&cfg.data, ".".as_ref()).unwrap();
    let model = Model::new(&cfg.model, &splits.train).unwrap();
    let glm = Glm::binary_logistic(&splits.train, wd);
    let theta = glm
        .solve(&vec![0.0; glm.q], &vec![1.0; glm.n], 1e-12, 100)
        .unwrap()
        .0;
    Run::from_parts(cfg, splits, model, theta).unwrap()
}

/// Breast cancer features with the class label as a real target, and a linear model (params
/// at their seeded initialisation: the closed forms do not read them).
pub fn ridge_run(wd: f64) -> Run {
    let cfg = config(r#"{ kind = "linear" }"#, wd, 1, 64, 0.01);
    let mut splits =
        data::load_splits(&DataConfig::new(Source::BreastCancer), ".".as_ref()).unwrap();
    for ds in [&mut splits.train, &mut splits.test] {
        let Labels::Classes { y, .. } = &ds.labels else {
            unreachable!()
        };
        ds.labels = Labels::Real(y.iter().map(|&c| c as f32).collect());
    }
    let model = Model::new(&ModelConfig::Linear {}, &splits.train).unwrap();
    let params = model.layout().init(0);
    Run::from_parts(cfg, splits, model, params).unwrap()
}

/// A tiny f64 MLP (one hidden layer of 6 tanh units) trained for a few epochs.
pub fn tiny_mlp(wd: f64) -> Run {
    let cfg = config(
        r#"{ kind = "mlp", hidden = [6], activation = "tanh" }"#,
        wd,
        5,
        32,
        0.1,
    );
    Run::train(cfg, ".".as_ref()).unwrap()
}

/// An f64 logistic regression on the first `n` breast-cancer training examples, trained by 20
/// full-batch SGD steps (lr 0.5): small enough to retrain every subset.
pub fn tiny_logistic(n: usize) -> Run {
    let text = format!(
        r#"
data = {{ source = "breast_cancer", max_train = {n} }}
model = {{ kind = "logistic" }}
optim = {{ kind = "sgd", lr = 0.5 }}
train = {{ epochs = 20, batch_size = {n}, precision = "f64" }}
"#
    );
    Run::train(
        RunConfig::from_toml_str(&text, "t.toml".as_ref()).unwrap(),
        ".".as_ref(),
    )
    .unwrap()
}

/// Brute-force leave-one-out ground truth on a GLM run: `truth[t][j] = f_t(theta) -
/// f_t(theta_{-j})`, with `theta_{-j}` re-solved to 1e-12 by Newton's method without example
/// `j`. Signed like `tau` (minus the change), so a perfect method has Pearson 1 with it.
pub fn brute_force_loo(run: &Run, method: &str, targets: &run::Targets) -> Vec<Vec<f64>> {
    let glm = Glm::of_run(run, method, "").unwrap();
    let base = run.target_outputs(&run.params, targets);
    let mut truth = vec![vec![0.0; glm.n]; targets.indices.len()];
    for j in 0..glm.n {
        let mut w = vec![1.0; glm.n];
        w[j] = 0.0;
        let (tj, _) = glm.solve(&run.params, &w, 1e-12, 100).unwrap();
        let out = run.target_outputs(&tj, targets);
        for t in 0..targets.indices.len() {
            truth[t][j] = base[t] - out[t];
        }
    }
    truth
}

/// Asserts that every target's scores correlate with the ground truth at Pearson >= `min`,
/// and prints the worst and mean correlation under `name`.
pub fn assert_pearson_at_least(name: &str, tau: &[Vec<f64>], truth: &[Vec<f64>], min: f64) {
    let mut worst = 1.0f64;
    let mut mean = 0.0;
    for (t, (a, b)) in tau.iter().zip(truth).enumerate() {
        let r = eval::stats::pearson(a, b);
        worst = worst.min(r);
        mean += r / tau.len() as f64;
        assert!(r >= min, "{name}, target {t}: Pearson {r} < {min}");
    }
    eprintln!(
        "{name}: Pearson over {} targets: min {worst:.4}, mean {mean:.4}",
        tau.len()
    );
}

/// `||a - b|| / ||b||` over whole score matrices.
pub fn rel_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    let (mut d, mut s) = (0.0, 0.0);
    for (ra, rb) in a.iter().zip(b) {
        for (x, y) in ra.iter().zip(rb) {
            d += (x - y) * (x - y);
            s += y * y;
        }
    }
    (d / s).sqrt()
}
