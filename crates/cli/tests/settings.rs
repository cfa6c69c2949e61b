//! The settings registry (issue 20, item 6): `attrib settings list` and `attrib bench lds SETTING
//! --quick` on one image and one text setting, the run CI does. Checks the table's shape and a
//! property of the methods, not a tuned number: MAGIC predicts retraining better than TracIn.

use std::process::Command;

fn attrib(dir: &std::path::Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_attrib"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "attrib {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn settings_list_names_every_setting_with_its_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let events = attrib(dir.path(), &["--json", "settings", "list"]);
    let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "digits-mlp",
            "moby-excerpt-gpt",
            "moby-excerpt-gpt-token",
            "moby-gpt",
            "moby-gpt-token",
            "moby-gpt-finetune",
            "moby-gpt-finetune-token",
            "mnist-dattri-mlp",
            "mnist10k-mlp",
            "mnist10k-cnn",
            "fashion10k-cnn"
        ]
    );
    assert!(events
        .iter()
        .all(|e| !e["expected"].as_str().unwrap().is_empty()));
}

#[test]
fn quick_settings_give_their_table_and_magic_beats_tracin() {
    let dir = tempfile::tempdir().unwrap();
    for setting in ["digits-mlp", "moby-excerpt-gpt"] {
        let events = attrib(dir.path(), &["--json", "bench", "lds", setting, "--quick"]);
        let rows: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "lds").collect();
        assert_eq!(rows.len(), 2, "{setting}: one row per quick method");
        let lds = |m: &str| {
            let r = rows.iter().find(|r| r["method"] == m).unwrap();
            assert_eq!(
                (r["subsets"].as_u64(), r["targets"].as_u64()),
                (Some(20), Some(10))
            );
            r["lds"].as_f64().unwrap()
        };
        let (magic, tracin) = (lds("magic"), lds("tracin"));
        eprintln!("{setting}: MAGIC {magic:.3}, TracIn {tracin:.3}");
        assert!(
            magic > tracin,
            "{setting}: MAGIC {magic} <= TracIn {tracin}"
        );
        assert_eq!(events.last().unwrap()["type"], "bench_lds");
        // A second run reuses the run, its ground truth and its score files: the same table.
        let again = attrib(dir.path(), &["--json", "bench", "lds", setting, "--quick"]);
        let again: Vec<&serde_json::Value> = again.iter().filter(|e| e["type"] == "lds").collect();
        assert_eq!(rows, again, "{setting}");
    }
    assert!(attrib_fails(dir.path(), &["bench", "lds", "no-such"]).contains("attrib settings list"));
}

fn attrib_fails(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_attrib"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// The fine-tuning setting's two recipes must split the text alike, so that `skip_train` in the
// pretraining recipe leaves out exactly the windows `max_train` keeps in the fine-tuning one.
#[test]
fn the_moby_gpt_pretraining_never_sees_the_fine_tuning_windows() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"));
    let parse = |name: &str| {
        let path = root.join(name);
        nn::RunConfig::from_toml_file(&path).unwrap()
    };
    let (pre, fine) = (
        parse("moby_gpt_pretrain.toml"),
        parse("moby_gpt_finetune.toml"),
    );
    assert_eq!(pre.data.skip_train, fine.data.max_train);
    assert!(pre.data.skip_train.is_some() && pre.data.max_train.is_none());
    let split_fields = |mut d: data::DataConfig| {
        (d.skip_train, d.max_train) = (None, None);
        d
    };
    assert_eq!(split_fields(pre.data), split_fields(fine.data));
    assert_eq!(pre.model, fine.model);
    assert!(fine
        .train
        .init_from
        .is_some_and(|p| p.ends_with("moby-gpt-pretrain/params.safetensors")));
}
