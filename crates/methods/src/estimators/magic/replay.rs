//! The training trajectory for the reverse sweep (ARCHITECTURE.md "Training state and replay").
//!
//! MAGIC needs the states `s_t = (theta_t, optimizer buffers, t)` in decreasing `t`. A
//! [`Trajectory`] answers [`Trajectory::state`] by one of two strategies; nothing outside this file
//! knows which:
//! - [`Replay::Store`]: one forward run keeps all `T + 1` states (the fast path when they fit),
//!   with their optimizer buffers only when the reverse rule reads them ([`Buffers`]): SGD's
//!   momentum rule does not, which halves the memory, and the time of faulting in fresh pages
//!   (about a quarter of a one-target sweep on the virtual machines this was measured on);
//! - [`Replay::Tree`]: a `k`-ary checkpoint tree. A query for `t` drops the held states after `t`,
//!   takes the nearest held state `c <= t`, and when `c < t` re-runs [`Trainer::step`] from `c`
//!   to `t`, keeping `min(k, t - c)` evenly spaced states of that segment (its last is `s_t`). In
//!   decreasing order this is the recursive `k`-ary bisection of `[0, T]`: at most `k` states per
//!   level of the tree and `ceil(log_k T)` levels, so at most
//!   [`tree_bound`]`(T, k) = 2 + (k - 1) ceil(log_k T)` states are resident (the initial state
//!   and the one being stepped included), and each step is recomputed at most once per level,
//!   `O(T log_k T)` steps in all.
//!
//! Training is bitwise deterministic (MATH.md E1), so a recomputed state has the bits of the original
//! and both strategies give identical answers. Queries may come in any order (the initial state is
//! always held); decreasing order is the efficient one.

use std::fmt;
use std::str::FromStr;

use engine::Float;
use nn::{TrainState, Trainer};

use crate::error::Result;

/// How a [`Trajectory`] produces past states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Keep every state of one forward run.
    Store,
    /// Checkpoint tree of this arity (`>= 2`), recomputing segments on demand.
    Tree {
        /// Children per node: the segment between two held states is cut into this many pieces.
        arity: usize,
    },
}

impl fmt::Display for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Replay::Store => f.write_str("store"),
            Replay::Tree { arity } => write!(f, "tree (arity {arity})"),
        }
    }
}

/// Number of tree levels for `T >= 1` steps and arity `k`: `max(1, ceil(log_k T))`.
pub fn tree_levels(steps: usize, arity: usize) -> usize {
    let k = arity.max(2);
    let (mut levels, mut reach) = (1usize, k);
    while reach < steps {
        reach = reach.saturating_mul(k);
        levels += 1;
    }
    levels
}

/// The most states a [`Replay::Tree`] trajectory holds at once when queried in decreasing order:
/// `2 + (k - 1) L` with `L` = [`tree_levels`], capped at the `T + 1` of storing everything.
///
/// Why: a query that recomputes creates one tree level, `k` states over the segment between the
/// nearest held state and the queried one, and the next query pops the last of them; so while a new
/// level is being created every level above it holds at most `k - 1` states. Segments shrink by a
/// factor `k` per level (a level's segment lies strictly inside one piece of the level above, of at
/// most `ceil(T / k^l)` steps), so a level `l` is only created while `T > k^l`: `L` levels. With the
/// initial state and the one being stepped forward, `1 + (k - 1)(L - 1) + k` states.
pub fn tree_bound(steps: usize, arity: usize) -> usize {
    (2 + (arity.max(2) - 1) * tree_levels(steps, arity)).min(steps + 1)
}

/// The most states a strategy holds at once for a run of `steps` steps.
pub fn resident_bound(replay: Replay, steps: usize) -> usize {
    match replay {
        Replay::Store => steps + 1,
        Replay::Tree { arity } => tree_bound(steps, arity),
    }
}

/// Which optimizer buffers stored states keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffers {
    /// All of them (the reverse rule reads them: Adam).
    Keep,
    /// None: stored states hold the parameters and the step counter, their `opt.bufs` is
    /// empty. Only store-all drops them; a tree's checkpoints resume training and keep them.
    Drop,
}

/// Bytes of one training state with `params` parameters and `buffers` optimizer buffers in `F`.
pub fn state_bytes<F: Float>(params: usize, buffers: usize) -> u64 {
    (params as u64) * (1 + buffers as u64) * std::mem::size_of::<F>() as u64
}

/// `true` when `states` states of `state` bytes fit in `budget` bytes.
pub fn fits(states: usize, state: u64, budget: u64) -> bool {
    (states as u64).saturating_mul(state) <= budget
}

/// The arity of the cheapest tree whose resident states fit in `budget` bytes: the fewest levels
/// (least recomputation, about `T` steps per level), and among those the smallest arity (least
/// memory). `None` when not even a binary tree fits.
pub fn best_arity(steps: usize, state: u64, budget: u64) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for k in 2..=steps.max(2) {
        let levels = tree_levels(steps, k);
        if best.is_none_or(|(l, _)| levels < l) && fits(tree_bound(steps, k), state, budget) {
            best = Some((levels, k));
        }
    }
    best.map(|(_, k)| k)
}

