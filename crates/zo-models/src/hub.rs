//! Hugging Face hub resolution: a repo id + revision (branch, tag, commit, or `refs/pr/N`,
//! where the facebook/opt-* repos keep their safetensors) to a local snapshot directory that
//! [`OptModel::from_dir`] and [`Tokenizer::from_dir`] read.
//!
//! Downloads go through the `hf-hub` crate (sync API) into the standard cache layout
//! (`models--org--name/{blobs,snapshots/<commit>,refs/<revision>}`), shared with Python's
//! `huggingface_hub`. Settings follow huggingface_hub's environment variables:
//! `HF_HUB_CACHE` / `HF_HOME` (cache at `$HF_HOME/hub`, default `~/.cache/huggingface/hub`),
//! `HF_ENDPOINT`, `HF_TOKEN` (else the `$HF_HOME/token` file), and `HF_HUB_OFFLINE=1`: cache
//! only, and a missing file is an error naming the repo, revision, file and cache directory.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use crate::opt::load::{PYTORCH_INDEX, PYTORCH_SINGLE, SAFETENSORS_INDEX, SAFETENSORS_SINGLE};
use crate::opt::OptModel;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// The hub's public endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Tokenizer files fetched when the repo has them (none is required).
const TOKENIZER_FILES: [&str; 5] = [
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// Where and how to resolve hub files. Its `Debug` form shows whether a token is set, never
/// the token.
#[derive(Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// Branch, tag, commit hash or `refs/pr/N`.
    pub revision: String,
    /// The hub cache (`…/huggingface/hub`).
    pub cache_dir: PathBuf,
    pub endpoint: String,
    pub token: Option<String>,
    /// Cache only: never touch the network.
    pub offline: bool,
    /// Show download progress bars (stderr).
    pub progress: bool,
}

impl std::fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubOptions")
            .field("revision", &self.revision)
            .field("cache_dir", &self.cache_dir)
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("offline", &self.offline)
            .field("progress", &self.progress)
            .finish()
    }
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

impl HubOptions {
    /// Settings from the process environment (see the module docs), revision `main`.
    pub fn from_env() -> Self {
        Self::from_env_vars(|k| std::env::var(k).ok())
    }

