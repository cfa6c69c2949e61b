//! The fuzzing harness shared by the property tests of `attrib-data`, `attrib-nn` and
//! `attrib-methods` (included with `#[path]`): seeded mutations of a valid file, and a loop that
//! feeds them to a reader and turns a panic into a failure naming the case and its bytes.
#![allow(dead_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Executions per reader: half random bytes, half mutated valid files.
pub const CASES: u64 = 400;

/// A mutation of `seed` (or random bytes) drawn from `rng`.
pub fn mutate(rng: &mut ChaCha8Rng, seed: &[u8]) -> Vec<u8> {
    let r = |rng: &mut ChaCha8Rng, n: usize| (rng.next_u64() as usize) % n.max(1);
    if rng.next_u32().is_multiple_of(2) {
        let len = r(rng, 96);
        return (0..len).map(|_| rng.next_u32() as u8).collect();
    }
    let mut b = seed.to_vec();
    for _ in 0..1 + r(rng, 4) {
        match r(rng, 6) {
            0 if !b.is_empty() => {
                let i = r(rng, b.len());
                b[i] ^= 1 << r(rng, 8);
            }
            1 if !b.is_empty() => {
                let i = r(rng, b.len());
                b[i] = rng.next_u32() as u8;
            }
            2 => {
                let keep = r(rng, b.len() + 1);
                b.truncate(keep);
            }
            3 => {
                let i = r(rng, b.len() + 1);
                let v: &[u8] = match r(rng, 5) {
                    0 => &[0xff, 0xff, 0xff, 0xff],
                    1 => &[0, 0, 0, 0],
                    2 => b"\n",
                    3 => b",",
                    _ => &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                };
                b.splice(i..i, v.iter().copied());
            }
            4 if !b.is_empty() => {
                let i = r(rng, b.len());
                let j = (i + r(rng, 16)).min(b.len());
                let span = b[i..j].to_vec();
                b.splice(i..i, span);
            }
            _ => {
                // Overwrite four bytes with a big-endian or little-endian large count.
                if b.len() >= 4 {
                    let i = r(rng, b.len() - 3);
                    let v = [0x00, 0x10, 0x00, 0x00u8];
                    b[i..i + 4].copy_from_slice(&v);
                }
            }
        }
    }
    b
}

/// Runs `read` on `CASES` inputs derived from `seed`, written to `dir/name`; panics name the case.
pub fn fuzz<T, E: std::fmt::Display>(
    dir: &Path,
    name: &str,
    seed: &[u8],
    read: impl Fn(&Path) -> Result<T, E>,
) -> (usize, usize) {
    let path = dir.join(name);
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let (mut ok, mut errors) = (0, 0);
    for case in 0..CASES {
        let input = mutate(&mut rng, seed);
        std::fs::write(&path, &input).unwrap();
        match catch_unwind(AssertUnwindSafe(|| read(&path).map(|_| ()))) {
            Ok(Ok(())) => ok += 1,
            Ok(Err(e)) => {
                // A typed error names something: never an empty message.
                assert!(!e.to_string().is_empty(), "{name} case {case}: empty error");
                errors += 1;
            }
            Err(_) => panic!("{name}: case {case} panicked on input {input:?}"),
        }
    }
    eprintln!("fuzz {name}: {CASES} executions, {ok} Ok, {errors} typed errors, 0 panics");
    // The valid file itself must still read.
    std::fs::write(&path, seed).unwrap();
    assert!(
        read(&path).is_ok(),
        "{name}: the unmutated seed does not read"
    );
    (ok, errors)
}
