//! `attrib report --run R [--out FILE]`: one self-contained HTML page about a run.
//!
//! The page needs no network when opened: charts are inline SVG drawn by `plotters`
//! ([`charts`]), pictures of examples are PNG data URIs ([`images`]), the page comes from the
//! `minijinja` template `report.html` (HTML-escaped by default), its one stylesheet and one small
//! script are inline (the script only counts the decoded images into `data-images-decoded` on
//! `<body>`, which the browser test reads). Sections, each shown when the run holds its inputs:
//!
//! 1. the run: config, data, model, accuracy, training curves from `metrics.jsonl`;
//! 2. every score file with its method, options and time; where subset ground truth is cached in
//!    `RUN/groundtruth/`, the LDS table with intervals (MATH.md E6), LDS against the drop fraction,
//!    and predicted against retrained output changes for a few targets per method;
//! 3. per-target galleries (the target, its top-K proponents and opponents, as pictures for image
//!    data and text for text data) with `explain --verify` results where cached in the run's store;
//! 4. the self-influence ranking (candidate mislabels) of score files over training targets;
//! 5. the groupings of `RUN/groups/` with their sizes.
//!
//! Nothing is retrained: the report reads caches only, so it takes seconds.

pub mod charts;
pub mod images;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use data::{Dataset, Features, Labels};
use methods::{Grouping, ScoreFile};
use run::retrain::{MaskSource, Retraining};
use run::store::{Manifest, MANIFEST};
use run::{parse_output, GroundTruth, Run, Split, SubsetKind};
use serde::Serialize;
use serde_json::Value;

use self::charts::{chart, Series, Style};
use self::images::ImageGeometry;
use crate::args::ReportArgs;
use crate::explain::{self, describe, Explained, Sources};
use crate::output::{thousands, Event};
use crate::Ctx;

/// The page template.
const TEMPLATE: &str = include_str!("report.html");
/// Default location of the report inside the run directory.
pub const REPORT_FILE: &str = "report/index.html";
/// Targets per method drawn in the predicted-vs-retrained scatter.
const SCATTER_TARGETS: usize = 3;
/// Training examples shown in the self-influence gallery.
const SELF_INFLUENCE_SHOWN: usize = 24;

/// What to put in the report.
pub struct ReportOptions {
    /// Targets with a gallery, per score file.
    pub galleries: usize,
    /// Proponents and opponents per gallery.
    pub top: usize,
}

/// `attrib report`.
///
/// # Errors
/// A folder that is not a run, unreadable caches, write errors.
pub fn run(args: &ReportArgs, ctx: &Ctx) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run.join(REPORT_FILE));
    let opts = ReportOptions {
        galleries: args.galleries,
        top: args.top,
    };
    write(&args.run, &out, &opts, ctx)?;
    Ok(())
}

/// Writes the report of the run in `dir` to `out` (atomically), prints its path, and returns it.
///
/// # Errors
/// As [`run`].
pub fn write(dir: &Path, out: &Path, opts: &ReportOptions, ctx: &Ctx) -> Result<PathBuf> {
    let start = Instant::now();
    let html = render(dir, opts)?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    data::write_atomic(out, html.as_bytes())?;
    let seconds = start.elapsed().as_secs_f64();
    ctx.out.event(&Event::Report {
        path: out.display().to_string(),
        bytes: html.len(),
        seconds,
    })?;
    ctx.out.result(format!(
        "report   {} ({} KB, {seconds:.2} s): open it in a browser, no network needed",
        out.display(),
        thousands(html.len().div_ceil(1024))
    ))?;
    Ok(out.to_path_buf())
}

/// A chart: title and inline SVG.
#[derive(Serialize)]
struct Chart {
    title: String,
    svg: String,
}

