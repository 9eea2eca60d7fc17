//! `zo eval`: evaluate a base model, a run directory or a saved model on a task split, as MeZO
//! does (candidate scoring or greedy generation), printing and writing MeZO's metric names.

use std::path::PathBuf;

use anyhow::Result;

use super::{failed, usage, CmdResult};
use crate::cli::{EvalArgs, EvalSplit, Global};
use crate::pipeline::workload::Workload;
use crate::rundir::{check_writable, parent_dir, write_atomic, write_jsonl_atomic};
use crate::settings::{resolve, ModelKind, Settings, Sources, DEFAULTS};

/// The settings of an evaluation: a run's own settings (`--run`) or the defaults, then
/// `--config`, then `--set`.
fn settings(a: &EvalArgs) -> Result<(Settings, Option<PathBuf>)> {
    let mut sets = a.set.clone();
    let mut weights = None;
    let base_text;
    let mut base: Vec<(&str, &str)> = vec![("built-in defaults", DEFAULTS)];
    if let Some(run) = &a.run {
        base_text = crate::rundir::read_run_toml(run)?;
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
        sets.push(format!(
            "model.source = {}",
            toml::Value::String(m.display().to_string())
        ));
    }
    if let Some(dir) = &a.adapter {
        let kind = match crate::adapters::kind_of_dir(dir)? {
            crate::adapters::AdapterKind::Prefix => "prefix",
            _ => "lora",
        };
        sets.push(format!("adapter.kind = \"{kind}\""));
    }
    if let Some(t) = &a.task {
        sets.push(format!("task.name = {}", toml::Value::String(t.clone())));
    }
    if let Some(d) = &a.data {
        sets.push(format!("task.data = {}", toml::Value::String(d.clone())));
    }
    let mut s = resolve(&Sources {
        base: &base,
        config_file: a.config.as_deref(),
        sets: &sets,
    })?;
    // An OPT model.safetensors file stands for its directory (config.json must be beside it);
    // a ResNet checkpoint is a file of its own.
    if let Some(m) = &a.model {
        if m.is_file() && s.model.kind == ModelKind::Opt {
            // A bare file name's directory is `.`, not the empty path (an empty hub id).
            let dir = parent_dir(m);
            anyhow::ensure!(
                dir.join("config.json").is_file(),
                "{}: an OPT weights file needs its config.json beside it ({}: not found)",
                m.display(),
                dir.join("config.json").display()
            );
            s.model.source = dir.display().to_string();
        }
    }
    Ok((s, weights))
}

/// Under an MPI launcher every rank runs this with the same options: the examples are split
/// over the ranks (text tasks) and rank 0 alone writes and prints.
pub fn run(_g: &Global, a: &EvalArgs) -> CmdResult {
    let world = crate::dist::world().map_err(usage)?;
    let writes = world.writes();
    let (s, weights) = settings(a).map_err(usage)?;
    let weights = match &a.adapter {
        // The adapter's tensors are read from its directory, the base from model.source.
        Some(dir) => {
            if !crate::adapters::is_adapter_dir(dir) {
                return Err(usage(anyhow::anyhow!(
                    "--adapter {}: no adapter_config.json there",
                    dir.display()
                )));
            }
            Some(dir.clone())
        }
        None => weights.filter(|_| a.model.is_none()),
    };
    let work = match a.demos {
        Some(_) if a.split == EvalSplit::Dev => {
            return Err(usage(anyhow::anyhow!(
                "--demos evaluates the test split only (MeZO's in-context protocol has no dev set)"
            )))
        }
        Some(k) => Workload::load_icl(&s, weights.as_deref(), k),
        None => Workload::load(&s, weights.as_deref()),
    }
    .map_err(usage)?;
    crate::fingerprint::check_run(world.as_ref(), &s, &work).map_err(usage)?;
    let mut out = serde_json::Map::new();
    // Checked before the evaluation, written (atomically) after it.
    for path in [&a.predictions, &a.output].into_iter().flatten() {
        check_writable(path).map_err(usage)?;
    }
    let mut predictions = Vec::new();
    for split in ["test", "dev"] {
        if !a.split.includes(split) {
            continue;
        }
        let Some(e) = work
            .evaluate_split(split, 0, world.as_ref())
            .map_err(failed)?
        else {
            continue;
        };
        if let Some(k) = a.demos {
            out.insert("demos".into(), k.into());
        }
        out.insert(e.key, e.value.into());
        predictions.extend(e.predictions);
    }
    if !writes {
        return Ok(());
    }
    if let Some(path) = &a.predictions {
        write_jsonl_atomic(path, &predictions).map_err(failed)?;
    }
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(out))
        .map_err(|e| failed(e.into()))?;
    if let Some(path) = &a.output {
        write_atomic(path, text.as_bytes()).map_err(failed)?;
    }
    println!("{text}");
    Ok(())
}
