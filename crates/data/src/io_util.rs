//! File helpers: transparent gzip, whole-file reads, dataset names, and the one atomic write of
//! the workspace ([`write_atomic`]; every crate above writes its files through it).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::DataError;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// True when the file name ends in `.gz` (case-insensitive).
pub(crate) fn has_gz_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// Opens `path` for streaming, decompressing gzip when the name ends in `.gz` or the content
/// starts with the gzip magic bytes.
pub(crate) fn open_read(path: &Path) -> Result<Box<dyn Read>, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let sniffed_gz = {
        let head = reader.fill_buf().map_err(|e| DataError::io(path, e))?;
        head.len() >= 2 && head[..2] == GZIP_MAGIC
    };
    if sniffed_gz || has_gz_extension(path) {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(reader),
        )))
    } else {
        Ok(Box::new(reader))
    }
}

/// Reads the whole (possibly gzipped) file into memory.
pub(crate) fn read_all(path: &Path) -> Result<Vec<u8>, DataError> {
    let mut reader = open_read(path)?;
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .map_err(|e| DataError::io(path, e))?;
    Ok(out)
}

/// A dataset name from a file name: `data/iris.csv.gz` -> `iris`.
pub(crate) fn stem_name(path: &Path) -> String {
    let mut p = path.to_path_buf();
    if has_gz_extension(&p) {
        p.set_extension("");
    }
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".to_string())
}

/// Writes `bytes` to `path` through a temporary file in the same folder (`.NAME.SEQ.PID.tmp`) and
/// a rename, so that a reader never sees a half-written file: `path` holds either its previous
/// complete content or the new one, also after a crash or Ctrl-C. This is the workspace's only
/// atomic write; the run directory, scores, caches and checkpoints all go through it. `SEQ`
/// numbers the writes of this process, so threads writing the same file at once (two parallel
/// retrainings of one cache key) never share a temporary; the last rename wins, and both wrote the
/// same bytes.
///
/// # Errors
/// [`DataError::Io`] naming the file (the temporary file is removed on failure).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.{seq}.{}.tmp", std::process::id()));
    let write_synced = || {
        use std::io::Write;
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        // On disk before the rename, so a power loss cannot leave the new name with no content.
        f.sync_all()
    };
    write_synced()
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            // Best effort: do not leave a half-written temporary behind.
            let _ = std::fs::remove_file(&tmp);
            DataError::io(path, e)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: issue 13, item 3.
    #[test]
    fn a_failed_atomic_write_leaves_no_temporary_and_the_old_content() {
        let tmp = tempfile::tempdir().unwrap();
        // The rename fails (a folder holds the name): the temporary must go.
        let target = tmp.path().join("taken");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), b"x").unwrap();
        let e = write_atomic(&target, b"new").unwrap_err().to_string();
        assert!(e.contains("taken"), "{e}");
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "{left:?}");
        // A successful write replaces the file whole.
        let file = tmp.path().join("f.txt");
        write_atomic(&file, b"old").unwrap();
        write_atomic(&file, b"new").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
    }

    #[test]
    fn threads_writing_one_file_at_once_all_succeed() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("shared.bin");
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        write_atomic(&file, b"same bytes").unwrap();
                    }
                });
            }
        });
        assert_eq!(std::fs::read(&file).unwrap(), b"same bytes");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
