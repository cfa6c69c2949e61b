//! What a run was trained from, recorded at training time (`DIR/fingerprint.json`) and checked by
//! every command that reads the run, so that an edited `config.toml`, a changed data file or a
//! replaced `params.safetensors` is an error naming what changed instead of a silently wrong
//! answer (a test accuracy measured on a split that holds training examples, scores of another
//! model).
//!
//! The record holds the resolved configuration as training wrote it, and two
//! [`engine::hash::fingerprint`]s: one of the examples of the three splits (features, labels and
//! shapes), one of the final parameters widened to f64 (the bytes of the run hash). Runs written
//! before the record existed have no `fingerprint.json` and load unchecked.

use std::path::Path;

use data::{Dataset, Features, Labels, Splits};
use engine::hash::Fnv1a;
use engine::Float;
use nn::RunConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RunError};
use crate::files;

/// The fingerprint of a trained run (`DIR/fingerprint.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    /// The resolved configuration (`RunConfig::to_toml`) the run was trained with.
    pub config: String,
    /// Hash of the examples of the train, test and validation splits ([`data_hash`]).
    pub data: String,
    /// Hash of the final parameters widened to f64 ([`params_hash`]).
    pub params: String,
}

impl Fingerprint {
    /// The fingerprint of `config`, its `splits` and the final `params` (widened to f64).
    pub fn of<F: Float>(config: &RunConfig, splits: &Splits, params: &[F]) -> Fingerprint {
        Fingerprint {
            config: config.to_toml(),
            data: data_hash(splits),
            params: params_hash(params),
        }
    }

    /// Writes `dir/fingerprint.json` atomically.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("strings serialise");
        data::write_atomic(&dir.join(files::FINGERPRINT), text.as_bytes())?;
        Ok(())
    }

    /// Reads `dir/fingerprint.json`; `None` for a run written before fingerprints existed.
    ///
    /// # Errors
    /// An unreadable or malformed file, naming it and the fix.
    pub fn read(dir: &Path) -> Result<Option<Fingerprint>> {
        let path = dir.join(files::FINGERPRINT);
        if !path.exists() {
            return Ok(None);
        }
        let bad = |reason: String| RunError::Run {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| bad(format!("cannot read the run's fingerprint ({e})")))?;
        serde_json::from_str(&text).map(Some).map_err(|e| {
            bad(format!(
                "malformed fingerprint ({e}); it is written by `attrib train`: train the run \
                 again with `attrib train --config {} --out {}`",
                dir.join(files::CONFIG).display(),
                dir.display()
            ))
        })
    }

    /// Checks that the run in `dir`, as loaded now (`now`), is the one that was trained: the same
    /// resolved configuration, the same examples and the same parameters. Passes when the run has
    /// no fingerprint (older runs).
    ///
    /// # Errors
    /// What changed since training (the differing config fields, the data, or the parameters)
    /// and how to get a consistent run back.
    pub fn check(dir: &Path, now: &Fingerprint) -> Result<()> {
        let Some(then) = Fingerprint::read(dir)? else {
            return Ok(());
        };
        let retrain = format!(
            "or train the run again with `attrib train --config {} --out {} --force`",
            dir.join(files::CONFIG).display(),
            dir.display()
        );
        let changed = |reason: String| {
            Err(RunError::Run {
                path: dir.to_path_buf(),
                reason,
            })
        };
        if then.config != now.config {
            return changed(format!(
                "{} was edited after training, so the run's files no longer describe it:\n{}\n\
                 restore the trained values, {retrain}",
                files::CONFIG,
                crate::dir::config_diff(&then.config, &now.config).replace(
                    "(- in the existing run, + in the new config)",
                    "(- at training, + now)"
                )
            ));
        }
        if then.data != now.data {
            return changed(format!(
                "the data changed after training: the examples of its splits hash to {} but were \
                 {} when it was trained (a data file named in {} was modified or replaced); \
                 restore the data, {retrain}",
                now.data,
                then.data,
                files::CONFIG
            ));
        }
        if then.params != now.params {
            return changed(format!(
                "{} is not the file that training wrote (its parameters hash to {}, training \
                 wrote {}); restore it, {retrain}",
                files::PARAMS,
                now.params,
                then.params
            ));
        }
        Ok(())
    }
}

