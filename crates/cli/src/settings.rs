//! The registry of named benchmark settings (issue 20, item 6): `attrib settings list` and
//! `attrib bench lds SETTING [--quick]`, which trains the setting's recipe, computes (or reuses) its
//! ground truth, attributes with each method (or reuses the score file) and prints the LDS table
//! with each method's time, so that every LDS table of the README is one command.
//!
//! A setting is a recipe of `examples/` (compiled in; its data paths resolve against the
//! repository's `examples/` folder, as when the file is given to `attrib train`), the output that
//! is attributed, the methods, and two sizes: the full one of the README's tables and a `--quick`
//! one that CI runs (`crates/cli/tests/settings.rs`). Each states what it should reach and how
//! long it takes on this 2-core machine. Figures are single-model LDS (MATH.md E1, E6: the
//! ground truth retrains the run's own recipe, same seed and order) unless a size also lists the
//! literature's seed-averaged protocol (`seeds` above 1), as the dattri setting does.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use methods::{Options, Scores};
use nn::RunConfig;
use run::{Run, Split, SubsetSpec, Targets};

use crate::groundtruth::{ground_truth_of, protocol, Wanted};

use crate::args::{BenchLdsArgs, SettingsArgs};
use crate::groundtruth::LdsTable;
use crate::output::Event;
use crate::train::{train, Job};
use crate::Ctx;

/// How much of a setting to run.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Test targets attributed (the first ones of the split).
    pub targets: usize,
    /// Retrained subsets per drop fraction.
    pub subsets: usize,
    /// The subsets' fractions: dropped or kept.
    pub fractions: Fractions,
    /// The LDS protocols, as trainer seeds averaged per subset: `&[1]` is the single-model
    /// protocol (MATH.md E1), `&[1, 5]` adds the literature's mean over 5 seeds (E6).
    pub seeds: &'static [usize],
    /// Methods, each with its `--option key=value` pairs.
    pub methods: &'static [(&'static str, &'static [&'static str])],
}

