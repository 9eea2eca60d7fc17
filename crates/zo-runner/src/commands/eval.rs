//! `zo eval`: evaluate a base model, a run directory or a saved model on a task split, as MeZO
//! does (candidate scoring or greedy generation), printing and writing MeZO's metric names.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use zo_models::OptModel;

use super::{failed, usage, CmdResult};
use crate::cli::{EvalArgs, Global};
use crate::pipeline::data::{load_examples, prepare};
use crate::pipeline::evaluate::evaluate;
use crate::pipeline::model::{device, load_model, load_tokenizer};
use crate::rundir::{write_atomic, JsonlWriter};
use crate::settings::{resolve, Settings, Sources, DEFAULTS};

/// The settings of an evaluation: a run's own settings (`--run`) or the defaults, then
/// `--config`, then `--set`.
fn settings(a: &EvalArgs) -> Result<(Settings, Option<PathBuf>)> {
    let mut sets = a.set.clone();
    let mut weights = None;
    let base_text;
    let mut base: Vec<(&str, &str)> = vec![("built-in defaults", DEFAULTS)];
    if let Some(run) = &a.run {
        let run_toml = run.join("run.toml");
        base_text = std::fs::read_to_string(&run_toml).with_context(|| {
            format!(
                "{}: cannot read (is this a run directory?)",
                run_toml.display()
            )
        })?;
        base.push(("run.toml", &base_text));
        // MeZO reports the checkpoint with the lowest dev loss; without one, the final weights.
        let best = run.join("best");
        weights = Some(if best.is_dir() {
            best
        } else {
            run.join("final")
        });
    }
    if let Some(m) = &a.model {
        // A model.safetensors file stands for its directory (config.json must be beside it).
        let dir = if m.is_file() {
            m.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            m.clone()
        };
        sets.push(format!(
            "model.source = {}",
            toml::Value::String(dir.display().to_string())
        ));
    }
    if let Some(t) = &a.task {
        sets.push(format!("task.name = {}", toml::Value::String(t.clone())));
    }
    if let Some(d) = &a.data {
        sets.push(format!("task.data = {}", toml::Value::String(d.clone())));
    }
    let s = resolve(&Sources {
        base: &base,
        config_file: a.config.as_deref(),
        sets: &sets,
    })?;
    Ok((s, weights))
}

pub fn run(_g: &Global, a: &EvalArgs) -> CmdResult {
    let (s, weights) = settings(a).map_err(usage)?;
    let model = match &weights {
        Some(dir) if a.model.is_none() => OptModel::from_dir(
            dir,
            s.model.dtype.candle(),
            &device(&s.model.device).map_err(usage)?,
        )
        .with_context(|| format!("{}: cannot load", dir.display()))
        .map_err(usage)?,
        _ => load_model(&s.model).map_err(usage)?,
    };
    let tok = load_tokenizer(&s.model).map_err(usage)?;
    if tok.vocab_size() > model.config().vocab_size {
        return Err(usage(anyhow!(
            "the tokenizer has {} tokens but the model's vocabulary is {}: they do not belong together",
            tok.vocab_size(),
            model.config().vocab_size
        )));
    }
    let rows = load_examples(&s).map_err(usage)?;
    let data = prepare(&s, &tok, &rows).map_err(usage)?;
    let spec = data.task.spec();
    let metric = spec.metric.name();
    let mut out = serde_json::Map::new();
    let mut preds_writer = match &a.predictions {
        Some(p) => Some(JsonlWriter::create(p).map_err(usage)?),
        None => None,
    };
    for (split, examples, key) in [
        ("test", &data.test, metric.to_string()),
        ("dev", &data.dev, format!("dev_{metric}")),
    ] {
        if !a.split.includes(split) || examples.is_empty() {
            continue;
        }
        let (v, preds) =
            evaluate(&model, &tok, examples, spec.max_new_tokens, |_| {}).map_err(failed)?;
        out.insert(key, v.into());
        if let Some(w) = preds_writer.as_mut() {
            for p in &preds {
                w.write(p).map_err(failed)?;
            }
        }
    }
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(out))
        .map_err(|e| failed(e.into()))?;
    if let Some(path) = &a.output {
        write_atomic(path, text.as_bytes()).map_err(failed)?;
    }
    println!("{text}");
    Ok(())
}
