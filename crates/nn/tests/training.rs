//! The trainer of MATH.md E1: bitwise determinism, the meaning of data weights, accuracy on the two
//! embedded real datasets, and the errors a user can hit.

extern crate attrib_nn as nn;

mod common;

use std::collections::BTreeMap;

use common::*;
use data::{load_splits, Splits};
use nn::{Model, NnError, RunConfig, TrainState, Trainer};

fn cfg(text: &str) -> RunConfig {
    RunConfig::from_toml_str(text, "test.toml".as_ref()).unwrap()
}

const DIGITS_MLP: &str = r#"
[data]
source = "digits"
[model]
kind = "mlp"
hidden = [128, 128]
activation = "gelu"
[optim]
kind = "sgd"
lr = 0.03
momentum = 0.9
weight_decay = 5e-4
[schedule]
kind = "cosine"
[train]
epochs = 20
batch_size = 64
"#;

fn splits(c: &RunConfig) -> Splits {
    load_splits(&c.data, ".".as_ref()).unwrap()
}

fn train<F: engine::Float>(c: &RunConfig, s: &Splits, w: Option<Vec<F>>) -> (Model, TrainState<F>) {
    let model = Model::new(&c.model, &s.train).unwrap();
    let mut t = Trainer::<F>::new(&model, c, &s.train).unwrap();
    if let Some(w) = w {
        t = t.with_weights(w).unwrap();
    }
    let state = t.run(t.init_state(None).unwrap(), &mut |_, _| {}).unwrap();
    drop(t);
    (model, state)
}

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn digits_mlp_reaches_95_percent_and_is_bitwise_reproducible_across_threads() {
    let c = cfg(DIGITS_MLP);
    let s = splits(&c);
    let (model, one) = in_pool(1, || train::<f32>(&c, &s, None));
    let acc = nn::evaluate(&model, &one.params, &s.test, 512)
        .accuracy
        .unwrap();
    assert!(acc >= 0.95, "digits MLP test accuracy {acc}");
    for threads in [1, 2, 4] {
        let (_, again) = in_pool(threads, || train::<f32>(&c, &s, None));
        assert!(
            again.bitwise_eq(&one),
            "{threads} threads give different bits than 1 thread"
        );
    }
}

#[test]
fn wide_layers_are_bitwise_reproducible_across_threads() {
    // Widths large enough that the matrix products are split into parallel panels.
    let text = DIGITS_MLP
        .replace("hidden = [128, 128]", "hidden = [640, 640]")
        .replace("epochs = 20", "epochs = 1")
        .replace("batch_size = 64", "batch_size = 512");
    let c = cfg(&text);
    let s = splits(&c);
    let (_, one) = in_pool(1, || train::<f32>(&c, &s, None));
    for threads in [2, 3] {
        let (_, again) = in_pool(threads, || train::<f32>(&c, &s, None));
        assert!(again.bitwise_eq(&one), "{threads} threads differ");
    }
}