/// Which subsets a size retrains, each fraction in turn.
#[derive(Debug, Clone, Copy)]
pub enum Fractions {
    /// Each subset drops this fraction of the training set (attrib's tables: 1%, 5%, 10%).
    Drop(&'static [f64]),
    /// Each subset keeps this fraction (the literature's LDS: TRAK's and dattri's 50%).
    Keep(&'static [f64]),
}

impl Fractions {
    /// One subset spec per fraction.
    fn specs(self, subsets: usize) -> Vec<SubsetSpec> {
        match self {
            Fractions::Drop(f) => f.iter().map(|&f| SubsetSpec::drop(f, subsets, 0)).collect(),
            Fractions::Keep(f) => f.iter().map(|&f| SubsetSpec::keep(f, subsets, 0)).collect(),
        }
    }
}

/// A named setting (module docs).
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The name given to `attrib bench lds`.
    pub name: &'static str,
    /// What it is, in a line.
    pub summary: &'static str,
    /// The recipe's path in the repository.
    pub recipe: &'static str,
    /// The recipe's text (compiled in).
    pub config: &'static str,
    /// Where its data comes from.
    pub data: &'static str,
    /// The attributed output (`margin` for classifiers, `loss` or `token` for next-token models).
    pub output: &'static str,
    /// The README's size.
    pub full: Size,
    /// CI's size.
    pub quick: Size,
    /// What the full size should reach.
    pub expected: &'static str,
    /// Wall time of the full and the quick size on 2 cores.
    pub time: &'static str,
    /// A recipe trained first, whose parameters the setting's recipe starts from
    /// (`train.init_from`): the pretrained model of a fine-tuning setting.
    pub pretrain: Option<Pretrain>,
}

/// The pretraining run of a fine-tuning setting ([`Setting::pretrain`]).
#[derive(Debug, Clone, Copy)]
pub struct Pretrain {
    /// The recipe's path in the repository.
    pub recipe: &'static str,
    /// The recipe's text (compiled in).
    pub config: &'static str,
}

const FULL_METHODS: &[(&str, &[&str])] = &[
    ("magic", &[]),
    ("if-gn", &[]),
    ("ekfac", &[]),
    ("trak", &[]),
    ("tracin", &[]),
    ("similarity", &[]),
];
const QUICK_METHODS: &[(&str, &[&str])] = &[("magic", &[]), ("tracin", &["checkpoints=3"])];
const TEXT_METHODS: &[(&str, &[&str])] = &[
    ("magic", &[]),
    ("if-gn", &[]),
    ("ekfac", &[]),
    ("trak", &[]),
    ("tracin", &["checkpoints=3"]),
    ("similarity", &[]),
];

/// The dattri MNIST-10 comparison: its IF-CG settings (regularization 0.01, 10 iterations) and
/// TRAK with its 50 models, next to attrib's MAGIC, EK-FAC and TracIn.
/// The Moby-Dick GPT's methods: issue 20's list, TRAK with 1 and with 5 models. No `if-gn`: its
/// conjugate-gradient solve costs a Gauss-Newton product over every training window per iteration
/// and target, hours at this size on 2 cores (EK-FAC is the Hessian-based row).
const MOBY_GPT_METHODS: &[(&str, &[&str])] = &[
    ("magic", &[]),
    ("ekfac", &[]),
    ("trak", &[]),
    ("trak", &["models=5"]),
    ("tracin", &["checkpoints=3"]),
    ("similarity", &[]),
];
/// Per-token targets of the Moby-Dick GPT: MAGIC, with TracIn as the first-order reference.
const TOKEN_METHODS: &[(&str, &[&str])] = &[("magic", &[]), ("tracin", &["checkpoints=3"])];

const DATTRI_METHODS: &[(&str, &[&str])] = &[
    ("magic", &[]),
    ("if-cg", &["damping=0.01", "max_iters=10", "truncate=true"]),
    ("ekfac", &[]),
    ("trak", &["models=50"]),
    ("tracin", &[]),
];

/// The CNN settings: TracIn with 3 checkpoints and no if-gn (each costs a dual pass with every
/// target's direction over the training set per checkpoint or CG iteration, minutes per target
/// on 2 cores for a 28x28 CNN).
const CNN_METHODS: &[(&str, &[&str])] = &[
    ("magic", &[]),
    ("ekfac", &[]),
    ("trak", &[]),
    ("tracin", &["checkpoints=3"]),
    ("similarity", &[]),
];

/// One fraction, dropping 5%, in the single-model protocol: `targets` targets and `subsets`
/// subsets with `methods`.
const fn drop_5_percent(
    targets: usize,
    subsets: usize,
    methods: &'static [(&'static str, &'static [&'static str])],
) -> Size {
    Size {
        targets,
        subsets,
        fractions: Fractions::Drop(&[0.05]),
        seeds: &[1],
        methods,
    }
}

/// The CNN settings' size: 20 targets, 50 subsets dropping 5% (each retraining ~20 s).
const CNN_SIZE: Size = drop_5_percent(20, 50, CNN_METHODS);

/// The residual CNN on 10,000 MNIST images; `fashion10k-cnn` is the same recipe on Fashion-MNIST.
const MNIST10K_CNN: Setting = Setting {
    name: "mnist10k-cnn",
    summary: "residual CNN 4-8-16 on 10,000 MNIST images, 1 epoch of AdamW lr 0.003, one-cycle",
    recipe: "examples/mnist10k_cnn.toml",
    config: include_str!("../../../examples/mnist10k_cnn.toml"),
    data: "../shared/data/mnist",
    output: "margin",
    full: CNN_SIZE,
    quick: QUICK,
    expected: "MAGIC LDS about 0.27 at 5% drop, above EK-FAC (0.10), TRAK and TracIn",
    time: "full ~27 min, quick ~8 min",
    pretrain: None,
};

/// The `--quick` size every setting shares: 10 targets, 20 subsets dropping 5%, MAGIC and TracIn.
const QUICK: Size = drop_5_percent(10, 20, QUICK_METHODS);

