//! Command-line arguments, parsed by clap from these definitions (so `-h`, `--help` and the
//! error messages all come from one place).
//!
//! Parsing has two stages: clap turns the raw arguments into these structs (validating each value
//! on its own, e.g. `--threads 0` is refused here), then each command module turns them into
//! built objects (resolved config, datasets, model) before anything is written.
//!
//! Every flag has a one-line `///` summary (what `-h` shows), a long help with an example (what
//! `--help` shows), and a parse test at the bottom of this file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// attrib: predictive data attribution, checked against retraining.
#[derive(Debug, Parser)]
#[command(
    name = "attrib",
    version,
    arg_required_else_help = true,
    propagate_version = true
)]
#[command(after_long_help = "Start with `attrib demo` (no files needed), then \
                             `attrib train --config examples/digits_mlp.toml --out runs/digits`.")]
pub struct Cli {
    /// Flags shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted before or after any command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Worker threads for the kernels [default: all cores].
    ///
    /// Results are bitwise identical for every thread count; only the speed changes. Must be at
    /// least 1.
    ///
    /// Example: attrib --threads 4 train --config run.toml --out runs/a
    #[arg(long, global = true, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,

    /// Results only: no progress bar, no per-epoch lines.
    ///
    /// Summaries, evaluations and benchmark tables are still printed. Progress bars are also
    /// hidden whenever stderr is not a terminal.
    ///
    /// Example: attrib --quiet train --config run.toml --out runs/a
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Print JSON lines on stdout: one object per event.
    ///
    /// Each line is a JSON object whose "type" field names the event (start, step, epoch,
    /// checkpoint, summary, evaluation, gemm, bench_train, note, error); the fields of each type
    /// are specified in the documentation of the `output` module. No progress bar is drawn.
    ///
    /// Example: attrib --json evaluate --run runs/a | jq .accuracy
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model described by a TOML config into a run directory.
    Train(TrainArgs),
    /// Print the loss and accuracy of a trained run on one split.
    Evaluate(EvaluateArgs),
    /// Train, attribute and measure the digits MLP; writes runs/demo.
    Demo(DemoArgs),
    /// Score the training examples behind test outputs with a method.
    Attribute(AttributeArgs),
    /// List the attribution methods and what they do.
    Methods,
    /// Join one method's score files of separate target ranges.
    Merge(MergeArgs),
    /// What a run holds of each long computation; what is missing.
    Status(StatusArgs),
    /// Write or submit a Slurm array job for a shardable command.
    Slurm(SlurmArgs),
    /// Retrain random subsets (cached, resumable): LDS ground truth.
    Groundtruth(GroundTruthArgs),
    /// Linear datamodeling score of score files vs retrained subsets.
    Lds(LdsArgs),
    /// Partition the training set into groups (GGDA), saved as CSV.
    Group(GroupArgs),
    /// Test accuracy after removing the data scored most helpful.
    RetrainScore(RetrainScoreArgs),
    /// Flip labels, retrain, and count flips found by self-influence.
    NoisyLabels(NoisyLabelsArgs),
    /// Poison training data by metagradients, checked by retraining.
    Poison(crate::poison::PoisonArgs),
    /// Predict and unlearn as if some examples were never seen.
    Unlearn(UnlearnArgs),
    /// Choose training data that lowers the validation loss; retrain.
    Select(SelectArgs),
    /// Show the training examples behind predictions, from scores.
    Explain(ExplainArgs),
    /// Write one self-contained HTML report of a run.
    Report(ReportArgs),
    /// Time training against GEMM speed, or a named setting's LDS.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The registry of named benchmark settings.
    #[command(subcommand)]
    Settings(SettingsCommand),
}

/// `attrib attribute`.
#[derive(Debug, Args)]
#[command(
    after_long_help = "Scores are tau[target, i] = d f_target / d w_i (dropping a set D predicts \
                       f(S without D) ~ f(S) - sum of tau over D), written as RUN/scores/NAME.npy \
                       (f32, [targets, training examples]) with a JSON sidecar NAME.json. \
                       `attrib methods` lists the methods."
)]
pub struct AttributeArgs {
    /// The run directory written by `attrib train`.
    ///
    /// Example: attrib attribute --run runs/digits --method if-gn
    #[arg(long, short, value_name = "DIR")]
    pub run: PathBuf,

    /// The method (see `attrib methods`).
    ///
    /// Example: attrib attribute --run runs/digits --method tracin
    #[arg(long, short, value_name = "NAME")]
    pub method: String,

    /// Targets a..b of the split (default: the first 50).
    ///
    /// Example: attrib attribute --run runs/digits --method if-cg --targets 0..100
    #[arg(long, short, value_name = "RANGE")]
    pub targets: Option<String>,

