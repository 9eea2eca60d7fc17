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
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`HubOptions::from_env`] over any variable lookup (empty values count as unset).
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let var = |k: &str| lookup(k).filter(|v| !v.is_empty());
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

/// Which kind of hub repository (the cache folder prefix and the URL differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoKind {
    Model,
    Dataset,
}

impl RepoKind {
    fn hf(self) -> RepoType {
        match self {
            RepoKind::Model => RepoType::Model,
            RepoKind::Dataset => RepoType::Dataset,
        }
    }
}

/// `models--org--name` / `datasets--org--name`.
fn folder_name(kind: RepoKind, repo: &str) -> String {
    let prefix = match kind {
        RepoKind::Model => "models",
        RepoKind::Dataset => "datasets",
    };
    format!("{prefix}--{}", repo.replace('/', "--"))
}

/// The cached copy of `file`, if any. `revision` is a branch/ref name (`main`,
/// `refs/convert/parquet`) resolved through `refs/` (whitespace around the hash tolerated), or
/// a commit hash.
pub fn cached_file(
    cache_dir: &Path,
    kind: RepoKind,
    repo: &str,
    revision: &str,
    file: &str,
) -> Option<PathBuf> {
    let root = cache_dir.join(folder_name(kind, repo));
    let commit = std::fs::read_to_string(root.join("refs").join(revision))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| revision.to_string());
    let path = root.join("snapshots").join(commit).join(file);
    path.is_file().then_some(path)
}

/// Resolve one file of a dataset repo to a local path (see [`repo_file`]).
pub fn dataset_file(
    opts: &HubOptions,
    repo: &str,
    revision: &str,
    file: &str,
) -> Result<PathBuf, TaskError> {
    repo_file(opts, RepoKind::Dataset, repo, revision, file)
}

/// Resolve one file of a hub repo to a local path: cache first, then (unless offline) download
/// into the cache. Usable for model repos too, so models and data share one set of rules.
pub fn repo_file(
    opts: &HubOptions,
    kind: RepoKind,
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
    if let Some(p) = cached_file(cache.path(), kind, repo, revision, file) {
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
        kind.hf(),
        revision.to_string(),
    ))
    .get(file)
    .map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lookup_by_ref_or_commit() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("models--facebook--opt-125m");
        std::fs::create_dir_all(root.join("refs")).unwrap();
        std::fs::write(root.join("refs/main"), "abc\n").unwrap();
        std::fs::create_dir_all(root.join("snapshots/abc")).unwrap();
        std::fs::write(root.join("snapshots/abc/config.json"), "{}").unwrap();
        let get = |rev: &str, kind| {
            cached_file(dir.path(), kind, "facebook/opt-125m", rev, "config.json")
        };
        assert!(get("main", RepoKind::Model).is_some());
        assert!(get("abc", RepoKind::Model).is_some());
        assert!(get("main", RepoKind::Dataset).is_none());
        assert!(get("dev", RepoKind::Model).is_none());
        let opts = HubOptions {
            cache_dir: Some(dir.path().to_path_buf()),
            offline: true,
            endpoint: None,
        };
        let p = repo_file(
            &opts,
            RepoKind::Model,
            "facebook/opt-125m",
            "main",
            "config.json",
        );
        assert!(p.unwrap().ends_with("snapshots/abc/config.json"));
        let e = repo_file(
            &opts,
            RepoKind::Model,
            "facebook/opt-125m",
            "main",
            "missing.bin",
        );
        assert!(matches!(e, Err(TaskError::Hub { .. })));
    }

    #[test]
    fn options_from_variables() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let o = HubOptions::from_vars(vars(&[("HF_HOME", "/h"), ("HF_HUB_OFFLINE", "1")]));
        assert_eq!(o.cache_dir, Some(PathBuf::from("/h/hub")));
        assert!(o.offline);
        let o = HubOptions::from_vars(vars(&[
            ("HF_HOME", "/h"),
            ("HF_HUB_CACHE", "/c"),
            ("HF_HUB_OFFLINE", "0"),
            ("HF_ENDPOINT", "http://mirror"),
        ]));
        assert_eq!(o.cache_dir, Some(PathBuf::from("/c")));
        assert!(!o.offline);
        assert_eq!(o.endpoint.as_deref(), Some("http://mirror"));
        assert_eq!(
            HubOptions::from_vars(|_| Some(String::new())),
            HubOptions::default()
        );
    }

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
