//! Making groupings of a run's training set (MATH.md E5).
//!
//! | kind | features clustered | notes |
//! |---|---|---|
//! | `random` | none | a seeded permutation cut into `k` near-equal groups |
//! | `class` | none | groups never mix labels: each class gets `k_c >= 1` groups in proportion to its size (largest remainder), its members shuffled and cut into near-equal groups; needs `k >=` the number of classes present |
//! | `kmeans-inputs` | raw input features | dense inputs only |
//! | `kmeans-repr` | penultimate-layer representations at the final parameters | |
//! | `grad-kmeans` | projected per-example loss gradients `(1/sqrt(d)) [<grad l_i, r_t>]_{t<d}`, `r_t` standard normal (seeded), `d` = `proj` (default 32), scaled to unit norm (gradient directions) | one dual forward pass per chunk carries the `d` directions |
//!
//! Everything is seeded by `seed`: same run, kind, `k`, `proj` and seed give the same file.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use data::{Features, Labels};
use engine::Rng;
use nn::Output;

use super::kmeans::kmeans;
use super::Grouping;
use crate::error::{MethodError, Result};
use crate::support::chunks::{TrainChunks, DEFAULT_CHUNK};
use crate::support::features::train_features;
use run::Run;

/// Default dimension of the gradient projection of `grad-kmeans`.
pub const DEFAULT_PROJ: usize = 32;

/// How a grouping is made (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupingKind {
    /// Random near-equal groups.
    Random,
    /// Class-wise: groups never mix labels.
    Class,
    /// k-means on raw inputs.
    KmeansInputs,
    /// k-means on penultimate representations.
    KmeansRepr,
    /// k-means on projected per-example gradients (Grad-K-Means).
    GradKmeans,
}

/// The kinds and their command-line names.
pub const KINDS: &[(GroupingKind, &str)] = &[
    (GroupingKind::Random, "random"),
    (GroupingKind::Class, "class"),
    (GroupingKind::KmeansInputs, "kmeans-inputs"),
    (GroupingKind::KmeansRepr, "kmeans-repr"),
    (GroupingKind::GradKmeans, "grad-kmeans"),
];

impl FromStr for GroupingKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        KINDS
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(k, _)| *k)
            .ok_or_else(|| {
                let names: Vec<&str> = KINDS.iter().map(|(_, n)| *n).collect();
                format!("unknown grouping \"{s}\"; use one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for GroupingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = KINDS.iter().find(|(k, _)| k == self).map(|(_, n)| *n);
        f.write_str(name.unwrap_or("?"))
    }
}

/// What to make: kind, number of groups, seed and (for `grad-kmeans`) projection dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupingSpec {
    /// How.
    pub kind: GroupingKind,
    /// Number of groups, `1..=n`.
    pub k: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// Projection dimension of `grad-kmeans` (ignored by the others).
    pub proj: usize,
}

impl GroupingSpec {
    /// A spec with the default projection dimension.
    pub fn new(kind: GroupingKind, k: usize, seed: u64) -> Self {
        GroupingSpec {
            kind,
            k,
            seed,
            proj: DEFAULT_PROJ,
        }
    }
}

fn refuse(spec: &GroupingSpec, reason: String) -> MethodError {
    MethodError::Groups {
        path: PathBuf::from(format!("<{} grouping>", spec.kind)),
        reason,
    }
}

/// `members` shuffled with `rng` and cut into `k` near-equal consecutive parts.
fn cut(members: &[usize], k: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
    let mut m = members.to_vec();
    rng.shuffle(&mut m);
    let n = m.len();
    (0..k)
        .map(|g| m[g * n / k..(g + 1) * n / k].to_vec())
        .collect()
}

/// Makes a grouping of `run`'s training set.
///
/// # Errors
/// `k` outside `1..=n`, `class` without class labels or with fewer groups than classes,
/// `kmeans-inputs` on token inputs, `proj` of 0.
pub fn make(run: &Run, spec: &GroupingSpec) -> Result<Grouping> {
    let ds = &run.splits.train;
    let n = ds.len();
    let k = spec.k;
    if k == 0 || k > n {
        return Err(refuse(
            spec,
            format!(
                "--groups {k}: the number of groups must be in 1..={n} (the training set size)"
            ),
        ));
    }
    let how = format!(
        "{} k={k} seed={}{}",
        spec.kind,
        spec.seed,
        if spec.kind == GroupingKind::GradKmeans {
            format!(" proj={}", spec.proj)
        } else {
            String::new()
        }
    );
    let mut rng = Rng::derive(spec.seed, "grouping", 0);
    let assignment = match spec.kind {
        GroupingKind::Random => {
            let all: Vec<usize> = (0..n).collect();
            to_assignment(n, &cut(&all, k, &mut rng))
        }
        GroupingKind::Class => {
            let Labels::Classes { y, num_classes, .. } = &ds.labels else {
                return Err(refuse(
                    spec,
                    "class-wise groups need class labels; use random or grad-kmeans".into(),
                ));
            };
            let mut by_class = vec![Vec::new(); *num_classes];
            for (i, &c) in y.iter().enumerate() {
                by_class[c as usize].push(i);
            }
            by_class.retain(|m| !m.is_empty());
            let sizes: Vec<usize> = by_class.iter().map(Vec::len).collect();
            let counts = apportion(&sizes, k).ok_or_else(|| {
                refuse(
                    spec,
                    format!(
                        "--groups {k} is fewer than the {} classes present; class-wise groups never mix labels, so use at least {} groups",
                        sizes.len(),
                        sizes.len()
                    ),
                )
            })?;
            let parts: Vec<Vec<usize>> = by_class
                .iter()
                .zip(&counts)
                .flat_map(|(m, &kc)| cut(m, kc, &mut rng))
                .collect();
            to_assignment(n, &parts)
        }
        GroupingKind::KmeansInputs => {
            let Features::Dense { values, .. } = &ds.features else {
                return Err(refuse(
                    spec,
                    "token inputs have no raw feature vectors; use kmeans-repr or grad-kmeans"
                        .into(),
                ));
            };
            let d = ds.example_len();
            let points: Vec<Vec<f64>> = values
                .chunks(d)
                .map(|r| r.iter().map(|&v| v as f64).collect())
                .collect();
            kmeans(&points, k, spec.seed)
        }
        GroupingKind::KmeansRepr => kmeans(&train_features(run, DEFAULT_CHUNK), k, spec.seed),
        GroupingKind::GradKmeans => {
            let mut points = projected_gradients(run, spec.proj, spec.seed)
                .map_err(|reason| refuse(spec, reason))?;
            // Directions, not magnitudes: on a well-fit model most examples have near-zero loss
            // gradients, and raw k-means puts them all into one cluster (64-91% of MNIST-10k).
            for row in &mut points {
                let norm = crate::linalg::dot(row, row).sqrt();
                if norm > 0.0 {
                    row.iter_mut().for_each(|x| *x /= norm);
                }
            }
            kmeans(&points, k, spec.seed)
        }
    };
    Grouping::new(assignment, k, how)
}

