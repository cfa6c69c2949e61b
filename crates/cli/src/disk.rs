//! Disk space before a stage writes: the bytes a stage will write, printed before it starts, and
//! a refusal naming the knob to turn when they do not fit the free space of the run's disk.
//!
//! The free space is `statvfs`'s space available to unprivileged users, or the `ATTRIB_FREE_BYTES`
//! environment variable when set (a quota that the file system does not report, or a margin kept
//! for other jobs on a shared disk).

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Bytes available to this user on the file system of `dir` (`ATTRIB_FREE_BYTES` when set);
/// `None` when it cannot be measured (the write then goes ahead).
///
/// # Errors
/// `ATTRIB_FREE_BYTES` set but not a whole number.
pub fn free_bytes(dir: &Path) -> Result<Option<u64>> {
    if let Ok(v) = std::env::var("ATTRIB_FREE_BYTES") {
        let b = v.trim().parse::<u64>().with_context(|| {
            format!("ATTRIB_FREE_BYTES=\"{v}\" is not a number of bytes; unset it or give e.g. 1000000000")
        })?;
        return Ok(Some(b));
    }
    Ok(statvfs_available(dir))
}

#[cfg(unix)]
fn statvfs_available(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `st` a buffer of the size statvfs fills; it
    // is read only when the call succeeded.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(not(unix))]
fn statvfs_available(_dir: &Path) -> Option<u64> {
    None
}

/// `bytes` in MiB for messages.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Refuses when `bytes` will not fit the free space of `dir` (the nearest existing folder above
/// it is measured); `what` says what would be written, `knob` how to write less.
///
/// # Errors
/// Too little space, or a bad `ATTRIB_FREE_BYTES`.
pub fn check_fits(dir: &Path, bytes: u64, what: &str, knob: &str) -> Result<()> {
    let mut at = dir;
    while !at.exists() {
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => {
                at = Path::new(".");
                break;
            }
        }
    }
    if let Some(free) = free_bytes(at)? {
        if bytes > free {
            bail!(
                "{what} needs {} but {} has {} free; {knob}",
                mib(bytes),
                at.display(),
                mib(free)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_real_disk_and_refuses_what_does_not_fit() {
        let tmp = tempfile::tempdir().unwrap();
        if std::env::var("ATTRIB_FREE_BYTES").is_err() {
            assert!(statvfs_available(tmp.path()).is_some_and(|b| b > 0));
        }
        check_fits(&tmp.path().join("not/yet"), 1, "one byte", "free space").unwrap();
        let e = check_fits(tmp.path(), u64::MAX, "everything", "write less")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("everything needs") && e.contains("write less"),
            "{e}"
        );
    }
}