/// A byte count written as an integer with an optional binary suffix: `4096`, `512K`, `64M`, `2G`
/// (`K` = 1024; case-insensitive; a trailing `B` or `iB` is allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim().to_ascii_uppercase();
        let t = t
            .strip_suffix("IB")
            .or_else(|| t.strip_suffix('B'))
            .unwrap_or(&t);
        let (digits, shift) = match t.chars().last() {
            Some('K') => (&t[..t.len() - 1], 10),
            Some('M') => (&t[..t.len() - 1], 20),
            Some('G') => (&t[..t.len() - 1], 30),
            Some('T') => (&t[..t.len() - 1], 40),
            _ => (t, 0),
        };
        let bad = || format!("\"{s}\" is not a size; write bytes or e.g. 512K, 64M, 2G");
        let n: u64 = digits.trim().parse().map_err(|_| bad())?;
        n.checked_mul(1u64 << shift).map(ByteSize).ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, suffix) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
            if n != 0 && n.trailing_zeros() >= shift {
                return write!(f, "{}{suffix}", n >> shift);
            }
        }
        write!(f, "{n}")
    }
}

/// Training states on demand, in the run's precision `F` (module docs).
pub struct Trajectory<'t, 'a, F: Float> {
    trainer: &'t Trainer<'a, F>,
    replay: Replay,
    /// Held states in increasing step order. Store: every state, index = step. Tree: the stack of
    /// checkpoints, the initial state at the bottom.
    held: Vec<TrainState<F>>,
    buffers: Buffers,
    peak: usize,
    steps_run: usize,
}

impl<'t, 'a, F: Float> Trajectory<'t, 'a, F> {
    /// A trajectory of `trainer`'s run from `initial` (a state at step 0). `Store` runs the whole
    /// training at once, keeping the optimizer buffers as `buffers` says; `Tree` runs nothing
    /// until the first query and always keeps them.
    ///
    /// # Errors
    /// Training errors (divergence) while storing.
    ///
    /// # Panics
    /// If `initial` is not at step 0 or a tree's arity is below 2.
    pub fn new(
        trainer: &'t Trainer<'a, F>,
        initial: TrainState<F>,
        replay: Replay,
        buffers: Buffers,
    ) -> Result<Self> {
        assert_eq!(initial.opt.step, 0, "a trajectory starts at step 0");
        if let Replay::Tree { arity } = replay {
            assert!(arity >= 2, "a checkpoint tree needs arity >= 2");
        }
        let mut traj = Trajectory {
            trainer,
            replay,
            held: Vec::new(),
            buffers,
            peak: 1,
            steps_run: 0,
        };
        if replay == Replay::Store {
            let mut s = initial;
            traj.held.reserve(trainer.steps() + 1);
            traj.held.push(traj.keep(&s));
            while s.opt.step < trainer.steps() {
                trainer.step(&mut s)?;
                traj.steps_run += 1;
                traj.held.push(traj.keep(&s));
            }
            traj.peak = traj.held.len();
        } else {
            traj.held.push(initial);
        }
        Ok(traj)
    }

    /// What store-all keeps of `s`.
    fn keep(&self, s: &TrainState<F>) -> TrainState<F> {
        match self.buffers {
            Buffers::Keep => s.clone(),
            Buffers::Drop => TrainState {
                params: s.params.clone(),
                opt: nn::OptState {
                    step: s.opt.step,
                    bufs: Vec::new(),
                },
            },
        }
    }

    /// Number of training steps `T` (states are `0..=T`).
    pub fn steps(&self) -> usize {
        self.trainer.steps()
    }

    /// The strategy.
    pub fn replay(&self) -> Replay {
        self.replay
    }

    /// The state after `t` steps (`t <= T`), bitwise the one training produced (without its
    /// optimizer buffers when store-all drops them).
    ///
    /// # Errors
    /// Training errors while recomputing a segment.
    ///
    /// # Panics
    /// If `t > T`.
    pub fn state(&mut self, t: usize) -> Result<&TrainState<F>> {
        assert!(
            t <= self.steps(),
            "state {t} of a {}-step run",
            self.steps()
        );
        let Replay::Tree { arity } = self.replay else {
            return Ok(&self.held[t]);
        };
        while self
            .held
            .last()
            .expect("the initial state is held")
            .opt
            .step
            > t
        {
            self.held.pop();
        }
        let top = self.held.last().expect("the initial state is held");
        let c = top.opt.step;
        if c < t {
            let gap = t - c;
            let pieces = arity.min(gap);
            let mut s = top.clone();
            for j in 1..=pieces {
                let end = c + j * gap / pieces;
                while s.opt.step < end {
                    self.trainer.step(&mut s)?;
                    self.steps_run += 1;
                }
                // `s` is resident as it runs; the last piece moves it onto the stack.
                self.peak = self.peak.max(self.held.len() + 1);
                if j < pieces {
                    self.held.push(s.clone());
                }
            }
            self.held.push(s);
        }
        Ok(self.held.last().expect("just pushed"))
    }

    /// The most states held at once so far (the state being stepped forward included).
    pub fn peak_states(&self) -> usize {
        self.peak
    }

    /// States held now.
    pub fn resident_states(&self) -> usize {
        self.held.len()
    }

    /// Training steps run so far by this trajectory (the first pass included).
    pub fn steps_run(&self) -> usize {
        self.steps_run
    }
}