#[test]
fn breast_cancer_logistic_regression_reaches_95_percent() {
    let c = cfg(r#"
[data]
source = "breast_cancer"
[model]
kind = "logistic"
[optim]
kind = "sgd"
lr = 0.1
momentum = 0.9
weight_decay = 1e-3
[schedule]
kind = "cosine"
[train]
epochs = 30
batch_size = 32
precision = "f64"
"#);
    let s = splits(&c);
    let (model, st) = train::<f64>(&c, &s, None);
    let acc = nn::evaluate(&model, &st.params, &s.test, 512)
        .accuracy
        .unwrap();
    assert!(acc >= 0.95, "breast cancer logistic test accuracy {acc}");
}

#[test]
fn a_zero_weight_example_keeps_its_slot_and_has_no_influence() {
    let text = DIGITS_MLP
        .replace("epochs = 20", "epochs = 2")
        .replace("hidden = [128, 128]", "hidden = [16]");
    let c = cfg(&text);
    let mut s = splits(&c);
    let n = s.train.len();
    let mut w = vec![1.0f64; n];
    w[7] = 0.0;
    let (_, dropped) = train::<f64>(&c, &s, Some(w.clone()));
    // Corrupting the dropped example's features changes nothing, bit for bit...
    if let data::Features::Dense { values, shape } = &mut s.train.features {
        let d: usize = shape.iter().product();
        values[7 * d..8 * d].iter_mut().for_each(|v| *v = 1e3);
    }
    let (_, corrupted) = train::<f64>(&c, &s, Some(w));
    assert!(corrupted.bitwise_eq(&dropped));
    // ...while the batch plan is the one of the full set (so the run differs from unit weights).
    let (_, full) = train::<f64>(&c, &s, None);
    assert!(!full.bitwise_eq(&dropped));
    let model = Model::new(&c.model, &s.train).unwrap();
    let t = Trainer::<f64>::new(&model, &c, &s.train).unwrap();
    assert_eq!(t.plan(), &nn::batch_plan(n, 64, 2, 0, false)[..]);
}

#[test]
fn every_optimizer_and_schedule_trains_and_is_deterministic() {
    let optims = [
        "kind = \"sgd\"\nlr = 0.2",
        "kind = \"sgd\"\nlr = 0.05\nmomentum = 0.9\nnesterov = true\nweight_decay = 1e-4",
        "kind = \"adam\"\nlr = 0.003\nweight_decay = 1e-4",
        "kind = \"adam\"\nlr = 0.003\neps_root = 1e-8",
        "kind = \"adamw\"\nlr = 0.003",
    ];
    let schedules = [
        "kind = \"constant\"",
        "kind = \"step\"\nevery = 20\ngamma = 0.5",
        "kind = \"linear\"",
        "kind = \"cosine\"\nend = 0.1",
        "kind = \"one_cycle\"",
    ];
    for (o, sch) in optims.iter().zip(schedules) {
        let text = format!(
            "[data]\nsource = \"digits\"\n[model]\nkind = \"mlp\"\nhidden = [32]\n[optim]\n{o}\n[schedule]\n{sch}\n[train]\nepochs = 3\nbatch_size = 64\n"
        );
        let c = cfg(&text);
        let s = splits(&c);
        let (model, a) = train::<f32>(&c, &s, None);
        let (_, b) = train::<f32>(&c, &s, None);
        assert!(a.bitwise_eq(&b), "{o} / {sch}: rerun differs");
        let acc = nn::evaluate(&model, &a.params, &s.test, 512)
            .accuracy
            .unwrap();
        assert!(acc > 0.8, "{o} / {sch}: accuracy {acc} after 3 epochs");
    }
}

#[test]
fn cnn_and_gpt_train_without_error() {
    let c = cfg(r#"
[data]
source = "digits"
example_shape = [1, 8, 8]
max_train = 256
[model]
kind = "cnn"
channels = [8, 8]
[optim]
kind = "adam"
lr = 0.01
[train]
epochs = 2
batch_size = 32
"#);
    let s = splits(&c);
    let (model, st) = train::<f32>(&c, &s, None);
    let e = nn::evaluate(&model, &st.params, &s.test, 128);
    assert!(e.accuracy.unwrap() > 0.3, "cnn accuracy {:?}", e.accuracy);

    let ds = tokens(48, 9, 7, 1);
    let mut c = cfg("[data]\nsource = \"digits\"\n[model]\nkind = \"gpt\"\nd_model = 16\nn_layer = 1\nn_head = 2\n[optim]\nkind = \"adam\"\nlr = 0.01\n[train]\nepochs = 3\nbatch_size = 16\n");
    c.train.seed = 4;
    let model = Model::new(&c.model, &ds).unwrap();
    let t = Trainer::<f32>::new(&model, &c, &ds).unwrap();
    let before = nn::evaluate(&model, &t.init_state(None).unwrap().params, &ds, 64).loss;
    let st = t.run(t.init_state(None).unwrap(), &mut |_, _| {}).unwrap();
    let after = nn::evaluate(&model, &st.params, &ds, 64).loss;
    assert!(after < before, "gpt loss {before} -> {after}");
}

#[test]
fn divergence_is_reported_with_step_and_fix() {
    let c = cfg(&DIGITS_MLP.replace("lr = 0.03", "lr = 1e6"));
    let s = splits(&c);
    let model = Model::new(&c.model, &s.train).unwrap();
    let t = Trainer::<f32>::new(&model, &c, &s.train).unwrap();
    let err = t
        .run(t.init_state(None).unwrap(), &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, NnError::Diverged { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("diverged at step") && msg.contains("optim.lr"),
        "{msg}"
    );
}

#[test]
fn data_that_does_not_fit_the_model_is_a_clear_error() {
    let c = cfg(DIGITS_MLP);
    let s = splits(&c);
    let cnn = cfg("[data]\nsource = \"digits\"\n[model]\nkind = \"cnn\"\nchannels = [4]\n[optim]\nkind = \"sgd\"\nlr = 0.1\n");
    let e = Model::new(&cnn.model, &s.train).unwrap_err().to_string();
    assert!(
        e.contains("example_shape") && e.contains("[1, 8, 8]"),
        "{e}"
    );
    let lin = cfg("[data]\nsource = \"digits\"\n[model]\nkind = \"linear\"\n[optim]\nkind = \"sgd\"\nlr = 0.1\n");
    let e = Model::new(&lin.model, &s.train).unwrap_err().to_string();
    assert!(
        e.contains("real-valued labels") && e.contains("logistic"),
        "{e}"
    );
    let model = Model::new(&c.model, &s.train).unwrap();
    let t = Trainer::<f32>::new(&model, &c, &s.train).unwrap();
    let e = t.with_weights(vec![1.0; 3]).err().unwrap().to_string();
    assert!(
        e.contains("3 data weights") && e.contains("one weight per example"),
        "{e}"
    );
    let bc = data::embedded("breast_cancer").unwrap();
    let e = model
        .check_data(&bc, "the test set")
        .unwrap_err()
        .to_string();
    assert!(e.contains("[30]") && e.contains("[64]"), "{e}");
}

#[test]
fn parameters_round_trip_through_safetensors_and_start_a_run() {
    let text = DIGITS_MLP
        .replace("epochs = 20", "epochs = 1")
        .replace("hidden = [128, 128]", "hidden = [8]");
    let c = cfg(&text);
    let s = splits(&c);
    let (model, st) = train::<f32>(&c, &s, None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("params.safetensors");
    nn::io::save_params(
        &path,
        model.layout(),
        &st.params,
        &BTreeMap::from([("precision".into(), "f32".into())]),
    )
    .unwrap();
    let back: Vec<f32> = nn::io::load_params(&path, model.layout()).unwrap();
    assert_eq!(back, st.params);
    let wide: Vec<f64> = nn::io::load_params(&path, model.layout()).unwrap();
    assert!(wide.iter().zip(&st.params).all(|(a, &b)| *a == b as f64));
    assert_eq!(nn::io::read_metadata(&path).unwrap()["precision"], "f32");

    // A file for another model names the missing tensor and lists what is expected.
    let other = Model::new(
        &cfg(&text.replace(
            "kind = \"mlp\"\nhidden = [8]\nactivation = \"gelu\"",
            "kind = \"logistic\"",
        ))
        .model,
        &s.train,
    )
    .unwrap();
    let e = nn::io::load_params::<f32>(&path, other.layout())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("params.safetensors") && e.contains("no tensor named \"linear.weight\""),
        "{e}"
    );
    let other = Model::new(
        &cfg(&text.replace("hidden = [8]", "hidden = [8, 8]")).model,
        &s.train,
    )
    .unwrap();
    let e = nn::io::load_params::<f32>(&path, other.layout())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layers.1.weight") && e.contains("[10, 8]") && e.contains("[8, 8]"),
        "{e}"
    );
    let other = Model::new(
        &cfg(&text.replace("hidden = [8]", "hidden = [9]")).model,
        &s.train,
    )
    .unwrap();
    let e = nn::io::load_params::<f32>(&path, other.layout())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layers.0.weight") && e.contains("[8, 64]") && e.contains("[9, 64]"),
        "{e}"
    );
    std::fs::write(&path, b"not a tensor file").unwrap();
    let e = nn::io::load_params::<f32>(&path, model.layout())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a safetensors file"), "{e}");
}

#[test]
fn files_are_byte_reproducible_and_states_round_trip() {
    // The bytes depend on the content only (metadata order included), in this and any other process.
    let text = DIGITS_MLP
        .replace("epochs = 20", "epochs = 1")
        .replace("hidden = [128, 128]", "hidden = [8]");
    let c = cfg(&text);
    let s = splits(&c);
    let (model, st) = train::<f32>(&c, &s, None);
    let meta: BTreeMap<String, String> = [("b", "2"), ("a", "1"), ("c", "3"), ("seed", "0")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (
        dir.path().join("1.safetensors"),
        dir.path().join("2.safetensors"),
    );
    nn::io::save_state(&p1, model.layout(), &st, &meta).unwrap();
    nn::io::save_state(&p2, model.layout(), &st, &meta).unwrap();
    assert_eq!(std::fs::read(&p1).unwrap(), std::fs::read(&p2).unwrap());
    let back: TrainState<f32> = nn::io::load_state(&p1, model.layout()).unwrap();
    assert!(back.bitwise_eq(&st));
    assert_eq!(nn::io::read_metadata(&p1).unwrap()["c"], "3");
    // A checkpoint also serves as initial parameters (its optimizer buffers are skipped).
    let params: Vec<f32> = nn::io::load_params(&p1, model.layout()).unwrap();
    assert_eq!(params, st.params);
}

#[test]
fn each_step_logs_the_norm_of_its_unclipped_batch_gradient() {
    // Weight decay and clipping act on the gradient the optimizer consumes; the logged norm is
    // the one clipping reads (what `train.clip.max_norm` is chosen from), before either.
    let text = DIGITS_MLP
        .replace("epochs = 20", "epochs = 1\nclip = { max_norm = 0.01 }")
        .replace("hidden = [128, 128]", "hidden = [16]");
    let c = cfg(&text);
    let s = splits(&c);
    let model = Model::new(&c.model, &s.train).unwrap();
    let t = Trainer::<f64>::new(&model, &c, &s.train).unwrap();
    let mut state = t.init_state(None).unwrap();
    // Recomputed here rather than with `nn::trainer::l2_norm`, which the trainer logs with.
    let norm_of = |v: &[f64]| v.iter().map(|g| g * g).sum::<f64>().sqrt();
    for step in 0..3 {
        let norm = norm_of(&t.loss_gradient(&state.params, step).1);
        let consumed = norm_of(&t.gradient(&state.params, step).1);
        let info = t.step(&mut state).unwrap();
        assert!(norm > 0.1, "step {step}: the clip must act ({norm})");
        assert!(
            (info.grad_norm - norm).abs() <= 1e-12 * norm,
            "step {step}: {} vs {norm}",
            info.grad_norm
        );
        assert!(
            (consumed - norm).abs() > 0.5 * norm,
            "step {step}: clipped {consumed} vs {norm}"
        );
    }
}
