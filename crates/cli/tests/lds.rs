//! Two forms of `attrib lds` beyond one run: `--masks FILE --outputs FILE --scores FILE`, whose
//! LDS of ground truth retrained outside attrib equals `attrib lds` on attrib's own cache to the
//! bit, in either layout, with bad files named (issue 18); and `--runs`, the spread over
//! independently seeded runs, equal to the runs' own tables (issue 20).

use std::path::Path;
use std::process::Command;

mod support;
use support::RECIPE;

fn attrib(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_attrib"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (success, out, err) = attrib(dir, args);
    assert!(success, "attrib {args:?} failed:\n{out}\n{err}");
    out
}

/// A little-endian float64 `.npy` of `shape` (numpy's format 1.0).
fn write_npy(path: &Path, values: &[f64], shape: &[usize]) {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// The `lds` event of `attrib --json lds ...`.
fn lds_event(out: &str) -> serde_json::Value {
    out.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["type"] == "lds")
        .expect("an lds event")
}

#[test]
fn outside_ground_truth_gives_the_lds_of_attribs_own_to_the_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("r.toml"), RECIPE).unwrap();
    ok(
        dir,
        &["--quiet", "train", "--config", "r.toml", "--out", "r"],
    );
    let gt = ["--drop", "0.1", "--subsets", "20"];
    let mut args = vec!["--quiet", "groundtruth", "--run", "r"];
    args.extend_from_slice(&gt);
    ok(dir, &args);
    ok(
        dir,
        &[
            "--quiet",
            "attribute",
            "--run",
            "r",
            "--method",
            "tracin",
            "--name",
            "t",
        ],
    );
    let mut args = vec!["--json", "lds", "--run", "r", "--scores", "r/scores/t.npy"];
    args.extend_from_slice(&gt);
    let want = lds_event(&ok(dir, &args));

    // The cache's subsets as a user's files: masks (1 = kept), outputs at the scored targets,
    // and the full model's outputs from the cache's own run.
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("r/scores/t.json")).unwrap())
            .unwrap();
    let targets: Vec<usize> = sidecar["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as usize)
        .collect();
    let n = sidecar["n_train"].as_u64().unwrap() as usize;
    let folder = dir.join("r/groundtruth/drop-0.1000-m20-s0-margin-test");
    let (mut masks, mut outputs) = (Vec::new(), Vec::new());
    for j in 0..20 {
        let e: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(folder.join(format!("subset_{j:05}.json"))).unwrap(),
        )
        .unwrap();
        let mut kept = vec![1.0; n];
        for d in e["dropped"].as_array().unwrap() {
            kept[d.as_u64().unwrap() as usize] = 0.0;
        }
        masks.extend(kept);
        let out = e["outputs"].as_array().unwrap();
        outputs.extend(targets.iter().map(|&t| out[t].as_f64().unwrap()));
    }
    write_npy(&dir.join("masks.npy"), &masks, &[20, n]);
    write_npy(&dir.join("outputs.npy"), &outputs, &[20, targets.len()]);
    let run = run::Run::load(&dir.join("r")).unwrap();
    let full = run::retrain::split_outputs(&run, &run.params, nn::Output::Margin, run::Split::Test);
    let base: Vec<f64> = targets.iter().map(|&t| full[t]).collect();
    write_npy(&dir.join("base.npy"), &base, &[targets.len()]);
    let external = |scores: &str, layout: &str| {
        lds_event(&ok(
            dir,
            &[
                "--json",
                "lds",
                "--masks",
                "masks.npy",
                "--outputs",
                "outputs.npy",
                "--scores",
                scores,
                "--layout",
                layout,
                "--base",
                "base.npy",
            ],
        ))
    };
    let got = external("r/scores/t.npy", "targets_train");
    for key in ["lds", "ci", "pearson", "slope", "subsets", "targets"] {
        assert_eq!(got[key], want[key], "{key}: {got} vs {want}");
    }

    // TRAK's and dattri's layout, [train, targets], gives the same numbers.
    let (tau, shape) = data::read_npy_f64(&dir.join("r/scores/t.npy")).unwrap();
    let t = shape[0];
    let transposed: Vec<f64> = (0..n)
        .flat_map(|i| (0..t).map(move |r| (r, i)))
        .map(|(r, i)| tau[r * n + i])
        .collect();
    write_npy(&dir.join("trak_layout.npy"), &transposed, &[n, t]);
    let flipped = external("trak_layout.npy", "train_targets");
    assert_eq!(flipped["lds"], want["lds"]);
    assert_eq!(flipped["ci"], want["ci"]);

    // Bad files are named.
    let mut bad = masks.clone();
    bad[5] = 2.0;
    write_npy(&dir.join("bad_masks.npy"), &bad, &[20, n]);
    write_npy(&dir.join("short.npy"), &outputs[..19 * t], &[19, t]);
    for (flag, file, expect) in [
        ("--masks", "bad_masks.npy", "--masks: holds 2"),
        ("--outputs", "short.npy", "--outputs: 19 rows"),
    ] {
        let mut args = vec![
            "lds",
            "--masks",
            "masks.npy",
            "--outputs",
            "outputs.npy",
            "--scores",
            "r/scores/t.npy",
        ];
        let at = args.iter().position(|a| *a == flag).unwrap();
        args[at + 1] = file;
        let (success, _, err) = attrib(dir, &args);
        assert!(!success && err.contains(expect), "{flag}: {err}");
    }
    let (success, _, err) = attrib(
        dir,
        &[
            "lds",
            "--masks",
            "masks.npy",
            "--outputs",
            "outputs.npy",
            "--scores",
            "r/scores/t.npy",
            "--layout",
            "rows",
        ],
    );
    assert!(!success && err.contains("--layout"), "{err}");
}

