//! The model and tokenizer of a run, from the `[model]` settings.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use candle_core::Device;
use zo_models::opt::Preset;
use zo_models::tokenizer::{Bos, Tokenizer};
use zo_models::{OptConfig, OptModel};

use crate::settings::{BosSetting, ModelSettings};

/// Vocabulary of the built-in tiny tokenizer, and so of `builtin:tiny-opt`.
pub const TINY_VOCAB: usize = 2048;

/// Parses `cpu`, `cuda:N` (or `cuda`), `metal`.
pub fn device(spec: &str) -> Result<Device> {
    match spec {
        "cpu" => Ok(Device::Cpu),
        "metal" => {
            Device::new_metal(0).map_err(|e| anyhow!("config: key `model.device`: metal: {e}"))
        }
        s if s == "cuda" || s.starts_with("cuda:") => {
            let n: usize = s
                .strip_prefix("cuda:")
                .unwrap_or("0")
                .parse()
                .map_err(|_| anyhow!("config: key `model.device`: `{s}` is not cuda:N"))?;
            Device::new_cuda(n).map_err(|e| anyhow!("config: key `model.device`: {s}: {e}"))
        }
        other => bail!("config: key `model.device`: `{other}` is not one of cpu, cuda:N, metal"),
    }
}

/// The built-in pre-trained model of the quickstart (weights compiled into the binary).
pub const QUICKSTART_OPT: &str = "builtin:quickstart-opt";

/// The config of a random `builtin:` model, or None for a directory / hub id.
pub fn builtin_config(source: &str) -> Result<Option<OptConfig>> {
    let Some(name) = source.strip_prefix("builtin:") else {
        return Ok(None);
    };
    let mut cfg = match name {
        "tiny-opt" => {
            let mut c = OptConfig::preset(Preset::Tiny);
            c.vocab_size = TINY_VOCAB;
            c
        }
        "opt-125m" => OptConfig::preset(Preset::Opt125m),
        "opt-350m" => OptConfig::preset(Preset::Opt350m),
        other => bail!("config: key `model.source`: no built-in model `{other}` (quickstart-opt, tiny-opt, opt-125m, opt-350m)"),
    };
    cfg.dtype = Some("float32".into());
    Ok(Some(cfg))
}

/// Where a non-builtin model lives: a local directory, or a hub repo (id, revision).
pub enum ModelLocation {
    Dir(PathBuf),
    Hub { repo: String, revision: String },
}

pub fn locate(source: &str) -> ModelLocation {
    let p = Path::new(source);
    if p.exists() || source.starts_with('.') || source.starts_with('/') {
        return ModelLocation::Dir(p.to_path_buf());
    }
    let (repo, revision) = source.split_once('@').unwrap_or((source, "main"));
    ModelLocation::Hub {
        repo: repo.to_string(),
        revision: revision.to_string(),
    }
}

/// Loads (or builds) the model of the settings.
pub fn load_model(m: &ModelSettings) -> Result<OptModel> {
    let dev = device(&m.device)?;
    let dtype = m.dtype.candle();
    if m.source == QUICKSTART_OPT {
        return Ok(OptModel::builtin_quickstart(dtype, &dev)?);
    }
    if let Some(cfg) = builtin_config(&m.source)? {
        return Ok(OptModel::random(&cfg, m.init_seed, dtype, &dev)?);
    }
    match locate(&m.source) {
        ModelLocation::Dir(dir) => Ok(OptModel::from_dir(&dir, dtype, &dev)?),
        ModelLocation::Hub { repo, revision } => {
            let opts = zo_models::hub::HubOptions::from_env().with_revision(revision);
            Ok(OptModel::from_hub(&repo, &opts, dtype, &dev)?)
        }
    }
}

/// Loads the tokenizer: `model.tokenizer` when set, else the model's own files; builtin models
/// use the built-in tiny tokenizer.
pub fn load_tokenizer(m: &ModelSettings) -> Result<Tokenizer> {
    let bos = match m.bos {
        BosSetting::Mezo => Bos::Mezo,
        BosSetting::Hf => Bos::Hf,
    };
    let spec = if m.tokenizer.is_empty() {
        m.source.as_str()
    } else {
        m.tokenizer.as_str()
    };
    let tok = if spec == "builtin:tiny" || spec.starts_with("builtin:") {
        Tokenizer::builtin_tiny()
    } else {
        match locate(spec) {
            ModelLocation::Dir(dir) => Tokenizer::from_dir(&dir)?,
            ModelLocation::Hub { repo, revision } => Tokenizer::from_hub(
                &repo,
                &zo_models::hub::HubOptions::from_env().with_revision(revision),
            )?,
        }
    };
    Ok(tok.with_bos(bos))
}
