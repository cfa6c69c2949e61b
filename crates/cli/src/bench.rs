//! `attrib bench train [--quick]`: training throughput next to this machine's GEMM speed, both
//! measured in the same run.
//!
//! ## What is measured
//!
//! - **GEMM**: `engine::kernels::matmul(&a, &b, false, false)` in f32 on `256x256 @ 256x256`,
//!   `256x512 @ 512x512` (the shape of a hidden layer of workload (b)) and `1024x1024 @ 1024x1024`;
//!   `2 m k n` FLOPs a call.
//! - **Workloads**, f32, `drop_last` so that every batch is full:
//!   (a) the digits MLP of `examples/digits_mlp.toml` (64-128-128-10, batch 64);
//!   (b) an MLP 512-512-512-512-512-10 (input 512, four hidden layers of 512, 10 classes) on 4,096
//!   synthetic Gaussian examples with random labels, batch 256, SGD with momentum;
//!   (c) an MLP 64-512-512-10 built the same way (4,096 examples of 64), batch 256;
//!   (d) the residual CNN of `examples/digits_cnn.toml` (digits as 1x8x8 images, stages of 16 and
//!   32 channels, each a conv and a residual block of two convs, 3x3 convolutions, group norm of 4
//!   groups, GELU, 2x2 average pooling between stages, global average pooling, linear head; AdamW,
//!   batch 64);
//!   (e) a CNN of the same kind on 28x28 single-channel inputs (MNIST's shape): 2,048 synthetic
//!   Gaussian images with random labels, stages of 16 and 32 channels without residual blocks, the
//!   rest as (d).
//!   (f) the GPT of `examples/moby_gpt.toml` (2 layers of width 64, 4 heads, windows of 64
//!   characters, bergson's AdamW recipe, batch 32) on 2,048 windows of synthetic tokens drawn
//!   from the novel's 81 characters.
//!   `scripts/bench_vs_torch.sh` times the same six in PyTorch.
//! - **Modes**: `step` times `Trainer::step` (batch gather, forward, backward, optimizer update);
//!   `gradient` times `Trainer::gradient` alone at fixed parameters.
//! - **FLOPs of a step**: `6 * batch * sum over layers of in * out` (per multiply-add, 2 in the
//!   forward pass and 4 in the backward pass); a convolution counts `in * out` once per output
//!   position (`in` = input channels x 3 x 3), a GPT's linear layers once per input token;
//!   attention scores, activations, norms, pooling, losses and updates are not counted.
//! - Each measurement runs in a local rayon pool of 1 thread, then of all threads (`--threads` or
//!   every core), after a warm-up, and repeats until its time budget (2 s, 0.25 s with `--quick`)
//!   is spent; figures are means over that window.
//! - **ratio** = training GFLOP/s / GEMM peak at the same thread count, the peak being the best of
//!   the GEMM shapes above: the fraction of the machine's matrix-multiply speed that training
//!   achieves. (Training can exceed the panelled `256x512 @ 512x512` figure: its products have
//!   other shapes and transpositions.)

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use data::{DataConfig, Dataset, Features, Labels, Source};
use engine::{Rng, Tensor};
use nn::optim::Sgd;
use nn::{
    Activation, Model, ModelConfig, OptimConfig, RunConfig, ScheduleConfig, TrainConfig, Trainer,
};

use crate::args::BenchTrainArgs;
use crate::output::{thousands, BenchTrainRecord, Event, GemmRecord};
use crate::Ctx;

/// GEMM shapes `(m, k, n)`; the best of them at a thread count is the peak of the ratio.
const GEMMS: [(usize, usize, usize); 3] = [(256, 256, 256), (256, 512, 512), (1024, 1024, 1024)];

/// A model, its data and its training config.
struct Workload {
    name: String,
    cfg: RunConfig,
    model: Model,
    data: Dataset,
    /// Multiply-adds of one example's forward pass through the linear and convolution layers.
    macs: usize,
}