/// One picture (or text) with its caption.
#[derive(Serialize)]
struct Tile {
    /// PNG data URI, for image data.
    image: Option<String>,
    /// Text window (escaped by the template), for text data.
    text: Option<String>,
    /// A per-token target's window as context, predicted token and rest: the template marks
    /// the token (and leaves `text` out).
    marked: Option<[String; 3]>,
    /// First feature values, for tabular data.
    values: Option<String>,
    /// Caption lines.
    caption: Vec<String>,
    /// A warning on the tile (label differs, dominates).
    flag: Option<String>,
}

#[derive(Serialize)]
struct VerifyRow {
    removed: String,
    k: usize,
    predicted: String,
    actual: String,
}

#[derive(Serialize)]
struct Gallery {
    method: String,
    title: String,
    target: Tile,
    proponents: Vec<Tile>,
    opponents: Vec<Tile>,
    verify: Vec<VerifyRow>,
    flags: Vec<String>,
}

#[derive(Serialize)]
struct ScoreInfo {
    file: String,
    method: String,
    options: String,
    output: String,
    split: String,
    targets: usize,
    seconds: String,
    note: Option<String>,
}

#[derive(Serialize)]
struct LdsRow {
    file: String,
    subsets: String,
    lds: String,
    ci: String,
    pearson: String,
    slope: String,
}

#[derive(Serialize)]
struct GroupingInfo {
    file: String,
    how: String,
    k: usize,
    sizes: String,
}

#[derive(Serialize)]
struct Facts {
    dir: String,
    hash: String,
    dataset: String,
    train: String,
    test: String,
    shape: String,
    model: String,
    parameters: String,
    accuracy: String,
    loss: String,
    config: String,
}

#[derive(Serialize)]
struct Page {
    title: String,
    run: Facts,
    curves: Vec<Chart>,
    scores: Vec<ScoreInfo>,
    lds: Vec<LdsRow>,
    lds_charts: Vec<Chart>,
    galleries: Vec<Gallery>,
    self_influence: Option<Gallery>,
    self_influence_hint: String,
    groupings: Vec<GroupingInfo>,
    images: bool,
    version: &'static str,
}

/// The run's pieces the sections draw from.
struct Material {
    run: Run,
    dir: PathBuf,
    /// Unstandardised, unscaled splits (the user's values, for pictures).
    raw: data::Splits,
    geometry: Option<ImageGeometry>,
    /// Value range of the raw training features, mapped to black..white.
    range: (f32, f32),
    train_rows: data::SplitRows,
    test_rows: data::SplitRows,
    val_rows: data::SplitRows,
}

impl Material {
    fn load(dir: &Path) -> Result<Material> {
        let run = Run::load(dir)?;
        let mut raw_cfg = run.config.data.clone();
        raw_cfg.standardize = false;
        raw_cfg.scale = None;
        let raw = data::load_splits(&raw_cfg, dir)?;
        let geometry = ImageGeometry::of_shape(&raw.train.example_shape());
        let range = match &raw.train.features {
            Features::Dense { values, .. } => values
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                }),
            Features::Tokens { .. } => (0.0, 1.0),
        };
        let range = (range.0.min(0.0), range.1);
        let train_rows = explain::split_rows(&run, dir, "train")?;
        let test_rows = explain::split_rows(&run, dir, "test")?;
        let val_rows = if raw.val.is_empty() {
            data::SplitRows {
                split: "val".into(),
                rows: Vec::new(),
            }
        } else {
            explain::split_rows(&run, dir, "val")?
        };
        Ok(Material {
            run,
            dir: dir.to_path_buf(),
            raw,
            geometry,
            range,
            train_rows,
            test_rows,
            val_rows,
        })
    }

    fn raw(&self, split: Split) -> &Dataset {
        match split {
            Split::Train => &self.raw.train,
            Split::Test => &self.raw.test,
            Split::Val => &self.raw.val,
        }
    }

    fn rows(&self, split: Split) -> &data::SplitRows {
        match split {
            Split::Train => &self.train_rows,
            Split::Test => &self.test_rows,
            Split::Val => &self.val_rows,
        }
    }

    /// The tile of position `k` of `split`, captioned.
    fn tile(&self, split: Split, k: usize, caption: Vec<String>, flag: Option<String>) -> Tile {
        let ds = self.raw(split);
        let (mut image, mut values) = (None, None);
        if let Features::Dense { values: v, .. } = &ds.features {
            let d = ds.example_len();
            let x = &v[k * d..(k + 1) * d];
            match self.geometry {
                Some(g) => {
                    image = Some(images::data_uri(&images::png(
                        x,
                        g,
                        self.range.0,
                        self.range.1,
                    )))
                }
                None => {
                    let shown: Vec<String> = x.iter().take(6).map(|v| format!("{v:.3}")).collect();
                    let more = if d > 6 { ", ..." } else { "" };
                    values = Some(format!("[{}{more}]", shown.join(", ")));
                }
            }
        }
        Tile {
            image,
            text: explain::example_text(ds, k),
            marked: None,
            values,
            caption,
            flag,
        }
    }
}

