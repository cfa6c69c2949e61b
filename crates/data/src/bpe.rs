//! Byte-level BPE for `text` sources (`data.tokenizer = "bpe"`), trained with the `tokenizers`
//! crate on the training text only.
//!
//! Character windows are split at random (any window may be a test window, and the vocabulary is
//! the text's characters, which tells nothing of the test text). A learned vocabulary would see the
//! test text if it were trained on all of it, so BPE runs split by position instead: the test split
//! is the text's last `test_fraction`, cut at the start of a line, and the tokenizer is trained on
//! the part before it (the training split and any validation split drawn from it). Each part is
//! then encoded and cut into windows of `seq_len` tokens, every `seq_len` tokens, as
//! [`crate::char_corpus`] cuts characters.
//!
//! The vocabulary is stored as each token's text in `feature_names`, so that windows decode with
//! [`crate::decode_chars`]; a token holding part of a multi-byte character decodes to U+FFFD
//! there. The trained tokenizer itself is saved in the run as `provenance/tokenizer.json`, readable
//! by Hugging Face `tokenizers` (`Tokenizer.from_file`). Training is deterministic: the same text
//! and vocabulary size give the same merges, in any process.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    DecoderWrapper, Model, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    TokenizerBuilder, TokenizerImpl,
};

use crate::provenance::Origins;
use crate::{DataError, Dataset, Features, Labels};

/// The smallest and largest `data.vocab_size`: the 256 bytes and one merge; token ids are `u32`
/// but a vocabulary past 65,536 would dwarf any model attrib trains here.
pub const VOCAB_RANGE: std::ops::RangeInclusive<usize> = 257..=65_536;

/// `data.vocab_size` when absent.
pub const DEFAULT_VOCAB: usize = 512;

type Bpe = TokenizerImpl<
    BPE,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// A text's tokens ([`BpeTokenizer::encode`]).
pub struct Encoded {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Each token's byte range `[start, end)` in the text.
    pub spans: Vec<(usize, usize)>,
}

/// A trained byte-level BPE tokenizer.
pub struct BpeTokenizer {
    inner: Bpe,
}

fn failed(path: &std::path::Path, what: &str, e: impl std::fmt::Display) -> DataError {
    DataError::format(path, format!("byte-level BPE: cannot {what}: {e}"))
}

impl BpeTokenizer {
    /// Trains on `text` (fed line by line) up to `vocab_size` tokens; `path` names the text in
    /// errors.
    ///
    /// # Errors
    /// A `vocab_size` outside [`VOCAB_RANGE`], or a failure inside `tokenizers`.
    pub fn train(text: &str, vocab_size: usize, path: &std::path::Path) -> Result<Self, DataError> {
        if !VOCAB_RANGE.contains(&vocab_size) {
            return Err(DataError::InvalidArgument {
                reason: format!(
                    "data.vocab_size = {vocab_size} must be between {} (the 256 bytes and one \
                     merge) and {}",
                    VOCAB_RANGE.start(),
                    VOCAB_RANGE.end()
                ),
            });
        }
        let byte_level = ByteLevel::default().add_prefix_space(false);
        let mut inner: Bpe = TokenizerBuilder::default()
            .with_model(BPE::default())
            .with_pre_tokenizer(Some(PreTokenizerWrapper::ByteLevel(byte_level)))
            .with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevelDecoder::default())))
            .build()
            .map_err(|e| failed(path, "build the tokenizer", e))?;
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(0)
            .show_progress(false)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let lines = text.split_inclusive('\n');
        inner
            .train(&mut trainer, lines)
            .map_err(|e| failed(path, "train", e))?;
        Ok(BpeTokenizer { inner })
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_model().get_vocab_size()
    }

    /// Every token's text, by id (U+FFFD for bytes that are not whole characters).
    pub fn token_texts(&self) -> Vec<String> {
        (0..self.vocab_size() as u32)
            .map(|id| self.inner.decode(&[id], false).unwrap_or_default())
            .collect()
    }

    /// The tokens of `text`.
    ///
    /// # Errors
    /// A failure inside `tokenizers`.
    pub fn encode(&self, text: &str, path: &std::path::Path) -> Result<Encoded, DataError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| failed(path, "encode", e))?;
        Ok(Encoded {
            ids: enc.get_ids().to_vec(),
            spans: enc.get_offsets().to_vec(),
        })
    }

    /// The tokenizer as Hugging Face's `tokenizer.json`.
    ///
    /// # Errors
    /// A serialisation failure inside `tokenizers`.
    pub fn to_json(&self, path: &std::path::Path) -> Result<String, DataError> {
        self.inner
            .to_string(false)
            .map_err(|e| failed(path, "serialise", e))
    }
}

