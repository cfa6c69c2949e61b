//! `data.tokenizer = "bpe"` (module `attrib_data::bpe`): windows of BPE tokens whose recorded
//! byte ranges hold exactly their text, a tokenizer that never sees the test text, the same
//! tokens in every process and thread count, and clear errors for bad settings.

use std::path::{Path, PathBuf};

use attrib_data::{
    decode_chars, load_splits_with_provenance, DataConfig, Features, Source, TextTokenizer,
};

fn excerpt() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/moby-dick-excerpt.txt")
}

fn bpe(path: &Path, seq_len: usize, vocab: usize) -> DataConfig {
    let mut cfg = DataConfig::new(Source::Text);
    cfg.path = Some(path.to_path_buf());
    cfg.seq_len = seq_len;
    cfg.tokenizer = TextTokenizer::Bpe;
    cfg.vocab_size = Some(vocab);
    cfg
}

fn ids(f: &Features) -> &[u32] {
    let Features::Tokens { ids, .. } = f else {
        panic!("token features expected")
    };
    ids
}

#[test]
fn every_window_decodes_to_the_bytes_its_provenance_names() {
    let path = excerpt();
    let text = std::fs::read_to_string(&path).unwrap();
    let (splits, prov) = load_splits_with_provenance(&bpe(&path, 32, 400), ".".as_ref()).unwrap();
    let vocab = splits.train.feature_names.as_ref().unwrap();
    assert_eq!(vocab.len(), 400);
    let (mut checked, mut total) = (0, 0);
    for (ds, rows) in [
        (&splits.train, &prov.splits[0]),
        (&splits.test, &prov.splits[1]),
    ] {
        assert_eq!(ds.len(), rows.rows.len());
        let all = ids(&ds.features);
        for (k, row) in rows.rows.iter().enumerate() {
            let (a, n) = (
                row.byte_offset.unwrap() as usize,
                row.byte_len.unwrap() as usize,
            );
            let decoded = decode_chars(vocab, &all[k * 32..(k + 1) * 32]);
            total += 1;
            // A token holding part of a multi-byte character decodes to U+FFFD on its own.
            if !decoded.contains('\u{fffd}') {
                assert_eq!(decoded, text[a..a + n], "window {k}");
                checked += 1;
            }
        }
    }
    assert!(
        checked * 10 >= total * 9,
        "{checked} of {total} windows checked"
    );
    // Consecutive training windows tile the text: BPE cuts no byte out.
    let rows = &prov.splits[0].rows;
    for w in rows.windows(2) {
        assert_eq!(
            w[0].byte_offset.unwrap() + w[0].byte_len.unwrap(),
            w[1].byte_offset.unwrap()
        );
    }
    let json = prov.tokenizer.as_deref().unwrap();
    assert!(json.contains("\"type\": \"BPE\"") || json.contains("\"type\":\"BPE\""));
}

#[test]
fn the_tokenizer_never_sees_the_test_text() {
    // A word that exists only in the last tenth of the text, repeated until any BPE trained on it
    // would make it one token.
    let dir = tempfile::tempdir().unwrap();
    let head = std::fs::read_to_string(excerpt()).unwrap();
    let tail = "zyzzyva quixotic\n".repeat(400);
    let text = format!("{head}\n{tail}");
    let path = dir.path().join("t.txt");
    std::fs::write(&path, &text).unwrap();
    let mut cfg = bpe(&path, 16, 2000);
    cfg.test_fraction = tail.len() as f64 / text.len() as f64;
    let (splits, prov) = load_splits_with_provenance(&cfg, ".".as_ref()).unwrap();
    let vocab = splits.train.feature_names.as_ref().unwrap();
    assert!(
        vocab
            .iter()
            .all(|t| !t.contains("zyzz") && !t.contains("quix")),
        "a test word is in the vocabulary"
    );
    let first_test = prov.splits[1].rows[0].byte_offset.unwrap() as usize;
    let last_train = prov.splits[0].rows.last().unwrap();
    assert!(
        (last_train.byte_offset.unwrap() + last_train.byte_len.unwrap()) as usize <= first_test
    );
    assert!(text[first_test..].starts_with("zyzzyva") || text[..first_test].ends_with('\n'));
    // Trained on everything, the same settings would learn the word.
    let all = attrib_data::BpeTokenizer::train(&text, 2000, &path).unwrap();
    assert!(all.token_texts().iter().any(|t| t.contains("zyzz")));
}

#[test]
fn the_same_text_gives_the_same_tokens_on_any_thread_count() {
    let path = excerpt();
    let load = || {
        let (s, p) = load_splits_with_provenance(&bpe(&path, 32, 512), ".".as_ref()).unwrap();
        (
            ids(&s.train.features).to_vec(),
            ids(&s.test.features).to_vec(),
            p.tokenizer.unwrap(),
        )
    };
    let first = load();
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        assert!(pool.install(load) == first, "{threads} threads");
    }
}

#[test]
fn bad_bpe_settings_are_clear_errors() {
    let path = excerpt();
    let err = |cfg: DataConfig| {
        load_splits_with_provenance(&cfg, ".".as_ref())
            .err()
            .unwrap()
            .to_string()
    };
    let e = err(bpe(&path, 32, 100));
    assert!(
        e.contains("data.vocab_size = 100") && e.contains("257"),
        "{e}"
    );
    let mut cfg = bpe(&path, 32, 512);
    cfg.tokenizer = TextTokenizer::Char;
    let e = err(cfg);
    assert!(
        e.contains("data.vocab_size") && e.contains("tokenizer = \"bpe\""),
        "{e}"
    );
    let mut cfg = bpe(&path, 32, 512);
    cfg.source = Source::Digits;
    cfg.vocab_size = None;
    let e = err(cfg);
    assert!(e.contains("data.source = \"text\""), "{e}");
    let e = err(bpe(&path, 100_000, 512));
    assert!(
        e.contains("moby-dick-excerpt.txt") && e.contains("data.seq_len = 100000"),
        "{e}"
    );
}
