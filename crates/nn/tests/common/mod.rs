//! Tiny synthetic datasets and configs shared by the nn tests.
#![allow(dead_code)]

use data::{Dataset, Features, Labels};
use engine::Rng;
use nn::{ModelConfig, RunConfig};

/// `n` examples of shape `shape` with normal features and labels from `labels`.
pub fn dense(n: usize, shape: &[usize], labels: Labels, seed: u64) -> Dataset {
    let d: usize = shape.iter().product();
    let mut r = Rng::new(seed);
    let values = (0..n * d).map(|_| r.normal() as f32).collect();
    Dataset {
        name: "synthetic".into(),
        features: Features::Dense {
            values,
            shape: shape.to_vec(),
        },
        labels,
        feature_names: None,
    }
}

/// Random class labels.
pub fn classes(n: usize, k: usize, seed: u64) -> Labels {
    let mut r = Rng::new(seed + 1000);
    Labels::Classes {
        y: (0..n).map(|_| r.below(k as u64) as u32).collect(),
        num_classes: k,
        class_names: None,
    }
}

/// Random real labels.
pub fn reals(n: usize, seed: u64) -> Labels {
    let mut r = Rng::new(seed + 2000);
    Labels::Real((0..n).map(|_| r.normal() as f32).collect())
}

/// Token windows.
pub fn tokens(n: usize, seq_len: usize, vocab: usize, seed: u64) -> Dataset {
    let mut r = Rng::new(seed);
    let ids = (0..n * seq_len)
        .map(|_| r.below(vocab as u64) as u32)
        .collect();
    Dataset {
        name: "tokens".into(),
        features: Features::Tokens {
            ids,
            seq_len,
            vocab,
        },
        labels: Labels::None,
        feature_names: None,
    }
}

/// A run config around a model config (digits data section; tests override the data in code).
pub fn run_config(model: ModelConfig, optim: &str, extra: &str) -> RunConfig {
    let model_toml = toml::to_string(&model).unwrap();
    let text =
        format!("[data]\nsource = \"digits\"\n[model]\n{model_toml}\n[optim]\n{optim}\n{extra}");
    RunConfig::from_toml_str(&text, "test.toml".as_ref()).unwrap()
}