impl Workload {
    fn new(name: &str, cfg: RunConfig, data: Dataset) -> Result<Workload> {
        cfg.validate()?;
        let model = Model::new(&cfg.model, &data)?;
        if matches!(cfg.model, ModelConfig::Cnn { .. }) {
            let macs = cnn_macs(
                &cfg.model,
                &data.example_shape(),
                data.num_classes().unwrap_or(1),
            );
            return Ok(Workload {
                name: name.to_string(),
                cfg,
                model,
                data,
                macs,
            });
        }
        // A GPT applies its linear layers to every input token of a window.
        let positions = match &data.features {
            Features::Tokens { seq_len, .. } => seq_len.saturating_sub(1),
            _ => 1,
        };
        let macs = positions
            * model
                .layout()
                .specs()
                .iter()
                .filter(|s| s.name.ends_with(".weight") && s.shape.len() == 2)
                .map(|s| s.shape[0] * s.shape[1])
                .sum::<usize>();
        Ok(Workload {
            name: name.to_string(),
            cfg,
            model,
            data,
            macs,
        })
    }

    fn batch(&self) -> usize {
        self.cfg.train.batch_size
    }

    /// FLOPs of one training step (forward and backward).
    fn flops_per_step(&self) -> f64 {
        6.0 * self.batch() as f64 * self.macs as f64
    }
}

/// (a): the demo recipe with a long plan and full batches.
fn digits_mlp() -> Result<Workload> {
    let mut cfg = RunConfig::from_toml_str(
        crate::demo::RECIPE,
        std::path::Path::new(crate::demo::RECIPE_NAME),
    )?;
    cfg.train.epochs = 50;
    cfg.train.drop_last = true;
    let splits = data::load_splits(&cfg.data, std::path::Path::new("."))?;
    Workload::new("digits MLP 64-128-128-10", cfg, splits.train)
}

/// (b): a wide MLP on synthetic data, built in code.
fn wide_mlp() -> Result<Workload> {
    synthetic_mlp("MLP 512-512-512-512 synthetic", 512, vec![512; 4])
}

/// (c): the wide MLP's recipe on 64 inputs and two hidden layers of 512.
fn mlp_64_512() -> Result<Workload> {
    synthetic_mlp("MLP 64-512-512-10 synthetic", 64, vec![512; 2])
}

/// The recipe of `examples/digits_cnn.toml`, compiled in.
const DIGITS_CNN: &str = include_str!("../../../examples/digits_cnn.toml");

/// (d): the residual digits CNN of `examples/digits_cnn.toml` with full batches.
fn digits_cnn() -> Result<Workload> {
    let mut cfg = RunConfig::from_toml_str(
        DIGITS_CNN,
        std::path::Path::new("examples/digits_cnn.toml (compiled in)"),
    )?;
    cfg.train.drop_last = true;
    let splits = data::load_splits(&cfg.data, std::path::Path::new("."))?;
    Workload::new("digits CNN 16-32 residual", cfg, splits.train)
}

/// (e): the digits CNN's recipe without residual blocks on 2,048 synthetic 1x28x28 images (the
/// shape of MNIST) with random labels.
fn cnn_28() -> Result<Workload> {
    let (n, k, shape) = (2048, 10, vec![1, 28, 28]);
    let mut cfg = RunConfig::from_toml_str(
        DIGITS_CNN,
        std::path::Path::new("examples/digits_cnn.toml (compiled in)"),
    )?;
    if let ModelConfig::Cnn { residual, .. } = &mut cfg.model {
        *residual = false;
    }
    cfg.train.drop_last = true;
    let mut rng = Rng::new(11);
    let values: Vec<f32> = (0..n * 28 * 28).map(|_| rng.normal() as f32).collect();
    let y: Vec<u32> = (0..n).map(|_| rng.below(k as u64) as u32).collect();
    let data = Dataset {
        name: "synthetic".into(),
        features: Features::Dense { values, shape },
        labels: Labels::Classes {
            y,
            num_classes: k,
            class_names: None,
        },
        feature_names: None,
    };
    data.validate()?;
    Workload::new("CNN 28x28 16-32 synthetic", cfg, data)
}