    /// Settings from an environment lookup function (testable without touching the process
    /// environment).
    pub fn from_env_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let hf_home = get("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let home = get("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            get("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".cache"))
                .join("huggingface")
        });
        let cache_dir = get("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token = get("HF_TOKEN").or_else(|| {
            std::fs::read_to_string(hf_home.join("token"))
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        Self {
            revision: "main".into(),
            cache_dir,
            endpoint: get("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
            token,
            offline: get("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v)),
            progress: false,
        }
    }

    pub fn with_revision(mut self, revision: impl Into<String>) -> Self {
        self.revision = revision.into();
        self
    }
}

/// Is this hf-hub error an HTTP 404 (the file is not in the repo at that revision)?
fn is_not_found(e: &ApiError) -> bool {
    matches!(e, ApiError::RequestError(r) if matches!(**r, ureq::Error::Status(404, _)))
}

/// One repo at one revision, online or cache-only.
struct Source {
    repo_id: String,
    opts: HubOptions,
    api: Option<ApiRepo>,
    repo: Repo,
}

impl Source {
    fn new(repo_id: &str, opts: &HubOptions) -> Result<Self> {
        let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, opts.revision.clone());
        let api = if opts.offline {
            None
        } else {
            let api = ApiBuilder::new()
                .with_cache_dir(opts.cache_dir.clone())
                .with_endpoint(opts.endpoint.trim_end_matches('/').to_string())
                .with_token(opts.token.clone())
                .with_progress(opts.progress)
                .build()
                .map_err(|e| Error::Hub(format!("cannot set up the hub client: {e}")))?;
            Some(api.repo(repo.clone()))
        };
        Ok(Self {
            repo_id: repo_id.to_string(),
            opts: opts.clone(),
            api,
            repo,
        })
    }

    fn describe(&self, file: &str) -> String {
        format!(
            "`{file}` of `{}` at revision `{}`",
            self.repo_id, self.opts.revision
        )
    }

    /// The local path of `file`: `Ok(None)` when the repo does not have it (HTTP 404, or not
    /// cached when offline).
    fn try_get(&self, file: &str) -> Result<Option<PathBuf>> {
        match &self.api {
            None => Ok(Cache::new(self.opts.cache_dir.clone())
                .repo(self.repo.clone())
                .get(file)),
            Some(api) => match api.get(file) {
                Ok(p) => Ok(Some(p)),
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(Error::Hub(format!(
                    "downloading {} from {}: {e}",
                    self.describe(file),
                    self.opts.endpoint
                ))),
            },
        }
    }

    fn get(&self, file: &str) -> Result<PathBuf> {
        self.try_get(file)?.ok_or_else(|| self.missing(&[file]))
    }

    fn missing(&self, files: &[&str]) -> Error {
        let what = files.join("`, `");
        if self.api.is_none() {
            Error::Hub(format!(
                "offline mode (HF_HUB_OFFLINE=1): `{what}` of `{}` at revision `{}` is not in the cache {}",
                self.repo_id,
                self.opts.revision,
                self.opts.cache_dir.display()
            ))
        } else {
            Error::Hub(format!(
                "`{what}` not found in `{}` at revision `{}` on {}",
                self.repo_id, self.opts.revision, self.opts.endpoint
            ))
        }
    }
}

/// Fetches (or finds in the cache) what an OPT needs from `repo_id`: `config.json`, the
/// weights in the first layout the repo has (model.safetensors, its sharded index,
/// pytorch_model.bin, its sharded index — with every shard), and whichever tokenizer files
/// exist. Returns the snapshot directory holding them all.
pub fn fetch_model(repo_id: &str, opts: &HubOptions) -> Result<PathBuf> {
    let src = Source::new(repo_id, opts)?;
    let config = src.get("config.json")?;
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
        let Some(p) = src.try_get(file)? else {
            continue;
        };
        if is_index {
            for shard in index_shards(&p)? {
                got.push(src.get(&shard)?);
            }
        }
        got.push(p);
        found = true;
        break;
    }
    if !found {
        return Err(src.missing(&[
            SAFETENSORS_SINGLE,
            SAFETENSORS_INDEX,
            PYTORCH_SINGLE,
            PYTORCH_INDEX,
        ]));
    }
    for file in TOKENIZER_FILES {
        if let Some(p) = src.try_get(file)? {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_settings_follow_huggingface_hub() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(a, _)| *a == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let o = HubOptions::from_env_vars(env(&[("HOME", "/home/u")]));
        assert_eq!(o.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(o.endpoint, DEFAULT_ENDPOINT);
        assert!(!o.offline);
        assert_eq!(o.revision, "main");
        let o = HubOptions::from_env_vars(env(&[
            ("HF_HOME", "/data/hf"),
            ("HF_ENDPOINT", "http://127.0.0.1:9"),
            ("HF_TOKEN", "hf_abc"),
            ("HF_HUB_OFFLINE", "1"),
        ]));
        assert_eq!(o.cache_dir, PathBuf::from("/data/hf/hub"));
        assert_eq!(o.endpoint, "http://127.0.0.1:9");
        assert_eq!(o.token.as_deref(), Some("hf_abc"));
        assert!(
            !format!("{o:?}").contains("hf_abc"),
            "Debug shows the token"
        );
        assert!(o.offline);
        let o = HubOptions::from_env_vars(env(&[("HF_HUB_CACHE", "/c"), ("HF_HUB_OFFLINE", "0")]));
        assert_eq!(o.cache_dir, PathBuf::from("/c"));
        assert!(!o.offline);
    }
}
