//! `zo train` (and the quickstart): resolve settings → load model, tokenizer, data → zo-core's
//! trainer with the run directory's sinks and hooks → final evaluation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use zo_core::objective::DataOrder;
use zo_core::trainer::{Budget, Trainer, TrainerConfig, TrainerState};
use zo_core::{EvalRecord, ParamSet, Sink, StepRecord, SweepRecord};

use super::{failed, usage, CmdError, CmdResult};
use crate::cli::{Global, TrainArgs};
use crate::pipeline::workload::{Model, Workload};
use crate::rundir::{write_atomic, JsonlWriter};
use crate::settings::{resolve, Settings, Sources, DEFAULTS};

/// What `checkpoint/state.json` holds.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointState {
    pub trainer: TrainerState,
    /// Lowest dev loss so far (MeZO keeps the checkpoint with the lowest dev loss).
    pub best_dev_loss: Option<f64>,
}

pub fn run(g: &Global, a: &TrainArgs) -> CmdResult {
    if let Some(dir) = &a.resume {
        if a.config.is_some()
            || !a.set.is_empty()
            || !a.flags.to_sets().is_empty()
            || a.dry_run
            || a.out.is_some()
        {
            return Err(usage(anyhow!(
                "--resume {}: continues the run with its own settings; drop the other options",
                dir.display()
            )));
        }
        return resume(g, dir);
    }
    let mut sets = a.flags.to_sets();
    sets.extend(a.set.iter().cloned());
    if let Some(out) = &a.out {
        sets.push(format!(
            "train.out = {}",
            toml::Value::String(out.display().to_string())
        ));
    }
    let settings = resolve(&Sources {
        base: &[("built-in defaults", DEFAULTS)],
        config_file: a.config.as_deref(),
        sets: &sets,
    })
    .map_err(usage)?;
    if a.dry_run {
        print!("{}", settings.to_toml().map_err(failed)?);
        return Ok(());
    }
    train(settings, None, g.quiet)
}

/// The run directory a settings value names (default runs/<task>-<method>-s<seed>).
pub fn out_dir(s: &Settings) -> PathBuf {
    if s.train.out.as_os_str().is_empty() {
        PathBuf::from(format!(
            "runs/{}-{}-s{}",
            s.task.name,
            s.method(),
            s.train.seed
        ))
    } else {
        s.train.out.clone()
    }
}

/// run.toml: the resolved settings plus the versions that produced them.
fn run_toml(s: &Settings) -> Result<String> {
    let mut text = s.to_toml()?;
    text.push_str(&format!(
        "\n# written by zo {} (candle-core 0.11)\n",
        env!("CARGO_PKG_VERSION")
    ));
    Ok(text)
}

pub fn resume(g: &Global, dir: &Path) -> CmdResult {
    let settings: Settings = crate::rundir::read_settings(dir).map_err(usage)?;
    crate::rundir::check_versions(dir).map_err(usage)?;
    let state = crate::rundir::read_checkpoint_state(dir).map_err(usage)?;
    let mut settings = settings;
    settings.train.out = dir.to_path_buf();
    train(settings, Some(state), g.quiet)
}

/// Writes metrics.jsonl / trajectory.jsonl lines and drives the progress bar.
struct RunSink {
    metrics: JsonlWriter,
    trajectory: JsonlWriter,
    start: Instant,
    bar: indicatif::ProgressBar,
    /// Training losses since the last evaluation (their mean is shown beside it).
    recent: Vec<f64>,
    quiet: bool,
}

impl RunSink {
    /// A line for people: above the bar on a terminal, plain stderr otherwise, nothing with -q.
    fn say(&self, line: String) {
        if self.quiet {
            return;
        }
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

#[derive(Serialize)]
struct StepLine<'a> {
    kind: &'static str,
    #[serde(flatten)]
    rec: &'a StepRecord,
    seconds: f64,
}

#[derive(Serialize)]
struct EvalLine<'a> {
    kind: &'static str,
    step: u64,
    queries_total: u64,
    #[serde(flatten)]
    metrics: &'a BTreeMap<String, f64>,
    seconds: f64,
}

fn core_err(e: anyhow::Error) -> zo_core::Error {
    zo_core::Error::Msg(format!("{e:#}"))
}

