//! Independently seeded copies of a run: the run's recipe (config, data, weights, initialisation
//! source) trained again with another trainer seed. TRAK's ensemble members (MATH.md E4) and the
//! seed-averaged ground truth of the literature's LDS protocol (`attrib groundtruth --seeds K`,
//! MATH.md E6) are both such copies, and share them: member `m >= 1` has trainer seed
//! [`member_seed`]`(run seed, m)` and is kept in the run's store
//! (`RUN/store/trak-member/KEY.safetensors`, [`MEMBER_KIND`]; the name predates the sharing and is
//! kept so that existing stores stay valid). Member 0 is the run itself.

use std::collections::BTreeMap;

use engine::Rng;

use crate::{Key, Result, Run, Store};

/// The store kind of a trained member.
pub const MEMBER_KIND: &str = "trak-member";

/// Trainer seed of member `m >= 1` of a run trained with `run_seed`: a fixed derivation, so that
/// every process (and every shard) trains the same members.
pub fn member_seed(run_seed: u64, m: usize) -> u64 {
    Rng::derive(run_seed, "trak-member", m as u64).next_u64() >> 32
}

/// The store key of member `m` (trainer seed `seed`) of `run`.
pub fn member_key(run: &Run, m: usize, seed: u64) -> Key {
    Key::for_run(MEMBER_KIND, run)
        .with("member", m.to_string())
        .with("seed", seed.to_string())
}

/// Member `m >= 1` of `run`: loaded from the run's store when present, else trained (and stored
/// when the run has a directory). A missing or unreadable file is trained again and replaced.
///
/// # Errors
/// Training errors, or the store cannot be written.
pub fn member(run: &Run, m: usize) -> Result<Run> {
    let seed = member_seed(run.config.train.seed, m);
    let store = Store::of(run);
    let key = member_key(run, m, seed);
    let layout = run.model.layout();
    let cached = store
        .path(&key, "safetensors")
        .filter(|p| p.exists())
        .and_then(|p| nn::io::load_params::<f64>(&p, layout).ok());
    if let Some(params) = cached {
        return run.reseeded(seed, Some(params));
    }
    let trained = run.reseeded(seed, None)?;
    if let Some(path) = store.writable_path(&key, "safetensors")? {
        let meta = BTreeMap::from([
            ("seed".to_string(), seed.to_string()),
            ("member".to_string(), m.to_string()),
        ]);
        nn::io::save_params::<f64>(&path, layout, &trained.params, &meta)?;
    }
    Ok(trained)
}

/// Whether member `m >= 1` of `run` is in the run's store.
pub fn is_stored(run: &Run, m: usize) -> bool {
    let key = member_key(run, m, member_seed(run.config.train.seed, m));
    Store::of(run)
        .path(&key, "safetensors")
        .is_some_and(|p| p.exists())
}
