//! One training run in a run directory: zo-core's trainer driven by the run's settings, with
//! the directory's sinks (`sink`), the evaluation and checkpoint hooks (the lowest dev loss
//! kept in `best/`, MeZO's rule), Ctrl-C handling (`signal`), and the final evaluation.

mod config;
mod signal;
mod sink;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use zo_core::trainer::{Trainer, TrainerState};
use zo_core::{EvalRecord, ParamSet, Sink};

use crate::dist::World;
use crate::exit::{failed, usage, CmdError, CmdResult};
use crate::pipeline::workload::{Model, Workload};
use crate::rundir::{write_atomic, write_jsonl_atomic, CheckpointState};
use crate::settings::Settings;
use sink::RunSink;

fn core_err(e: anyhow::Error) -> zo_core::Error {
    zo_core::Error::Msg(format!("{e:#}"))
}

/// Trains `work` in `out` (a fresh run, or from the checkpoint state `resume`), then saves and
/// evaluates the result.
///
/// Each batch is split over the ranks of `world`, and so are a text task's evaluations. Rank 0
/// alone writes (logs, checkpoints, `best/`, `final/`, results) and prints; the other ranks
/// show nothing (with an image task they skip the evaluations and stop after the last step).
pub fn run_loop(
    s: &Settings,
    out: &Path,
    work: &Workload,
    resume: Option<CheckpointState>,
    quiet: bool,
    world: &dyn World,
) -> CmdResult {
    let writes = world.writes();
    let quiet = quiet || !writes;
    let optimizer = s
        .optimizer
        .build()
        .map_err(|e| usage(anyhow!("config: optimizer: {e}")))?;
    let (cfg, total) = config::trainer_config(s, work.sizes().0, optimizer.queries_per_step());
    let done_steps = resume.as_ref().map(|r| r.trainer.step);
    let bar = crate::progress::bar(total, quiet);
    bar.set_position(done_steps.unwrap_or(0));
    let mut sink = if writes {
        RunSink::open(
            out,
            resume.as_ref().map(|r| &r.trainer),
            bar.clone(),
            quiet,
            world,
        )
        .map_err(usage)?
    } else {
        RunSink::silent(bar.clone(), world)
    };

    let best = std::cell::Cell::new(resume.as_ref().and_then(|r| r.best_dev_loss));
    tracing::info!(
        rank = world.rank(),
        size = world.size(),
        threads = candle_core::utils::get_num_threads(),
        "training batches split over the ranks"
    );
    // Ctrl-C / SIGTERM reach every rank, but not necessarily between the same two steps. With
    // several ranks the trainer polls a flag raised on every rank at the same point: after each
    // loss evaluation the ranks exchange whether any of them was interrupted.
    let interrupted = signal::stop_flag();
    let stop = if world.size() > 1 {
        Arc::new(AtomicBool::new(false))
    } else {
        interrupted.clone()
    };
    let mut objective = |_step: u64, batch: &[usize]| -> zo_core::Result<f64> {
        let loss = work.batch_loss(batch, world).map_err(core_err)?;
        if world.size() > 1 && !stop.load(Ordering::SeqCst) {
            let any = world
                .all_gather_u64(u64::from(interrupted.load(Ordering::SeqCst)))
                .map_err(core_err)?;
            if any.iter().any(|&v| v != 0) {
                stop.store(true, Ordering::SeqCst);
            }
        }
        Ok(loss)
    };
    // Evaluation changes no weight and feeds only what rank 0 writes. A text task's evaluation
    // is split over the ranks (every rank takes part, and keeps the lowest dev loss too); an
    // image task's is not, and the other ranks skip it.
    let split_eval = work.splits_evaluation();
    let eval_hook = |_step: u64, _p: &ParamSet| -> zo_core::Result<BTreeMap<String, f64>> {
        let mut m = BTreeMap::new();
        if !writes && !split_eval {
            return Ok(m);
        }
        if let Some(dl) = work.dev_loss(world).map_err(core_err)? {
            m.insert("dev_loss".to_string(), dl);
            if best.get().is_none_or(|b| dl < b) {
                best.set(Some(dl));
                if writes {
                    work.model()
                        .save(&out.join("best"), None)
                        .map_err(core_err)?;
                }
            }
        }
        if let Some(e) = work
            .evaluate_split("dev", s.task.eval_examples, world)
            .map_err(core_err)?
        {
            m.insert(e.key, e.value);
        }
        Ok(m)
    };
    let ckpt_hook = |_p: &ParamSet, st: &TrainerState| -> zo_core::Result<()> {
        if !writes {
            return Ok(());
        }
        let state = CheckpointState {
            trainer: st.clone(),
            best_dev_loss: best.get(),
        };
        let bytes =
            serde_json::to_vec_pretty(&state).map_err(|e| zo_core::Error::Msg(e.to_string()))?;
        work.model()
            .save(&out.join("checkpoint"), Some(("state.json", &bytes)))
            .map_err(core_err)
    };
    if resume.is_none() && s.train.eval_at_start {
        let e = EvalRecord {
            step: 0,
            queries_so_far: 0,
            metrics: eval_hook(0, work.params()).map_err(|e| failed(anyhow!("{e}")))?,
        };
        sink.on_eval(&e).map_err(|e| failed(anyhow!("{e}")))?;
    }
    let mut trainer = Trainer::new(cfg, optimizer)
        .sink(&mut sink)
        .on_eval(eval_hook)
        .on_checkpoint(ckpt_hook)
        .stop_flag(stop.clone());
    if let Some(r) = resume {
        trainer = trainer
            .resume(r.trainer)
            .map_err(|e| usage(anyhow!("{}: cannot resume: {e}", out.display())))?;
    }
    let summary = trainer.run(work.params(), &mut objective);
    drop(trainer);
    bar.finish_and_clear();
    if world.size() > 1 {
        let steps = summary
            .as_ref()
            .map_or(0, |s| s.state.step - done_steps.unwrap_or(0));
        tracing::info!(
            rank = world.rank(),
            exchange_s = world.exchange_seconds(),
            steps,
            "time in the all-gathers of the losses"
        );
    }
    let summary = match summary {
        Ok(s) => s,
        Err(zo_core::Error::NonFiniteLoss { step, value }) => {
            let ckpt = out.join("checkpoint");
            let where_ = if ckpt.join("state.json").is_file() {
                format!("the last good checkpoint is in {}", ckpt.display())
            } else {
                format!(
                    "no checkpoint was written before it (remove {} to start again, with a smaller learning rate or ρ)",
                    out.display()
                )
            };
            return Err(failed(anyhow!(
                "the loss became {value} at step {step}: stopped; {where_}"
            )));
        }
        Err(e) => return Err(failed(anyhow!("training failed: {e}"))),
    };
    if summary.stopped {
        if writes {
            eprintln!(
                "zo: stopped after step {}; continue with: zo train --resume {}",
                summary.state.step,
                out.display()
            );
        }
        if world.size() > 1 {
            // Every rank stopped after the same step; rank 0 has written its checkpoint.
            world
                .all_gather_u64(0)
                .map_err(|e| failed(anyhow!("after the stop: {e}")))?;
        }
        return Err(CmdError {
            code: 130,
            error: anyhow!("interrupted"),
        });
    }
    if !writes && !split_eval {
        return Ok(());
    }
    finish(s, out, work, &summary.state, best.get(), quiet, world).map_err(failed)
}