impl Sink for RunSink {
    fn on_step(&mut self, r: &StepRecord) -> zo_core::Result<()> {
        let line = StepLine {
            kind: "step",
            rec: r,
            seconds: self.start.elapsed().as_secs_f64(),
        };
        self.metrics.write(&line).map_err(core_err)?;
        self.recent.push(r.loss);
        self.bar.set_position(r.step + 1);
        self.bar.set_message(format!(
            "queries {}  loss {:.4}  γ {}",
            r.queries_total,
            r.loss,
            r.gamma.map_or("-".to_string(), |g| format!("{g:.3e}"))
        ));
        Ok(())
    }
    fn on_eval(&mut self, e: &EvalRecord) -> zo_core::Result<()> {
        let line = EvalLine {
            kind: "eval",
            step: e.step,
            queries_total: e.queries_so_far,
            metrics: &e.metrics,
            seconds: self.start.elapsed().as_secs_f64(),
        };
        self.metrics.write(&line).map_err(core_err)?;
        let shown: Vec<String> = e
            .metrics
            .iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        let train = if self.recent.is_empty() {
            String::new()
        } else {
            let mean = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
            format!(
                "train_loss {mean:.4} (mean of {} steps)  ",
                self.recent.len()
            )
        };
        self.recent.clear();
        self.say(format!(
            "step {:>6}  queries {:>8}  {train}{}",
            e.step,
            e.queries_so_far,
            shown.join("  ")
        ));
        Ok(())
    }
    fn on_sweep(&mut self, r: &SweepRecord) -> zo_core::Result<()> {
        self.trajectory.write(r).map_err(core_err)
    }
}

/// The whole run. `resume`: the checkpoint state to continue from.
pub fn train(settings: Settings, resume: Option<CheckpointState>, quiet: bool) -> CmdResult {
    let out = out_dir(&settings);
    // Bad input first (exit 2): run directory, model, tokenizer, data.
    // One writer per run directory, held until the run ends.
    let _lock = lock_run_dir(&out)?;
    if resume.is_none() {
        if out.join("run.toml").exists() {
            return Err(usage(anyhow!(
                "{}: already holds a run (use --resume {} to continue it, or another --out)",
                out.display(),
                out.display()
            )));
        }
        // Created (and so checked for writability) before the slow loading; run.toml, which
        // marks the directory as holding a run, is written only once every input loaded, so a
        // start that fails on bad input can simply be retried.
        std::fs::create_dir_all(&out)
            .with_context(|| format!("{}: cannot create the run directory", out.display()))
            .map_err(usage)?;
    }
    let ckpt = out.join("checkpoint");
    let work = Workload::load(&settings, resume.as_ref().map(|_| ckpt.as_path())).map_err(usage)?;
    let (n_train, n_dev, n_test) = work.sizes();
    if n_train == 0 {
        return Err(usage(anyhow!(
            "task {}: no training examples",
            settings.task.name
        )));
    }
    tracing::info!(train = n_train, dev = n_dev, test = n_test, "data ready");
    if resume.is_none() {
        crate::rundir::write_versions(&out).map_err(usage)?;
        write_atomic(
            &out.join("run.toml"),
            run_toml(&settings).map_err(failed)?.as_bytes(),
        )
        .map_err(usage)?;
    }

    run_loop(&settings, &out, &work, resume, quiet)
}

/// Creates the run directory if needed and takes its lock (refused, naming the holder's pid,
/// while another process writes it).
fn lock_run_dir(out: &Path) -> Result<crate::lock::RunLock, CmdError> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create the run directory", out.display()))
        .map_err(usage)?;
    crate::lock::RunLock::acquire(out).map_err(usage)
}