/// The README's size: 50 targets, 100 subsets at each of 1%, 5% and 10%, with `methods`.
const fn full_size(methods: &'static [(&'static str, &'static [&'static str])]) -> Size {
    Size {
        targets: 50,
        subsets: 100,
        fractions: Fractions::Drop(&[0.01, 0.05, 0.1]),
        seeds: &[1],
        methods,
    }
}

/// The excerpt GPT on sequence losses; `moby-excerpt-gpt-token` is the same run on tokens.
const MOBY_EXCERPT_GPT: Setting = Setting {
    name: "moby-excerpt-gpt",
    summary: "1-layer character GPT on 40,000 characters of Moby-Dick, AdamW (ships with the repo)",
    recipe: "examples/moby_excerpt_gpt.toml",
    config: include_str!("../../../examples/moby_excerpt_gpt.toml"),
    data: "examples/data/moby-dick-excerpt.txt",
    output: "loss",
    full: full_size(TEXT_METHODS),
    quick: QUICK,
    expected: "MAGIC LDS about 0.88 at 5% drop on sequence losses, TracIn about 0.1",
    time: "full ~10 min, quick ~20 s",
    pretrain: None,
};

/// The Moby-Dick GPT on sequence losses (bergson's AdamW recipe); `moby-gpt-token` is the same run
/// on tokens.
const MOBY_GPT: Setting = Setting {
    name: "moby-gpt",
    summary: "2-layer character GPT on 2,048 windows of Moby-Dick, bergson's AdamW recipe",
    recipe: "examples/moby_gpt.toml",
    config: include_str!("../../../examples/moby_gpt.toml"),
    data: "../shared/data/text/moby-dick.txt.gz",
    output: "loss",
    full: full_size(MOBY_GPT_METHODS),
    quick: QUICK,
    expected: "MAGIC LDS about 0.80 at 1% drop, 0.43 at 5%, 0.03 at 10% (the retrained losses \
               saturate); EK-FAC and TRAK 0.09-0.15",
    time: "full ~75 min (300 retrainings of 5 s), quick ~3 min",
    pretrain: None,
};

/// The Moby-Dick GPT fine-tuned from a model pretrained on the rest of the novel (the MAGIC
/// paper's language setting: a pretrained GPT-2 fine-tuned on WikiText, the fine-tuning windows
/// attributed).
const MOBY_GPT_FINETUNE: Setting = Setting {
    name: "moby-gpt-finetune",
    summary: "moby-gpt's GPT pretrained on the rest of the novel, then fine-tuned on 2,048 windows",
    recipe: "examples/moby_gpt_finetune.toml",
    config: include_str!("../../../examples/moby_gpt_finetune.toml"),
    pretrain: Some(Pretrain {
        recipe: "examples/moby_gpt_pretrain.toml",
        config: include_str!("../../../examples/moby_gpt_pretrain.toml"),
    }),
    expected: "MAGIC LDS about 0.84 at 1% drop, 0.64 at 5%, 0.47 at 10%; EK-FAC and TRAK \
               0.10-0.16, TracIn about 0.05",
    time: "full ~20 min (300 retrainings of 2 s, MAGIC 4 min), quick ~2 min",
    ..MOBY_GPT
};