/// Rows `(1/sqrt(d)) [<grad l_i, r_t>]_t` of every training example, `r_t` standard normal from
/// `Rng::derive(seed, "grad-kmeans", t)`.
///
/// # Errors
/// `d` of 0.
pub fn projected_gradients(
    run: &Run,
    d: usize,
    seed: u64,
) -> std::result::Result<Vec<Vec<f64>>, String> {
    if d == 0 {
        return Err("proj must be at least 1".into());
    }
    let p = run.params.len();
    let dirs: Vec<Vec<f64>> = (0..d)
        .map(|t| {
            let mut rng = Rng::derive(seed, "grad-kmeans", t as u64);
            (0..p).map(|_| rng.normal()).collect()
        })
        .collect();
    let refs: Vec<&[f64]> = dirs.iter().map(|v| v.as_slice()).collect();
    let data = TrainChunks::new(&run.splits.train, DEFAULT_CHUNK);
    let jv = data.output_jvps(&run.model, &run.params, Output::Loss, &refs);
    let scale = 1.0 / (d as f64).sqrt();
    Ok((0..run.n_train())
        .map(|i| jv.iter().map(|row| row[i] * scale).collect())
        .collect())
}

/// Splits `k` groups over parts of the given sizes in proportion to size, each part getting at
/// least one and at most its size (largest remainder, ties to the lower index); `None` when `k`
/// is below the number of parts.
fn apportion(sizes: &[usize], k: usize) -> Option<Vec<usize>> {
    let n: usize = sizes.iter().sum();
    if k < sizes.len() || k > n {
        return None;
    }
    let mut counts = vec![1usize; sizes.len()];
    // Hand out the rest one at a time to the part with the most members per group.
    for _ in sizes.len()..k {
        let best = (0..sizes.len())
            .filter(|&c| counts[c] < sizes[c])
            .max_by(|&a, &b| {
                let (ra, rb) = (
                    sizes[a] as f64 / counts[a] as f64,
                    sizes[b] as f64 / counts[b] as f64,
                );
                ra.total_cmp(&rb).then(b.cmp(&a))
            })?;
        counts[best] += 1;
    }
    Some(counts)
}

fn to_assignment(n: usize, parts: &[Vec<usize>]) -> Vec<usize> {
    let mut a = vec![usize::MAX; n];
    for (g, m) in parts.iter().enumerate() {
        for &i in m {
            a[i] = g;
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::tiny_mlp;

    #[test]
    fn every_kind_is_a_deterministic_partition() {
        let run = tiny_mlp(0.0);
        let n = run.n_train();
        let Labels::Classes { y, .. } = &run.splits.train.labels else {
            unreachable!()
        };
        for &(kind, name) in KINDS {
            for k in [2, 7, n / 10] {
                let spec = GroupingSpec::new(kind, k, 3);
                let g = make(&run, &spec).unwrap();
                // Grouping::new checked: every example in 0..k, no group empty.
                assert_eq!((g.n(), g.k), (n, k), "{name}");
                let again = make(&run, &spec).unwrap();
                assert_eq!(g, again, "{name} k={k} not deterministic");
                if kind == GroupingKind::Class {
                    for m in g.members() {
                        assert!(m.iter().all(|&i| y[i] == y[m[0]]), "{name}: mixed labels");
                    }
                }
            }
        }
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let spec = GroupingSpec::new(GroupingKind::GradKmeans, 20, 1);
        assert_eq!(
            make(&run, &spec).unwrap(),
            one.install(|| make(&run, &spec)).unwrap()
        );
        let e = make(&run, &GroupingSpec::new(GroupingKind::Class, 1, 0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 2 groups"), "{e}");
        assert!(make(&run, &GroupingSpec::new(GroupingKind::Random, n + 1, 0)).is_err());
    }

    #[test]
    fn apportion_is_proportional_and_bounded() {
        assert_eq!(apportion(&[10, 30], 4), Some(vec![1, 3]));
        assert_eq!(apportion(&[1, 30], 5), Some(vec![1, 4]));
        assert_eq!(apportion(&[2, 2], 4), Some(vec![2, 2]));
        assert_eq!(apportion(&[2, 2], 1), None);
    }
}