    /// margin (default), loss, log_likelihood or token.
    ///
    /// The margin is z_y - logsumexp of the other logits; the loss is the training loss. For a gpt
    /// run, loss is a window's mean token loss and token scores one next-token prediction: target
    /// s*(L-1)+p is the loss of token p+1 of window s (windows of L tokens).
    ///
    /// Example: attrib attribute --run runs/digits --method if-gn --output loss
    #[arg(
        long,
        default_value = "margin",
        hide_default_value = true,
        value_name = "OUTPUT"
    )]
    pub output: String,

    /// Split of the targets: test (default), train or val.
    ///
    /// Train targets give self-influence; val targets (data.val_fraction) are held out from the
    /// test split that judges a data selection.
    ///
    /// Example: attrib attribute --run runs/digits --method tracin --split train
    #[arg(long, value_enum, default_value_t = Split::Test, hide_possible_values = true, hide_default_value = true)]
    pub split: Split,

    /// A method option (repeatable; unknown keys fail).
    ///
    /// Example: attrib attribute --run runs/digits --method if-cg --option damping=0.01
    #[arg(long = "option", short = 'o', value_name = "KEY=VALUE")]
    pub option: Vec<String>,

    /// Name of the file in RUN/scores/.
    ///
    /// Default: the method's name, plus @a-b when --targets is given.
    ///
    /// Example: attrib attribute --run runs/digits --method if-cg --name if-cg-damp1
    #[arg(long, value_name = "NAME", value_parser = parse_score_name)]
    pub name: Option<String>,

    /// Score the groups of a grouping file (attrib group).
    ///
    /// One column per group: tau_G = d f / d w_G, the sum of the members' scores. Influence
    /// functions and TracIn use group gradients directly. The default name gets @groups-HASH.
    ///
    /// Example: attrib attribute --run runs/digits --method if-cg --groups runs/digits/groups/grad-kmeans-k100.csv
    #[arg(long, value_name = "FILE")]
    pub groups: Option<PathBuf>,

    /// Compute only shard I of N (every method).
    ///
    /// MAGIC: blocks of targets b with b mod N = I; TRAK: ensemble members m >= 1 with
    /// (m - 1) mod N = I; datamodels: subset retrainings j with j mod N = I; tmc-shapley:
    /// permutations p with p mod N = I (for every target); every other method: blocks of
    /// --target-block targets b with b mod N = I. Each shard stores its part in
    /// RUN/store/; run the command without a shard afterwards to assemble the score file. Without
    /// the flag, a Slurm array task or a Kubernetes indexed job is one shard (see `attrib
    /// groundtruth --help`). Group scores (--groups) and input derivatives do not shard.
    ///
    /// Example: attrib attribute --run runs/d --method magic --targets 0..359 --shard 0/3
    #[arg(long, value_name = "I/N")]
    pub shard: Option<run::Shard>,

    /// Targets per block of sharded scores [default: 64].
    ///
    /// Methods other than magic, trak and datamodels score the targets in fixed blocks of this
    /// many consecutive targets (block b: targets b*B .. (b+1)*B of the list), one call per
    /// block, and keep finished blocks in RUN/store/target-block/ when there is more than one
    /// block or a shard: a rerun reuses them, and --shard I/N scores the blocks b with b mod N =
    /// I. The rule does not depend on N, so any sharding assembles the same bits; give the same
    /// value to the shards and to the assembling command. MAGIC's block is --option block=K.
    ///
    /// Example: attrib attribute --run runs/d --method if-cg --targets 0..359 --target-block 32 --shard 0/4
    #[arg(long, value_name = "B", default_value_t = methods::target_blocks::TARGET_BLOCK, hide_default_value = true, value_parser = parse_target_block)]
    pub target_block: usize,
}

/// `attrib unlearn`.
#[derive(Debug, Args)]
#[command(
    after_long_help = "The unlearned model is theta_T + J v with v = -w0 1_F and J = d theta_T / d w, \
                       from one forward-mode pass through the whole run (MATH.md E7). It is written \
                       as a run directory whose config trains without F; its params.safetensors is \
                       the one-pass model. --verify retrains without F and compares."
)]
pub struct UnlearnArgs {
    /// The run directory.
    ///
    /// Example: attrib unlearn --run runs/digits --forget forget.csv
    #[arg(long, short, value_name = "DIR")]
    pub run: PathBuf,

    /// Training indices to forget, one per line.
    ///
    /// Indices are in training order (0..n: the training split's source rows in file order); a
    /// first line that is not a number is a header. With --groups the lines are group ids.
    ///
    /// Example: attrib unlearn --run runs/digits --forget forget.csv
    #[arg(long, short, value_name = "FILE")]
    pub forget: PathBuf,

    /// Read --forget as group ids of this grouping.
    ///
    /// A grouping file from `attrib group`; F is the union of the listed groups' members.
    ///
    /// Example: attrib unlearn -r runs/d --groups runs/d/groups/grad-kmeans-k144.csv -f ids.csv
    #[arg(long, value_name = "FILE")]
    pub groups: Option<PathBuf>,

    /// A score file: predict its targets' outputs without F.
    ///
    /// The prediction is f(S) - sum over F of w0_i tau_i.
    ///
    /// Example: attrib unlearn -r runs/d -f forget.csv --scores runs/d/scores/magic.npy
    #[arg(long, short, value_name = "FILE")]
    pub scores: Option<PathBuf>,

    /// Output run dir [default: RUN/unlearned/forget-KEY].
    ///
    /// Example: attrib unlearn --run runs/d --forget f.csv --out runs/d-unlearned
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Retrain without F and score each prediction.
    ///
    /// Example: attrib unlearn --run runs/d --forget f.csv --verify
    #[arg(long)]
    pub verify: bool,

    /// Gradient-ascent steps of the baseline.
    ///
    /// Example: attrib unlearn --run runs/d --forget f.csv --verify --ascent-steps 10
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub ascent_steps: usize,

    /// Gradient-ascent step size [default: optim.lr].
    ///
    /// Example: attrib unlearn --run runs/d --forget f.csv --verify --ascent-lr 0.01
    #[arg(long, value_name = "LR")]
    pub ascent_lr: Option<f64>,
}

/// `attrib select`.
#[derive(Debug, Args)]
#[command(
    after_long_help = "One shot (default): from --scores on validation losses, drop the examples \
                       predicted to lower the mean validation loss most (largest positive mean \
                       score first) down to --keep (or every predicted-harmful one with \
                       --harmful-only), retrain, and report validation and test loss and accuracy \
                       next to the full data and random subsets of the same size; with \
                       data.label_noise the oracle that drops exactly the flipped examples is \
                       added, and every row counts the flipped examples it dropped. With \
                       --steps N: metagradient descent w <- proj[0,1](w - eta grad L_val) with MAGIC \
                       at the current weights, eta = c / max|grad| (MATH.md E7)."
)]
pub struct SelectArgs {
    /// The run directory (needs data.val_fraction > 0).
    ///
    /// Example: attrib select --run runs/noisy --scores runs/noisy/scores/magic-val.npy
    #[arg(long, short, value_name = "DIR")]
    pub run: PathBuf,

    /// Score files of validation losses (one-shot; list).
    ///
    /// Compute one with `attrib attribute --split val --output loss --targets 0..N`.
    ///
    /// Example: attrib select -r runs/n --scores runs/n/scores/magic.npy,runs/n/scores/tracin.npy
    #[arg(long, short, value_delimiter = ',', value_name = "FILE")]
    pub scores: Vec<PathBuf>,

    /// Fraction of the data to keep (one-shot).
    ///
    /// The round((1 - FRACTION) n) examples predicted to lower the validation loss most are dropped.
    ///
    /// Example: attrib select --run runs/n --scores s.npy --keep 0.8
    #[arg(long, default_value_t = 0.8, value_name = "FRACTION")]
    pub keep: f64,

    /// Drop every example predicted harmful instead.
    ///
    /// Drops all examples whose removal is predicted to lower the mean validation loss
    /// (w0_i tau_i > 0), however many; --keep is ignored.
    ///
    /// Example: attrib select --run runs/n --scores s.npy --harmful-only
    #[arg(long, conflicts_with = "keep")]
    pub harmful_only: bool,

    /// Metagradient-descent steps (not one-shot).
    ///
    /// Example: attrib select --run runs/n --steps 5
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,