fn render(dir: &Path, opts: &ReportOptions) -> Result<String> {
    let m = Material::load(dir)?;
    let config = std::fs::read_to_string(dir.join(run::files::CONFIG)).unwrap_or_default();
    let metrics = read_metrics(&dir.join(run::files::METRICS))?;
    let (score_files, scores) = score_files(&m)?;
    let truths = ground_truths(&m)?;
    let (lds, lds_charts) = lds_section(&scores, &truths)?;
    let mut galleries = Vec::new();
    for (path, s) in scores.iter().filter(|(_, s)| s.meta.split == "test") {
        galleries.extend(target_galleries(&m, path, s, opts)?);
    }
    // Self-influence reads row t at column t: it needs one target per training example.
    let self_influence = scores
        .iter()
        .find(|(_, s)| s.meta.split == "train" && s.meta.output != "token")
        .map(|(p, s)| self_influence(&m, p, s))
        .transpose()?;
    let run = &m.run;
    let last_epoch = metrics.epochs.last();
    let acc = |which: &str| {
        last_epoch
            .and_then(|e| e.get(which))
            .and_then(|t| t.get("accuracy"))
            .and_then(Value::as_f64)
    };
    let facts = Facts {
        dir: dir.display().to_string(),
        hash: run.hash.clone(),
        dataset: run.splits.train.name.clone(),
        train: thousands(run.n_train()),
        test: thousands(run.splits.test.len()),
        shape: format!("{:?}", run.splits.train.example_shape()),
        model: crate::train::kind(&run.config.model),
        parameters: thousands(run.model.layout().total()),
        accuracy: match (acc("train"), acc("test")) {
            (Some(a), Some(b)) => format!("{:.2}% train, {:.2}% test", 100.0 * a, 100.0 * b),
            _ => "-".into(),
        },
        loss: last_epoch
            .and_then(|e| e.get("test"))
            .and_then(|t| t.get("loss"))
            .and_then(Value::as_f64)
            .map_or("-".into(), |l| format!("{l:.4}")),
        config,
    };
    let page = Page {
        title: format!("attrib report: {}", dir.display()),
        run: facts,
        curves: curves(&metrics)?,
        scores: score_files,
        lds,
        lds_charts,
        galleries,
        self_influence,
        self_influence_hint: format!(
            "attrib attribute --run {} --method tracin --split train --targets 0..{}",
            dir.display(),
            run.n_train()
        ),
        groupings: groupings(&m)?,
        images: m.geometry.is_some(),
        version: env!("CARGO_PKG_VERSION"),
    };
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", TEMPLATE)
        .context("the report template does not parse")?;
    let html = env
        .get_template("report.html")
        .and_then(|t| t.render(&page))
        .context("cannot render the report template")?;
    Ok(html)
}

/// The step and epoch lines of `metrics.jsonl`.
struct Metrics {
    steps: Vec<Value>,
    epochs: Vec<Value>,
}

