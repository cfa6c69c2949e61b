//! The training set cut into chunks, and the passes over it that several estimators share.
//!
//! The training set is cut into chunks of `chunk` examples (option, default `auto`) in index order.
//! Hessian-vector products sum the chunks' products weighted by chunk size in chunk order, so the
//! result does not depend on the number of threads (and on the chunk size only through rounding).
//! `<grad l_j, v_t>` for all `j` and `k` directions comes from one dual forward pass per chunk.
//!
//! ## Memory
//! A chunk's pass holds the tape of the whole chunk: every layer's activations (a convolution's
//! im2col patches included), `1 + k` copies of them for a dual pass with `k` directions, and the
//! cotangents on top for a reverse sweep. For a small CNN on 28x28 images that is about 2 MB per
//! example for a plain tape and 20 MB with ten directions, 10 GB for a chunk of 512. So a pass is
//! sized before it runs ([`TrainChunks::planned`], from [`nn::memory::tape_floats`] and the
//! [`Pass`]):
//! - `chunk = auto` (the default): the largest chunk, at most [`DEFAULT_CHUNK`] and at least 1,
//!   whose estimate stays within [`AUTO_CHUNK_BYTES`]. The rule reads only the model, the example
//!   shape and the pass (its number of directions), never the machine, so the same inputs give
//!   the same chunks and the same bits on every machine; small models keep 512.
//! - the number of chunks in flight at once is the thread count, lowered so that they fit in half
//!   the memory available ([`nn::memory::budget`]); it never changes a result (chunks are added
//!   in chunk order whatever runs at once), only the speed.
//! - a chunk whose estimate alone exceeds the available memory is refused before anything is
//!   allocated, with the estimate, the memory available and a `chunk` that fits.

use data::Dataset;
use nn::memory::{show_bytes, TapeFloats};
use nn::{Batch, Model, Output};
use rayon::prelude::*;

use crate::error::{MethodError, Result};
use crate::groups::Grouping;
use crate::options::{Auto, Options};

/// Largest chunk, and the chunk of `chunk = auto` for every model small enough.
pub const DEFAULT_CHUNK: usize = 512;

/// The memory one chunk's pass may take under `chunk = auto`: 1 GiB. A constant, not the
/// machine's free memory, so that the automatic chunk (and so every result's rounding) does not
/// depend on the machine's state.
pub const AUTO_CHUNK_BYTES: f64 = 1024.0 * 1024.0 * 1024.0;

/// The share of the available memory the chunks in flight at once may take together.
pub const IN_FLIGHT_SHARE: f64 = 0.5;

/// Reads a fixed `chunk` option: examples per chunk of a training-set pass (default 512), for
/// the passes that are not planned ([`TrainChunks::new`]). Results depend on it only through
/// rounding.
///
/// # Errors
/// A value below 1.
pub fn chunk_option(opts: &mut Options) -> Result<usize> {
    opts.get("chunk", DEFAULT_CHUNK, crate::options::at_least_one)
}

/// Reads the `chunk` option of a planned pass ([`TrainChunks::planned`]): `auto` (default) or
/// examples per chunk. Results depend on it only through rounding.
///
/// # Errors
/// A value below 1 or neither `auto` nor a count.
pub fn planned_chunk_option(opts: &mut Options) -> Result<Auto<usize>> {
    opts.get("chunk", Auto::Auto, |c: &Auto<usize>| match c {
        Auto::Value(0) => Err("must be `auto` or at least 1".into()),
        _ => Ok(()),
    })
}

/// The heaviest pass an estimator runs over its chunks, for their memory estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// A dual forward pass with `dirs` tangent directions ([`TrainChunks::output_jvps`]): the tape
    /// with `1 + dirs` copies of every value.
    Forward {
        /// Tangent directions.
        dirs: usize,
    },
    /// A dual reverse pass with `dirs` directions (Hessian or Gauss-Newton products): the dual
    /// tape and, during the sweep, as much again in dual cotangents.
    Reverse {
        /// Tangent directions.
        dirs: usize,
    },
    /// K-FAC's factor pass: a plain tape, its cotangents, and for each of the `seeds` reverse
    /// passes (one per class) the cotangents of every linear layer's output, bounded by a tape.
    Factors {
        /// Reverse passes kept at once.
        seeds: usize,
    },
}

