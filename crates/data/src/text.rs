//! Character-level text corpora for language modelling.

use std::collections::BTreeSet;
use std::path::Path;

use crate::io_util::read_all;
use crate::{DataError, Dataset, Features, Labels};

/// Builds a character-level language-modelling dataset from `text`.
///
/// The vocabulary is the sorted set of distinct characters, stored in `feature_names` (one
/// single-character string per token id) so ids can be decoded with [`decode_chars`]. Examples
/// are windows of `seq_len` tokens starting every `stride` characters (a window is kept only if
/// it fits entirely); labels are `Labels::None`. A `stride` of 0 is treated as 1; `seq_len == 0`
/// gives no examples.
pub fn char_corpus(text: &str, seq_len: usize, stride: usize) -> Dataset {
    let stride = stride.max(1);
    let vocab: Vec<char> = text
        .chars()
        .collect::<BTreeSet<char>>()
        .into_iter()
        .collect();
    let all: Vec<u32> = text
        .chars()
        .map(|c| vocab.binary_search(&c).map_or(0, |i| i as u32))
        .collect();
    let mut ids = Vec::new();
    if seq_len > 0 {
        let mut start = 0usize;
        while start + seq_len <= all.len() {
            ids.extend_from_slice(&all[start..start + seq_len]);
            start += stride;
        }
    }
    Dataset {
        name: "char_corpus".to_string(),
        features: Features::Tokens {
            ids,
            seq_len,
            vocab: vocab.len(),
        },
        labels: Labels::None,
        feature_names: Some(vocab.iter().map(|c| c.to_string()).collect()),
    }
}

/// Decodes token ids back to text with a vocabulary from [`char_corpus`] (`feature_names`);
/// an id outside the vocabulary decodes to U+FFFD.
pub fn decode_chars(vocab: &[String], ids: &[u32]) -> String {
    ids.iter()
        .map(|&i| vocab.get(i as usize).map_or("\u{fffd}", String::as_str))
        .collect()
}

/// Encodes `text` with a vocabulary from [`char_corpus`]; errors on a character outside it.
pub fn encode_chars(vocab: &[String], text: &str) -> Result<Vec<u32>, DataError> {
    text.chars()
        .map(|c| {
            let mut buf = [0u8; 4];
            let s: &str = c.encode_utf8(&mut buf);
            vocab
                .iter()
                .position(|v| v == s)
                .map(|i| i as u32)
                .ok_or_else(|| DataError::InvalidArgument {
                    reason: format!(
                        "character {c:?} (U+{:04X}) is not in the vocabulary of {} characters; \
                         use only characters seen in the training corpus",
                        c as u32,
                        vocab.len()
                    ),
                })
        })
        .collect()
}

/// Reads a UTF-8 text file (gzip transparent), dropping a leading byte-order mark.
pub fn read_text(path: &Path) -> Result<String, DataError> {
    read_text_bom(path).map(|(s, _)| s)
}

/// [`read_text`], also returning the length in bytes of the byte-order mark it dropped (0 or 3),
/// so that offsets into the text map back to offsets into the (decompressed) file.
pub(crate) fn read_text_bom(path: &Path) -> Result<(String, usize), DataError> {
    let bytes = read_all(path)?;
    match String::from_utf8(bytes) {
        Ok(mut s) => {
            let mut bom = 0;
            if s.starts_with('\u{feff}') {
                bom = '\u{feff}'.len_utf8();
                s.drain(..bom);
            }
            Ok((s, bom))
        }
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
            Err(DataError::Format {
                path: path.to_path_buf(),
                line: Some(line),
                column: None,
                reason: format!("invalid UTF-8 at byte {at}; re-save the file as UTF-8"),
            })
        }
    }
}
