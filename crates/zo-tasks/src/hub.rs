//! Dataset files from the Hugging Face hub, through the same cache layout and offline rule as
//! the Python `huggingface_hub` (and the models' loader): `<cache>/datasets--<org>--<name>/`
//! `refs/<revision>` holds a commit hash, files live in `snapshots/<commit>/<path>`.
//!
//! The cache is consulted first; with `HF_HUB_OFFLINE` set, a miss is an error and the network
//! is never touched. Downloads go through `hf-hub`'s blocking (ureq) API.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::error::TaskError;

/// Where and how to look for hub files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubOptions {
    /// The hub cache directory (`…/huggingface/hub`). `None`: `HF_HUB_CACHE`, else
    /// `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
    pub cache_dir: Option<PathBuf>,
    /// Never use the network (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Another endpoint (`HF_ENDPOINT`), e.g. a mirror.
    pub endpoint: Option<String>,
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

impl HubOptions {
    /// Read `HF_HUB_CACHE`, `HF_HOME`, `HF_HUB_OFFLINE`, `HF_ENDPOINT` as `huggingface_hub` does.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HF_HOME").map(|h| Path::new(&h).join("hub")));
        HubOptions {
            cache_dir,
            offline: var("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v)),
            endpoint: var("HF_ENDPOINT"),
        }
    }

    fn cache(&self) -> Cache {
        match &self.cache_dir {
            Some(dir) => Cache::new(dir.clone()),
            None => Cache::default(),
        }
    }
}

/// `datasets--org--name`.
fn folder_name(repo: &str) -> String {
    format!("datasets--{}", repo.replace('/', "--"))
}

/// The cached copy of `file`, if any. `revision` is a branch/ref name (`main`,
/// `refs/convert/parquet`) resolved through `refs/`, or a commit hash.
pub fn cached_dataset_file(
    cache_dir: &Path,
    repo: &str,
    revision: &str,
    file: &str,
) -> Option<PathBuf> {
    let root = cache_dir.join(folder_name(repo));
    let commit = std::fs::read_to_string(root.join("refs").join(revision))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| revision.to_string());
    let path = root.join("snapshots").join(commit).join(file);
    path.is_file().then_some(path)
}

/// Resolve one file of a dataset repo to a local path: cache first, then (unless offline)
/// download into the cache.
pub fn dataset_file(
    opts: &HubOptions,
    repo: &str,
    revision: &str,
    file: &str,
) -> Result<PathBuf, TaskError> {
    let cache = opts.cache();
    let err = |message: String| TaskError::Hub {
        repo: repo.to_string(),
        revision: revision.to_string(),
        file: file.to_string(),
        message,
    };
    if let Some(p) = cached_dataset_file(cache.path(), repo, revision, file) {
        return Ok(p);
    }
    if opts.offline {
        return Err(err(format!(
            "not in the hub cache at {} and HF_HUB_OFFLINE is set (download it once online, \
             or point the task at local files)",
            cache.path().display()
        )));
    }
    let mut builder = ApiBuilder::from_cache(cache).with_progress(false);
    if let Some(ep) = &opts.endpoint {
        builder = builder.with_endpoint(ep.clone());
    }
    let api = builder.build().map_err(|e| err(e.to_string()))?;
    api.repo(Repo::with_revision(
        repo.to_string(),
        RepoType::Dataset,
        revision.to_string(),
    ))
    .get(file)
    .map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthy_values_follow_huggingface_hub() {
        for v in ["1", "true", "TRUE", "yes", "on"] {
            assert!(truthy(v), "{v}");
        }
        for v in ["0", "false", "", "no"] {
            assert!(!truthy(v), "{v}");
        }
    }
}
