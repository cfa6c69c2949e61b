//! Group attribution (MATH.md E5; GGDA, Ley et al.): partitions of the training set, the group
//! gradients the group versions of the methods use. The group evaluations (retraining score,
//! noisy labels) are measurements and live in `attrib-eval`.
//!
//! A [`Grouping`] maps every training example to one of `K` groups (a partition: every example in
//! exactly one group, no group empty). A group's weight `w_G` scales all its members' data weights
//! (`w_i = w_G(i)`), so `tau_G = d f / d w_G = sum_{i in G} tau_i` exactly, and dropping groups `D`
//! predicts `f(S \ D) ~ f(S) - sum_{G in D} tau_G` (the crate's sign convention).
//!
//! - [`make`]: random, class-wise, k-means on raw inputs, on penultimate representations, and on
//!   projected per-example gradients (Grad-K-Means), all seeded and deterministic ([`kmeans`]);
//!   [`Grouping::from_csv_column`] reads a user-given grouping.
//! - [`crate::support::chunks::group_loss_grads`]: the group gradients `g_G = sum_{i in G} grad l_i`, one reverse pass per
//!   batch of a group's members, which the group versions of influence functions and TracIn dot
//!   with their directions instead of one dual forward pass per example.
//!
//! ## Files
//! A grouping is saved as a CSV `example,group` (one row per training example, in index order)
//! and a JSON sidecar `FILE.json` with `k`, `n`, `how` it was made and the assignment's `hash`;
//! both are written atomically.

pub mod kmeans;
pub mod make;

#[cfg(test)]
mod method_tests;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{MethodError, Result};
use engine::hash::fingerprint;

pub use make::{make, GroupingKind};

/// A partition of the training set into `k` non-empty groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    /// `assignment[i]` is the group of training example `i`, in `0..k`.
    pub assignment: Vec<usize>,
    /// Number of groups.
    pub k: usize,
    /// How it was made, e.g. `grad-kmeans k=10 seed=0` (for reports and the sidecar).
    pub how: String,
}

/// The sidecar of a saved grouping.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sidecar {
    k: usize,
    n: usize,
    how: String,
    hash: String,
}

fn bad(path: &Path, reason: String) -> MethodError {
    MethodError::Groups {
        path: path.to_path_buf(),
        reason,
    }
}

impl Grouping {
    /// Checks that `assignment` is a partition into `k` non-empty groups.
    ///
    /// # Errors
    /// A group index `>= k` or an empty group (named, with the fix).
    pub fn new(assignment: Vec<usize>, k: usize, how: impl Into<String>) -> Result<Grouping> {
        let how = how.into();
        let here = PathBuf::from(format!("<grouping {how}>"));
        if k == 0 || assignment.is_empty() {
            return Err(bad(
                &here,
                "a grouping needs at least one example and one group".into(),
            ));
        }
        let mut sizes = vec![0usize; k];
        for (i, &g) in assignment.iter().enumerate() {
            if g >= k {
                return Err(bad(
                    &here,
                    format!("example {i} is in group {g}, outside 0..{k}"),
                ));
            }
            sizes[g] += 1;
        }
        if let Some(g) = sizes.iter().position(|&s| s == 0) {
            return Err(bad(
                &here,
                format!("group {g} of {k} is empty; number the groups 0..K without gaps"),
            ));
        }
        Ok(Grouping { assignment, k, how })
    }

    /// Builds a grouping from arbitrary labels, numbering groups by first appearance.
    pub fn from_labels<T: Eq + std::hash::Hash + Clone>(labels: &[T], how: &str) -> Grouping {
        let mut ids = std::collections::HashMap::new();
        let assignment: Vec<usize> = labels
            .iter()
            .map(|l| {
                let next = ids.len();
                *ids.entry(l.clone()).or_insert(next)
            })
            .collect();
        Grouping {
            k: ids.len(),
            assignment,
            how: how.into(),
        }
    }

    /// Number of training examples.
    pub fn n(&self) -> usize {
        self.assignment.len()
    }

    /// The members of each group, in index order.
    pub fn members(&self) -> Vec<Vec<usize>> {
        let mut m = vec![Vec::new(); self.k];
        for (i, &g) in self.assignment.iter().enumerate() {
            m[g].push(i);
        }
        m
    }