/// "training loss (mean of the first → last 10 % of steps): a → b", from metrics.jsonl.
fn loss_summary(metrics: &Path) -> Result<Option<String>> {
    let losses: Vec<f64> = crate::rundir::read_jsonl(metrics)?
        .iter()
        .filter(|v| v["kind"] == "step")
        .filter_map(|v| v["loss"].as_f64())
        .collect();
    if losses.len() < 10 {
        return Ok(None);
    }
    let k = losses.len() / 10;
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    Ok(Some(format!(
        "{} steps; training loss (mean of the first → last {k} steps): {:.4} → {:.4}",
        losses.len(),
        mean(&losses[..k]),
        mean(&losses[losses.len() - k..])
    )))
}

/// "dev accuracy 0.50 (step 0) → 0.93 (step 800)": the dev metric of the first evaluation,
/// when it ran before the first step, and of the last one, from metrics.jsonl.
fn dev_summary(metrics: &Path) -> Result<Option<String>> {
    let evals: Vec<serde_json::Value> = crate::rundir::read_jsonl(metrics)?
        .into_iter()
        .filter(|v| v["kind"] == "eval")
        .collect();
    let (Some(first), Some(last)) = (evals.first(), evals.last()) else {
        return Ok(None);
    };
    if first["step"] != 0 || last["step"] == 0 {
        return Ok(None);
    }
    let Some((key, start)) = first
        .as_object()
        .into_iter()
        .flatten()
        .find(|(k, v)| k.starts_with("dev_") && *k != "dev_loss" && v.is_f64())
    else {
        return Ok(None);
    };
    Ok(last[key].as_f64().map(|end| {
        format!(
            "{} {:.2} (step 0) → {end:.2} (step {})",
            key.replace('_', " "),
            start.as_f64().unwrap_or(f64::NAN),
            last["step"]
        )
    }))
}