    /// c in the MGD step eta = c / max|grad|.
    ///
    /// Example: attrib select --run runs/n --steps 5 --step-size 0.5
    #[arg(long, default_value_t = 0.5, value_name = "C")]
    pub step_size: f64,

    /// Random same-size subsets to compare.
    ///
    /// Example: attrib select --run runs/n --scores s.npy --random 5
    #[arg(long, default_value_t = 3, value_name = "M")]
    pub random: usize,

    /// Retrain only shard I of N (one-shot selection).
    ///
    /// The one-shot retrainings in table order (the oracle, each score file's selection, each
    /// random subset): item j with j mod N = I is stored in RUN/store/retrain/; the command
    /// without a shard afterwards prints the table from them. Without the flag, a Slurm array
    /// task or a Kubernetes indexed job is one shard. --steps does not shard.
    ///
    /// Example: attrib select --run runs/n --scores s.npy --random 5 --shard 0/3
    #[arg(long, value_name = "I/N")]
    pub shard: Option<run::Shard>,
}

/// `attrib group`.
#[derive(Debug, Args)]
#[command(
    after_long_help = "Writes a CSV `example,group` (one row per training example) and a JSON \
                       sidecar FILE.json with k, n, how it was made and the assignment's hash."
)]
pub struct GroupArgs {
    /// The run directory.
    ///
    /// Example: attrib group --run runs/digits --method grad-kmeans --groups 100
    #[arg(long, short, value_name = "DIR")]
    pub run: PathBuf,

    /// random, class, kmeans-inputs, kmeans-repr, grad-kmeans.
    ///
    /// class never mixes labels; kmeans-repr clusters penultimate features; grad-kmeans clusters
    /// random projections of per-example loss gradients.
    ///
    /// Example: attrib group --run runs/digits --method class --groups 50
    #[arg(
        long,
        short,
        value_name = "KIND",
        required_unless_present = "from_csv",
        conflicts_with = "from_csv"
    )]
    pub method: Option<String>,

    /// Number of groups K.
    ///
    /// Example: attrib group --run runs/digits --method random --groups 144
    #[arg(
        long,
        short,
        value_name = "K",
        required_unless_present = "from_csv",
        conflicts_with = "from_csv"
    )]
    pub groups: Option<usize>,

    /// User-given groups: equal values of a CSV column.
    ///
    /// The CSV has a header line and one row per training example, in training order; examples
    /// with equal values in column COL form one group (K = number of distinct values, numbered by first
    /// appearance). Replaces --method and --groups.
    ///
    /// Example: attrib group --run runs/digits --csv meta.csv:vendor
    #[arg(long = "csv", value_name = "FILE:COL")]
    pub from_csv: Option<String>,

    /// Seed of every random draw.
    ///
    /// Example: attrib group --run runs/digits --method grad-kmeans --groups 100 --seed 1
    #[arg(long, default_value_t = 0, value_name = "SEED")]
    pub seed: u64,

    /// Projected gradient size (grad-kmeans).
    ///
    /// Example: attrib group --run runs/digits --method grad-kmeans --groups 100 --proj 64
    #[arg(long, default_value_t = 32, value_name = "D")]
    pub proj: usize,

    /// File to write [default: RUN/groups/KIND-kK.csv].
    ///
    /// With --csv the default is RUN/groups/csv-COL.csv.
    ///
    /// Example: attrib group --run runs/digits --method random --groups 10 --out g.csv
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `attrib retrain-score`.
#[derive(Debug, Args)]
#[command(
    after_long_help = "Ranks columns by helpfulness to the score file's targets (sum of scores, \
                       negated for the loss), removes whole groups in rank order until a fraction \
                       of the data is gone, retrains with the run's recipe and reports the test \
                       accuracy; lower is better. A random removal is shown for comparison."
)]
pub struct RetrainScoreArgs {
    /// The run directory.
    ///
    /// Example: attrib retrain-score --run runs/digits --scores runs/digits/scores/if-cg.npy
    #[arg(long, short, value_name = "DIR")]
    pub run: PathBuf,

    /// A score file (per group with --groups).
    ///
    /// Example: attrib retrain-score --run runs/d --scores runs/d/scores/tracin.npy
    #[arg(long, short, value_name = "FILE")]
    pub scores: PathBuf,

    /// The grouping of group scores.
    ///
    /// Example: attrib retrain-score -r runs/d -s s.npy --groups runs/d/groups/class-k50.csv
    #[arg(long, value_name = "FILE")]
    pub groups: Option<PathBuf>,

    /// Fractions to remove [default: 0.01,0.05,0.1,0.2].
    ///
    /// Example: attrib retrain-score --run runs/d --scores s.npy --remove 0.05,0.1
    #[arg(long, value_delimiter = ',', default_values_t = [0.01, 0.05, 0.1, 0.2], hide_default_value = true, value_name = "FRACTION")]
    pub remove: Vec<f64>,

    /// Retrain only shard I of N.
    ///
    /// Retraining j (fraction j / 2, the scores' removal for even j, the random one for odd j) with
    /// j mod N = I is stored in RUN/store/retrain/; the command without a shard afterwards prints
    /// the table from the stored models. Without the flag, a Slurm array task or a Kubernetes
    /// indexed job is one shard.
    ///
    /// Example: attrib retrain-score --run runs/d --scores s.npy --shard 0/4
    #[arg(long, value_name = "I/N")]
    pub shard: Option<run::Shard>,
}

/// `attrib explain`.
#[derive(Debug, Args)]
#[command(
    after_long_help = "For each target: its source row, label, predicted class and output, then \
                       its top-K proponents (largest tau: removing one lowers the output by tau) \
                       and opponents (most negative tau), each with its row of your data file \
                       (from RUN/provenance/), label, score and share of the total |tau|. Warns \
                       where a proponent's label differs from the target's (a possible mislabel) \
                       and where one example dominates. --verify retrains to check."
)]
pub struct ExplainArgs {
    /// The run directory.
    ///
    /// Example: attrib explain --run runs/digits --scores runs/digits/scores/magic.npy
    #[arg(long, short, value_name = "DIR")]
    pub run: PathBuf,

    /// A per-example score file of the run.
    ///
    /// Example: attrib explain --run runs/d --scores runs/d/scores/tracin.npy --target 3
    #[arg(long, short, value_name = "FILE")]
    pub scores: PathBuf,

    /// One target (an index the score file holds).
    ///
    /// Example: attrib explain --run runs/d --scores runs/d/scores/magic.npy --target 7
    #[arg(long, value_name = "J", conflicts_with = "targets")]
    pub target: Option<usize>,