/// Hash of the parameters widened to f64, as little-endian bytes (the bytes of the run hash).
/// Each is widened as it is hashed, so that callers holding `f32` parameters need no `f64` copy.
pub fn params_hash<F: Float>(params: &[F]) -> String {
    let h = params
        .iter()
        .fold(Fnv1a::new(), |h, p| h.word(p.to_f64().to_bits()));
    format!("{:016x}", h.finish())
}

/// Hash of the examples of every split: features (values and shape, or token ids, sequence length
/// and vocabulary) and labels, in order. One word per value, so hashing CIFAR-10 takes a moment.
pub fn data_hash(splits: &Splits) -> String {
    let h = [&splits.train, &splits.test, &splits.val]
        .into_iter()
        .fold(Fnv1a::new(), dataset_hash);
    format!("{:016x}", h.finish())
}

fn dataset_hash(h: Fnv1a, ds: &Dataset) -> Fnv1a {
    let words = |h: Fnv1a, xs: &[usize]| {
        xs.iter()
            .fold(h.word(xs.len() as u64), |h, &x| h.word(x as u64))
    };
    let h = match &ds.features {
        Features::Dense { values, shape } => values.iter().fold(words(h.word(1), shape), |h, v| {
            h.word(u64::from(v.to_bits()))
        }),
        Features::Tokens {
            ids,
            seq_len,
            vocab,
        } => ids
            .iter()
            .fold(words(h.word(2), &[*seq_len, *vocab]), |h, &t| {
                h.word(u64::from(t))
            }),
    };
    match &ds.labels {
        Labels::Classes { y, num_classes, .. } => {
            y.iter().fold(h.word(3).word(*num_classes as u64), |h, &c| {
                h.word(u64::from(c))
            })
        }
        Labels::Real(y) => y
            .iter()
            .fold(h.word(4), |h, v| h.word(u64::from(v.to_bits()))),
        Labels::None => h.word(5),
    }
    .word(ds.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_config(text: &str) -> RunConfig {
        RunConfig::from_toml_str(text, Path::new("t.toml")).unwrap()
    }

    const CFG: &str = "[data]\nsource = \"breast_cancer\"\n[model]\nkind = \"logistic\"\n[optim]\nkind = \"sgd\"\nlr = 0.1\n";

    #[test]
    fn each_change_is_named_and_an_unchanged_run_passes() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = run_config(CFG);
        let splits = data::load_splits(&cfg.data, tmp.path()).unwrap();
        let params = vec![0.5, -1.0, 2.0];
        let fp = Fingerprint::of(&cfg, &splits, &params);
        // No record: an older run, unchecked.
        Fingerprint::check(tmp.path(), &fp).unwrap();
        fp.write(tmp.path()).unwrap();
        Fingerprint::check(tmp.path(), &fp).unwrap();
        assert_eq!(Fingerprint::read(tmp.path()).unwrap(), Some(fp.clone()));

        let edited = run_config(&CFG.replace("lr = 0.1", "lr = 0.2"));
        let e = Fingerprint::check(tmp.path(), &Fingerprint::of(&edited, &splits, &params))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("- optim.lr = 0.1")
                && e.contains("+ optim.lr = 0.2")
                && e.contains("--force"),
            "{e}"
        );

        // One flipped label, one nudged feature, one nudged parameter: each is seen.
        let mut other = splits.clone();
        if let Labels::Classes { y, .. } = &mut other.train.labels {
            y[7] ^= 1;
        }
        let e = Fingerprint::check(tmp.path(), &Fingerprint::of(&cfg, &other, &params))
            .unwrap_err()
            .to_string();
        assert!(e.contains("the data changed after training"), "{e}");
        let mut other = splits.clone();
        if let Features::Dense { values, .. } = &mut other.test.features {
            values[3] = f32::from_bits(values[3].to_bits() ^ 1);
        }
        assert_ne!(data_hash(&other), data_hash(&splits));
        let e = Fingerprint::check(
            tmp.path(),
            &Fingerprint::of(&cfg, &splits, &[0.5, -1.0, 2.0 + 1e-15]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("params.safetensors is not the file that training wrote"),
            "{e}"
        );

        std::fs::write(tmp.path().join(files::FINGERPRINT), "{").unwrap();
        let e = Fingerprint::check(tmp.path(), &fp).unwrap_err().to_string();
        assert!(
            e.contains("fingerprint.json") && e.contains("malformed"),
            "{e}"
        );
    }
}