fn read_metrics(path: &Path) -> Result<Metrics> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}; the run has not finished training (`attrib train`)",
            path.display()
        )
    })?;
    let mut m = Metrics {
        steps: Vec::new(),
        epochs: Vec::new(),
    };
    for (k, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not JSON", path.display(), k + 1))?;
        match v.get("type").and_then(Value::as_str) {
            Some("step") => m.steps.push(v),
            Some("epoch") => m.epochs.push(v),
            _ => {}
        }
    }
    Ok(m)
}

fn curves(m: &Metrics) -> Result<Vec<Chart>> {
    let pts = |rows: &[Value], x: &str, y: &dyn Fn(&Value) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| Some((r.get(x)?.as_f64()?, y(r)?)))
            .collect()
    };
    let field = |name: &'static str| move |r: &Value| r.get(name).and_then(Value::as_f64);
    let nested = |split: &'static str, name: &'static str| {
        move |r: &Value| r.get(split)?.get(name)?.as_f64()
    };
    let epoch_no = |rows: &[Value], f: &dyn Fn(&Value) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| Some((r.get("epoch")?.as_f64()? + 1.0, f(r)?)))
            .collect()
    };
    let mut out = Vec::new();
    let loss = vec![Series {
        name: "batch loss".into(),
        points: pts(&m.steps, "step", &field("loss")),
    }];
    out.push(Chart {
        title: "Training loss".into(),
        svg: chart("batch loss per step", "step", "loss", &loss, Style::Lines)?,
    });
    let mut acc = Vec::new();
    for split in ["train", "test"] {
        let p = epoch_no(&m.epochs, &nested(split, "accuracy"));
        if !p.is_empty() {
            acc.push(Series {
                name: split.into(),
                points: p,
            });
        }
    }
    if !acc.is_empty() {
        out.push(Chart {
            title: "Accuracy".into(),
            svg: chart(
                "accuracy per epoch",
                "epoch",
                "accuracy",
                &acc,
                Style::LinesAndDots,
            )?,
        });
    }
    let lr = vec![Series {
        name: "lr".into(),
        points: pts(&m.steps, "step", &field("lr")),
    }];
    out.push(Chart {
        title: "Learning rate".into(),
        svg: chart("learning rate per step", "step", "lr", &lr, Style::Lines)?,
    });
    // Runs written before `grad_norm` was logged have no such field, and no chart.
    let norms = pts(&m.steps, "step", &field("grad_norm"));
    if !norms.is_empty() {
        let median = eval::stats::median(&norms.iter().map(|p| p.1).collect::<Vec<_>>());
        let series = vec![Series {
            name: "gradient norm".into(),
            points: norms,
        }];
        out.push(Chart {
            // The median is where a `train.clip.max_norm` chosen from this run would start
            // acting on half the steps.
            title: format!("Batch gradient norm (median {})", three_digits(median)),
            svg: chart(
                "batch gradient norm per step, before clipping and weight decay",
                "step",
                "norm",
                &series,
                Style::Lines,
            )?,
        });
    }
    Ok(out)
}

/// `x` to three significant digits, in plain notation between 0.001 and 10^6.
fn three_digits(x: f64) -> String {
    if x == 0.0 || !x.is_finite() || !(1e-3..1e6).contains(&x.abs()) {
        return format!("{x:.2e}");
    }
    let decimals = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.decimals$}")
}

/// Score files by file name, opened (their rows are read when a section needs them).
type NamedScores = Vec<(String, ScoreFile)>;

