//! Fuzzing as property tests (issue 13): the safetensors loaders and the TOML config parser,
//! given random bytes or mutated valid files, return `Ok` or a typed error and never panic
//! (harness: `attrib-data`'s `tests/support/mutate.rs`).

use std::collections::BTreeMap;
use std::path::Path;

use attrib_nn as nn;

#[path = "../../data/tests/support/mutate.rs"]
mod mutate;
use mutate::{fuzz, CASES};

const CONFIG: &str = r#"
[data]
source = "breast_cancer"
[model]
kind = "mlp"
hidden = [4]
[optim]
kind = "adam"
lr = 0.01
[train]
epochs = 2
batch_size = 64
"#;

#[test]
fn loaders_and_the_config_parser_return_ok_or_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ok, err) = fuzz(
        dir,
        "c.toml",
        CONFIG.as_bytes(),
        nn::RunConfig::from_toml_file,
    );
    let mut total = ok + err;

    let cfg = nn::RunConfig::from_toml_str(CONFIG, Path::new("c.toml")).unwrap();
    let splits = data::load_splits(&cfg.data, dir).unwrap();
    let model = nn::Model::new(&cfg.model, &splits.train).unwrap();
    let params: Vec<f32> = (0..model.layout().total())
        .map(|i| i as f32 * 0.01)
        .collect();
    let seed = dir.join("seed.safetensors");
    nn::io::save_params(&seed, model.layout(), &params, &BTreeMap::new()).unwrap();
    let seed = std::fs::read(&seed).unwrap();
    let (ok, err) = fuzz(dir, "p.safetensors", &seed, |p| {
        nn::io::load_params::<f32>(p, model.layout())
    });
    total += ok + err;
    let (ok, err) = fuzz(dir, "t.safetensors", &seed, nn::io::load_tensors::<f64>);
    total += ok + err;
    let (ok, err) = fuzz(dir, "m.safetensors", &seed, nn::io::read_metadata);
    total += ok + err;
    assert_eq!(total, 4 * CASES as usize);
}