/// After the last step: save the final weights, evaluate (MeZO evaluates the checkpoint with
/// the lowest dev loss when there is one), write results.json and print it. Every rank of a
/// split evaluation runs it; rank 0 alone writes and prints.
fn finish(
    s: &Settings,
    out: &Path,
    work: &Workload,
    state: &TrainerState,
    best: Option<f64>,
    quiet: bool,
    world: &dyn World,
) -> Result<()> {
    let writes = world.writes();
    // An evaluation that is not split runs on rank 0 alone (the other ranks have stopped).
    let world: &dyn World = if work.splits_evaluation() {
        world
    } else {
        &crate::dist::Single
    };
    if writes {
        work.model().save(&out.join("final"), None)?;
    }
    if world.size() > 1 {
        // The other ranks read best/ once rank 0 has written everything.
        world.all_gather_u64(0)?;
    }
    if writes && !quiet {
        if let Some(line) = loss_summary(&out.join("metrics.jsonl"))? {
            eprintln!("{line}");
        }
    }
    let evaluated = if best.is_some() && out.join("best").is_dir() {
        let b = Model::load(s, Some(&out.join("best")))?;
        work.params().assign_from(b.params())?;
        "best"
    } else {
        "final"
    };
    // Every rank must evaluate the same weights (best/ read from a directory other ranks do
    // not share would differ).
    crate::fingerprint::check_weights(world, evaluated, work)?;
    let mut results = serde_json::Map::new();
    if let Some(e) = work.evaluate_split("test", 0, world)? {
        results.insert(e.key, e.value.into());
        if writes {
            write_jsonl_atomic(&out.join("predictions_test.jsonl"), &e.predictions)?;
        }
    }
    if let Some(e) = work.evaluate_split("dev", 0, world)? {
        results.insert(e.key, e.value.into());
    }
    if state.step == 0 {
        bail!("no step was run");
    }
    if !writes {
        return Ok(());
    }
    results.insert("evaluated".into(), evaluated.into());
    results.insert("steps".into(), state.step.into());
    results.insert("queries".into(), state.queries.into());
    results.insert("sweeps".into(), state.sweeps.into());
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(results))?;
    write_atomic(&out.join("results.json"), text.as_bytes())?;
    println!("{text}");
    if !quiet {
        if let Some(line) = dev_summary(&out.join("metrics.jsonl"))? {
            eprintln!("{line}");
        }
    }
    Ok(())
}