/// Every `RUN/scores/*.npy` (sorted by name), and those that are per-example scores of this run.
fn score_files(m: &Material) -> Result<(Vec<ScoreInfo>, NamedScores)> {
    let dir = m.dir.join(run::files::SCORES);
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "npy"))
            .collect(),
        Err(_) => Vec::new(),
    };
    paths.sort();
    let mut infos = Vec::new();
    let mut usable = Vec::new();
    for p in paths {
        let file = p
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let s = match ScoreFile::open(&p) {
            Ok(s) => s,
            Err(e) => {
                infos.push(ScoreInfo {
                    file,
                    method: "-".into(),
                    options: String::new(),
                    output: "-".into(),
                    split: "-".into(),
                    targets: 0,
                    seconds: "-".into(),
                    note: Some(format!("unreadable: {e}")),
                });
                continue;
            }
        };
        let note = s
            .meta
            .check_run(&m.run, &p)
            .err()
            .map(|e| format!("not shown: {e}"));
        let options: Vec<String> = s
            .meta
            .options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        infos.push(ScoreInfo {
            file: file.clone(),
            method: s.meta.method.clone(),
            options: options.join(" "),
            output: s.meta.output.clone(),
            split: s.meta.split.clone(),
            targets: s.rows(),
            seconds: format!("{:.2}", s.meta.seconds),
            note: note.clone(),
        });
        if note.is_none() {
            usable.push((file, s));
        }
    }
    Ok((infos, usable))
}

/// Complete per-example subset ground truths of this run cached in `RUN/groundtruth/`, sorted by
/// folder name (loaded from the cache only: nothing is retrained), each with its number of
/// averaged trainer seeds (1: the single-model protocol).
fn ground_truths(m: &Material) -> Result<Vec<(GroundTruth, usize)>> {
    let root = m.dir.join(run::files::GROUNDTRUTH);
    let Ok(rd) = std::fs::read_dir(&root) else {
        return Ok(Vec::new());
    };
    let mut dirs: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    let mut out = Vec::new();
    for d in dirs {
        let Ok(text) = std::fs::read_to_string(d.join(MANIFEST)) else {
            continue;
        };
        let Ok(man) = serde_json::from_str::<Manifest>(&text) else {
            continue;
        };
        let (Some(spec), None, true) = (man.spec, &man.groups, man.run_hash == m.run.hash) else {
            continue;
        };
        if man.kind != "subsets" {
            continue;
        }
        let output = parse_output(&man.output).map_err(anyhow::Error::msg)?;
        let Some(split) = Split::from_name(&man.split) else {
            continue;
        };
        // limit 0: what the cache holds, nothing retrained.
        let seeds = man.seeds.unwrap_or(1);
        let retraining = Retraining::new(MaskSource::Subsets(spec), output, split)
            .cache(Some(&d))
            .seeds(seeds)
            .limit(Some(0));
        let gt = run::ground_truth(&m.run, &retraining)?;
        if gt.is_complete() {
            out.push((gt, seeds));
        }
    }
    Ok(out)
}

fn fraction_text(kind: &SubsetKind) -> (String, Option<f64>) {
    match kind {
        SubsetKind::Drop { fraction } => {
            (format!("drop {:.0}%", 100.0 * fraction), Some(*fraction))
        }
        SubsetKind::Keep { fraction } => (format!("keep {:.0}%", 100.0 * fraction), None),
    }
}

fn lds_section(
    scores: &[(String, ScoreFile)],
    truths: &[(GroundTruth, usize)],
) -> Result<(Vec<LdsRow>, Vec<Chart>)> {
    let mut rows = Vec::new();
    let mut by_fraction: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut scatters = Vec::new();
    for (file, s) in scores {
        let mut scatter_done = false;
        for (gt, seeds) in truths {
            if gt.output != s.meta.output || gt.split != s.meta.split {
                continue;
            }
            let Ok(r) = crate::groundtruth::lds_of_file(gt, s, None) else {
                continue;
            };
            let (what, frac) = fraction_text(&gt.spec.kind);
            rows.push(LdsRow {
                file: file.clone(),
                subsets: match seeds {
                    1 => format!("{what}, {} subsets", gt.spec.subsets),
                    k => format!("{what}, {} subsets, mean of {k} seeds", gt.spec.subsets),
                },
                lds: format!("{:.3}", r.lds),
                ci: format!("[{:.3}, {:.3}]", r.ci.0, r.ci.1),
                pearson: format!("{:.3}", r.pearson),
                slope: format!("{:.3}", r.slope),
            });
            // The chart keeps to one protocol: the single-model ground truth.
            if let (Some(f), 1) = (frac, *seeds) {
                by_fraction
                    .entry(file.clone())
                    .or_default()
                    .push((100.0 * f, r.lds));
            }
            if !scatter_done {
                scatter_done = true;
                scatters.push(scatter(file, s, gt, &what)?);
            }
        }
    }
    let mut charts = Vec::new();
    // A line needs two fractions; with one, the table says it all.
    if by_fraction.values().any(|p| p.len() >= 2) {
        let series: Vec<Series> = by_fraction
            .into_iter()
            .map(|(name, mut points)| {
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series { name, points }
            })
            .collect();
        charts.push(Chart {
            title: "LDS against the fraction dropped".into(),
            svg: chart(
                "LDS by drop fraction",
                "% of training set dropped",
                "LDS",
                &series,
                Style::LinesAndDots,
            )?,
        });
    }
    charts.extend(scatters);
    Ok((rows, charts))
}