    /// Targets a..b [default: every target of the file].
    ///
    /// Example: attrib explain --run runs/d --scores runs/d/scores/magic.npy --targets 0..5
    #[arg(long, short, value_name = "RANGE")]
    pub targets: Option<String>,

    /// Examples shown on each side per target.
    ///
    /// Example: attrib explain --run runs/d --scores runs/d/scores/magic.npy --top 5
    #[arg(long, short = 'k', default_value_t = 10, value_name = "K")]
    pub top: usize,

    /// Retrain without the top K of each side to check.
    ///
    /// Each target costs two retrainings of the run's recipe (the dropped examples get data
    /// weight 0), cached in RUN/store/retrain/ so that a rerun is instant.
    ///
    /// Example: attrib explain --run runs/d --scores runs/d/scores/magic.npy --target 0 --verify
    #[arg(long)]
    pub verify: bool,
}

/// `attrib report`.
#[derive(Debug, Args)]
#[command(
    after_long_help = "One HTML file that opens without network access: the run (config, data, \
                       model, accuracy, training curves), every score file with its LDS where \
                       ground truth is cached, per-target galleries of proponents and opponents \
                       (pictures for image data, text for text data), cached --verify results, \
                       the self-influence ranking and the groupings."
)]
pub struct ReportArgs {
    /// The run directory.
    ///
    /// Example: attrib report --run runs/digits
    #[arg(long, short, value_name = "DIR")]
    pub run: PathBuf,

    /// Where to write the HTML [default: RUN/report/index.html].
    ///
    /// Example: attrib report --run runs/digits --out /tmp/digits.html
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Targets with a gallery, per score file.
    ///
    /// Example: attrib report --run runs/digits --galleries 4
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub galleries: usize,

    /// Examples on each side per gallery.
    ///
    /// Example: attrib report --run runs/digits --top 8
    #[arg(long, short = 'k', default_value_t = 10, value_name = "K")]
    pub top: usize,
}

/// `attrib noisy-labels`.
#[derive(Debug, Args)]
#[command(
    after_long_help = "Flips a seeded fraction of the training labels to other classes, retrains \
                       the run's recipe, ranks examples (or groups of a grouping made on the noisy \
                       run) by the self-influence of their mean example, and reports the fraction \
                       of flipped labels among the top of the data. Random ranking finds the \
                       inspected fraction itself."
)]
pub struct NoisyLabelsArgs {
    /// The run directory (its recipe and data).
    ///
    /// Example: attrib noisy-labels --run runs/digits --flip 0.1
    #[arg(long, short, value_name = "DIR")]
    pub run: PathBuf,

    /// Fraction of training labels to flip.
    ///
    /// Example: attrib noisy-labels --run runs/digits --flip 0.2
    #[arg(long, default_value_t = 0.1, value_name = "FRACTION")]
    pub flip: f64,

    /// Groupings to compare (list of KIND:K).
    ///
    /// Each is made on the noisy run. Individual examples are always reported.
    ///
    /// Example: attrib noisy-labels --run runs/d --grouping grad-kmeans:144,random:144
    #[arg(long, value_delimiter = ',', value_name = "KIND:K")]
    pub grouping: Vec<String>,

    /// Fractions inspected [default: 0.05,0.1,0.2].
    ///
    /// Example: attrib noisy-labels --run runs/digits --inspect 0.1,0.2
    #[arg(long, value_delimiter = ',', default_values_t = [0.05, 0.1, 0.2], hide_default_value = true, value_name = "FRACTION")]
    pub inspect: Vec<f64>,

    /// Seed of the flips and groupings.
    ///
    /// Example: attrib noisy-labels --run runs/digits --seed 3
    #[arg(long, default_value_t = 0, value_name = "SEED")]
    pub seed: u64,

    /// Rank only shard I of N of the groupings.
    ///
    /// Row j of the table (0: individual examples, then each --grouping in order) with j mod N =
    /// I is made and ranked by self-influence and stored in RUN/store/noisy-labels-row/; the
    /// command without a shard afterwards prints the table from the stored rows, computing only
    /// the missing ones. Every shard needs the retraining with flipped labels: the first process
    /// stores it in RUN/store/noisy-labels-retrain/ and the others read it (run one shard first
    /// to train it once). Without the flag, a Slurm array task or a Kubernetes indexed job is one
    /// shard.
    ///
    /// Example: attrib noisy-labels --run runs/d --grouping grad-kmeans:144,random:144 --shard 0/3
    #[arg(long, value_name = "I/N")]
    pub shard: Option<run::Shard>,
}

/// `attrib status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run directory.
    ///
    /// Lists each ground-truth folder (subsets present, missing subset indices) and each kind
    /// of the artefact store (MAGIC blocks, EK-FAC factors, TRAK members, retrainings,
    /// TMC-Shapley permutations, poison and noisy-labels rows: what shards have stored).
    ///
    /// Example: attrib status --run runs/digits
    #[arg(long, short, value_name = "DIR")]
    pub run: PathBuf,
}