/// The recipe of `examples/moby_gpt.toml`, compiled in.
const MOBY_GPT: &str = include_str!("../../../examples/moby_gpt.toml");

/// (f): the Moby-Dick GPT's recipe on 2,048 windows of 64 synthetic tokens over its vocabulary of
/// 81 characters (the text itself lives outside the repository).
fn moby_gpt() -> Result<Workload> {
    let (n, vocab, seq_len) = (2048, 81, 64);
    let mut cfg = RunConfig::from_toml_str(
        MOBY_GPT,
        std::path::Path::new("examples/moby_gpt.toml (compiled in)"),
    )?;
    cfg.train.drop_last = true;
    let mut rng = Rng::new(13);
    let ids: Vec<u32> = (0..n * seq_len)
        .map(|_| rng.below(vocab as u64) as u32)
        .collect();
    let data = Dataset {
        name: "synthetic".into(),
        features: Features::Tokens {
            ids,
            seq_len,
            vocab,
        },
        labels: Labels::None,
        feature_names: None,
    };
    data.validate()?;
    Workload::new("Moby-Dick GPT 2x64 synthetic", cfg, data)
}

/// Multiply-adds of one example's forward pass through a CNN's convolutions and head: each
/// convolution does `cin * k * k * cout` per output position; stages follow `nn`'s CNN (2x2
/// pooling after every stage but the last while the side is even).
fn cnn_macs(model: &ModelConfig, shape: &[usize], classes: usize) -> usize {
    let ModelConfig::Cnn {
        channels,
        kernel,
        residual,
        ..
    } = model
    else {
        unreachable!("cnn_macs is called for cnn configs")
    };
    let (mut cin, mut h, mut w) = (shape[0], shape[1], shape[2]);
    let mut macs = 0;
    for (i, &c) in channels.iter().enumerate() {
        let convs = if *residual { 3 } else { 1 };
        macs += h * w * kernel * kernel * (cin * c + (convs - 1) * c * c);
        if i + 1 < channels.len() && h >= 2 && h % 2 == 0 && w % 2 == 0 {
            (h, w) = (h / 2, w / 2);
        }
        cin = c;
    }
    macs + cin * classes
}

/// An MLP `d`-`hidden`-10 (GELU) on 4,096 synthetic Gaussian examples with random labels, batch
/// 256, 20 epochs of SGD with momentum 0.9 at lr 0.01.
fn synthetic_mlp(name: &str, d: usize, hidden: Vec<usize>) -> Result<Workload> {
    let (n, k) = (4096, 10);
    let mut rng = Rng::new(7);
    let values: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
    let y: Vec<u32> = (0..n).map(|_| rng.below(k as u64) as u32).collect();
    let data = Dataset {
        name: "synthetic".into(),
        features: Features::Dense {
            values,
            shape: vec![d],
        },
        labels: Labels::Classes {
            y,
            num_classes: k,
            class_names: None,
        },
        feature_names: None,
    };
    data.validate()?;
    let cfg = RunConfig {
        data: DataConfig::new(Source::Digits), // not read: the dataset above is built in code
        model: ModelConfig::Mlp {
            hidden,
            activation: Activation::Gelu,
            output_scale: 1.0,
        },
        optim: OptimConfig::Sgd(Sgd {
            lr: 0.01,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        }),
        schedule: ScheduleConfig::Constant,
        train: TrainConfig {
            epochs: 20,
            batch_size: 256,
            drop_last: true,
            ..TrainConfig::default()
        },
    };
    Workload::new(name, cfg, data)
}

