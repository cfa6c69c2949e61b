//! `attrib poison` end to end on a tiny digits MLP: every printed outcome equals an independent
//! retraining on the poisoned set rebuilt from the files the command leaves in `RUN/poison/`,
//! the attacks change exactly their budget, and a run without a validation split is refused with
//! the fix.

use std::path::Path;
use std::process::Command;

use data::{Features, Labels};
use run::Run;

fn attrib(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_attrib"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const RECIPE: &str = r#"
[data]
source = "digits"
standardize = false
scale = 0.0625
max_train = 300
val_fraction = 0.2

[model]
kind = "mlp"
hidden = [16]

[optim]
kind = "sgd"
lr = 0.05
momentum = 0.9

[schedule]
kind = "cosine"

[train]
epochs = 3
batch_size = 32
"#;

fn train(dir: &Path, recipe: &str) {
    std::fs::write(dir.join("run.toml"), recipe).unwrap();
    let (code, out, err) = attrib(
        dir,
        &["--quiet", "train", "--config", "run.toml", "--out", "r"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
}

/// Test loss, accuracy and validation loss of the recipe retrained on `train`, evaluated in f32
/// as `attrib evaluate` does.
fn independent_retrain(run: &Run, train: data::Dataset) -> (f64, f64, f64) {
    let mut splits = run.splits.clone();
    splits.train = train;
    let r = Run::from_parts(
        run.config.clone(),
        splits,
        run.model.clone(),
        run.params.clone(),
    )
    .unwrap();
    let theta: Vec<f32> = r
        .retrain(&vec![1.0; r.n_train()])
        .unwrap()
        .iter()
        .map(|&x| x as f32)
        .collect();
    let test = nn::evaluate(&r.model, &theta, &r.splits.test, 256);
    let val = nn::evaluate(&r.model, &theta, &r.splits.val, 256);
    (test.loss, test.accuracy.unwrap(), val.loss)
}

#[test]
fn every_printed_outcome_equals_an_independent_retraining() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train(dir, RECIPE);
    let (code, out, err) = attrib(
        dir,
        &[
            "--json", "poison", "--run", "r", "--budget", "0.05", "--steps", "2", "--eps", "0.5",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let run = Run::load(&dir.join("r")).unwrap();
    let n = run.n_train();
    let k = (0.05 * n as f64).round() as usize;
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["type"] == "poison")
        .collect();
    let attacks: Vec<&str> = events
        .iter()
        .map(|e| e["attack"].as_str().unwrap())
        .collect();
    assert_eq!(attacks, ["random-flips", "flips", "noise", "features"]);
    for e in &events {
        let attack = e["attack"].as_str().unwrap();
        assert_eq!(e["examples"], k);
        // Paths are printed relative to the command's working directory.
        let path = dir.join(e["path"].as_str().unwrap());
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut poisoned = run.splits.train.clone();
        if attack.ends_with("flips") {
            let Labels::Classes { y, .. } = &mut poisoned.labels else {
                unreachable!()
            };
            let flips = record["flips"].as_array().unwrap();
            assert_eq!(flips.len(), k, "{attack}");
            for f in flips {
                let (i, from, to) = (
                    f[0].as_u64().unwrap() as usize,
                    f[1].as_u64().unwrap() as u32,
                    f[2].as_u64().unwrap() as u32,
                );
                assert_eq!(y[i], from, "{attack}: example {i}");
                assert_ne!(from, to, "{attack}: example {i}");
                y[i] = to;
            }
        } else {
            let indices: Vec<usize> = record["indices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(indices.len(), k, "{attack}");
            let npy = path.with_extension("npy");
            let (rows, shape) = data::read_npy_f32(&npy).unwrap();
            assert_eq!(shape, [k, 64]);
            let Features::Dense { values, .. } = &mut poisoned.features else {
                unreachable!()
            };
            let clean = values.clone();
            for (r, &i) in indices.iter().enumerate() {
                values[i * 64..(i + 1) * 64].copy_from_slice(&rows[r * 64..(r + 1) * 64]);
            }
            // Inside the box [0, 1] and the ball of radius 0.5 around the clean pixels, and
            // nothing but the budget changed.
            for (j, (&v, &c)) in values.iter().zip(&clean).enumerate() {
                assert!((0.0..=1.0).contains(&v) && (v - c).abs() <= 0.5 + 1e-6);
                if !indices.contains(&(j / 64)) {
                    assert_eq!(v, c);
                }
            }
            assert!(values != &clean, "{attack} changed nothing");
        }
        let (test_loss, test_acc, val_loss) = independent_retrain(&run, poisoned);
        assert_eq!(e["test"]["loss"].as_f64().unwrap(), test_loss, "{attack}");
        assert_eq!(
            e["test"]["accuracy"].as_f64().unwrap(),
            test_acc,
            "{attack}"
        );
        assert_eq!(e["val_loss"].as_f64().unwrap(), val_loss, "{attack}");
        eprintln!(
            "{attack}: val loss {val_loss:.4}, test loss {test_loss:.4}, accuracy {test_acc:.4}"
        );
    }
    // The attributed flips and the feature attack raise the attacker's objective.
    let clean_val = {
        let theta: Vec<f32> = run.params.iter().map(|&x| x as f32).collect();
        nn::evaluate(&run.model, &theta, &run.splits.val, 256).loss
    };
    for e in &events[1..2] {
        assert!(e["val_loss"].as_f64().unwrap() > clean_val, "{e}");
    }
    assert!(events[3]["val_loss"].as_f64().unwrap() > clean_val);
}

#[test]
fn a_run_without_a_validation_split_is_refused_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train(dir, &RECIPE.replace("val_fraction = 0.2", ""));
    let (code, _, err) = attrib(dir, &["poison", "--run", "r", "--budget", "0.05"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("val_fraction"), "{err}");
    let (code, _, err) = attrib(dir, &["poison", "--run", "r", "--budget", "2"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--budget"), "{err}");
}