/// `attrib slurm`.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// The run directory (scripts go to RUN/slurm/).
    ///
    /// Example: attrib slurm --run runs/d -- groundtruth --run runs/d --subsets 100
    #[arg(long, short, value_name = "DIR")]
    pub run: PathBuf,

    /// Array tasks, one shard each.
    ///
    /// Example: attrib slurm --run runs/d --shards 8 -- groundtruth --run runs/d
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub shards: usize,

    /// Array tasks running at once [default: no limit].
    ///
    /// Slurm's array throttle (--array=0-(N-1)%K): the other tasks wait in the queue.
    ///
    /// Example: attrib slurm --run runs/d --shards 8 --max-running 2 -- groundtruth --run runs/d
    #[arg(long, value_name = "K")]
    pub max_running: Option<usize>,

    /// Partition [default: the cluster's].
    ///
    /// Example: attrib slurm --run runs/d --partition cpu -- groundtruth --run runs/d
    #[arg(long, value_name = "NAME")]
    pub partition: Option<String>,

    /// Time limit per task.
    ///
    /// Example: attrib slurm --run runs/d --time 04:00:00 -- groundtruth --run runs/d
    #[arg(long, default_value = "01:00:00", value_name = "TIME")]
    pub time: String,

    /// CPUs per task.
    ///
    /// attrib uses every CPU it is given.
    ///
    /// Example: attrib slurm --run runs/d --cpus-per-task 8 -- groundtruth --run runs/d
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub cpus_per_task: usize,

    /// Memory per task.
    ///
    /// Example: attrib slurm --run runs/d --mem 16G -- groundtruth --run runs/d
    #[arg(long, default_value = "4G", value_name = "SIZE")]
    pub mem: String,

    /// Job name [default: attrib-COMMAND].
    ///
    /// Example: attrib slurm --run runs/d --name gt100 -- groundtruth --run runs/d
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Submit the array and its assemble job with sbatch.
    ///
    /// Without it the scripts are written and the sbatch line is printed.
    ///
    /// Example: attrib slurm --run runs/d --submit -- groundtruth --run runs/d
    #[arg(long)]
    pub submit: bool,

    /// The attrib command and its arguments, after `--`.
    ///
    /// Example: attrib slurm --run runs/d -- attribute --run runs/d --method magic
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `attrib merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The merged file to write (with its .json sidecar).
    ///
    /// Example: attrib merge --out runs/d/scores/if-cg.npy runs/d/scores/if-cg@0-50.npy ...
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// Score files of one method, run and output, for disjoint targets.
    #[arg(value_name = "PART", required = true)]
    pub parts: Vec<PathBuf>,
}

/// Which retrained subsets: `--drop` and/or `--keep` fractions, how many, which seed.
#[derive(Debug, Args)]
pub struct SubsetArgs {
    /// Fraction each subset drops (list: 0.01,0.05).
    ///
    /// Default 0.01 when neither --drop nor --keep is given.
    ///
    /// Example: attrib groundtruth --run runs/digits --drop 0.01,0.05,0.1
    #[arg(long, value_delimiter = ',', value_name = "FRACTION", value_parser = parse_drop_fraction)]
    pub drop: Vec<f64>,

    /// Fraction each subset keeps (TRAK uses 0.5).
    ///
    /// Example: attrib groundtruth --run runs/digits --keep 0.5
    #[arg(long, value_delimiter = ',', value_name = "FRACTION", value_parser = parse_keep_fraction)]
    pub keep: Vec<f64>,

    /// Retrained subsets per fraction.
    ///
    /// Example: attrib groundtruth --run runs/digits --subsets 100
    #[arg(long, default_value_t = 100, value_name = "M")]
    pub subsets: usize,

    /// Seed of the subset draws.
    ///
    /// Independent of the training seed.
    ///
    /// Example: attrib groundtruth --run runs/digits --seed 1
    #[arg(long, default_value_t = 0, value_name = "SEED")]
    pub seed: u64,

    /// Trainer seeds averaged per subset.
    ///
    /// 1 (the default) is the single-model protocol: each subset is the run's own deterministic
    /// retraining, same seed and order (MATH.md E1). K > 1 is the literature's protocol: each
    /// subset is retrained with the run's seed and K - 1 other trainer seeds (the TRAK ensemble's
    /// members, shared with --method trak) and the outputs are averaged. Cached separately
    /// (RUN/groundtruth/...-seedsK).
    ///
    /// Example: attrib groundtruth --run runs/digits --drop 0.05 --subsets 100 --seeds 5
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub seeds: usize,
}

/// `attrib groundtruth`.
#[derive(Debug, Args)]
pub struct GroundTruthArgs {
    /// The run directory (results cached in RUN/groundtruth/).
    ///
    /// Each retrained subset is written as it finishes; an interrupted run resumes where it stopped
    /// and gives the same bits.
    ///
    /// Example: attrib groundtruth --run runs/digits --drop 0.01 --subsets 100
    #[arg(long, short, value_name = "DIR")]
    pub run: PathBuf,

    /// The subsets.
    #[command(flatten)]
    pub subsets: SubsetArgs,

    /// margin (default), loss, log_likelihood or token.
    ///
    /// It is measured on every example of the split (every next-token prediction for token), so
    /// any targets can be scored later.
    ///
    /// Example: attrib groundtruth --run runs/digits --output loss
    #[arg(
        long,
        default_value = "margin",
        hide_default_value = true,
        value_name = "OUTPUT"
    )]
    pub output: String,

    /// Split measured: test (default), train or val.
    ///
    /// Example: attrib groundtruth --run runs/digits --split train
    #[arg(long, value_enum, default_value_t = Split::Test, hide_possible_values = true, hide_default_value = true)]
    pub split: Split,

    /// Drop whole groups of this grouping (group LDS).
    ///
    /// --drop then counts groups: each subset drops max(1, round(p K)) of the K groups of the
    /// grouping written by `attrib group`, with all their members. Cached separately per grouping
    /// (its hash is in the folder name).
    ///
    /// Example: attrib groundtruth --run runs/d --drop 0.05 --groups runs/d/groups/random-k144.csv
    #[arg(long, value_name = "FILE")]
    pub groups: Option<PathBuf>,

    /// Compute only shard I of N (subsets j with j mod N = I).
    ///
    /// Shards may run in any order, at once, on machines sharing the run directory; each writes
    /// only its own subsets. Without the flag, a Slurm array task (SLURM_ARRAY_TASK_ID/COUNT) or
    /// a Kubernetes indexed job (JOB_COMPLETION_INDEX with ATTRIB_SHARD_COUNT) is one shard. Run
    /// the command without a shard afterwards to assemble (and compute what is missing).
    ///
    /// Example: attrib groundtruth --run runs/d --drop 0.01 --subsets 100 --shard 0/4
    #[arg(long, value_name = "I/N")]
    pub shard: Option<run::Shard>,
}

/// `attrib lds`.
#[derive(Debug, Args)]
pub struct LdsArgs {
    /// The run directory.
    ///
    /// Example: attrib lds --run runs/digits --scores runs/digits/scores/if-gn.npy
    #[arg(long, short, value_name = "DIR", required_unless_present_any = ["masks", "runs"])]
    pub run: Option<PathBuf>,

    /// Seeded runs of one recipe (list: a,b): LDS spread.
    ///
    /// --scores are then file names inside each run's scores/ folder. Prints each run's table,
    /// then per score file the mean, standard deviation and range over the runs next to the mean
    /// width of the per-run bootstrap intervals (which resample targets, not runs).
    ///
    /// Example: attrib lds --runs runs/s0,runs/s1,runs/s2 --scores magic.npy,tracin.npy --drop 0.01
    #[arg(long, value_delimiter = ',', value_name = "DIR", conflicts_with_all = ["run", "masks", "groups"])]
    pub runs: Vec<PathBuf>,

    /// Score files (list: a.npy,b.npy).
    ///
    /// One table row per score file and subset fraction.
    ///
    /// Example: attrib lds --run runs/d --scores runs/d/scores/tracin.npy,runs/d/scores/if-gn.npy
    #[arg(
        long,
        short,
        value_delimiter = ',',
        value_name = "FILE",
        required = true
    )]
    pub scores: Vec<PathBuf>,

    /// The subsets (computed and cached first if missing).
    #[command(flatten)]
    pub subsets: SubsetArgs,

    /// Group LDS: subsets drop whole groups of this grouping.
    ///
    /// Group score files must be of this grouping; per-example score files are summed over its
    /// groups (their row says "(summed)").
    ///
    /// Example: attrib lds --run runs/d --scores g.npy,tracin.npy --drop 0.05 --groups g.csv
    #[arg(long, value_name = "FILE")]
    pub groups: Option<PathBuf>,

    /// Outside ground truth: .npy masks, 1 = kept.
    ///
    /// Ground truth retrained outside attrib. 1 (or True) = the example was kept in that subset's training set, 0 = dropped (as TRAK's
    /// and kronfluence's examples ship them). With --outputs; --scores is then one plain .npy
    /// score matrix (see --layout) and --run, --drop and --subsets are not used.
    ///
    /// Example: attrib lds --masks masks.npy --outputs outputs.npy --scores trak.npy --layout train_targets
    #[arg(
        long,
        value_name = "FILE",
        requires = "outputs",
        conflicts_with = "run"
    )]
    pub masks: Option<PathBuf>,

    /// With --masks: .npy retrained outputs.
    ///
    /// Example: attrib lds --masks m.npy --outputs o.npy --scores s.npy
    #[arg(long, value_name = "FILE", requires = "masks")]
    pub outputs: Option<PathBuf>,

    /// Axes of --scores with --masks [default: targets_train].
    ///
    /// targets_train ([targets, train], attrib's) or train_targets ([train, targets], TRAK's and
    /// dattri's).
    ///
    /// Example: attrib lds --masks m.npy --outputs o.npy --scores s.npy --layout train_targets
    #[arg(
        long,
        value_name = "LAYOUT",
        default_value = "targets_train",
        hide_default_value = true,
        requires = "masks"
    )]
    pub layout: String,

    /// With --masks: .npy full-data outputs (optional).
    ///
    /// Example: attrib lds --masks m.npy --outputs o.npy --scores s.npy --base full.npy
    #[arg(long, value_name = "FILE", requires = "masks")]
    pub base: Option<PathBuf>,
}

/// `attrib train`.
#[derive(Debug, Args)]
#[command(
    after_long_help = "The config has the tables [data], [model], [optim], [schedule] and \
                             [train]; see the README or examples/*.toml for every field and its \
                             default. Unknown fields are errors."
)]
pub struct TrainArgs {
    /// The run configuration (TOML).
    ///
    /// Paths inside it (data.path, data.labels_path, train.init_from) are relative to the
    /// config file's folder. The resolved config, with every default and absolute paths, is saved
    /// as DIR/config.toml.
    ///
    /// Example: attrib train --config examples/digits_mlp.toml --out runs/digits
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,

    /// The run directory to create, or to retrain.
    ///
    /// A folder holding a run of the same resolved config is retrained in place.
    ///
    /// It receives config.toml, metrics.jsonl, params.safetensors and, when
    /// train.checkpoint_every is set, trajectory/step_NNNNNNNN.safetensors.
    ///
    /// Example: attrib train --config run.toml --out runs/lr-0.1
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,

    /// Replace another run in DIR (deletes its outputs).
    ///
    /// Without --force, training into a directory whose config.toml differs from the new
    /// resolved config is refused and the differing fields are shown.
    ///
    /// Example: attrib train --config run.toml --out runs/a --force
    #[arg(long)]
    pub force: bool,
}

/// `attrib evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The run directory written by `attrib train`.
    ///
    /// Its config.toml rebuilds the data split and the model; params.safetensors holds the
    /// weights.
    ///
    /// Example: attrib evaluate --run runs/digits
    #[arg(long, short, value_name = "DIR")]
    pub run: PathBuf,

    /// Split to evaluate: train, test or val.
    ///
    /// val needs data.val_fraction > 0 in the run's config. The split is rebuilt from the run's config (same seed), so it is exactly the one used in
    /// training.
    ///
    /// Example: attrib evaluate --run runs/digits --split train
    #[arg(long, value_enum, default_value_t = Split::Test, hide_possible_values = true)]
    pub split: Split,
}