/// Where the test text starts: after the first `1 - test_fraction` of the bytes, at the start of
/// the next line (or at the next character when no line ends after that point).
pub fn test_start(text: &str, test_fraction: f64) -> usize {
    let mut at = ((1.0 - test_fraction) * text.len() as f64) as usize;
    while at < text.len() && !text.is_char_boundary(at) {
        at += 1;
    }
    match text[at..].find('\n') {
        Some(i) => at + i + 1,
        None => at,
    }
}

/// One part of the text cut into windows: the dataset and each window's origin.
struct Windows {
    ids: Vec<u32>,
    origins: Origins,
}

/// Windows of `seq_len` tokens of `part`, which starts `offset` bytes into the file.
fn windows(
    tk: &BpeTokenizer,
    part: &str,
    offset: usize,
    seq_len: usize,
    file: &str,
    path: &std::path::Path,
) -> Result<Windows, DataError> {
    let Encoded { ids, spans } = tk.encode(part, path)?;
    let count = ids.len() / seq_len.max(1);
    let ranges: Vec<(usize, usize)> = (0..count)
        .map(|w| {
            let (first, last) = (w * seq_len, (w + 1) * seq_len - 1);
            (offset + spans[first].0, offset + spans[last].1)
        })
        .collect();
    Ok(Windows {
        ids: ids[..count * seq_len].to_vec(),
        origins: Origins::byte_ranges(file, &ranges),
    })
}

/// The training and test windows of `text` (module docs), the tokenizer's JSON, and each split's
/// origins; `bom` bytes precede the text in the file.
///
/// # Errors
/// Too little text for a window on each side, a bad `vocab_size`, or a `tokenizers` failure.
#[allow(clippy::too_many_arguments)]
pub(crate) fn bpe_splits(
    text: &str,
    test_fraction: f64,
    seq_len: usize,
    vocab_size: usize,
    file: &str,
    bom: usize,
    path: &std::path::Path,
) -> Result<(Dataset, Dataset, Origins, Origins, String), DataError> {
    let cut = test_start(text, test_fraction);
    let (head, tail) = text.split_at(cut);
    let tk = BpeTokenizer::train(head, vocab_size, path)?;
    let train = windows(&tk, head, bom, seq_len, file, path)?;
    let test = windows(&tk, tail, bom + cut, seq_len, file, path)?;
    if train.origins.len() == 0 || test.origins.len() == 0 {
        return Err(DataError::format(
            path,
            format!(
                "with data.tokenizer = \"bpe\" the test split is the text's last {test_fraction} \
                 (from byte {cut}), and it leaves {} training and {} test windows of \
                 data.seq_len = {seq_len} tokens; each needs one: use a longer text, a smaller \
                 data.seq_len or another data.test_fraction",
                train.origins.len(),
                test.origins.len()
            ),
        ));
    }
    let vocab = tk.vocab_size();
    let names = tk.token_texts();
    let dataset = |ids: Vec<u32>| Dataset {
        name: "bpe_corpus".to_string(),
        features: Features::Tokens {
            ids,
            seq_len,
            vocab,
        },
        labels: Labels::None,
        feature_names: Some(names.clone()),
    };
    let json = tk.to_json(path)?;
    Ok((
        dataset(train.ids),
        dataset(test.ids),
        train.origins,
        test.origins,
        json,
    ))
}
