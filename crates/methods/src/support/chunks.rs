//! The training set cut into chunks, and the passes over it that several estimators share.
//!
//! The training set is cut into chunks of `chunk` examples (option, default 512) in index order.
//! Hessian-vector products sum the chunks' products weighted by chunk size in chunk order, so the
//! result does not depend on the number of threads (and on the chunk size only through rounding).
//! `<grad l_j, v_t>` for all `j` and `k` directions comes from one dual forward pass per chunk.

use data::Dataset;
use nn::{Batch, Model, Output};
use rayon::prelude::*;

use crate::error::Result;
use crate::groups::Grouping;
use crate::options::{at_least_one, Options};

/// Default examples per chunk of a pass over the training set.
pub const DEFAULT_CHUNK: usize = 512;

/// Reads the `chunk` option: examples per chunk of a training-set pass (default 512). Results
/// depend on it only through rounding.
///
/// # Errors
/// A value below 1.
pub fn chunk_option(opts: &mut Options) -> Result<usize> {
    opts.get("chunk", DEFAULT_CHUNK, at_least_one)
}

/// The training set cut into chunks of consecutive examples, built once per attribution.
pub struct TrainChunks {
    /// The chunks' batches, in index order.
    pub batches: Vec<Batch<f64>>,
    /// Index of each chunk's first example.
    pub starts: Vec<usize>,
    /// Number of training examples.
    pub n: usize,
    /// Examples per chunk (also the largest batch of a group-gradient pass).
    pub chunk: usize,
}

/// The columns of a score matrix: every training example, or the groups of a grouping (MATH.md
/// E5: a group's column is `d f / d w_G`, the sum of its members' columns for linear methods).
#[derive(Debug, Clone, Copy)]
pub enum Columns<'a> {
    /// One column per training example.
    Examples,
    /// One column per group.
    Groups(&'a Grouping),
}

impl TrainChunks {
    /// Chunks of `chunk` examples of `ds` (the last may be shorter).
    pub fn new(ds: &Dataset, chunk: usize) -> TrainChunks {
        let n = ds.len();
        let chunk = chunk.max(1);
        let starts: Vec<usize> = (0..n).step_by(chunk).collect();
        let batches = starts
            .iter()
            .map(|&s| {
                let idx: Vec<usize> = (s..(s + chunk).min(n)).collect();
                Batch::from_dataset(ds, &idx)
            })
            .collect();
        TrainChunks {
            batches,
            starts,
            n,
            chunk,
        }
    }

    /// `sum_c |c| * f(chunk c)` elementwise, chunks added in index order (deterministic for any
    /// thread count); `f` returns `k` vectors of length `dim`, each the mean over its chunk.
    pub fn weighted_sum(
        &self,
        k: usize,
        dim: usize,
        f: impl Fn(&Batch<f64>) -> Vec<Vec<f64>> + Sync,
    ) -> Vec<Vec<f64>> {
        let mut acc = vec![vec![0.0; dim]; k];
        let window = rayon::current_num_threads().max(1);
        for group in self.batches.chunks(window) {
            let parts: Vec<(usize, Vec<Vec<f64>>)> =
                group.par_iter().map(|b| (b.len(), f(b))).collect();
            for (len, part) in parts {
                let w = len as f64;
                for (a, p) in acc.iter_mut().zip(part) {
                    for (x, y) in a.iter_mut().zip(p) {
                        *x += w * y;
                    }
                }
            }
        }
        acc
    }

    /// `[k][n]`: `<grad o_j(params), v_t>` for every training example `j` and direction `v_t`,
    /// where `o` is the per-example output `out` (the loss for influence scores): one dual forward
    /// pass per chunk.
    pub fn output_jvps(
        &self,
        model: &Model,
        params: &[f64],
        out: Output,
        dirs: &[&[f64]],
    ) -> Vec<Vec<f64>> {
        let k = dirs.len();
        let mut res = vec![vec![0.0; self.n]; k];
        if k == 0 {
            return res;
        }
        let parts: Vec<Vec<Vec<f64>>> = self
            .batches
            .par_iter()
            .map(|b| nn::per_example::output_jvps(model, params, b, out, dirs).1)
            .collect();
        for (&s, part) in self.starts.iter().zip(parts) {
            for (row, p) in res.iter_mut().zip(part) {
                row[s..s + p.len()].copy_from_slice(&p);
            }
        }
        res
    }
}

