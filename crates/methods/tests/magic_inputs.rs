//! Input metagradients (MATH.md E7 (b)) and relabelled copies (E7 (a)) against ground truth, in
//! f64 on tiny runs:
//! - `d f / d x_{i,k}` equals central differences of two full retrainings with feature `k` of
//!   training example `i` moved (Richardson-extrapolated), on an MLP and a CNN;
//! - asking for input derivatives or relabelled copies leaves the data-weight scores' bits as
//!   they are without them;
//! - a relabelled copy with the example's own label has the example's own weight derivative;
//! - the `wrt = inputs` option through the method registry, with and without `norm`.

use attrib_methods::estimators::magic::{
    magic_scores, objective_metagradients, MagicConfig, Metagradient, Objective, Want,
};
use attrib_methods::Options;
use data::Features;
use nn::{Output, RunConfig};
use run::{Run, Targets};

fn run(toml: &str) -> Run {
    let cfg = RunConfig::from_toml_str(toml, "magic-inputs-test.toml".as_ref()).unwrap();
    Run::train(cfg, ".".as_ref()).unwrap()
}

/// The breast-cancer MLP of `magic.rs` (64 examples, hidden [8] GELU, SGD momentum, cosine).
fn mlp() -> Run {
    run(r#"
data = { source = "breast_cancer", max_train = 64, max_test = 8 }
model = { kind = "mlp", hidden = [8], activation = "gelu" }
optim = { kind = "sgd", lr = 0.1, momentum = 0.9, weight_decay = 1e-3 }
schedule = { kind = "cosine" }
train = { epochs = 6, batch_size = 16, precision = "f64", seed = 3 }
"#)
}

/// Digits as 1x8x8 images, a two-stage CNN with group norm and average pooling, Adam.
fn cnn() -> Run {
    run(r#"
data = { source = "digits", example_shape = [1, 8, 8], max_train = 48, max_test = 8 }
model = { kind = "cnn", channels = [4, 4], groups = 2, residual = false }
optim = { kind = "adam", lr = 0.01, eps_root = 1e-10, weight_decay = 1e-3 }
schedule = { kind = "cosine" }
train = { epochs = 3, batch_size = 16, precision = "f64", seed = 1 }
"#)
}

const INPUTS: Want = Want {
    inputs: true,
    relabels: false,
};

fn metagradients(run: &Run, targets: &Targets, want: Want) -> Vec<Metagradient> {
    objective_metagradients(
        run,
        Objective::EachTarget(targets),
        &MagicConfig::default(),
        want,
    )
    .unwrap()
    .0
}

/// The target outputs after retraining with feature `k` of training example `i` moved by `h`
/// (stored in f32, as the datasets hold it); returns the outputs and the step actually taken.
fn outputs_with_feature_moved(
    run: &Run,
    targets: &Targets,
    i: usize,
    k: usize,
    h: f64,
) -> (Vec<f64>, f64) {
    let mut splits = run.splits.clone();
    let Features::Dense { values, shape } = &mut splits.train.features else {
        unreachable!("dense features")
    };
    let d: usize = shape.iter().product();
    let x = values[i * d + k];
    let moved = (x as f64 + h) as f32;
    values[i * d + k] = moved;
    let step = moved as f64 - x as f64;
    let r = Run::from_parts(
        run.config.clone(),
        splits,
        run.model.clone(),
        run.params.clone(),
    )
    .unwrap();
    let theta = r.retrain(&vec![1.0; r.n_train()]).unwrap();
    (r.target_outputs(&theta, targets), step)
}

/// `d f / d x_{i,k}` by central differences of retrainings with one Richardson step,
/// `(4 D(h/2) - D(h)) / 3`, each `D` divided by the steps actually taken in f32.
fn finite_difference(run: &Run, targets: &Targets, i: usize, k: usize, h: f64) -> Vec<f64> {
    let d = |h: f64| -> Vec<f64> {
        let (up, hu) = outputs_with_feature_moved(run, targets, i, k, h);
        let (down, hd) = outputs_with_feature_moved(run, targets, i, k, -h);
        up.iter()
            .zip(down)
            .map(|(a, b)| (a - b) / (hu - hd))
            .collect()
    };
    let (half, full) = (d(h / 2.0), d(h));
    half.iter()
        .zip(full)
        .map(|(a, b)| (4.0 * a - b) / 3.0)
        .collect()
}

/// Checks `d f / d x` against finite differences for two examples from different batches of the
/// first epoch and, of each, the two features with the largest derivative and one more; returns
/// the worst relative error (against `max(|got|, |fd|, 1e-6 max |d f / d x|)`).
fn check_fd(name: &str, run: &Run, targets: &Targets) -> f64 {
    let grads = metagradients(run, targets, INPUTS);
    let d: usize = run.model.example_shape().iter().product();
    let t = &run.config.train;
    let plan = nn::batch_plan(run.n_train(), t.batch_size, 1, t.seed, t.drop_last);
    let examples = [plan[0][0], plan[2][1]];
    let mut worst: f64 = 0.0;
    for &i in &examples {
        // Features ranked by |d f_0 / d x_{i,k}|: the two largest and a middle one.
        let row = &grads[0].inputs[i * d..(i + 1) * d];
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| row[b].abs().total_cmp(&row[a].abs()).then(a.cmp(&b)));
        for &k in &[order[0], order[1], order[d / 4]] {
            let fd = finite_difference(run, targets, i, k, 1e-3);
            for (r, &want) in fd.iter().enumerate() {
                let got = grads[r].inputs[i * d + k];
                let scale = grads[r].inputs.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                let rel = (got - want).abs() / got.abs().max(want.abs()).max(1e-6 * scale);
                worst = worst.max(rel);
                assert!(
                    rel <= 1e-5,
                    "{name}: target {r}, example {i}, feature {k}: magic {got:e} vs finite differences {want:e} (relative error {rel:e})"
                );
            }
        }
    }
    eprintln!(
        "{name}: {} examples x 3 features x {} targets, worst relative error vs finite differences {worst:.2e}",
        examples.len(),
        targets.indices.len()
    );
    worst
}

#[test]
fn input_metagradient_of_an_mlp_matches_finite_differences_of_retraining() {
    let r = mlp();
    check_fd(
        "mlp sgd+momentum",
        &r,
        &Targets::test(vec![0, 5], Output::Margin),
    );
}

#[test]
fn input_metagradient_of_a_cnn_matches_finite_differences_of_retraining() {
    let r = cnn();
    check_fd("cnn adam", &r, &Targets::test(vec![1, 2], Output::Loss));
}

fn bits(rows: &[Vec<f64>]) -> Vec<u64> {
    rows.iter().flatten().map(|v| v.to_bits()).collect()
}

#[test]
fn asking_for_inputs_and_relabels_leaves_the_weight_scores_bitwise_unchanged() {
    let r = mlp();
    // One target (sharded passes) and twelve (two passes of 8 and 4 directions).
    for targets in [
        Targets::test(vec![3], Output::Margin),
        Targets::test((0..8).chain(0..4).collect(), Output::Loss),
    ] {
        let plain = magic_scores(&r, &targets, &MagicConfig::default()).unwrap();
        let both = Want {
            inputs: true,
            relabels: true,
        };
        for want in [Want::WEIGHTS, INPUTS, both] {
            let rows: Vec<Vec<f64>> = metagradients(&r, &targets, want)
                .into_iter()
                .map(|g| g.weights)
                .collect();
            assert_eq!(bits(&rows), bits(&plain.scores), "{want:?}");
        }
    }
}

#[test]
fn a_copy_with_the_examples_own_label_has_the_examples_weight_derivative() {
    let r = mlp();
    let targets = Targets::test(vec![0, 1, 2], Output::Margin);
    let want = Want {
        inputs: false,
        relabels: true,
    };
    let labels = match &r.splits.train.labels {
        data::Labels::Classes { y, .. } => y.clone(),
        _ => unreachable!(),
    };
    for g in metagradients(&r, &targets, want) {
        let c = g.relabels.len() / r.n_train();
        assert_eq!(c, 2);
        let scale = g.weights.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (i, &y) in labels.iter().enumerate() {
            let own = g.relabels[i * c + y as usize];
            assert!(
                (own - g.weights[i]).abs() <= 1e-10 * scale,
                "example {i}: {own:e} vs {:e}",
                g.weights[i]
            );
        }
        // The other label changes something.
        assert!(labels
            .iter()
            .enumerate()
            .any(
                |(i, &y)| (g.relabels[i * c + 1 - y as usize] - g.weights[i]).abs() > 1e-3 * scale
            ));
    }
}

#[test]
fn wrt_inputs_through_the_registry_gives_every_feature_or_its_norm() {
    let r = cnn();
    let targets = Targets::test(vec![0, 3], Output::Margin);
    let d = 64;
    let direct = metagradients(&r, &targets, INPUTS);
    let full = {
        let (m, used) =
            attrib_methods::build("magic", Options::empty("magic").set("wrt", "inputs")).unwrap();
        assert_eq!(
            (used["wrt"].as_str(), used["norm"].as_str()),
            ("inputs", "false")
        );
        attrib_methods::attribute(&r, m.as_ref(), used, &targets).unwrap()
    };
    assert!(full.is_input_derivative());
    assert_eq!(full.values.len(), 2 * r.n_train() * d);
    assert_eq!(full.row(1), &direct[1].inputs[..]);
    let norms = {
        let opts = Options::empty("magic")
            .set("wrt", "inputs")
            .set("norm", true);
        let (m, used) = attrib_methods::build("magic", opts).unwrap();
        attrib_methods::attribute(&r, m.as_ref(), used, &targets).unwrap()
    };
    assert_eq!(norms.values.len(), 2 * r.n_train());
    let i = 7;
    let want: f64 = direct[0].inputs[i * d..(i + 1) * d]
        .iter()
        .map(|v| v * v)
        .sum::<f64>()
        .sqrt();
    assert_eq!(norms.row(0)[i], want);
    // Saved and loaded as a [targets, n, d] array; refused where weight scores are needed.
    let dir = tempfile::tempdir().unwrap();
    let path = full.save(dir.path(), "magic-inputs").unwrap();
    let back = attrib_methods::Scores::load(&path).unwrap();
    assert_eq!(back.values.len(), full.values.len());
    let e = back.check_run(&r, &path).unwrap_err();
    assert!(e.to_string().contains("wrt"), "{e}");
    // norm without wrt = inputs is a mistake.
    let e = attrib_methods::build("magic", Options::empty("magic").set("norm", true))
        .err()
        .unwrap();
    assert!(e.to_string().contains("wrt=inputs"), "{e}");
}
