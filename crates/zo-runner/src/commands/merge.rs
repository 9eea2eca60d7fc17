//! `zo merge BASE ADAPTER OUT`: `W + (α/r)·B A` for every adapted module, saved as a full
//! Hugging Face checkpoint (config.json with model_type/architectures, model.safetensors, the
//! tokenizer), atomically.

use anyhow::{anyhow, Context};

use super::{failed, usage, CmdResult};
use crate::cli::{Global, MergeArgs};
use crate::pipeline::model::{load_opt, load_tokenizer};
use crate::pipeline::workload::ModelRef;
use crate::settings::{resolve, Sources, DEFAULTS};

pub fn run(g: &Global, a: &MergeArgs) -> CmdResult {
    let sets = vec![format!(
        "model.source = {}",
        toml::Value::String(a.base.clone())
    )];
    let s = resolve(&Sources {
        base: &[("built-in defaults", DEFAULTS)],
        config_file: None,
        sets: &sets,
    })
    .map_err(usage)?;
    if !crate::adapters::is_adapter_dir(&a.adapter) {
        return Err(usage(anyhow!(
            "{}: no adapter_config.json there",
            a.adapter.display()
        )));
    }
    crate::rundir::check_model_out(&a.out, &[&a.adapter, std::path::Path::new(&a.base)])
        .map_err(usage)?;
    let dev = s.model.device.open().map_err(usage)?;
    let base = load_opt(&s.model, &dev, None)
        .with_context(|| format!("model `{}`: cannot load", a.base))
        .map_err(usage)?;
    let tok = load_tokenizer(&s.model).map_err(usage)?;
    let adapted = base
        .load_adapter(&a.adapter)
        .with_context(|| format!("{}: cannot load the adapter", a.adapter.display()))
        .map_err(usage)?;
    if adapted.prefix().is_some() {
        return Err(usage(anyhow!(
            "{}: a prefix adds attention positions, not a weight difference, so it cannot be merged; evaluate it with `zo eval --adapter`",
            a.adapter.display()
        )));
    }
    let merged = adapted.merged().map_err(|e| failed(e.into()))?;
    ModelRef::Opt(&merged, &tok)
        .save(&a.out, None)
        .map_err(failed)?;
    if !g.quiet {
        eprintln!(
            "merged {} into {} → {}",
            a.adapter.display(),
            a.base,
            a.out.display()
        );
    }
    Ok(())
}