/// Every setting.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "digits-mlp",
        summary: "MLP 64-128-128-10 on the embedded UCI digits, SGD momentum, cosine (attrib demo)",
        recipe: "examples/digits_mlp.toml",
        config: include_str!("../../../examples/digits_mlp.toml"),
        data: "embedded",
        output: "margin",
        full: full_size(FULL_METHODS),
        quick: QUICK,
        expected: "MAGIC LDS about 0.97 at 1% drop, above every baseline",
        time: "full ~15 min, quick ~5 s",
        pretrain: None,
    },
    MOBY_EXCERPT_GPT,
    Setting {
        name: "moby-excerpt-gpt-token",
        summary: "moby-excerpt-gpt with per-token targets: one next-token prediction each",
        output: "token",
        expected: "MAGIC LDS about 0.9 at 5% drop on the first 50 token predictions",
        time: "full ~25 min (if-gn 18 of them), quick ~20 s",
        ..MOBY_EXCERPT_GPT
    },
    MOBY_GPT,
    Setting {
        name: "moby-gpt-token",
        summary: "moby-gpt with per-token targets: one next-token prediction each",
        output: "token",
        // 50 token predictions, 100 subsets dropping 5%: its own retrainings, since every
        // subset's retrained run is measured on token outputs.
        full: drop_5_percent(50, 100, TOKEN_METHODS),
        expected: "MAGIC LDS about 0.44 at 5% drop on the first 50 token predictions, TracIn \
                   about 0.05",
        time: "full ~25 min, quick ~3 min",
        ..MOBY_GPT
    },
    MOBY_GPT_FINETUNE,
    Setting {
        name: "moby-gpt-finetune-token",
        summary: "moby-gpt-finetune with per-token targets: one next-token prediction each",
        output: "token",
        full: drop_5_percent(50, 100, TOKEN_METHODS),
        expected: "MAGIC LDS about 0.64 at 5% drop on the first 50 token predictions, TracIn \
                   about 0.08",
        time: "full ~10 min, quick ~2 min",
        ..MOBY_GPT_FINETUNE
    },
    Setting {
        name: "mnist-dattri-mlp",
        summary:
            "dattri's MNIST-10 MLP: 5,000 images, 784-128-64-10 ReLU, SGD 50 epochs (no dropout)",
        recipe: "examples/mnist_dattri_mlp.toml",
        config: include_str!("../../../examples/mnist_dattri_mlp.toml"),
        data: "../shared/data/mnist",
        output: "loss",
        // dattri's LDS: subsets keeping half the training set, test losses as targets; both
        // protocols, so its seed-averaged figures have a like-for-like row.
        full: Size {
            targets: 50,
            subsets: 50,
            fractions: Fractions::Keep(&[0.5]),
            seeds: &[1, 5],
            methods: DATTRI_METHODS,
        },
        quick: Size {
            fractions: Fractions::Keep(&[0.5]),
            ..QUICK
        },
        expected:
            "seed-averaged IF-CG 0.58, TRAK-50 0.55, TracIn 0.19, MAGIC 0.23 (dattri reports \
                   0.26, 0.45, 0.145)",
        time: "full ~15 min, quick ~1 min",
        pretrain: None,
    },
    Setting {
        name: "mnist10k-mlp",
        summary: "MLP 784-128-10 on 10,000 MNIST images, SGD",
        recipe: "examples/mnist10k_mlp.toml",
        config: include_str!("../../../examples/mnist10k_mlp.toml"),
        data: "../shared/data/mnist",
        output: "margin",
        full: full_size(FULL_METHODS),
        quick: QUICK,
        expected: "MAGIC LDS about 0.84 at 1% drop (README, protocols table)",
        time: "full ~1 h, quick ~5 min",
        pretrain: None,
    },
    MNIST10K_CNN,
    Setting {
        name: "fashion10k-cnn",
        summary: "the mnist10k-cnn recipe on 10,000 Fashion-MNIST images",
        recipe: "examples/fashion10k_cnn.toml",
        config: include_str!("../../../examples/fashion10k_cnn.toml"),
        data: "../shared/data/fashion-mnist",
        expected: "MAGIC LDS about 0.66 at 5% drop, above EK-FAC (0.27), TracIn, TRAK",
        time: "full ~18 min, quick ~6 min",
        ..MNIST10K_CNN
    },
];

