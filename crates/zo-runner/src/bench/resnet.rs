//! `zo bench --model resnet18|…`: the ResNet × CIFAR figures (the paper's Table 5 shapes:
//! B images of 32×32, CIFAR stem, random weights from the seed, f32 on the CPU), side by side
//! with docs/peer/resnet_torch_bench.py.
//!
//! - `B1`: forward + mean cross-entropy of the batch (one `ResNet::classify`, what a training
//!   step's loss evaluation is), per head (`--classes`, default 10 and 100).
//! - `B2`: one GA step and one AS2P step through zo-core's trainer (two forwards and the
//!   sweeps), as for OPT.
//!
//! Each line carries the forward's FLOPs (convolutions and fc, the peer's count), GFLOP/s and
//! the fraction of the f32 FMA peak of the threads used: `--fma-peak`, or else
//! [`fma_peak_gflops`] measured at the start of the run.

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use serde_json::json;
use zo_models::resnet::{ResNet, ResNetPreset};

use super::figures::gflops;
use super::measure::{time_it, Peaks};
use super::step::{run_steps_on, Method};
use super::{merge, merge_value, Ctx, Figure};

/// CIFAR's image side.
const SIDE: usize = 32;

/// The built-in ResNet a `--model` value names, if it names one.
pub fn preset(model: &str) -> Option<ResNetPreset> {
    model.parse().ok()
}

/// A fixed batch: pixel values uniform in [−2, 2) (the range of normalised CIFAR images) and
/// labels uniform in `[0, classes)`, from SplitMix64 on `seed`.
fn inputs(batch: usize, classes: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut state = seed ^ 0x00C1_FA80_0000;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let images = (0..batch * 3 * SIDE * SIDE)
        .map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0)
        .collect();
    let labels = (0..batch)
        .map(|_| (next() % classes as u64) as u32)
        .collect();
    (images, labels)
}

/// Mean cross-entropy of the batch (one forward).
fn loss(model: &ResNet, images: &[f32], labels: &[u32]) -> Result<f64> {
    let s = model.classify(images, labels).context("forward + loss")?;
    Ok(s.iter().map(|(l, _)| l).sum::<f64>() / s.len() as f64)
}

/// The ResNet figures of `figure` (`b1`, `b2` or `all`) for every head in `classes`;
/// `fma_peak` (GFLOP/s) replaces the measured peak.
pub fn run(
    ctx: &mut Ctx,
    preset: ResNetPreset,
    figure: Figure,
    classes: &[usize],
    fma_peak: Option<f64>,
    compute: zo_models::sgemm::Compute,
) -> Result<()> {
    let (b1, b2) = match figure {
        Figure::B1 => (true, false),
        Figure::B2 => (false, true),
        Figure::All => (true, true),
        other => anyhow::bail!(
            "--figure {other:?}: a ResNet has the figures b1 (forward), b2 (steps) and all"
        ),
    };
    // `check_args` refuses both for the command line; this function's own callers too.
    anyhow::ensure!(
        classes.iter().all(|&c| c >= 2),
        "--classes values must be at least 2"
    );
    let source = if fma_peak.is_some() {
        "given"
    } else {
        "measured"
    };
    let peaks = Peaks::probe(ctx.isa, fma_peak);
    for &c in classes {
        let mut model = ResNet::preset(preset, c, ctx.seed, DType::F32, &Device::Cpu)?;
        model.set_compute(compute);
        let flops = model.config().forward_flops(ctx.batch, SIDE, SIDE);
        let (images, labels) = inputs(ctx.batch, c, ctx.seed);
        // GFLOP/s of one forward taking `seconds`, with the peaks' fields.
        let rates = |seconds: f64| {
            let g = gflops(flops as f64, seconds);
            (g, peaks.fields(g))
        };
        if b1 {
            let mut value = f64::NAN;
            let s = time_it(ctx.warmup, ctx.repeats, |_| {
                value = loss(&model, &images, &labels)?;
                Ok(())
            })?;
            let (g, peak_fields) = rates(s.median_s);
            let line = json!({
                "figure": "B1",
                "classes": c,
                "H": SIDE,
                "W": SIDE,
                "stem": "cifar",
                "flops": flops,
                "gflops_per_s": g,
                "fma_peak_source": source,
                "loss_value": value,
            });
            ctx.emit(merge(merge_value(line, peak_fields)?, &s)?)?;
        }
        if b2 {
            for method in [Method::Ga, Method::As2p] {
                let run = run_steps_on(
                    model.params(),
                    || loss(&model, &images, &labels),
                    method,
                    ctx.seed,
                    ctx.warmup,
                    ctx.repeats,
                )?;
                let s = &run.summary;
                let last = run.timed().last().context("no timed step")?;
                // Two forwards per step; the sweeps are not counted as FLOPs.
                let (g, peak_fields) = rates(s.median_s / 2.0);
                let line = json!({
                    "figure": "B2",
                    "method": method,
                    "classes": c,
                    "H": SIDE,
                    "W": SIDE,
                    "stem": "cifar",
                    "flops": 2 * flops,
                    "gflops_per_s": g,
                    "fma_peak_source": source,
                    "sweeps_per_step": run.sweeps_median(),
                    "queries_per_step": last.queries,
                    "loss_value": last.loss,
                    "timer": "zo_core::Trainer StepRecord.ms",
                });
                ctx.emit(merge(merge_value(line, peak_fields)?, s)?)?;
            }
        }
    }
    Ok(())
}
