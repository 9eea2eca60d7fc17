//! B1 (forward + loss), B2 (one optimizer step), B3 (one sweep), B5 (sweeps per step) and the
//! scaling table of docs/PERFORMANCE.md, each emitted as JSON lines through [`Ctx`].

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use serde_json::{json, Value};
use zo_core::{sweep, Distribution, Key, ParamSet, Term};
use zo_models::opt::Preset;
use zo_models::{OptConfig, OptModel};

use crate::settings::{DTypeSetting, DeviceSetting};

use super::flops::forward_flops;
use super::measure::{time_it, Peaks};
use super::step::{loss, run_steps, Inputs, LossKind, Method};
use super::{load_model, merge, merge_value, Ctx, ModelSpec};

/// GFLOP/s of `flops` done in `seconds`, rounded to 0.1.
pub(super) fn gflops(flops: f64, seconds: f64) -> f64 {
    (flops / seconds / 1e8).round() / 10.0
}

/// B1: forward + loss, for every T and each loss kind.
pub fn b1(ctx: &mut Ctx, model: &OptModel, kinds: &[LossKind]) -> Result<()> {
    // The machine's f32 FMA peak (a probe of the vector units, not of any GEMM), and on the
    // `avx512bf16` kernel its `vdpbf16ps` peak, measured once: each line gives the fraction of
    // the peak of the arithmetic that ran that the forward reached.
    let peaks = Peaks::probe(ctx.isa, None);
    for &t in &ctx.seqs.clone() {
        let inputs = Inputs::random(model, ctx.batch, t, ctx.seed)?;
        let fl = forward_flops(model.config(), ctx.batch, t);
        for &kind in kinds {
            let mut value = f64::NAN;
            let s = time_it(ctx.warmup, ctx.repeats, |_| {
                value = loss(model, &inputs, kind)?;
                Ok(())
            })?;
            // The peer's count for the full LM loss (it runs the lm_head at all B·T positions,
            // zo at the B·(T−1) it reads); for the task loss, what zo computes: the peer's
            // count less the lm_head and the last layer's work at the positions the loss does
            // not read (docs/PERFORMANCE.md B1).
            let computed = fl.at_rows(inputs.logit_rows(kind));
            let counted = match kind {
                LossKind::FullLm => fl.forward_flops,
                LossKind::Task => computed,
            };
            let g = gflops(counted as f64, s.median_s);
            let line = json!({
                "figure": "B1",
                "loss": kind,
                "T": t,
                "tokens_per_s": (fl.tokens as f64 / s.median_s).round(),
                "flops": counted,
                "flops_computed": computed,
                "gflops_per_s": g,
                "loss_value": value,
            });
            ctx.emit(merge(merge_value(line, peaks.fields(g))?, &s)?)?;
        }
    }
    Ok(())
}

/// Times `method`'s steps (see [`run_steps`]) and returns the B2 line and the steady-state
/// sweep count.
pub fn time_steps(
    ctx: &Ctx,
    model: &OptModel,
    inputs: &Inputs,
    method: Method,
    kind: LossKind,
) -> Result<(Value, u32, u64)> {
    let run = run_steps(
        model,
        inputs,
        method,
        kind,
        ctx.seed,
        ctx.warmup,
        ctx.repeats,
    )?;
    let s = &run.summary;
    let last = run.timed().last().context("no timed step")?;
    let fl = forward_flops(model.config(), inputs.batch, inputs.seq);
    let sweeps = run.sweeps_median();
    let line = json!({
        "figure": "B2",
        "method": method,
        "loss": kind,
        "T": inputs.seq,
        "sweeps_per_step": sweeps,
        "sweeps_per_step_all": run.records.iter().map(|r| r.sweeps).collect::<Vec<_>>(),
        "queries_per_step": last.queries,
        "tokens_per_s": (2.0 * fl.tokens as f64 / s.median_s).round(),
        "loss_value": last.loss,
        "timer": "zo_core::Trainer StepRecord.ms",
    });
    Ok((merge(line, s)?, sweeps, last.queries))
}

/// B2 (and B5 from the same steps): one GA step and one AS2P step for every T and loss kind.
pub fn b2(ctx: &mut Ctx, model: &OptModel, kinds: &[LossKind], emit_b5: bool) -> Result<()> {
    let mut b5 = Vec::new();
    for &t in &ctx.seqs.clone() {
        let inputs = Inputs::random(model, ctx.batch, t, ctx.seed)?;
        for &kind in kinds {
            for method in [Method::Ga, Method::As2p] {
                let (line, sweeps, queries) = time_steps(ctx, model, &inputs, method, kind)?;
                ctx.emit(line)?;
                if !b5.iter().any(|(m, _, _)| *m == method) {
                    b5.push((method, sweeps, queries));
                }
            }
        }
    }
    if emit_b5 {
        for (method, sweeps, queries) in b5 {
            ctx.emit(b5_line(method, sweeps, queries))?;
        }
    }
    Ok(())
}

fn b5_line(method: Method, sweeps: u32, queries: u64) -> Value {
    json!({
        "figure": "B5",
        "method": method,
        "sweeps_per_step": sweeps,
        "queries_per_step": queries,
        "mezo_sweeps_per_step": 4,
        "source": "zo_core StepRecord.sweeps, steady state (median over the timed steps)",
    })
}

/// B5 alone: a few steps of each method through the trainer (task loss, the cheap one), their
/// steady-state sweep count.
pub fn b5(ctx: &mut Ctx, model: &OptModel) -> Result<()> {
    let t = ctx.seqs[0];
    let inputs = Inputs::random(model, ctx.batch, t, ctx.seed)?;
    for method in [Method::Ga, Method::As2p] {
        let run = run_steps(model, &inputs, method, LossKind::Task, ctx.seed, 1, 1)?;
        let queries = run.timed().last().map_or(0, |r| r.queries);
        ctx.emit(b5_line(method, run.sweeps_median(), queries))?;
    }
    Ok(())
}