/// Calls `f` `warmup` times, then until `budget` is spent (at least 3 times); returns
/// `(calls, seconds)` of the timed part.
fn time(
    warmup: usize,
    budget: Duration,
    mut f: impl FnMut() -> Result<()>,
) -> Result<(usize, f64)> {
    for _ in 0..warmup {
        f()?;
    }
    let t0 = Instant::now();
    let mut calls = 0;
    while calls < 3 || t0.elapsed() < budget {
        f()?;
        calls += 1;
    }
    Ok((calls, t0.elapsed().as_secs_f64()))
}

fn gemm(m: usize, k: usize, n: usize, warmup: usize, budget: Duration) -> Result<(usize, f64)> {
    let mut rng = Rng::new(1);
    let mut random = |len: usize| {
        (0..len)
            .map(|_| rng.uniform_in(-1.0, 1.0) as f32)
            .collect::<Vec<f32>>()
    };
    let a = Tensor::from_vec(random(m * k), &[m, k]);
    let b = Tensor::from_vec(random(k * n), &[k, n]);
    time(warmup, budget, || {
        black_box(engine::kernels::matmul(
            black_box(&a),
            black_box(&b),
            false,
            false,
        ));
        Ok(())
    })
}

#[derive(Clone, Copy)]
enum Mode {
    Step,
    Gradient,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Step => "step",
            Mode::Gradient => "gradient",
        }
    }
}

fn train_steps(w: &Workload, mode: Mode, warmup: usize, budget: Duration) -> Result<(usize, f64)> {
    let trainer = Trainer::<f32>::new(&w.model, &w.cfg, &w.data)?;
    let init = trainer.init_state(None)?;
    let steps = trainer.steps();
    match mode {
        Mode::Step => {
            let mut state = init.clone();
            time(warmup, budget, || {
                if state.opt.step >= steps {
                    state = init.clone();
                }
                trainer.step(&mut state)?;
                Ok(())
            })
        }
        Mode::Gradient => {
            let mut t = 0;
            time(warmup, budget, || {
                black_box(trainer.gradient(&init.params, t % steps));
                t += 1;
                Ok(())
            })
        }
    }
}

fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .with_context(|| format!("cannot start a pool of {threads} threads"))
}