/// Predicted (`-sum of tau` over the dropped set) against retrained output change, one series per
/// target, for the first [`SCATTER_TARGETS`] rows of `file`.
fn scatter(file: &str, scores: &ScoreFile, gt: &GroundTruth, what: &str) -> Result<Chart> {
    let s = scores.read(0..scores.rows().min(SCATTER_TARGETS))?;
    let mut series = Vec::new();
    for r in 0..s.rows().min(SCATTER_TARGETS) {
        let t = s.meta.targets[r];
        let row = s.row(r);
        let points = (0..gt.masks.len())
            .map(|j| {
                let predicted = -gt.dropped(j).iter().map(|&i| row[i]).sum::<f64>();
                (predicted, gt.outputs[j][t] - gt.full[t])
            })
            .collect();
        series.push(Series {
            name: format!("target {t}"),
            points,
        });
    }
    Ok(Chart {
        title: format!("{file}: predicted vs retrained ({what})"),
        svg: chart(
            &format!("{file}, {what}"),
            &format!("predicted change of the {}", s.meta.output),
            "retrained change",
            &series,
            Style::ScatterWithDiagonal,
        )?,
    })
}

fn target_galleries(
    m: &Material,
    file: &str,
    s: &ScoreFile,
    opts: &ReportOptions,
) -> Result<Vec<Gallery>> {
    let split = Split::Test;
    let output = parse_output(&s.meta.output).map_err(anyhow::Error::msg)?;
    let src = Sources {
        run: &m.run,
        scores: s,
        train_rows: &m.train_rows,
        target_rows: m.rows(split),
    };
    let explained: Vec<Explained> = (0..s.rows().min(opts.galleries))
        .map(|r| explain::explain_row(&src, r, opts.top, output, split))
        .collect::<Result<_>>()?;
    let quiet = Ctx {
        out: crate::output::Output {
            json: false,
            quiet: true,
        },
        threads: 1,
    };
    let verified = explain::verify(&m.run, &explained, output, split, false, &quiet)?;
    let mut out = Vec::new();
    for e in &explained {
        let caption = vec![
            format!("target {} ({})", e.target, describe(&e.source)),
            format!(
                "label {}, predicted {}",
                e.label.as_deref().unwrap_or("-"),
                e.predicted.as_deref().unwrap_or("-")
            ),
            format!("{} {:.3}", e.output, e.value),
        ];
        let side = |list: &[explain::Influencer]| -> Vec<Tile> {
            list.iter()
                .map(|p| {
                    let flag = match (p.label_differs, p.dominant) {
                        (true, _) => Some("label differs".to_string()),
                        (false, true) => Some(format!("{:.0}% of |tau|", 100.0 * p.share)),
                        _ => None,
                    };
                    m.tile(
                        Split::Train,
                        p.position,
                        vec![
                            format!("tau {:+.3e}", p.score),
                            format!("label {}", p.label.as_deref().unwrap_or("-")),
                            describe(&p.source),
                        ],
                        flag,
                    )
                })
                .collect()
        };
        let verify = verified
            .iter()
            .filter(|v| v.target == e.target)
            .map(|v| VerifyRow {
                removed: v.removed.to_string(),
                k: v.dropped.len(),
                predicted: format!("{:+.4}", v.predicted),
                actual: format!("{:+.4}", v.actual),
            })
            .collect();
        out.push(Gallery {
            method: s.meta.method.clone(),
            title: format!("{file}: target {}", e.target),
            target: target_tile(m, split, e, caption),
            proponents: side(&e.proponents),
            opponents: side(&e.opponents),
            verify,
            flags: e.flags.clone(),
        });
    }
    Ok(out)
}

