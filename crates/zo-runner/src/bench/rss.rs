//! B4: the peak resident set of a process doing B2 (GA steps), measured, not estimated.
//!
//! The parent re-runs this very binary (`std::env::current_exe()`) as
//! `zo bench --figure b2 --child …`, so the figure is the peak of a fresh process that did
//! nothing but load the model and step (the peer runs each mode in its own process for the same
//! reason: `ru_maxrss` is a process-lifetime maximum). The child reads its own `VmHWM` from
//! `/proc/self/status` (the kernel's peak-RSS counter, what `getrusage` reports as `ru_maxrss`)
//! after building the model, resets it (`/proc/self/clear_refs` ← 5), steps, reads it again, and
//! prints one JSON line that the parent turns into the B4 line. No libc dependency needed.

use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::measure::{reset_peak_rss, self_rss_kib};
use super::step::{run_steps, Inputs, LossKind, Method};
use super::{load_model, BenchArgs, Ctx};

/// What the child reports (KiB).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChildReport {
    pub figure: String,
    pub loss: LossKind,
    pub rss_start_kib: u64,
    pub rss_after_build_kib: u64,
    pub peak_build_kib: u64,
    /// Peak while stepping (since the reset after the build); None if the reset failed.
    pub peak_step_kib: Option<u64>,
    /// Peak over the process's whole life.
    pub peak_kib: u64,
    pub steps: usize,
    pub step_median_s: f64,
    /// The products' kernel the child's steps ran on ([`super::kernel_name`]) and its
    /// instruction-set level: the parent's own, or the B4 line would not describe it.
    pub kernel: String,
    pub isa: String,
}

/// The child's side: load, step, report. Printed as one JSON line on stdout.
pub fn child(args: &BenchArgs, kind: LossKind) -> Result<()> {
    let (_, rss_start) = self_rss_kib().context("reading /proc/self/status")?;
    let mut model = super::with_lora(
        load_model(&args.model.parse()?, args.seed, candle_core::DType::F32)?,
        args,
    )?;
    model.set_compute(args.compute.kernel());
    let t = args.seq.first().copied().unwrap_or(64);
    let inputs = Inputs::random(&model, args.batch.unwrap_or(16), t, args.seed)?;
    let (peak_build, rss_after_build) = self_rss_kib().context("reading /proc/self/status")?;
    let reset = reset_peak_rss();
    let run = run_steps(
        &model,
        &inputs,
        Method::Ga,
        kind,
        args.seed,
        args.warmup,
        args.repeats,
    )?;
    let (peak_now, _) = self_rss_kib().context("reading /proc/self/status")?;
    let steps = run.records.len() + 1;
    let report = ChildReport {
        figure: "B4-child".into(),
        loss: kind,
        rss_start_kib: rss_start,
        rss_after_build_kib: rss_after_build,
        peak_build_kib: peak_build,
        peak_step_kib: reset.then_some(peak_now),
        peak_kib: peak_build.max(peak_now),
        steps,
        step_median_s: run.summary.median_s,
        kernel: super::kernel_name(super::products_isa(args)),
        isa: zo_core::cpu::level().name().into(),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Finds the child's report among its stdout lines.
pub fn parse_child(stdout: &str) -> Result<ChildReport> {
    for line in stdout.lines().rev() {
        if let Ok(r) = serde_json::from_str::<ChildReport>(line) {
            if r.figure == "B4-child" {
                return Ok(r);
            }
        }
    }
    bail!("the B4 child printed no report; its stdout was: {stdout:?}")
}

fn gib(kib: u64) -> f64 {
    (kib as f64 / (1024.0 * 1024.0) * 1000.0).round() / 1000.0
}

/// The parent's side: one child per loss kind, one B4 line each.
pub fn b4(ctx: &mut Ctx, args: &BenchArgs, kinds: &[LossKind]) -> Result<()> {
    let exe = std::env::current_exe().context("locating the zo binary for the B4 child")?;
    let t = ctx.seqs[0];
    for &kind in kinds {
        let mut cmd = Command::new(&exe);
        cmd.args(["--quiet", "bench", "--figure", "b2", "--child", "--model"])
            .arg(&args.model)
            .args(["-B", &ctx.batch.to_string(), "-T", &t.to_string()])
            .args(["--repeats", &ctx.repeats.to_string()])
            .args(["--warmup", &ctx.warmup.to_string()])
            .args(["--seed", &ctx.seed.to_string()])
            .args(["--loss", kind_name(kind)])
            .args(["--compute", &format!("{:?}", args.compute).to_lowercase()]);
        // The thread count and the instruction-set cap go with the environment: `--threads`
        // and `--max-isa` set RAYON_NUM_THREADS and ZO_MAX_ISA for this process at its start,
        // and the child inherits them.
        if args.lora {
            cmd.arg("--lora");
        }
        let out = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running the B4 child {}", exe.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("the B4 child failed ({}): {stdout}", out.status);
        }
        let r = parse_child(&stdout)?;
        let isa = zo_core::cpu::level().name();
        if (r.kernel.as_str(), r.isa.as_str()) != (ctx.kernel.as_str(), isa) {
            bail!(
                "the B4 child ran kernel {} at {}, this process {} at {isa}",
                r.kernel,
                r.isa,
                ctx.kernel
            );
        }
        ctx.emit(json!({
            "figure": "B4",
            "method": Method::Ga,
            "lora": args.lora,
            "loss": kind,
            "T": t,
            "peak_rss_gib": gib(r.peak_kib),
            "peak_rss_step_gib": r.peak_step_kib.map(gib),
            "rss_after_build_gib": gib(r.rss_after_build_kib),
            "rss_start_gib": gib(r.rss_start_kib),
            "steps": r.steps,
            "step_median_s": r.step_median_s,
            "source": "child process VmHWM (/proc/self/status)",
        }))?;
    }
    Ok(())
}

/// The `--loss` value naming `kind`.
pub fn kind_name(kind: LossKind) -> &'static str {
    match kind {
        LossKind::FullLm => "full-lm",
        LossKind::Task => "task",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_report_round_trips_and_is_found_among_other_lines() {
        let r = ChildReport {
            figure: "B4-child".into(),
            loss: LossKind::Task,
            rss_start_kib: 1,
            rss_after_build_kib: 2,
            peak_build_kib: 3,
            peak_step_kib: Some(4),
            peak_kib: 4,
            steps: 2,
            step_median_s: 0.5,
            kernel: "avx2".into(),
            isa: "avx2".into(),
        };
        let text = format!("noise\n{}\n", serde_json::to_string(&r).unwrap());
        assert_eq!(parse_child(&text).unwrap(), r);
        assert!(parse_child("nothing here").is_err());
        assert_eq!(gib(1024 * 1024), 1.0);
    }
}
