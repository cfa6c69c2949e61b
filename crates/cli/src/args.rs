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
    /// Train, attribute and measure the embedded digits MLP, no files.
    Demo(DemoArgs),
    /// Score the training examples behind test outputs with a method.
    Attribute(AttributeArgs),
    /// List the attribution methods and what they do.
    Methods,
    /// Join one method's score files of separate target ranges.
    Merge(MergeArgs),
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
    /// Show the training examples behind predictions, from scores.
    Explain(ExplainArgs),
    /// Write one self-contained HTML report of a run.
    Report(ReportArgs),
    /// Measure throughput next to this machine's GEMM speed.
    #[command(subcommand)]
    Bench(BenchCommand),
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

    /// Output: margin (default), loss, log_likelihood.
    ///
    /// The margin is z_y - logsumexp of the other logits; the loss is the training loss.
    ///
    /// Example: attrib attribute --run runs/digits --method if-gn --output loss
    #[arg(
        long,
        default_value = "margin",
        hide_default_value = true,
        value_name = "OUTPUT"
    )]
    pub output: String,

    /// Split of the targets: test (default) or train.
    ///
    /// Train targets give self-influence.
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
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Score the groups of a grouping file (attrib group).
    ///
    /// One column per group: tau_G = d f / d w_G, the sum of the members' scores. Influence
    /// functions and TracIn use group gradients directly. The default name gets @groups-HASH.
    ///
    /// Example: attrib attribute --run runs/digits --method if-cg --groups runs/digits/groups/grad-kmeans-k100.csv
    #[arg(long, value_name = "FILE")]
    pub groups: Option<PathBuf>,
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
    /// weight 0), cached in RUN/verify/ so that a rerun is instant.
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
    #[arg(long, value_delimiter = ',', value_name = "FRACTION")]
    pub drop: Vec<f64>,

    /// Fraction each subset keeps (TRAK uses 0.5).
    ///
    /// Example: attrib groundtruth --run runs/digits --keep 0.5
    #[arg(long, value_delimiter = ',', value_name = "FRACTION")]
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

    /// Output: margin (default), loss, log_likelihood.
    ///
    /// It is measured on every example of the split, so any targets can be scored later.
    ///
    /// Example: attrib groundtruth --run runs/digits --output loss
    #[arg(
        long,
        default_value = "margin",
        hide_default_value = true,
        value_name = "OUTPUT"
    )]
    pub output: String,

    /// Split measured: test (default) or train.
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
}

/// `attrib lds`.
#[derive(Debug, Args)]
pub struct LdsArgs {
    /// The run directory.
    ///
    /// Example: attrib lds --run runs/digits --scores runs/digits/scores/if-gn.npy
    #[arg(long, short, value_name = "DIR")]
    pub run: PathBuf,

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

    /// Split to evaluate: train or test.
    ///
    /// The split is rebuilt from the run's config (same seed), so it is exactly the one used in
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
}

impl Split {
    /// The name used in messages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
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
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
