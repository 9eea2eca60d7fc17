//! The OPT model and tokenizer of a run, from the `[model]` settings, and where a model source
//! lives (a built-in, a local path, or a hub repo).

use std::path::{Path, PathBuf};

use anyhow::Result;
use candle_core::Device;
use zo_models::hub::HubOptions;
use zo_models::opt::Builtin;
use zo_models::tokenizer::{Bos, Tokenizer};
use zo_models::OptModel;

use crate::settings::{BosSetting, ModelSettings};

/// Where a model lives.
pub enum ModelLocation<'a> {
    /// `builtin:NAME`.
    Builtin(&'a str),
    Dir(PathBuf),
    Hub {
        repo: String,
        revision: String,
    },
}

/// A `builtin:` name, an existing path (or one written as a path), else a hub repo id with an
/// optional `@revision`.
pub fn locate(source: &str) -> ModelLocation<'_> {
    if let Some(name) = source.strip_prefix("builtin:") {
        return ModelLocation::Builtin(name);
    }
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

/// The hub settings of the environment at `revision`.
pub fn hub_options(revision: &str) -> HubOptions {
    HubOptions::from_env().with_revision(revision)
}

/// Loads (or builds) the OPT of the settings; `weights`, when given, is a directory this tool
/// saved (a checkpoint, `best/`, `final/`) that replaces `model.source`.
pub fn load_opt(m: &ModelSettings, dev: &Device, weights: Option<&Path>) -> Result<OptModel> {
    let dtype = m.dtype.candle();
    if let Some(dir) = weights {
        return Ok(OptModel::from_dir(dir, dtype, dev)?);
    }
    Ok(match locate(&m.source) {
        ModelLocation::Builtin(name) => {
            let b: Builtin = name
                .parse()
                .map_err(|e| anyhow::anyhow!("config: key `model.source`: {e}"))?;
            b.load(m.init_seed, dtype, dev)?
        }
        ModelLocation::Dir(dir) => OptModel::from_dir(&dir, dtype, dev)?,
        ModelLocation::Hub { repo, revision } => {
            OptModel::from_hub(&repo, &hub_options(&revision), dtype, dev)?
        }
    })
}

/// Loads the tokenizer: `model.tokenizer` when set, else the model's own files; built-in
/// models use the built-in tiny tokenizer.
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
    let tok = match locate(spec) {
        ModelLocation::Builtin(name) if name != "tiny" && name.parse::<Builtin>().is_err() => {
            let key = if m.tokenizer.is_empty() {
                "model.source"
            } else {
                "model.tokenizer"
            };
            anyhow::bail!(
                "config: key `{key}`: no built-in tokenizer `{spec}` (builtin:tiny, or a built-in model's: builtin:{})",
                Builtin::NAMES.replace(", ", ", builtin:")
            )
        }
        ModelLocation::Builtin(_) => Tokenizer::builtin_tiny(),
        ModelLocation::Dir(dir) => Tokenizer::from_dir(&dir)?,
        ModelLocation::Hub { repo, revision } => {
            Tokenizer::from_hub(&repo, &hub_options(&revision))?
        }
    };
    Ok(tok.with_bos(bos))
}
