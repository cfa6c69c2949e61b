//! Shards: one of `N` processes (a Slurm array task, a Kubernetes indexed job, a shell loop) that
//! each compute a fixed part of a long computation and write only their own entries.
//!
//! Work item `j` (a subset retraining, a block of targets) belongs to shard `j mod N`: the rule
//! depends on the item's index alone, never on timing, so shards may run in any order,
//! concurrently, on machines that share the run directory. Every entry is a content-addressed file
//! written by atomic rename, and two shards never write the same entry, so no lock is needed; a
//! file written by two processes (a cache folder's manifest) has the same bytes from each. The
//! command run without a shard afterwards reads every entry and computes only what is missing, so
//! the assembled result is the single-process result, bit for bit.

use std::fmt;
use std::str::FromStr;

use crate::error::{invalid, Result};

/// Shard `index` of `count` (0-based: `0 <= index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// Number of shards, at least 1.
    pub count: usize,
}

impl Shard {
    /// Shard `index` of `count`.
    ///
    /// # Errors
    /// `count` is 0 or `index >= count`.
    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 || index >= count {
            return Err(invalid(
                "--shard",
                format!(
                    "{index}/{count} is not a shard: give I/N with N >= 1 and 0 <= I < N (shards \
                     are numbered from 0, as Slurm's --array=0-{})",
                    count.max(1) - 1
                ),
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether work item `j` is this shard's.
    pub fn owns(&self, j: usize) -> bool {
        j % self.count == self.index
    }

    /// The shard given by the environment of a scheduler's array task, if any:
    /// `SLURM_ARRAY_TASK_ID` relative to `SLURM_ARRAY_TASK_MIN` (0 when unset) of
    /// `SLURM_ARRAY_TASK_COUNT`, or Kubernetes' `JOB_COMPLETION_INDEX` of `ATTRIB_SHARD_COUNT`
    /// (an indexed job does not export its completion count).
    ///
    /// # Errors
    /// A variable that is set but not a number, an index outside the count, or a
    /// `JOB_COMPLETION_INDEX` without `ATTRIB_SHARD_COUNT`.
    pub fn from_env() -> Result<Option<Shard>> {
        Shard::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Shard::from_env`] over any variable lookup (for tests).
    ///
    /// # Errors
    /// As [`Shard::from_env`].
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>> {
        let number = |name: &str| -> Result<Option<usize>> {
            var(name)
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| {
                        invalid(
                            name,
                            format!("\"{v}\" is not a whole number (set by the scheduler)"),
                        )
                    })
                })
                .transpose()
        };
        if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            let count = number("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                invalid(
                    "SLURM_ARRAY_TASK_COUNT",
                    "is not set next to SLURM_ARRAY_TASK_ID; pass --shard I/N explicitly",
                )
            })?;
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let index = id.checked_sub(min).ok_or_else(|| {
                invalid(
                    "SLURM_ARRAY_TASK_ID",
                    format!("{id} is below SLURM_ARRAY_TASK_MIN {min}"),
                )
            })?;
            return Shard::new(index, count).map(Some);
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let count = number("ATTRIB_SHARD_COUNT")?.ok_or_else(|| {
                invalid(
                    "ATTRIB_SHARD_COUNT",
                    "must be set to the job's `completions` next to JOB_COMPLETION_INDEX (an \
                     indexed job does not export it); or pass --shard I/N",
                )
            })?;
            return Shard::new(index, count).map(Some);
        }
        Ok(None)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let parse = |p: &str| p.trim().parse::<usize>().ok();
        let (i, n) = s
            .split_once('/')
            .and_then(|(i, n)| Some((parse(i)?, parse(n)?)))
            .ok_or_else(|| {
                format!("\"{s}\" is not I/N; write e.g. 0/4 for the first of 4 shards")
            })?;
        Shard::new(i, n).map_err(|e| e.to_string())
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_has_exactly_one_shard() {
        for count in 1..6 {
            for j in 0..40 {
                let owners = (0..count)
                    .filter(|&i| Shard::new(i, count).unwrap().owns(j))
                    .count();
                assert_eq!(owners, 1, "item {j} of {count} shards");
            }
        }
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        assert_eq!(Shard::new(1, 3).unwrap().to_string(), "1/3");
        for bad in ["4/4", "0/0", "x/2", "3", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_the_schedulers_variables() {
        fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
            move |k| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        }
        assert_eq!(Shard::from_vars(env(&[])).unwrap(), None);
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert_eq!(
            Shard::from_vars(env(&slurm)).unwrap(),
            Some(Shard { index: 2, count: 4 })
        );
        let k8s = [("JOB_COMPLETION_INDEX", "1"), ("ATTRIB_SHARD_COUNT", "3")];
        assert_eq!(
            Shard::from_vars(env(&k8s)).unwrap(),
            Some(Shard { index: 1, count: 3 })
        );
        let no_count = [("JOB_COMPLETION_INDEX", "1")];
        let e = Shard::from_vars(env(&no_count)).unwrap_err().to_string();
        assert!(e.contains("ATTRIB_SHARD_COUNT"), "{e}");
        let past = [
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert!(Shard::from_vars(env(&past)).is_err());
    }
}