impl Columns<'_> {
    /// Number of columns for a training set of `n` examples.
    pub fn count(&self, n: usize) -> usize {
        match self {
            Columns::Examples => n,
            Columns::Groups(g) => g.k,
        }
    }
}

impl TrainChunks {
    /// `[k][columns]`: `<grad L_c(params), v_t>` for every column `c` and direction `v_t`, where
    /// `L_c` is example `c`'s loss ([`TrainChunks::output_jvps`]: one dual forward pass per chunk)
    /// or group `c`'s summed loss (its group gradient from [`group_loss_grads`], one reverse pass
    /// per batch of members, dotted with each direction). `ds` is the training set the chunks
    /// were cut from.
    pub fn loss_dots(
        &self,
        ds: &Dataset,
        model: &Model,
        params: &[f64],
        columns: Columns<'_>,
        dirs: &[&[f64]],
    ) -> Vec<Vec<f64>> {
        match columns {
            Columns::Examples => self.output_jvps(model, params, Output::Loss, dirs),
            Columns::Groups(g) => {
                let grads = group_loss_grads(model, params, ds, g, self.chunk);
                dirs.iter()
                    .map(|v| grads.iter().map(|gg| crate::linalg::dot(gg, v)).collect())
                    .collect()
            }
        }
    }
}

/// The group gradients `g_G = sum_{i in G} grad l_i(params)` (flat, `[k][p]`): each group's
/// members in batches of at most `chunk`, one reverse pass per batch, the batches of a group added
/// in index order (groups run in parallel, each written to its own row: thread-independent bits).
pub fn group_loss_grads(
    model: &Model,
    params: &[f64],
    ds: &Dataset,
    groups: &Grouping,
    chunk: usize,
) -> Vec<Vec<f64>> {
    let members = groups.members();
    let p = params.len();
    members
        .par_iter()
        .map(|m| {
            let mut g = vec![0.0; p];
            for part in m.chunks(chunk.max(1)) {
                let batch = Batch::<f64>::from_dataset(ds, part);
                let ones = vec![1.0; part.len()];
                // Gradient of the batch mean; times |B| is the batch sum.
                let (grad, _) = nn::per_example::objective_hvps(model, params, &batch, &ones, &[]);
                crate::linalg::axpy(part.len() as f64, &grad, &mut g);
            }
            g
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use engine::Rng;

    use super::*;
    use crate::testutil::*;

    #[test]
    fn output_jvps_cover_every_example_once() {
        let run = tiny_mlp(0.0);
        let p = run.params.len();
        let mut rng = Rng::new(8);
        let v: Vec<f64> = (0..p).map(|_| rng.normal()).collect();
        let a = TrainChunks::new(&run.splits.train, 512).output_jvps(
            &run.model,
            &run.params,
            Output::Loss,
            &[&v],
        );
        let b = TrainChunks::new(&run.splits.train, 33).output_jvps(
            &run.model,
            &run.params,
            Output::Loss,
            &[&v],
        );
        assert_eq!(a[0].len(), run.n_train());
        assert!(rel_diff(&a, &b) < 1e-13);
        // One example against its materialised gradient.
        let batch = Batch::from_dataset(&run.splits.train, &[100]);
        let g = nn::per_example::output_grads(&run.model, &run.params, &batch, Output::Loss);
        let d = crate::linalg::dot(&g[0], &v);
        assert!((a[0][100] - d).abs() <= 1e-12 * d.abs().max(1.0));
    }
}