/// B3: one sweep over every parameter, with one term (a probe) and with two (restore + move
/// fused with the next probe). The sign alternates so the weights come back after each pair.
pub fn b3(ctx: &mut Ctx, model: &OptModel) -> Result<()> {
    b3_on(ctx, model.params(), &Device::Cpu, json!({}))
}

/// B3 over zero weights with `spec`'s parameter shapes, allocated on `device` in `dtype`: the
/// sweep on a GPU, in bf16/f16, or over the opt-1.3b … opt-13b shapes (no model is built).
pub fn b3_shapes(
    ctx: &mut Ctx,
    spec: &ModelSpec,
    device: DeviceSetting,
    dtype: DTypeSetting,
) -> Result<()> {
    let cfg = match spec {
        ModelSpec::Tiny => OptConfig::preset(Preset::Tiny),
        ModelSpec::Opt125m => OptConfig::preset(Preset::Opt125m),
        ModelSpec::Opt350m => OptConfig::preset(Preset::Opt350m),
        ModelSpec::Shapes(s) => s.config(),
        ModelSpec::Dir(d) => OptConfig::from_file(&d.join("config.json"))?,
    };
    let shapes = cfg.expected_params();
    let dt = dtype.candle();
    let dname = format!("{dtype:?}").to_lowercase();
    let bytes: usize = shapes
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() * dt.size_in_bytes())
        .sum();
    let dev = device
        .open()
        .with_context(|| format!("--device {device}"))?;
    if dev.is_cpu() {
        if let Some(avail) = mem_available() {
            anyhow::ensure!(
                bytes < avail,
                "--model {}: its {dname} weights take {:.1} GiB, more than the {:.1} GiB of \
                 memory available",
                spec.name(),
                bytes as f64 / (1u64 << 30) as f64,
                avail as f64 / (1u64 << 30) as f64
            );
        }
    }
    let tensors = shapes
        .into_iter()
        .map(|(name, shape)| Ok((name, Tensor::zeros(shape, dt, &dev)?)))
        .collect::<Result<Vec<_>>>()
        .with_context(|| {
            format!(
                "allocating {:.1} GiB of {dname} weights on {device}",
                bytes as f64 / (1u64 << 30) as f64
            )
        })?;
    let params = ParamSet::new(tensors)?;
    let native = zo_core::perturb::native_on(&dev);
    let extra = json!({
        "device": device.to_string(),
        "dtype": dname,
        "native": native,
        "weights": "zeros (the shapes of the model; a sweep's time does not depend on the values)",
    });
    b3_on(ctx, &params, &dev, extra)
}

/// MemAvailable of /proc/meminfo, in bytes (None where it cannot be read).
fn mem_available() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The B3 lines of `params` on `dev` (each timed sweep ends with a synchronize of `dev`, so a
/// GPU's queued work is inside the time), with the fields of `extra`.
fn b3_on(ctx: &mut Ctx, params: &ParamSet, dev: &Device, extra: Value) -> Result<()> {
    let n = params.numel();
    let bytes = params.size_in_bytes() as f64 * 2.0; // read + write
    for terms in [1usize, 2] {
        let s = time_it(ctx.warmup.max(1), ctx.repeats, |i| {
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            let ts: Vec<Term> = (0..terms)
                .map(|j| Term::new(Key::new(ctx.seed, 777 + j as u64), sign * 1e-3))
                .collect();
            sweep(params, &ts, Distribution::Normal)?;
            Ok(dev.synchronize()?)
        })?;
        let line = json!({
            "figure": "B3",
            "terms": terms,
            "params": n,
            "median_ms": s.median_s * 1e3,
            "gb_per_s": (bytes / s.median_s / 1e8).round() / 10.0,
            "bytes": bytes,
        });
        ctx.emit(merge_value(merge(line, &s)?, extra.clone())?)?;
    }
    Ok(())
}

/// The scaling table: GA step time (full LM loss) for tiny / 125m / 350m shapes at every T.
/// 350m keeps at most 2 repeats and 1 warm-up (≈ 30 s a step at T = 256 on 2 cores).
pub fn scaling(ctx: &mut Ctx) -> Result<()> {
    let seqs = ctx.seqs.clone();
    let (repeats, warmup) = (ctx.repeats, ctx.warmup);
    for spec in [ModelSpec::Tiny, ModelSpec::Opt125m, ModelSpec::Opt350m] {
        let model = load_model(&spec, ctx.seed, candle_core::DType::F32)?;
        if spec == ModelSpec::Opt350m {
            ctx.repeats = repeats.min(2);
            ctx.warmup = warmup.min(1);
        }
        for &t in &seqs {
            let inputs = Inputs::random(&model, ctx.batch, t, ctx.seed)?;
            let (mut line, _, _) = time_steps(ctx, &model, &inputs, Method::Ga, LossKind::FullLm)?;
            let fl = forward_flops(model.config(), ctx.batch, t);
            let median = line["median_s"].as_f64().unwrap_or(f64::NAN);
            let obj = line.as_object_mut().expect("time_steps returns an object");
            obj.insert("figure".into(), json!("scaling"));
            obj.insert("model".into(), json!(spec.name()));
            obj.insert("params".into(), json!(model.params().numel()));
            obj.insert(
                "step_gflops_per_s".into(),
                json!(gflops(2.0 * fl.forward_flops as f64, median)),
            );
            ctx.emit(line)?;
        }
        ctx.repeats = repeats;
        ctx.warmup = warmup;
    }
    Ok(())
}
