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
use zo_models::opt::save::SaveOptions;
use zo_models::tokenizer::Tokenizer;
use zo_models::OptModel;
use zo_tasks::TrainFeature;

use super::{failed, usage, CmdError, CmdResult};
use crate::cli::{Global, TrainArgs};
use crate::pipeline::data::{load_examples, prepare, TaskData};
use crate::pipeline::evaluate::evaluate;
use crate::pipeline::model::{load_model, load_tokenizer};
use crate::pipeline::objective::{batch_loss, dataset_loss};
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
        return resume(g, dir);
    }
    let mut sets = a.set.clone();
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
    let run_toml = dir.join("run.toml");
    let text = std::fs::read_to_string(&run_toml)
        .with_context(|| {
            format!(
                "{}: cannot read (is this a run directory?)",
                run_toml.display()
            )
        })
        .map_err(usage)?;
    let settings: Settings = crate::layers::deserialize(
        crate::layers::parse_table(&text, &run_toml.display().to_string()).map_err(usage)?,
        &run_toml.display().to_string(),
    )
    .map_err(usage)?;
    let ckpt = dir.join("checkpoint");
    let state_path = ckpt.join("state.json");
    let state: CheckpointState = serde_json::from_slice(
        &std::fs::read(&state_path)
            .with_context(|| format!("{}: no checkpoint to resume from", state_path.display()))
            .map_err(usage)?,
    )
    .with_context(|| format!("{}: invalid checkpoint state", state_path.display()))
    .map_err(usage)?;
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