/// The setting called `name`.
///
/// # Errors
/// No such setting (the message lists them).
pub fn find(name: &str) -> Result<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name).ok_or_else(|| {
        anyhow::anyhow!(
            "no setting \"{name}\"; use one of {} (attrib settings list)",
            SETTINGS
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// The folder the recipes' relative paths resolve against: the repository's `examples/`.
fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// `attrib settings list`.
///
/// # Errors
/// A closed or failing stdout.
pub fn list(_args: &SettingsArgs, ctx: &Ctx) -> Result<()> {
    let out = &ctx.out;
    out.result(format!(
        "{:<24} {:<38} {:<9} {}",
        "setting", "data", "output", "what"
    ))?;
    for s in SETTINGS {
        out.event(&Event::Setting {
            name: s.name,
            summary: s.summary,
            recipe: s.recipe,
            data: s.data,
            output: s.output,
            methods: s.full.methods.iter().map(|m| m.0).collect(),
            quick_methods: s.quick.methods.iter().map(|m| m.0).collect(),
            expected: s.expected,
            time: s.time,
        })?;
        out.result(format!(
            "{:<24} {:<38} {:<9} {}",
            s.name, s.data, s.output, s.summary
        ))?;
        out.result(format!("{:<24} expected: {}; {}", "", s.expected, s.time))?;
    }
    out.info("run one: attrib bench lds SETTING [--quick] [--methods a,b] [--subsets N]")?;
    Ok(())
}

/// `attrib bench lds SETTING`.
///
/// # Errors
/// An unknown setting or method, missing data (the message names the file), training or I/O
/// errors.
pub fn bench_lds(args: &BenchLdsArgs, ctx: &Ctx) -> Result<()> {
    let started = Instant::now();
    let setting = find(&args.setting)?;
    let size = if args.quick {
        setting.quick
    } else {
        setting.full
    };
    let out_dir = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(if args.quick {
            format!("{}-quick", setting.name)
        } else {
            setting.name.to_string()
        })
    });
    let cfg = recipe(setting.recipe, setting.config)?;
    ctx.out.info(format!(
        "setting  {}: {} ({} targets, {} subsets per fraction)",
        setting.name, setting.summary, size.targets, size.subsets
    ))?;
    let cfg = match &setting.pretrain {
        Some(pre) => pretrained(cfg, pre, setting, &out_dir, ctx)?,
        None => cfg,
    };
    let run = trained(&cfg, setting.recipe, setting, &out_dir, ctx)?;
    let output = run::parse_output(setting.output).map_err(anyhow::Error::msg)?;
    let n_split = run.target_count(Split::Test, output);
    let targets: Vec<usize> = (0..size.targets.min(n_split)).collect();
    let targets = Targets::test(targets, output);
    let chosen: Vec<(&str, Vec<String>)> = match &args.methods {
        Some(names) => names
            .iter()
            .map(|name| {
                let opts = size
                    .methods
                    .iter()
                    .chain(setting.full.methods)
                    .find(|m| m.0 == name.as_str())
                    .map_or(&[][..], |m| m.1);
                (name.as_str(), opts.iter().map(|s| s.to_string()).collect())
            })
            .collect(),
        None => size
            .methods
            .iter()
            .map(|(n, o)| (*n, o.iter().map(|s| s.to_string()).collect()))
            .collect(),
    };
    let mut scores = Vec::new();
    for (i, (name, opts)) in chosen.iter().enumerate() {
        let stem = file_stem(name, opts, chosen[..i].iter().any(|(n, _)| n == name));
        scores.push(scored(&run, &out_dir, name, &stem, opts, &targets, ctx)?);
    }
    let subsets = args.subsets.unwrap_or(size.subsets);
    let refs: Vec<&(String, Scores)> = scores.iter().collect();
    for &seeds in size.seeds {
        ctx.out.result(protocol(seeds))?;
        let mut table = LdsTable::default();
        for spec in size.fractions.specs(subsets) {
            let want = Wanted {
                spec: &spec,
                groups: None,
                output: setting.output,
                split: Split::Test,
                shard: None,
                seeds,
            };
            let gt = ground_truth_of(&run, &out_dir, &want, ctx, false)?;
            table.rows(&gt, &spec, &refs, ctx)?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    ctx.out.event(&Event::BenchLds {
        setting: setting.name,
        quick: args.quick,
        run: out_dir.display().to_string(),
        seconds,
    })?;
    ctx.out.result(format!(
        "setting  {} in {seconds:.1} s; expected: {}",
        setting.name, setting.expected
    ))?;
    Ok(())
}

/// A compiled-in recipe with its relative paths resolved against the repository's `examples/`.
fn recipe(path: &str, text: &str) -> Result<RunConfig> {
    let cfg = RunConfig::from_toml_str(text, Path::new(path))?;
    Ok(run::dir::absolute_paths(cfg, &examples_dir()))
}

/// `cfg` starting from the parameters of the setting's pretraining run, which is trained first
/// into the folder beside `dir` named `<dir>-pretrain` (or reused when it holds that recipe
/// already).
fn pretrained(
    mut cfg: RunConfig,
    pre: &Pretrain,
    setting: &Setting,
    dir: &Path,
    ctx: &Ctx,
) -> Result<RunConfig> {
    let pre_cfg = recipe(pre.recipe, pre.config)?;
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push("-pretrain");
    let pre_dir = dir.with_file_name(name);
    trained(&pre_cfg, pre.recipe, setting, &pre_dir, ctx)?;
    let params = std::path::absolute(pre_dir.join(run::files::PARAMS))
        .with_context(|| format!("cannot resolve {}", pre_dir.display()))?;
    cfg.train.init_from = Some(params);
    Ok(cfg)
}

/// The setting's run of `recipe` in `dir`: loaded when it holds this config already, else
/// trained.
fn trained(cfg: &RunConfig, recipe: &str, setting: &Setting, dir: &Path, ctx: &Ctx) -> Result<Run> {
    if let Ok(run) = Run::load(dir) {
        if run.config == *cfg {
            ctx.out
                .info(format!("run      {} (reused)", dir.display()))?;
            return Ok(run);
        }
        bail!(
            "{} holds another run; pass --out to choose another folder for setting {}",
            dir.display(),
            setting.name
        );
    }
    let job = Job {
        cfg: cfg.clone(),
        config: format!("{recipe} (setting {})", setting.name),
        out: dir.to_path_buf(),
        force: false,
        command: "train",
        show_layers: false,
    };
    train(&job, ctx).with_context(|| format!("cannot train setting {}", setting.name))?;
    Ok(Run::load(dir)?)
}

/// The score file's name in `scores/` (and so the table's label): the method's name, with its
/// options appended when an earlier entry of the table runs the same method (`trak-models5` next
/// to `trak`), so that the two files stay apart.
fn file_stem(method: &str, options: &[String], repeated: bool) -> String {
    if !repeated || options.is_empty() {
        return method.to_string();
    }
    let opts: Vec<String> = options.iter().map(|o| o.replace('=', "")).collect();
    format!("{method}-{}", opts.join("-"))
}

/// The score file `stem.npy` of `method` for `targets` in the run's `scores/`: reused when it was
/// made for this run, targets and options, else computed and saved. Returned as read back from
/// the file, so the LDS is that of `attrib lds` on it.
fn scored(
    run: &Run,
    dir: &Path,
    method: &str,
    stem: &str,
    options: &[String],
    targets: &Targets,
    ctx: &Ctx,
) -> Result<(String, Scores)> {
    let folder = dir.join(run::files::SCORES);
    let path = folder.join(format!("{stem}.npy"));
    let parsed = Options::parse(method, options)?;
    let (m, used) = methods::build(method, parsed)?;
    if let Ok(old) = Scores::load(&path) {
        let meta = &old.meta;
        if meta.run_hash == run.hash
            && meta.targets == targets.indices
            && meta.output == run::output_name(targets.output)
            && meta.options == used
        {
            ctx.out
                .info(format!("  {stem:<10} reused {}", path.display()))?;
            return Ok((path.display().to_string(), old));
        }
    }
    let s = methods::attribute(run, m.as_ref(), used, targets)?;
    let path = s.save(&folder, stem)?;
    ctx.out.info(format!(
        "  {stem:<10} {:>7.1} s  -> {}",
        s.meta.seconds,
        path.display()
    ))?;
    Ok((path.display().to_string(), Scores::load(&path)?))
}
