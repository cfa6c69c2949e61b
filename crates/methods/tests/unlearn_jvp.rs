//! The forward-mode pass of unlearning (MATH.md E7): `J v = (d theta_T / d w) v` through the whole
//! run, checked against central differences of two f64 retrainings
//! `(theta_T(w0 + h v) - theta_T(w0 - h v)) / 2h` (one Richardson step), for SGD, momentum,
//! Nesterov, Adam, AdamW and smooth clipping, at unit and at non-uniform weights.

use attrib_methods::apps::jvp::weight_jvp;
use attrib_methods::apps::unlearn::forget_direction;
use nn::RunConfig;
use run::Run;

fn run(optim: &str, extra: &str) -> Run {
    let cfg = RunConfig::from_toml_str(
        &format!(
            r#"
data = {{ source = "breast_cancer", max_train = 48, max_test = 6 }}
model = {{ kind = "mlp", hidden = [6], activation = "gelu" }}
optim = {optim}
schedule = {{ kind = "cosine" }}
train = {{ epochs = 5, batch_size = 16, precision = "f64", seed = 4{extra} }}
"#
        ),
        "jvp-test.toml".as_ref(),
    )
    .unwrap();
    Run::train(cfg, ".".as_ref()).unwrap()
}

/// Worst `|jvp - fd| / max|fd|` over the parameters, for the forget set `forget`.
fn check(name: &str, run: &Run, forget: &[usize]) {
    let v = forget_direction(run, forget).unwrap();
    let jvp = weight_jvp(run, &v, &mut |_, _| {}).unwrap();
    assert_eq!(
        jvp.params, run.params,
        "{name}: the replay is not the trained run"
    );
    let w0 = run.base_weights();
    let at = |h: f64| {
        let w: Vec<f64> = w0.iter().zip(&v).map(|(a, d)| a + h * d).collect();
        run.retrain(&w).unwrap()
    };
    let d = |h: f64| -> Vec<f64> {
        at(h)
            .iter()
            .zip(at(-h))
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect()
    };
    let h = 1e-3;
    let (half, full) = (d(h / 2.0), d(h));
    let fd: Vec<f64> = half
        .iter()
        .zip(&full)
        .map(|(a, b)| (4.0 * a - b) / 3.0)
        .collect();
    let scale = fd.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let worst = jvp
        .tangent
        .iter()
        .zip(&fd)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f64, f64::max)
        / scale;
    eprintln!("{name}: max |J v - fd| / max |fd| = {worst:.2e} (max |fd| = {scale:.3e})");
    assert!(
        scale > 1e-4,
        "{name}: the direction does not move the model"
    );
    assert!(worst < 1e-6, "{name}: J v is off by {worst:e} relative");
}

const FORGET: [usize; 5] = [0, 3, 17, 30, 47];

#[test]
fn jvp_of_the_run_matches_finite_differences_sgd_and_momentum() {
    check("sgd", &run(r#"{ kind = "sgd", lr = 0.2 }"#, ""), &FORGET);
    check(
        "momentum + decay",
        &run(
            r#"{ kind = "sgd", lr = 0.1, momentum = 0.9, weight_decay = 1e-2 }"#,
            "",
        ),
        &FORGET,
    );
    check(
        "nesterov + smooth clip",
        &run(
            r#"{ kind = "sgd", lr = 0.1, momentum = 0.8, nesterov = true }"#,
            ", clip = { max_norm = 0.5 }",
        ),
        &FORGET,
    );
}

#[test]
fn jvp_of_the_run_matches_finite_differences_adam_and_adamw() {
    check(
        "adam",
        &run(
            r#"{ kind = "adam", lr = 0.01, eps_root = 1e-8, weight_decay = 1e-3 }"#,
            "",
        ),
        &FORGET,
    );
    check(
        "adamw",
        &run(r#"{ kind = "adamw", lr = 0.01, weight_decay = 0.1 }"#, ""),
        &FORGET,
    );
}

#[test]
fn jvp_at_non_uniform_weights_matches_finite_differences() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.csv");
    let w: Vec<String> = (0..48)
        .map(|i| format!("{}", 0.5 + (i % 4) as f64 * 0.5))
        .collect();
    std::fs::write(&path, w.join("\n")).unwrap();
    let r = run(
        r#"{ kind = "sgd", lr = 0.1, momentum = 0.9 }"#,
        &format!(", weights = {:?}", path.to_str().unwrap()),
    );
    assert!(r.weights.is_some());
    check("weighted momentum", &r, &FORGET);
}