    /// Fingerprint of the assignment (ties group scores to their grouping).
    pub fn hash(&self) -> String {
        let bytes: Vec<u8> = self
            .assignment
            .iter()
            .flat_map(|&g| (g as u64).to_le_bytes())
            .collect();
        fingerprint(&[&(self.k as u64).to_le_bytes(), &bytes])
    }

    /// Per-example score rows `[t][n]` summed into group rows `[t][k]` (members in index order).
    pub fn sum_columns(&self, rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
        rows.iter()
            .map(|r| {
                let mut out = vec![0.0; self.k];
                for (&g, &v) in self.assignment.iter().zip(r) {
                    out[g] += v;
                }
                out
            })
            .collect()
    }

    /// Per-example data weights from group weights: `w_i = w_G(i)`.
    pub fn expand(&self, group_weights: &[f64]) -> Vec<f64> {
        self.assignment.iter().map(|&g| group_weights[g]).collect()
    }

    /// Checks that the grouping covers a training set of `n` examples.
    ///
    /// # Errors
    /// A different number of examples (the grouping was made for another run).
    pub fn check_n(&self, n: usize) -> Result<()> {
        if self.n() != n {
            return Err(bad(
                Path::new(&format!("<grouping {}>", self.how)),
                format!(
                    "the grouping covers {} examples but the training set has {n}; make it for this run with `attrib group`",
                    self.n()
                ),
            ));
        }
        Ok(())
    }

    /// Writes `path` (CSV `example,group`) and `path.json` (sidecar), each atomically.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut csv = String::from("example,group\n");
        for (i, g) in self.assignment.iter().enumerate() {
            csv.push_str(&format!("{i},{g}\n"));
        }
        data::write_atomic(path, csv.as_bytes())?;
        let side = Sidecar {
            k: self.k,
            n: self.n(),
            how: self.how.clone(),
            hash: self.hash(),
        };
        let text = serde_json::to_string_pretty(&side).expect("sidecar serialises");
        data::write_atomic(&sidecar_path(path), text.as_bytes())?;
        Ok(())
    }

    /// Reads a grouping written by [`Grouping::save`]. Without a sidecar the CSV alone is used
    /// (`how` = the file name); with one, its `k`, `n` and `hash` must agree with the CSV.
    ///
    /// # Errors
    /// A missing or malformed file (line named), rows out of order, or a sidecar that disagrees.
    pub fn load(path: &Path) -> Result<Grouping> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            bad(
                path,
                format!("cannot read the grouping ({e}); make one with `attrib group`"),
            )
        })?;
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, h)) if h.trim() == "example,group" => {}
            _ => {
                return Err(bad(
                    path,
                    "the first line must be the header `example,group`".into(),
                ))
            }
        }
        let mut assignment = Vec::new();
        for (ln, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let parse = |s: Option<&str>| s.and_then(|s| s.trim().parse::<usize>().ok());
            let mut parts = line.split(',');
            let (Some(i), Some(g)) = (parse(parts.next()), parse(parts.next())) else {
                return Err(bad(
                    path,
                    format!(
                        "line {}: expected `example,group` as two integers, got `{line}`",
                        ln + 1
                    ),
                ));
            };
            if i != assignment.len() {
                return Err(bad(
                    path,
                    format!(
                        "line {}: example {i} where {} was expected; list examples 0..n in order",
                        ln + 1,
                        assignment.len()
                    ),
                ));
            }
            assignment.push(g);
        }
        let k = assignment.iter().max().map_or(0, |m| m + 1);
        let side = sidecar_path(path);
        let how = match std::fs::read_to_string(&side) {
            Ok(t) => {
                let s: Sidecar = serde_json::from_str(&t)
                    .map_err(|e| bad(&side, format!("malformed sidecar: {e}")))?;
                s.how
            }
            Err(_) => path.display().to_string(),
        };
        let g = Grouping::new(assignment, k, how).map_err(|e| bad(path, e.to_string()))?;
        if let Ok(t) = std::fs::read_to_string(&side) {
            let s: Sidecar = serde_json::from_str(&t)
                .map_err(|e| bad(&side, format!("malformed sidecar: {e}")))?;
            if (s.k, s.n, s.hash.as_str()) != (g.k, g.n(), g.hash().as_str()) {
                return Err(bad(
                    &side,
                    format!("the sidecar says k={} n={} hash={} but the CSV has k={} n={} hash={}; the CSV was edited: delete the sidecar to use it as is", s.k, s.n, s.hash, g.k, g.n(), g.hash()),
                ));
            }
        }
        Ok(g)
    }

    /// A user-given grouping: column `column` of a CSV with a header line and one row per
    /// training example in index order; equal values form a group (numbered by first appearance).
    ///
    /// # Errors
    /// A missing file or column, or a row without that column.
    pub fn from_csv_column(path: &Path, column: &str) -> Result<Grouping> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(path, format!("cannot read the CSV ({e})")))?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines
            .next()
            .ok_or_else(|| bad(path, "the CSV is empty; it needs a header line".into()))?
            .split(',')
            .map(str::trim)
            .collect();
        let col = header.iter().position(|h| *h == column).ok_or_else(|| {
            bad(
                path,
                format!(
                    "no column \"{column}\"; the columns are: {}",
                    header.join(", ")
                ),
            )
        })?;
        let mut labels = Vec::new();
        for (r, line) in lines.enumerate() {
            let v = line
                .split(',')
                .nth(col)
                .ok_or_else(|| bad(path, format!("data row {r} has no column {}", col + 1)))?;
            labels.push(v.trim().to_string());
        }
        if labels.is_empty() {
            return Err(bad(path, "the CSV has a header but no rows".into()));
        }
        Ok(Grouping::from_labels(
            &labels,
            &format!("column {column} of {}", path.display()),
        ))
    }
}