fn run_loop(
    s: &Settings,
    out: &Path,
    work: &Workload,
    resume: Option<CheckpointState>,
    quiet: bool,
) -> CmdResult {
    let optimizer = s
        .optimizer
        .build()
        .map_err(|e| usage(anyhow!("config: optimizer: {e}")))?;
    let budget = if s.train.max_queries > 0 {
        Budget::Queries(s.train.max_queries)
    } else {
        Budget::Steps(s.train.steps)
    };
    let mut cfg = TrainerConfig::new(s.train.seed, budget);
    cfg.schedule = s.train.schedule;
    cfg.data = Some(DataOrder {
        n: work.sizes().0,
        batch_size: s.train.batch_size,
        seed: s.train.seed,
    });
    cfg.eval_every = (s.train.eval_every > 0).then_some(s.train.eval_every);
    cfg.checkpoint_every = Some(if s.train.checkpoint_every > 0 {
        s.train.checkpoint_every
    } else {
        u64::MAX
    });

    let done_steps = resume.as_ref().map_or(0, |r| r.trainer.step);
    let (metrics, trajectory) = if resume.is_some() {
        crate::rundir::reopen_logs(out, done_steps).map_err(usage)?
    } else {
        (
            JsonlWriter::create(&out.join("metrics.jsonl")).map_err(usage)?,
            JsonlWriter::create(&out.join("trajectory.jsonl")).map_err(usage)?,
        )
    };

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // A second Ctrl-C while the checkpoint is written exits at once.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nzo: interrupted: finishing the step and writing a checkpoint (Ctrl-C again to abort)");
        });
    }

    let total = match budget {
        Budget::Steps(n) => n,
        Budget::Queries(q) => q / optimizer.queries_per_step().max(1),
    };
    let bar = crate::progress::bar(total, quiet);
    bar.set_position(done_steps);
    let mut sink = RunSink {
        metrics,
        trajectory,
        start: Instant::now(),
        bar: bar.clone(),
        recent: Vec::new(),
        quiet,
    };
    let best = std::cell::Cell::new(resume.as_ref().and_then(|r| r.best_dev_loss));
    let mut objective = |_step: u64, batch: &[usize]| -> zo_core::Result<f64> {
        work.batch_loss(batch).map_err(core_err)
    };
    let eval_hook = |_step: u64, _p: &ParamSet| -> zo_core::Result<BTreeMap<String, f64>> {
        let mut m = BTreeMap::new();
        if let Some(dl) = work.dev_loss().map_err(core_err)? {
            m.insert("dev_loss".to_string(), dl);
            if best.get().is_none_or(|b| dl < b) {
                best.set(Some(dl));
                work.model.save(&out.join("best"), None).map_err(core_err)?;
            }
        }
        if let Some(e) = work
            .evaluate_split("dev", s.task.eval_examples)
            .map_err(core_err)?
        {
            m.insert(e.key, e.value);
        }
        Ok(m)
    };
    let ckpt_hook = |_p: &ParamSet, st: &TrainerState| -> zo_core::Result<()> {
        let state = CheckpointState {
            trainer: st.clone(),
            best_dev_loss: best.get(),
        };
        let bytes =
            serde_json::to_vec_pretty(&state).map_err(|e| zo_core::Error::Msg(e.to_string()))?;
        work.model
            .save(&out.join("checkpoint"), Some(("state.json", &bytes)))
            .map_err(core_err)
    };
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
    let summary = match summary {
        Ok(s) => s,
        Err(zo_core::Error::NonFiniteLoss { step, value }) => {
            return Err(failed(anyhow!(
            "the loss became {value} at step {step}: stopped; the last good checkpoint is in {}",
            out.join("checkpoint").display()
        )))
        }
        Err(e) => return Err(failed(anyhow!("training failed: {e}"))),
    };
    if summary.stopped {
        eprintln!(
            "zo: stopped after step {}; continue with: zo train --resume {}",
            summary.state.step,
            out.display()
        );
        return Err(CmdError {
            code: 130,
            error: anyhow!("interrupted"),
        });
    }
    finish(s, out, work, &summary.state, best.get(), quiet).map_err(failed)
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

/// After the last step: save the final weights, evaluate (MeZO evaluates the checkpoint with
/// the lowest dev loss when there is one), write results.json and print it.
fn finish(
    s: &Settings,
    out: &Path,
    work: &Workload,
    state: &TrainerState,
    best: Option<f64>,
    quiet: bool,
) -> Result<()> {
    work.model.save(&out.join("final"), None)?;
    if !quiet {
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
    let mut results = serde_json::Map::new();
    if let Some(e) = work.evaluate_split("test", 0)? {
        results.insert(e.key, e.value.into());
        let mut w = JsonlWriter::create(&out.join("predictions_test.jsonl"))?;
        for p in &e.predictions {
            w.write(p)?;
        }
    }
    if let Some(e) = work.evaluate_split("dev", 0)? {
        results.insert(e.key, e.value.into());
    }
    results.insert("evaluated".into(), evaluated.into());
    results.insert("steps".into(), state.step.into());
    results.insert("queries".into(), state.queries.into());
    results.insert("sweeps".into(), state.sweeps.into());
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(results))?;
    write_atomic(&out.join("results.json"), text.as_bytes())?;
    println!("{text}");
    if state.step == 0 {
        bail!("no step was run");
    }
    Ok(())
}