/// The tile of an explained target: its example, and for a per-token target its window with the
/// predicted token marked.
fn target_tile(m: &Material, split: Split, e: &Explained, caption: Vec<String>) -> Tile {
    let ds = m.raw(split);
    match e.position {
        Some(p) => {
            let (example, _) = explain::target_example(ds, nn::Output::Token, e.target);
            Tile {
                text: None,
                marked: explain::token_parts(ds, example, p),
                ..m.tile(split, example, caption, None)
            }
        }
        None => m.tile(split, e.target, caption, None),
    }
}

/// Training targets ranked by their self-influence `tau_ii` (largest first): examples the model
/// needed most to fit themselves, the usual candidates for mislabels.
fn self_influence(m: &Material, file: &str, s: &ScoreFile) -> Result<Gallery> {
    // Row r's diagonal entry alone is kept: the file is read a block of rows at a time.
    let mut ranked: Vec<(usize, f64)> = Vec::with_capacity(s.rows());
    for block in s.blocks() {
        let block = block?;
        ranked.extend((0..block.rows()).map(|r| {
            let t = block.meta.targets[r];
            (t, block.row(r)[t])
        }));
    }
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let labels = |k: usize| match &m.run.splits.train.labels {
        Labels::Classes { y, .. } => y[k].to_string(),
        _ => "-".into(),
    };
    let tiles = ranked
        .iter()
        .take(SELF_INFLUENCE_SHOWN)
        .enumerate()
        .map(|(n, &(t, v))| {
            m.tile(
                Split::Train,
                t,
                vec![
                    format!("#{} self-influence {v:+.3e}", n + 1),
                    format!("label {}", labels(t)),
                    describe(&m.train_rows.rows[t]),
                ],
                None,
            )
        })
        .collect();
    Ok(Gallery {
        method: s.meta.method.clone(),
        title: format!("{file}: {} training targets by self-influence", s.rows()),
        target: Tile {
            image: None,
            text: None,
            marked: None,
            values: None,
            caption: Vec::new(),
            flag: None,
        },
        proponents: tiles,
        opponents: Vec::new(),
        verify: Vec::new(),
        flags: Vec::new(),
    })
}

fn groupings(m: &Material) -> Result<Vec<GroupingInfo>> {
    let dir = m.dir.join(run::files::GROUPS);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let Ok(g) = Grouping::load(&p) else { continue };
        let mut sizes = vec![0usize; g.k];
        for &a in &g.assignment {
            sizes[a] += 1;
        }
        sizes.sort_unstable();
        out.push(GroupingInfo {
            file: p
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            how: g.how.clone(),
            k: g.k,
            sizes: format!(
                "smallest {}, median {}, largest {}",
                sizes.first().unwrap_or(&0),
                sizes.get(sizes.len() / 2).unwrap_or(&0),
                sizes.last().unwrap_or(&0)
            ),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::three_digits;

    #[test]
    fn three_digits_keeps_three_significant_digits() {
        assert_eq!(three_digits(0.624147), "0.624");
        assert_eq!(three_digits(3.714), "3.71");
        assert_eq!(three_digits(12.5), "12.5");
        assert_eq!(three_digits(1234.0), "1234");
        assert_eq!(three_digits(0.00123), "0.00123");
        assert_eq!(three_digits(2.5e-5), "2.50e-5");
    }
}
