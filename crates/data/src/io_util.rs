//! File helpers shared by the readers: transparent gzip, whole-file reads, dataset names.

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

/// Writes `bytes` to `path` atomically: `<path>.tmp` in the same folder, synced, then renamed.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DataError::io(path, e)
    })
}
