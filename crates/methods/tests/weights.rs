//! Data weights as input (`train.weights`, MATH.md E1 and E7): a run trains at the file's weights
//! `w0`, and MAGIC's scores are the derivative at `w0`, checked against central differences of two
//! f64 retrainings around `w0` (not around all ones).

use attrib_methods::estimators::magic::{magic_scores, MagicConfig};
use nn::{Output, RunConfig};
use run::{Run, Targets};

/// A breast-cancer MLP (48 examples, hidden [6] GELU, SGD momentum, cosine) trained at the weights
/// in `weights` (a file path).
fn config(weights: Option<&std::path::Path>) -> RunConfig {
    let w = weights.map_or(String::new(), |p| {
        format!(", weights = {:?}", p.to_str().unwrap())
    });
    RunConfig::from_toml_str(
        &format!(
            r#"
data = {{ source = "breast_cancer", max_train = 48, max_test = 6 }}
model = {{ kind = "mlp", hidden = [6], activation = "gelu" }}
optim = {{ kind = "sgd", lr = 0.1, momentum = 0.9, weight_decay = 1e-3 }}
schedule = {{ kind = "cosine" }}
train = {{ epochs = 5, batch_size = 16, precision = "f64", seed = 2{w} }}
"#
        ),
        "weights-test.toml".as_ref(),
    )
    .unwrap()
}

/// Weights in [0, 2.5], with exact zeros (dropped examples) at 0 and every 7th example.
fn weights(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            if i % 7 == 0 {
                0.0
            } else {
                0.25 + ((i * 37) % 10) as f64 * 0.25
            }
        })
        .collect()
}

#[test]
fn a_run_trains_at_the_file_weights_and_magic_differentiates_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.csv");
    let w0 = weights(48);
    let text: String = std::iter::once("weight".to_string())
        .chain(w0.iter().map(|w| w.to_string()))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, text).unwrap();
    let run = Run::train(config(Some(&path)), ".".as_ref()).unwrap();
    assert_eq!(run.weights.as_deref(), Some(&w0[..]));
    // Trained at w0: the same bits as an explicit retraining at w0, other bits than all ones.
    let plain = Run::train(config(None), ".".as_ref()).unwrap();
    assert_eq!(run.retrain(&w0).unwrap(), run.params);
    assert_ne!(plain.params, run.params);

    let targets = Targets::test(vec![0, 3], Output::Margin);
    let tau = magic_scores(&run, &targets, &MagicConfig::default())
        .unwrap()
        .scores;
    // Central differences around w0 with one Richardson step (error O(h^4)), including examples
    // at weight 0 (the derivative of adding them back).
    for i in [0, 1, 5, 7, 20, 33, 47] {
        let f = |e: f64| {
            let mut w = w0.clone();
            w[i] += e;
            run.target_outputs(&run.retrain(&w).unwrap(), &targets)
        };
        let d = |h: f64| -> Vec<f64> {
            f(h).iter()
                .zip(f(-h))
                .map(|(a, b)| (a - b) / (2.0 * h))
                .collect()
        };
        let h = 1e-4;
        let (half, full) = (d(h / 2.0), d(h));
        for r in 0..targets.indices.len() {
            let want = (4.0 * half[r] - full[r]) / 3.0;
            let got = tau[r][i];
            let scale = tau[r].iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let rel = (got - want).abs() / got.abs().max(want.abs()).max(1e-6 * scale);
            assert!(
                rel <= 1e-5,
                "target {r}, example {i} (w0 = {}): magic {got:e} vs finite differences {want:e}",
                w0[i]
            );
        }
    }
    // The scores at w0 differ from the scores of the unweighted run.
    let tau1 = magic_scores(&plain, &targets, &MagicConfig::default())
        .unwrap()
        .scores;
    assert!(tau1[0]
        .iter()
        .zip(&tau[0])
        .any(|(a, b)| (a - b).abs() > 1e-6));
}

#[test]
fn a_bad_weights_file_is_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, want) in [
        ("short.csv", "1\n1\n", "2 weights for 48 training examples"),
        ("neg.csv", &format!("-1\n{}", "1\n".repeat(47)), "weight -1"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let e = Run::train(config(Some(&path)), ".".as_ref())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(name) && e.contains(want), "{e}");
    }
}