impl Pass {
    /// How many plain tapes the pass holds at once.
    pub fn tapes(self) -> f64 {
        match self {
            Pass::Forward { dirs } => 1.0 + dirs as f64,
            Pass::Reverse { dirs } => 2.0 * (1.0 + dirs as f64),
            Pass::Factors { seeds } => 2.0 + seeds as f64,
        }
    }

    /// The heavier of two passes (the one holding more tapes).
    pub fn max(self, other: Pass) -> Pass {
        if other.tapes() > self.tapes() {
            other
        } else {
            self
        }
    }

    /// Bytes one chunk of `chunk` examples holds during this pass, for a model whose plain tape
    /// holds `tape` floats (f64: 8 bytes each). Linear in `chunk` and in the tape.
    pub fn chunk_bytes(self, tape: TapeFloats, chunk: usize) -> f64 {
        8.0 * self.tapes() * tape.at(chunk)
    }

    /// The automatic chunk: the largest `c` in `1..=512` with `chunk_bytes(c) <=`
    /// [`AUTO_CHUNK_BYTES`] (1 when even one example exceeds it).
    pub fn auto_chunk(self, tape: TapeFloats) -> usize {
        let per = 8.0 * self.tapes() * tape.per_example;
        let room = AUTO_CHUNK_BYTES - 8.0 * self.tapes() * tape.fixed;
        if per <= 0.0 {
            return DEFAULT_CHUNK;
        }
        ((room / per).floor().max(1.0) as usize).min(DEFAULT_CHUNK)
    }

    /// Words for errors: `a dual forward pass with 10 directions`.
    fn describe(self) -> String {
        match self {
            Pass::Forward { dirs } => format!("a dual forward pass with {dirs} directions"),
            Pass::Reverse { dirs } => format!("a dual reverse pass with {dirs} directions"),
            Pass::Factors { seeds } => format!("a factor pass with {seeds} reverse passes"),
        }
    }
}

/// How many chunks of `chunk_bytes` each may run at once under `budget` (the available memory):
/// the thread count, lowered to fit in [`IN_FLIGHT_SHARE`] of the budget, at least 1.
pub fn in_flight(chunk_bytes: f64, budget: Option<f64>, threads: usize) -> usize {
    let threads = threads.max(1);
    match budget {
        Some(b) if chunk_bytes > 0.0 => {
            ((IN_FLIGHT_SHARE * b / chunk_bytes).floor().max(1.0) as usize).min(threads)
        }
        _ => threads,
    }
}