/// A data split of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Split {
    /// The training examples.
    Train,
    /// The held-out examples.
    Test,
    /// The validation examples (data.val_fraction), held out from training and test.
    Val,
}

impl Split {
    /// The name used in messages and JSON.
    pub fn name(self) -> &'static str {
        run::Split::from(self).name()
    }
}

impl From<Split> for run::Split {
    fn from(s: Split) -> Self {
        match s {
            Split::Train => run::Split::Train,
            Split::Test => run::Split::Test,
            Split::Val => run::Split::Val,
        }
    }
}

/// `attrib demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the demo run.
    ///
    /// The demo trains the recipe of examples/digits_mlp.toml, which is compiled into the binary.
    ///
    /// Example: attrib demo --out /tmp/demo
    #[arg(long, short, value_name = "DIR", default_value = "runs/demo")]
    pub out: PathBuf,

    /// Replace another run in DIR (deletes its outputs).
    ///
    /// As `attrib train --force`.
    ///
    /// Example: attrib demo --out runs/a --force
    #[arg(long)]
    pub force: bool,
}

/// `attrib bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Time training steps and gradients; compare with GEMM GFLOP/s.
    Train(BenchTrainArgs),
    /// A named setting's LDS table: train, retrain, attribute, time.
    Lds(BenchLdsArgs),
}

/// `attrib bench lds`.
#[derive(Debug, Args)]
pub struct BenchLdsArgs {
    /// The setting (attrib settings list).
    ///
    /// Example: attrib bench lds digits-mlp --quick
    #[arg(value_name = "SETTING")]
    pub setting: String,

    /// The setting's small size, as CI runs it.
    ///
    /// Example: attrib bench lds moby-excerpt-gpt --quick
    #[arg(long)]
    pub quick: bool,

    /// Methods instead of the setting's (list: a,b).
    ///
    /// Example: attrib bench lds digits-mlp --methods magic,trak
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub methods: Option<Vec<String>>,

    /// Retrained subsets per fraction.
    ///
    /// Example: attrib bench lds digits-mlp --subsets 50
    #[arg(long, value_name = "M")]
    pub subsets: Option<usize>,