#[test]
fn lds_over_runs_is_the_mean_and_spread_of_each_runs_lds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let gt = ["--drop", "0.1", "--subsets", "10"];
    let mut each = Vec::new();
    for seed in 0..3 {
        let cfg = RECIPE.replace(
            "batch_size = 64",
            &format!("batch_size = 64\nseed = {seed}"),
        );
        std::fs::write(dir.join(format!("r{seed}.toml")), cfg).unwrap();
        let run = format!("r{seed}");
        ok(
            dir,
            &[
                "--quiet",
                "train",
                "--config",
                &format!("r{seed}.toml"),
                "--out",
                &run,
            ],
        );
        ok(
            dir,
            &[
                "--quiet",
                "attribute",
                "--run",
                &run,
                "--method",
                "tracin",
                "--name",
                "t",
            ],
        );
        let mut args = vec!["--json", "lds", "--run", &run, "--scores"];
        let scores = format!("{run}/scores/t.npy");
        args.push(&scores);
        args.extend_from_slice(&gt);
        each.push(lds_event(&ok(dir, &args))["lds"].as_f64().unwrap());
    }
    assert!(
        each[0] != each[1],
        "differently seeded runs differ: {each:?}"
    );
    let mut args = vec!["--json", "lds", "--runs", "r0,r1,r2", "--scores", "t.npy"];
    args.extend_from_slice(&gt);
    let out = ok(dir, &args);
    let v = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["type"] == "lds_runs")
        .expect("an lds_runs event");
    let got: Vec<f64> = v["lds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(
        got, each,
        "each run's LDS is the one attrib lds --run gives"
    );
    let mean = each.iter().sum::<f64>() / 3.0;
    let sd = (each.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    assert!((v["mean"].as_f64().unwrap() - mean).abs() < 1e-15);
    assert!((v["sd"].as_f64().unwrap() - sd).abs() < 1e-15);
    assert_eq!(v["runs"], 3);
    let (success, _, err) = attrib(dir, &["lds", "--runs", "r0,r1", "--scores", "missing.npy"]);
    assert!(!success && err.contains("r0/scores/missing.npy"), "{err}");
}