/// Refuses a chunk whose pass alone needs more than `budget` (the available memory; `None`:
/// unknown, nothing refused).
///
/// # Errors
/// [`MethodError::BadOption`] on `chunk` naming the estimate, the budget and a chunk that fits
/// (or, when not even one example fits, that the model is too large for this machine).
pub fn check_chunk(
    method: &str,
    pass: Pass,
    tape: TapeFloats,
    chunk: usize,
    budget: Option<f64>,
) -> Result<()> {
    let need = pass.chunk_bytes(tape, chunk);
    let Some(b) = budget.filter(|&b| need > b) else {
        return Ok(());
    };
    let per = 8.0 * pass.tapes() * tape.per_example;
    let room = IN_FLIGHT_SHARE * b - 8.0 * pass.tapes() * tape.fixed;
    let fit = if per > 0.0 { (room / per).floor() } else { 0.0 };
    let fix = if fit >= 1.0 {
        let k = (fit as usize).min(chunk.saturating_sub(1)).max(1);
        format!(
            "pass --option chunk={k} ({} per chunk; results change only by rounding)",
            show_bytes(pass.chunk_bytes(tape, k))
        )
    } else {
        format!(
            "even chunk=1 needs {}: use a machine with more memory or a smaller model",
            show_bytes(pass.chunk_bytes(tape, 1))
        )
    };
    Err(MethodError::BadOption {
        method: method.into(),
        key: "chunk".into(),
        value: chunk.to_string(),
        reason: format!(
            "{} over {chunk} examples needs about {} of memory, more than the {} available \
             (set {} to change the budget); {fix}",
            pass.describe(),
            show_bytes(need),
            show_bytes(b),
            nn::memory::LIMIT_VAR,
        ),
    })
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
    /// Chunks run at once (at most the thread count; lowered by [`TrainChunks::planned`] to fit
    /// the memory). Never changes a result.
    pub in_flight: usize,
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
            in_flight: usize::MAX,
        }
    }

    /// The chunks of `ds` for `method`'s passes over `model`, `pass` the heaviest of them: the
    /// chunk given, or under `auto` the rule of the module docs ([`Pass::auto_chunk`]), and the
    /// chunks in flight lowered to fit the available memory ([`in_flight`]). Nothing is allocated
    /// before the estimate (beyond a plain tape of two examples, [`nn::memory::tape_floats`]).
    ///
    /// # Errors
    /// [`check_chunk`]: one chunk's pass alone needs more than the available memory.
    pub fn planned(
        method: &str,
        ds: &Dataset,
        model: &Model,
        chunk: Auto<usize>,
        pass: Pass,
    ) -> Result<TrainChunks> {
        let tape = nn::memory::tape_floats(model, ds);
        let chunk = match chunk {
            Auto::Auto => pass.auto_chunk(tape),
            Auto::Value(c) => c.max(1),
        };
        let largest = chunk.min(ds.len()).max(1);
        let budget = nn::memory::budget();
        check_chunk(method, pass, tape, largest, budget)?;
        let mut chunks = TrainChunks::new(ds, chunk);
        chunks.in_flight = in_flight(
            pass.chunk_bytes(tape, largest),
            budget,
            rayon::current_num_threads(),
        );
        Ok(chunks)
    }

    /// Chunks run at once: [`TrainChunks::in_flight`], at most the thread count.
    pub(crate) fn window(&self) -> usize {
        self.in_flight.min(rayon::current_num_threads()).max(1)
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
        for group in self.batches.chunks(self.window()) {
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
    /// pass per chunk, [`TrainChunks::in_flight`] chunks at a time.
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
        let window = self.window();
        for (batches, starts) in self.batches.chunks(window).zip(self.starts.chunks(window)) {
            let parts: Vec<Vec<Vec<f64>>> = batches
                .par_iter()
                .map(|b| nn::per_example::output_jvps(model, params, b, out, dirs).1)
                .collect();
            for (&s, part) in starts.iter().zip(parts) {
                for (row, p) in res.iter_mut().zip(part) {
                    row[s..s + p.len()].copy_from_slice(&p);
                }
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

    /// A model of `model` (inline TOML) on digits shaped `shape`, at its initialisation.
    fn untrained(model: &str, shape: &str) -> (Model, Dataset) {
        let text = format!(
            r#"
data = {{ source = "digits", example_shape = {shape}, max_train = 64 }}
model = {model}
optim = {{ kind = "sgd", lr = 0.1 }}
train = {{ epochs = 1, batch_size = 16, precision = "f64" }}
"#
        );
        let cfg = nn::RunConfig::from_toml_str(&text, "t.toml".as_ref()).unwrap();
        let splits = data::load_splits(&cfg.data, ".".as_ref()).unwrap();
        let model = Model::new(&cfg.model, &splits.train).unwrap();
        (model, splits.train)
    }

    /// What a dual forward pass with `k` directions over `b` examples really keeps on its tape.
    fn dual_tape(model: &Model, ds: &Dataset, b: usize, k: usize) -> f64 {
        let params = model.layout().init(0);
        let mut rng = Rng::new(3);
        let dirs: Vec<Vec<f64>> = (0..k)
            .map(|_| (0..params.len()).map(|_| rng.normal()).collect())
            .collect();
        let refs: Vec<&[f64]> = dirs.iter().map(Vec::as_slice).collect();
        let idx: Vec<usize> = (0..b).collect();
        let batch = Batch::<f64>::from_dataset(ds, &idx);
        let g = engine::Graph::<f64, engine::Dual<f64>>::new();
        let p = model.layout().dual_leaves(&g, &params, &refs, false);
        model.output(&g, &p, &batch, Output::Loss);
        g.stored_elements() as f64
    }

    #[test]
    fn the_estimate_bounds_the_dual_tape_of_an_mlp_and_a_cnn() {
        for (model, shape) in [
            (
                r#"{ kind = "mlp", hidden = [32, 16], activation = "gelu" }"#,
                "[64]",
            ),
            (
                r#"{ kind = "cnn", channels = [4, 8], groups = 2, pool = "avg", residual = true }"#,
                "[1, 8, 8]",
            ),
        ] {
            let (model, ds) = untrained(model, shape);
            let tape = nn::memory::tape_floats(&model, &ds);
            assert!(tape.per_example > 0.0, "{tape:?}");
            for (b, k) in [(5, 0), (5, 3), (33, 8)] {
                let real = dual_tape(&model, &ds, b, k);
                let estimate = Pass::Forward { dirs: k }.chunk_bytes(tape, b) / 8.0;
                // An upper bound (constants carry no tangents), and not a loose one.
                assert!(
                    real <= estimate && real >= 0.6 * estimate,
                    "{shape}: b={b} k={k}: tape {real} floats, estimate {estimate}"
                );
            }
        }
    }

    #[test]
    fn auto_chunks_keep_512_for_small_models_and_shrink_for_large_ones() {
        let (model, ds) = untrained(r#"{ kind = "mlp", hidden = [8] }"#, "[64]");
        let tape = nn::memory::tape_floats(&model, &ds);
        assert_eq!(Pass::Forward { dirs: 64 }.auto_chunk(tape), DEFAULT_CHUNK);
        // 2.5 M floats per example (a 28x28 CNN's order): 11 tapes of 20 MB fit 1 GiB 4 times.
        let big = TapeFloats {
            fixed: 0.0,
            per_example: 2.5e6,
        };
        assert_eq!(Pass::Forward { dirs: 10 }.auto_chunk(big), 4);
        assert_eq!(Pass::Reverse { dirs: 10 }.auto_chunk(big), 2);
        // Never below one example.
        assert_eq!(Pass::Reverse { dirs: 1000 }.auto_chunk(big), 1);
        assert_eq!(
            Pass::Forward { dirs: 3 }.max(Pass::Reverse { dirs: 1 }),
            Pass::Forward { dirs: 3 }
        );
    }

    #[test]
    fn a_chunk_past_the_memory_is_refused_with_one_that_fits() {
        let big = TapeFloats {
            fixed: 0.0,
            per_example: 2.5e6,
        };
        let pass = Pass::Forward { dirs: 10 };
        // 512 examples need 112.6 GB; 8 GB available fits 4 GB of chunk, 18 examples.
        let e = check_chunk("tracin", pass, big, 512, Some(8e9))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("chunk=18") && e.contains("ATTRIB_MEMORY_LIMIT") && e.contains("512"),
            "{e}"
        );
        let e = check_chunk("tracin", pass, big, 1, Some(1e8))
            .unwrap_err()
            .to_string();
        assert!(e.contains("even chunk=1"), "{e}");
        assert!(check_chunk("tracin", pass, big, 512, None).is_ok());
        assert!(check_chunk("tracin", pass, big, 4, Some(8e9)).is_ok());
        // In flight: as many chunks as fit in half the memory, at most the threads.
        assert_eq!(in_flight(3e9, Some(8e9), 2), 1);
        assert_eq!(in_flight(1e9, Some(8e9), 2), 2);
        assert_eq!(in_flight(9e9, Some(8e9), 2), 1);
        assert_eq!(in_flight(1e9, None, 3), 3);
    }
}