    /// The run directory (default runs/SETTING[-quick]).
    ///
    /// A run already there is reused with its ground truth and score files.
    ///
    /// Example: attrib bench lds digits-mlp --quick --out runs/dq
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `attrib settings`.
#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// List the settings: data, expected figures, run times.
    List(SettingsArgs),
}

/// `attrib settings list`.
#[derive(Debug, Args)]
pub struct SettingsArgs {}

/// `attrib bench train`.
#[derive(Debug, Args)]
pub struct BenchTrainArgs {
    /// Time each measurement for ~0.25 s instead of ~2 s.
    ///
    /// Quick figures are noisier; use them to check that the benchmark runs.
    ///
    /// Example: attrib bench train --quick
    #[arg(long)]
    pub quick: bool,

    /// Time only the workloads whose name contains TEXT.
    ///
    /// The GEMM table is always printed. Useful to profile one workload, e.g. under `perf
    /// record`.
    ///
    /// Example: attrib bench train --workload "512-512-512-512"
    #[arg(long, value_name = "TEXT")]
    pub workload: Option<String>,
}

/// `--threads`: a positive integer.
fn parse_threads(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|_| {
        format!("\"{s}\" is not a whole number; give the number of threads, e.g. 4")
    })?;
    if n == 0 {
        return Err("must be at least 1 (it is the number of worker threads); omit --threads to use all cores".into());
    }
    Ok(n)
}

/// A `--drop` fraction: strictly between 0 and 1.
fn parse_drop_fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("\"{s}\" is not a number; give a fraction such as 0.01"))?;
    if !(f > 0.0 && f < 1.0) {
        return Err(format!(
            "{f} must be strictly between 0 and 1: it is the fraction of the training set each \
             subset drops (e.g. 0.01, 0.05, 0.1, 0.2)"
        ));
    }
    Ok(f)
}

/// A `--keep` fraction: in (0, 1].
fn parse_keep_fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("\"{s}\" is not a number; give a fraction such as 0.5"))?;
    if !(f > 0.0 && f <= 1.0) {
        return Err(format!(
            "{f} must be in (0, 1]: it is the fraction of the training set each subset keeps \
             (e.g. 0.5)"
        ));
    }
    Ok(f)
}

/// A score file name: one path component, so that the files stay inside `RUN/scores/`.
fn parse_score_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s == "." || s == ".." || s.contains(['/', '\\']) {
        return Err(format!(
            "\"{s}\" is not a file name: --name names a file inside RUN/scores/, \
             so it cannot be empty, \".\", \"..\" or contain / or \\ (e.g. --name if-cg-damp1)"
        ));
    }
    Ok(s.to_string())
}