/// `FILE.json` next to a grouping `FILE`.
pub fn sidecar_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::chunks::group_loss_grads;
    use crate::testutil::tiny_mlp;
    use nn::Batch;

    #[test]
    fn save_load_roundtrip_and_checks() {
        let g = Grouping::new(vec![0, 1, 1, 2, 0], 3, "test").unwrap();
        let dir = std::env::temp_dir().join(format!("attrib-groups-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.csv");
        g.save(&path).unwrap();
        assert_eq!(Grouping::load(&path).unwrap(), g);
        // An edited CSV disagrees with its sidecar.
        std::fs::write(&path, "example,group\n0,0\n1,1\n2,1\n3,0\n4,0\n").unwrap();
        let e = Grouping::load(&path).unwrap_err().to_string();
        assert!(e.contains("edited"), "{e}");
        // Gaps and out-of-order rows are refused.
        std::fs::remove_file(sidecar_path(&path)).unwrap();
        std::fs::write(&path, "example,group\n0,0\n1,2\n").unwrap();
        assert!(Grouping::load(&path)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        std::fs::write(&path, "example,group\n1,0\n").unwrap();
        assert!(Grouping::load(&path)
            .unwrap_err()
            .to_string()
            .contains("in order"));
        // A user column.
        std::fs::write(&path, "id,source\n0,a\n1,b\n2,a\n").unwrap();
        let u = Grouping::from_csv_column(&path, "source").unwrap();
        assert_eq!((u.assignment.clone(), u.k), (vec![0, 1, 0], 2));
        let e = Grouping::from_csv_column(&path, "nope")
            .unwrap_err()
            .to_string();
        assert!(e.contains("id, source"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn group_gradients_are_sums_of_member_gradients() {
        let run = tiny_mlp(0.0);
        let n = run.n_train();
        let g = Grouping::new((0..n).map(|i| (i * 7) % 5).collect(), 5, "mod").unwrap();
        let grads = group_loss_grads(&run.model, &run.params, &run.splits.train, &g, 16);
        let all: Vec<usize> = (0..n).collect();
        let per = nn::per_example::output_grads(
            &run.model,
            &run.params,
            &Batch::from_dataset(&run.splits.train, &all),
            nn::Output::Loss,
        );
        for (gi, members) in g.members().iter().enumerate() {
            let mut want = vec![0.0; run.params.len()];
            for &i in members {
                crate::linalg::axpy(1.0, &per[i], &mut want);
            }
            let d = crate::testutil::rel_diff(&[grads[gi].clone()], &[want]);
            assert!(d < 1e-12, "group {gi}: {d}");
        }
    }
}