/// Saves the model (HF layout, with the tokenizer) into `dir` atomically: written beside it,
/// then swapped in, so a crash never leaves a half-written checkpoint under the final name.
pub fn save_model_dir(
    model: &OptModel,
    tok: &Tokenizer,
    dir: &Path,
    extra: Option<(&str, &[u8])>,
) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp"));
    let old = parent.join(format!(".{name}.old"));
    let _ = std::fs::remove_dir_all(&tmp);
    model
        .save_pretrained(&tmp, Some(tok), &SaveOptions::default())
        .with_context(|| format!("{}: cannot save the model", dir.display()))?;
    if let Some((file, bytes)) = extra {
        write_atomic(&tmp.join(file), bytes)?;
    }
    let _ = std::fs::remove_dir_all(&old);
    if dir.exists() {
        std::fs::rename(dir, &old).with_context(|| format!("{}: cannot replace", dir.display()))?;
    }
    std::fs::rename(&tmp, dir).with_context(|| format!("{}: cannot write", dir.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// The whole run. `resume`: the checkpoint state to continue from.
pub fn train(settings: Settings, resume: Option<CheckpointState>, quiet: bool) -> CmdResult {
    let out = out_dir(&settings);
    // Bad input first (exit 2): run directory, model, tokenizer, data.
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
    let model = match &resume {
        Some(_) => {
            let ckpt = out.join("checkpoint");
            OptModel::from_dir(
                &ckpt,
                settings.model.dtype.candle(),
                &crate::pipeline::model::device(&settings.model.device).map_err(usage)?,
            )
            .with_context(|| format!("{}: cannot load the checkpoint", ckpt.display()))
            .map_err(usage)?
        }
        None => load_model(&settings.model).map_err(usage)?,
    };
    let tok = load_tokenizer(&settings.model).map_err(usage)?;
    if tok.vocab_size() > model.config().vocab_size {
        return Err(usage(anyhow!(
            "the tokenizer has {} tokens but the model's vocabulary is {}: they do not belong together",
            tok.vocab_size(),
            model.config().vocab_size
        )));
    }
    let rows = load_examples(&settings).map_err(usage)?;
    let data = prepare(&settings, &tok, &rows).map_err(usage)?;
    if data.train.is_empty() {
        return Err(usage(anyhow!("task {}: no training examples", data.task)));
    }
    tracing::info!(
        train = data.train.len(),
        dev = data.dev.len(),
        test = data.test.len(),
        "data ready"
    );
    if resume.is_none() {
        write_atomic(
            &out.join("run.toml"),
            run_toml(&settings).map_err(failed)?.as_bytes(),
        )
        .map_err(usage)?;
    }

    run_loop(&settings, &out, model, &tok, &data, resume, quiet)
}

fn run_loop(
    s: &Settings,
    out: &Path,
    model: OptModel,
    tok: &Tokenizer,
    data: &TaskData,
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
        n: data.train.len(),
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
    let metrics_path = out.join("metrics.jsonl");
    let traj_path = out.join("trajectory.jsonl");
    let (metrics, trajectory) = if resume.is_some() {
        (
            JsonlWriter::open_truncated(&metrics_path, |v| {
                v["step"].as_u64().is_some_and(|k| {
                    if v["kind"] == "eval" {
                        k <= done_steps
                    } else {
                        k < done_steps
                    }
                })
            })
            .map_err(failed)?,
            JsonlWriter::open_truncated(&traj_path, |v| {
                v["step"].as_u64().is_some_and(|k| k < done_steps)
            })
            .map_err(failed)?,
        )
    } else {
        (
            JsonlWriter::create(&metrics_path).map_err(usage)?,
            JsonlWriter::create(&traj_path).map_err(usage)?,
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
    let spec = data.task.spec();
    let metric_name = spec.metric.name();
    let eval_n = if s.task.eval_examples == 0 {
        data.dev.len()
    } else {
        s.task.eval_examples.min(data.dev.len())
    };

    let model_ref = &model;
    let mut objective = |_step: u64, batch: &[usize]| -> zo_core::Result<f64> {
        let feats: Vec<&TrainFeature> = batch.iter().map(|&i| &data.train[i]).collect();
        batch_loss(model_ref, &feats).map_err(core_err)
    };
    let eval_hook = |_step: u64, _p: &ParamSet| -> zo_core::Result<BTreeMap<String, f64>> {
        let mut m = BTreeMap::new();
        if !data.dev_features.is_empty() {
            let dl = dataset_loss(model_ref, &data.dev_features, s.train.batch_size)
                .map_err(core_err)?;
            m.insert("dev_loss".to_string(), dl);
            if best.get().is_none_or(|b| dl < b) {
                best.set(Some(dl));
                save_model_dir(model_ref, tok, &out.join("best"), None).map_err(core_err)?;
            }
        }
        if eval_n > 0 {
            let (v, _) = evaluate(
                model_ref,
                tok,
                &data.dev[..eval_n],
                spec.max_new_tokens,
                |_| {},
            )
            .map_err(core_err)?;
            m.insert(format!("dev_{metric_name}"), v);
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
        save_model_dir(
            model_ref,
            tok,
            &out.join("checkpoint"),
            Some(("state.json", &bytes)),
        )
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
    let summary = trainer.run(model.params(), &mut objective);
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
    finish(out, &model, tok, data, &summary.state, best.get(), quiet).map_err(failed)
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
    out: &Path,
    model: &OptModel,
    tok: &Tokenizer,
    data: &TaskData,
    state: &TrainerState,
    best: Option<f64>,
    quiet: bool,
) -> Result<()> {
    save_model_dir(model, tok, &out.join("final"), None)?;
    if !quiet {
        if let Some(line) = loss_summary(&out.join("metrics.jsonl"))? {
            eprintln!("{line}");
        }
    }
    let evaluated = if best.is_some() && out.join("best").is_dir() {
        let b = OptModel::from_dir(&out.join("best"), model.dtype(), model.device())?;
        model.params().assign_from(b.params())?;
        "best"
    } else {
        "final"
    };
    let spec = data.task.spec();
    let metric = spec.metric.name();
    let mut results = serde_json::Map::new();
    if !data.test.is_empty() {
        let (v, preds) = evaluate(model, tok, &data.test, spec.max_new_tokens, |_| {})?;
        results.insert(metric.to_string(), v.into());
        let mut w = JsonlWriter::create(&out.join("predictions_test.jsonl"))?;
        for p in &preds {
            w.write(p)?;
        }
    }
    if !data.dev.is_empty() {
        let (v, _) = evaluate(model, tok, &data.dev, spec.max_new_tokens, |_| {})?;
        results.insert(format!("dev_{metric}"), v.into());
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