/// `--target-block`: a whole number of targets, at least 1.
fn parse_target_block(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("a block of 0 targets scores nothing; give 1 or more".into()),
        Ok(b) => Ok(b),
        Err(_) => Err(format!("\"{s}\" is not a number of targets; give e.g. 64")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn test_target_block() {
        let attribute = |extra: &[&str]| {
            let mut args = vec!["attribute", "--run", "r", "--method", "tracin"];
            args.extend_from_slice(extra);
            parse(&args)
        };
        let Command::Attribute(a) = attribute(&[]).unwrap().command else {
            panic!("attribute")
        };
        assert_eq!(a.target_block, methods::target_blocks::TARGET_BLOCK);
        let Command::Attribute(a) = attribute(&["--target-block", "4", "--shard", "1/3"])
            .unwrap()
            .command
        else {
            panic!("attribute")
        };
        assert_eq!(a.target_block, 4);
        assert_eq!(a.shard, Some(run::Shard::new(1, 3).unwrap()));
        for bad in ["0", "x", "2.5"] {
            let e = attribute(&["--target-block", bad]).unwrap_err().to_string();
            assert!(e.contains("--target-block"), "{bad}: {e}");
        }
    }

    #[test]
    fn test_drop_and_keep_fractions_are_checked_as_flags() {
        assert_eq!(parse_drop_fraction("0.05").unwrap(), 0.05);
        assert_eq!(parse_keep_fraction("1").unwrap(), 1.0);
        for bad in ["0", "1", "-0.1", "nan", "x"] {
            assert!(parse_drop_fraction(bad).is_err(), "--drop {bad}");
        }
        for bad in ["0", "1.5", "nan"] {
            assert!(parse_keep_fraction(bad).is_err(), "--keep {bad}");
        }
        let e = parse(&["lds", "--run", "r", "--scores", "s.npy", "--drop", "0"]).unwrap_err();
        assert!(e.to_string().contains("--drop"), "{e}");
    }

    #[test]
    fn test_score_name_stays_inside_scores() {
        assert_eq!(parse_score_name("if-cg@0-5").unwrap(), "if-cg@0-5");
        for bad in ["", ".", "..", "../../escaped", "a/b", "a\\b", "/abs"] {
            let e = parse_score_name(bad).unwrap_err();
            assert!(e.contains("inside RUN/scores/"), "{bad}: {e}");
        }
        let e = parse(&[
            "attribute",
            "--run",
            "r",
            "--method",
            "tracin",
            "--name",
            "../x",
        ]);
        assert_eq!(
            e.unwrap_err().kind(),
            clap::error::ErrorKind::ValueValidation
        );
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("attrib").chain(args.iter().copied()))
    }

    #[test]
    fn test_explain() {
        let Command::Explain(a) = parse(&["explain", "-r", "R", "-s", "S.npy", "--target", "3"])
            .unwrap()
            .command
        else {
            panic!("explain")
        };
        assert_eq!((a.target, a.top, a.verify), (Some(3), 10, false));
        let Command::Explain(a) = parse(&[
            "explain",
            "--run",
            "R",
            "--scores",
            "S",
            "--targets",
            "0..4",
            "-k",
            "5",
            "--verify",
        ])
        .unwrap()
        .command
        else {
            panic!("explain")
        };
        assert_eq!(
            (a.targets.as_deref(), a.top, a.verify),
            (Some("0..4"), 5, true)
        );
        assert!(parse(&[
            "explain",
            "-r",
            "R",
            "-s",
            "S",
            "--target",
            "1",
            "--targets",
            "0..2"
        ])
        .is_err());
        assert!(
            parse(&["explain", "-r", "R"]).is_err(),
            "--scores is required"
        );
    }

    #[test]
    fn test_report() {
        let Command::Report(a) = parse(&["report", "--run", "R"]).unwrap().command else {
            panic!("report")
        };
        assert_eq!((a.out, a.galleries, a.top), (None, 6, 10));
        let Command::Report(a) = parse(&["report", "-r", "R", "-o", "x.html", "--galleries", "2"])
            .unwrap()
            .command
        else {
            panic!("report")
        };
        assert_eq!((a.out, a.galleries), (Some(PathBuf::from("x.html")), 2));
    }

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn short_help_fits_79_columns() {
        fn check(cmd: &mut clap::Command) {
            let help = cmd.render_help().to_string();
            for line in help.lines() {
                assert!(
                    line.chars().count() <= 79,
                    "`{} -h`, too long: {line}",
                    cmd.get_name()
                );
            }
            for sub in cmd.get_subcommands_mut() {
                check(sub);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        check(&mut cmd);
    }

    #[test]
    fn test_threads() {
        assert_eq!(
            parse(&["--threads", "3", "demo"]).unwrap().global.threads,
            Some(3)
        );
        assert_eq!(
            parse(&["demo", "--threads", "2"]).unwrap().global.threads,
            Some(2)
        );
        assert_eq!(parse(&["demo"]).unwrap().global.threads, None);
        let e = parse(&["--threads", "0", "demo"]).unwrap_err().to_string();
        assert!(e.contains("at least 1"), "{e}");
        let e = parse(&["--threads", "many", "demo"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a whole number"), "{e}");
    }

    #[test]
    fn test_quiet() {
        assert!(parse(&["-q", "demo"]).unwrap().global.quiet);
        assert!(parse(&["demo", "--quiet"]).unwrap().global.quiet);
        assert!(!parse(&["demo"]).unwrap().global.quiet);
    }

    #[test]
    fn test_json() {
        assert!(parse(&["--json", "demo"]).unwrap().global.json);
        assert!(
            parse(&["evaluate", "--run", "r", "--json"])
                .unwrap()
                .global
                .json
        );
        assert!(!parse(&["demo"]).unwrap().global.json);
    }

    #[test]
    fn test_train_config_out_force() {
        let cli = parse(&["train", "--config", "a.toml", "--out", "runs/a"]).unwrap();
        let Command::Train(t) = cli.command else {
            panic!("not train")
        };
        assert_eq!(t.config, PathBuf::from("a.toml"));
        assert_eq!(t.out, PathBuf::from("runs/a"));
        assert!(!t.force);
        let Command::Train(t) = parse(&["train", "-c", "a.toml", "-o", "d", "--force"])
            .unwrap()
            .command
        else {
            panic!("not train")
        };
        assert!(t.force);
        assert!(
            parse(&["train", "--out", "d"]).is_err(),
            "--config is required"
        );
        assert!(
            parse(&["train", "--config", "a.toml"]).is_err(),
            "--out is required"
        );
    }

    #[test]
    fn test_evaluate_run_split() {
        let Command::Evaluate(e) = parse(&["evaluate", "--run", "r"]).unwrap().command else {
            panic!()
        };
        assert_eq!((e.run, e.split), (PathBuf::from("r"), Split::Test));
        let Command::Evaluate(e) = parse(&["evaluate", "-r", "r", "--split", "train"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!(e.split, Split::Train);
        let Command::Evaluate(e) = parse(&["evaluate", "-r", "r", "--split", "val"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!(e.split, Split::Val);
        assert!(parse(&["evaluate", "--run", "r", "--split", "valid"]).is_err());
        assert!(parse(&["evaluate"]).is_err(), "--run is required");
    }

    #[test]
    fn test_demo_out_force() {
        let Command::Demo(d) = parse(&["demo"]).unwrap().command else {
            panic!()
        };
        assert_eq!(d.out, PathBuf::from("runs/demo"));
        assert!(!d.force);
        let Command::Demo(d) = parse(&["demo", "--out", "x", "--force"]).unwrap().command else {
            panic!()
        };
        assert_eq!(d.out, PathBuf::from("x"));
        assert!(d.force);
    }

    #[test]
    fn test_bench_train_quick() {
        let Command::Bench(BenchCommand::Train(b)) =
            parse(&["bench", "train", "--quick"]).unwrap().command
        else {
            panic!()
        };
        assert!(b.quick);
        let Command::Bench(BenchCommand::Train(b)) = parse(&["bench", "train"]).unwrap().command
        else {
            panic!()
        };
        assert!(!b.quick);
        assert!(parse(&["bench"]).is_err(), "bench needs a subcommand");
    }

    #[test]
    fn test_select_flags() {
        let Command::Select(a) = parse(&["select", "-r", "r", "--scores", "a.npy,b.npy"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!(a.scores, [PathBuf::from("a.npy"), PathBuf::from("b.npy")]);
        assert_eq!(
            (a.keep, a.harmful_only, a.steps, a.random),
            (0.8, false, None, 3)
        );
        let Command::Select(a) = parse(&[
            "select",
            "-r",
            "r",
            "--steps",
            "4",
            "--step-size",
            "0.25",
            "--random",
            "5",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        assert_eq!((a.steps, a.step_size, a.random), (Some(4), 0.25, 5));
        let Command::Select(a) = parse(&["select", "-r", "r", "-s", "a.npy", "--harmful-only"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert!(a.harmful_only);
        let both = ["select", "-r", "r", "--harmful-only", "--keep", "0.5"];
        assert_eq!(parse(&both).unwrap_err().exit_code(), 2, "they conflict");
    }

    #[test]
    fn test_unlearn_flags() {
        let Command::Unlearn(a) = parse(&[
            "unlearn",
            "-r",
            "r",
            "-f",
            "f.csv",
            "--groups",
            "g.csv",
            "--verify",
            "--ascent-steps",
            "3",
            "--ascent-lr",
            "0.01",
            "--scores",
            "s.npy",
            "--out",
            "o",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        assert_eq!(a.groups, Some(PathBuf::from("g.csv")));
        assert!(a.verify);
        assert_eq!((a.ascent_steps, a.ascent_lr), (3, Some(0.01)));
        assert_eq!(a.out, Some(PathBuf::from("o")));
        let Command::Unlearn(a) = parse(&["unlearn", "-r", "r", "-f", "f.csv"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!((a.groups, a.verify, a.ascent_steps), (None, false, 5));
        assert!(
            parse(&["unlearn", "-r", "r"]).is_err(),
            "--forget is required"
        );
    }

    #[test]
    fn unknown_flags_and_commands_are_usage_errors() {
        for args in [
            &["frobnicate"][..],
            &["train", "--config", "a", "--out", "b", "--speed"],
            &[],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        }
    }
}
