//! Per-token targets of a language model (`--output token`, issue 20): one target per
//! (window, position), attributed, measured by retraining and explained with the token marked.

use super::util::*;

/// A tiny character GPT on the repository's Moby-Dick excerpt: 64 windows of 16 characters.
fn gpt_config(dir: &std::path::Path) {
    gpt_config_with(dir, "");
}

/// [`gpt_config`] with more `[data]` fields (`data` ends each with a newline).
fn gpt_config_with(dir: &std::path::Path, data: &str) {
    let text = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/data/moby-dick-excerpt.txt"
    );
    write(
        dir,
        "gpt.toml",
        &format!(
            "[data]\nsource = \"text\"\npath = \"{text}\"\nseq_len = 16\nmax_train = 64\n\
             max_test = 8\n{data}[model]\nkind = \"gpt\"\nd_model = 16\nn_layer = 1\nn_head = 2\n\
             [optim]\nkind = \"adamw\"\nlr = 0.01\n[train]\nepochs = 2\nbatch_size = 16\n"
        ),
    );
    attrib(
        dir,
        &["--quiet", "train", "--config", "gpt.toml", "--out", "run"],
    )
    .ok();
}

cli_test!(token_targets_are_attributed_measured_and_explained, |dir| {
    gpt_config(dir);
    // 8 test windows x 15 predictions: targets 0..120.
    attrib(
        dir,
        &[
            "--quiet",
            "attribute",
            "--run",
            "run",
            "--method",
            "magic",
            "--output",
            "token",
            "--targets",
            "0..30",
        ],
    )
    .ok();
    let sub = ["--drop", "0.1", "--subsets", "16"];
    let gt = attrib(
        dir,
        &[
            &["--json", "groundtruth", "--run", "run", "--output", "token"],
            &sub[..],
        ]
        .concat(),
    )
    .ok();
    assert_contains!(gt.stdout, "-token-test");
    let lds = attrib(
        dir,
        &[
            &[
                "--json",
                "lds",
                "--run",
                "run",
                "--scores",
                "run/scores/magic@0-30.npy",
            ],
            &sub[..],
        ]
        .concat(),
    )
    .ok();
    let row = lds
        .json_lines()
        .into_iter()
        .find(|v| v["type"] == "lds")
        .unwrap();
    assert_eq!(row["targets"], 30);
    let l = row["lds"].as_f64().unwrap();
    // MAGIC differentiates this exact 8-step run: it must predict the per-token retrainings.
    assert!(l > 0.5, "per-token MAGIC LDS {l}");

    // Target 17 = window 1, position 2: the prediction of its fourth character.
    let ex = attrib(
        dir,
        &[
            "--json",
            "explain",
            "--run",
            "run",
            "--scores",
            "run/scores/magic@0-30.npy",
            "--target",
            "17",
            "--top",
            "2",
        ],
    )
    .ok();
    let e = ex
        .json_lines()
        .into_iter()
        .find(|v| v["type"] == "explanation")
        .unwrap();
    assert_eq!(e["target"], 17);
    assert_eq!(e["position"], 2);
    assert_eq!(
        e["source"]["byte_len"], 16,
        "the target's source is its window: {e}"
    );
    let text = e["text"].as_str().unwrap();
    assert_eq!(text.chars().nth(3), Some('⟦'), "{text}");
    assert_eq!(text.chars().nth(5), Some('⟧'), "{text}");
    let plain = attrib(
        dir,
        &[
            "explain",
            "--run",
            "run",
            "--scores",
            "run/scores/magic@0-30.npy",
            "--target",
            "17",
        ],
    )
    .ok();
    assert_contains!(plain.stdout, "predicting token 3 from position 2");

    attrib(dir, &["--quiet", "report", "--run", "run"]).ok();
    let html = String::from_utf8(read(dir.join("run/report/index.html"))).unwrap();
    assert!(
        html.matches("<mark>").count() >= 1,
        "no marked token in the report"
    );
});

cli_test!(
    token_targets_outside_the_split_or_without_tokens_are_refused,
    |dir| {
        gpt_config(dir);
        let out = attrib(
            dir,
            &[
                "attribute",
                "--run",
                "run",
                "--method",
                "tracin",
                "--output",
                "token",
                "--targets",
                "100..121",
            ],
        )
        .fails(1);
        assert_contains!(out.stderr, "120 token predictions");
        write(dir, "bc.toml", LOGISTIC);
        attrib(
            dir,
            &["--quiet", "train", "--config", "bc.toml", "--out", "bc"],
        )
        .ok();
        let out = attrib(
            dir,
            &[
                "attribute",
                "--run",
                "bc",
                "--method",
                "tracin",
                "--output",
                "token",
            ],
        )
        .fails(1);
        assert_contains!(
            out.stderr,
            "no tokens",
            "use loss, margin or log_likelihood"
        );
    }
);

// `data.tokenizer = "bpe"`: the run keeps its tokenizer in provenance/, and `explain` shows the
// windows' text, read back from the byte ranges the BPE windows recorded.
cli_test!(a_bpe_gpt_is_trained_attributed_and_explained, |dir| {
    gpt_config_with(dir, "tokenizer = \"bpe\"\nvocab_size = 300\n");
    let json = std::fs::read_to_string(dir.join("run/provenance/tokenizer.json")).unwrap();
    assert!(json.contains("\"merges\""));
    let config = std::fs::read_to_string(dir.join("run/config.toml")).unwrap();
    assert_contains!(config, "tokenizer = \"bpe\"", "vocab_size = 300");
    attrib(
        dir,
        &[
            "--quiet",
            "attribute",
            "--run",
            "run",
            "--method",
            "tracin",
            "--targets",
            "0..2",
        ],
    )
    .ok();
    let out = attrib(
        dir,
        &[
            "explain",
            "--run",
            "run",
            "--scores",
            "run/scores/tracin@0-2.npy",
            "--target",
            "1",
            "--top",
            "2",
        ],
    )
    .ok();
    assert_contains!(
        out.stdout,
        "moby-dick-excerpt.txt bytes",
        "proponents",
        "text"
    );
});