/// Runs the command.
///
/// # Errors
/// Thread-pool creation failures and (never expected) training errors.
pub fn run(args: &BenchTrainArgs, ctx: &Ctx) -> Result<()> {
    let out = &ctx.out;
    let (budget, warmup) = if args.quick {
        (Duration::from_millis(250), 2)
    } else {
        (Duration::from_secs(2), 10)
    };
    let mut counts = vec![1];
    if ctx.threads > 1 {
        counts.push(ctx.threads);
    }
    if cfg!(debug_assertions) {
        out.info("warning: this is a debug build; timings are meaningless without --release")?;
    }
    out.result(format!(
        "attrib bench train: f32, threads {:?}, {:.2} s per measurement after warm-up",
        counts,
        budget.as_secs_f64()
    ))?;
    out.result("")?;
    out.result(format!(
        "{:<34} {:>7} {:>10} {:>9}",
        "GEMM engine::kernels::matmul", "threads", "ms/call", "GFLOP/s"
    ))?;
    let mut peak = vec![0.0f64; counts.len()]; // best GEMM GFLOP/s per thread count
    for &(m, k, n) in &GEMMS {
        for (ti, &threads) in counts.iter().enumerate() {
            let (calls, seconds) =
                pool(threads)?.install(|| gemm(m, k, n, warmup.min(3), budget))?;
            let gflops = 2.0 * (m * k * n) as f64 * calls as f64 / seconds / 1e9;
            peak[ti] = peak[ti].max(gflops);
            out.event(&Event::Gemm(&GemmRecord {
                m,
                k,
                n,
                threads,
                calls,
                seconds,
                gflops,
            }))?;
            out.result(format!(
                "{:<34} {threads:>7} {:>10.3} {gflops:>9.1}",
                format!("{m}x{k} @ {k}x{n}"),
                1e3 * seconds / calls as f64
            ))?;
        }
    }
    out.result("")?;
    out.result(format!(
        "{:<30} {:<8} {:>7} {:>5} {:>11} {:>9} {:>12} {:>6}",
        "workload", "mode", "threads", "batch", "examples/s", "GFLOP/s", "GEMM peak", "ratio"
    ))?;
    let all: [fn() -> Result<Workload>; 6] = [
        digits_mlp, wide_mlp, mlp_64_512, digits_cnn, cnn_28, moby_gpt,
    ];
    for make in all {
        let w = make()?;
        if args
            .workload
            .as_deref()
            .is_some_and(|part| !w.name.contains(part))
        {
            continue;
        }
        for mode in [Mode::Step, Mode::Gradient] {
            for (ti, &threads) in counts.iter().enumerate() {
                let (iterations, seconds) =
                    pool(threads)?.install(|| train_steps(&w, mode, warmup, budget))?;
                let per_second = iterations as f64 / seconds;
                let gflops = w.flops_per_step() * per_second / 1e9;
                let rec = BenchTrainRecord {
                    workload: w.name.clone(),
                    mode: mode.name(),
                    threads,
                    batch: w.batch(),
                    iterations,
                    seconds,
                    examples_per_second: per_second * w.batch() as f64,
                    gflops,
                    gemm_gflops: peak[ti],
                    ratio: gflops / peak[ti],
                };
                out.event(&Event::BenchTrain(&rec))?;
                out.result(format!(
                    "{:<30} {:<8} {threads:>7} {:>5} {:>11} {gflops:>9.2} {:>12.1} {:>6.3}",
                    rec.workload,
                    rec.mode,
                    rec.batch,
                    thousands(rec.examples_per_second.round() as usize),
                    rec.gemm_gflops,
                    rec.ratio
                ))?;
            }
        }
    }
    out.info("")?;
    out.info(
        "FLOPs of a step = 6 x batch x sum of layer in*out (forward 2, backward 4 per multiply-add); \
         ratio = training GFLOP/s / best GEMM GFLOP/s at the same thread count.",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_counts_follow_the_layers() {
        let a = digits_mlp().unwrap();
        assert_eq!(a.macs, 64 * 128 + 128 * 128 + 128 * 10);
        assert_eq!(a.flops_per_step(), 6.0 * 64.0 * a.macs as f64);
        let b = wide_mlp().unwrap();
        assert_eq!(b.macs, 4 * 512 * 512 + 512 * 10);
        assert_eq!(b.data.len(), 4096);
        let c = mlp_64_512().unwrap();
        assert_eq!(c.macs, 64 * 512 + 512 * 512 + 512 * 10);
        assert_eq!(c.batch(), 256);
        // (d) 8x8: conv 1->16 and two 16->16, pool to 4x4, conv 16->32 and two 32->32, head.
        let d = digits_cnn().unwrap();
        let (s1, s2) = (
            64 * 9 * (16 + 2 * 16 * 16),
            16 * 9 * (16 * 32 + 2 * 32 * 32),
        );
        assert_eq!(d.macs, s1 + s2 + 32 * 10);
        assert_eq!(d.batch(), 64);
        // (e) 28x28: conv 1->16, pool to 14x14, conv 16->32, head.
        let e = cnn_28().unwrap();
        assert_eq!(e.macs, 784 * 9 * 16 + 196 * 9 * 16 * 32 + 32 * 10);
        assert_eq!(e.data.example_shape(), vec![1, 28, 28]);
        // (f) per input token and layer: qkv 64x192, out 64x64, fc 64x256, proj 256x64; head.
        let f = moby_gpt().unwrap();
        let per_layer = 64 * 192 + 64 * 64 + 64 * 256 + 256 * 64;
        assert_eq!(f.macs, 63 * (2 * per_layer + 81 * 64));
        assert_eq!(f.batch(), 32);
    }

    #[test]
    fn timing_respects_minimum_calls() {
        let mut n = 0;
        let (calls, _) = time(2, Duration::ZERO, || {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((calls, n), (3, 5));
    }
}
