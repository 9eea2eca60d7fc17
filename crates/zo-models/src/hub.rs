//! Hugging Face hub resolution: a repo id + revision (branch, tag, commit, or `refs/pr/N`,
//! where the facebook/opt-* repos keep their safetensors) to a local snapshot directory that
//! [`OptModel::from_dir`] and [`Tokenizer::from_dir`] read.
//!
//! Files are resolved by zo's one hub client ([`zo_hub`]: cache layout, token, offline mode,
//! revisions), which the task data shares.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
pub use zo_hub::{HubOptions, DEFAULT_ENDPOINT};
use zo_hub::{HubRepo, RepoKind};

use crate::opt::load::{PYTORCH_INDEX, PYTORCH_SINGLE, SAFETENSORS_INDEX, SAFETENSORS_SINGLE};
use crate::opt::OptModel;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// Tokenizer files fetched when the repo has them (none is required).
const TOKENIZER_FILES: [&str; 5] = [
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

fn hub_err(e: zo_hub::HubError) -> Error {
    Error::Hub(e.0)
}

/// Fetches (or finds in the cache) what an OPT needs from `repo_id`: `config.json`, the
/// weights in the first layout the repo has (model.safetensors, its sharded index,
/// pytorch_model.bin, its sharded index — with every shard), and whichever tokenizer files
/// exist. Returns the snapshot directory holding them all.
pub fn fetch_model(repo_id: &str, opts: &HubOptions) -> Result<PathBuf> {
    let src = HubRepo::new(RepoKind::Model, repo_id, opts).map_err(hub_err)?;
    let config = src.get("config.json").map_err(hub_err)?;
    let dir = config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::Hub(format!("odd cache path {}", config.display())))?;
    let mut got = vec![config.clone()];

    let mut found = false;
    for (file, is_index) in [
        (SAFETENSORS_SINGLE, false),
        (SAFETENSORS_INDEX, true),
        (PYTORCH_SINGLE, false),
        (PYTORCH_INDEX, true),
    ] {
        let Some(p) = src.try_get(file).map_err(hub_err)? else {
            continue;
        };
        if is_index {
            for shard in index_shards(&p)? {
                got.push(src.get(&shard).map_err(hub_err)?);
            }
        }
        got.push(p);
        found = true;
        break;
    }
    if !found {
        return Err(hub_err(src.missing(&[
            SAFETENSORS_SINGLE,
            SAFETENSORS_INDEX,
            PYTORCH_SINGLE,
            PYTORCH_INDEX,
        ])));
    }
    for file in TOKENIZER_FILES {
        if let Some(p) = src.try_get(file).map_err(hub_err)? {
            got.push(p);
        }
    }
    // Every file must be in one snapshot (one commit), or from_dir would not see them together.
    if let Some(stray) = got.iter().find(|p| p.parent() != Some(dir.as_path())) {
        return Err(Error::Hub(format!(
            "{} resolved to {}, outside the snapshot {} (the revision moved during the download; retry)",
            src.describe(&stray.file_name().unwrap_or_default().to_string_lossy()),
            stray.display(),
            dir.display()
        )));
    }
    Ok(dir)
}

/// The shard file names listed in a `*.index.json` (sorted, each once).
fn index_shards(index: &Path) -> Result<Vec<String>> {
    crate::opt::load::read_index_names(index)
}

impl OptModel {
    /// Resolves `repo_id` through the hub (or its cache) and loads it.
    pub fn from_hub(
        repo_id: &str,
        opts: &HubOptions,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let dir = fetch_model(repo_id, opts)?;
        OptModel::from_dir(&dir, dtype, device)
    }
}

impl Tokenizer {
    /// Resolves `repo_id` through the hub (or its cache) and loads its tokenizer.
    pub fn from_hub(repo_id: &str, opts: &HubOptions) -> Result<Self> {
        let dir = fetch_model(repo_id, opts)?;
        Tokenizer::from_dir(&dir)
    }
}
