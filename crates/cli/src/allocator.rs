//! The binary's allocator settings.
//!
//! The binary allocates with mimalloc, which by default returns memory that stays free for a
//! second (`purge_delay`, 1000 ms in mimalloc v3) to the kernel with `MADV_DONTNEED`. A training
//! run evaluates once per epoch, seconds apart, so every evaluation's buffers were faulted back in
//! and zeroed by the kernel (`clear_page_erms`: 6-7% of `attrib train` on the digits CNN and the
//! fine-tuned GPT under `perf`, most of their evaluation time). attrib's commands are batch jobs
//! whose peak memory is what counts (and is estimated before it is allocated), so memory freed
//! during one is kept for reuse instead.

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};

/// mimalloc's `mi_option_purge_delay`: its place in `mi_option_e` of mimalloc v3's `mimalloc.h`
/// (`libmimalloc-sys` names no constant for it).
const PURGE_DELAY: mi_option_t = 15;

/// That option's default in mimalloc v3, by which [`keep_freed_memory`] recognises it.
const PURGE_DELAY_DEFAULT_MS: std::ffi::c_long = 1000;

/// The variables by which a user sets the purge delay (mimalloc's current and legacy names);
/// either one is obeyed as given.
const PURGE_DELAY_VARIABLES: [&str; 2] = ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"];

/// Keeps memory that the process frees committed until it exits, unless the user set the purge
/// delay in the environment. Call it before any thread starts (mimalloc's options are not
/// thread-safe to set).
///
/// An option that does not hold the purge delay's default is left alone, so that a mimalloc whose
/// options were renumbered cannot have another one changed by mistake.
pub fn keep_freed_memory() {
    if purge_delay_set_by_user() {
        return;
    }
    // SAFETY: reading and setting an option of the linked mimalloc; no other thread runs yet.
    unsafe {
        if mi_option_get(PURGE_DELAY) == PURGE_DELAY_DEFAULT_MS {
            mi_option_set(PURGE_DELAY, -1);
        }
    }
}

/// Whether one of [`PURGE_DELAY_VARIABLES`] is set, so that the option holds the user's value.
fn purge_delay_set_by_user() -> bool {
    PURGE_DELAY_VARIABLES
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_holds_mimallocs_default_and_can_be_turned_off() {
        if purge_delay_set_by_user() {
            return; // the user's value, not the default, is in the option
        }
        // SAFETY: as in `keep_freed_memory`; this test is the only one touching the option.
        let before = unsafe { mi_option_get(PURGE_DELAY) };
        assert_eq!(
            before, PURGE_DELAY_DEFAULT_MS,
            "mimalloc option {PURGE_DELAY} is not the purge delay (1000 ms) any more: update \
             PURGE_DELAY from mimalloc.h's mi_option_e"
        );
        keep_freed_memory();
        // SAFETY: as above.
        assert_eq!(unsafe { mi_option_get(PURGE_DELAY) }, -1);
    }
}
