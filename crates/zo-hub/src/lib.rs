//! The Hugging Face hub, as every part of zo reaches it: one repo (model or dataset) at one
//! revision (branch, tag, commit, or `refs/pr/N`), its files resolved to paths in the standard
//! cache layout (`<cache>/{models,datasets}--org--name/{blobs,snapshots/<commit>,refs/<revision>}`),
//! shared with Python's `huggingface_hub`.
//!
//! Settings follow huggingface_hub's environment variables: `HF_HUB_CACHE` / `HF_HOME` (cache
//! at `$HF_HOME/hub`; `HF_HOME` defaults to `$XDG_CACHE_HOME/huggingface`, else
//! `~/.cache/huggingface`), `HF_ENDPOINT`, `HF_TOKEN` (else the `$HF_HOME/token` file), and
//! `HF_HUB_OFFLINE=1`: cache only, and a missing file is an error naming the repo, revision,
//! file and cache directory. The cache is always consulted first; downloads go through the
//! `hf-hub` crate's blocking API. The token is never printed: `HubOptions`'s `Debug` hides it
//! and no error message carries it.

use std::fmt;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Repo, RepoType};

/// The hub's public endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// A hub failure, with the repo, revision and file it concerns in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubError(pub String);

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HubError {}

pub type Result<T> = std::result::Result<T, HubError>;

/// Where and how to resolve hub files.
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

impl fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubOptions")
            .field("revision", &self.revision)
            .field("cache_dir", &self.cache_dir)
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
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
    /// Settings from the process environment (see the crate docs), revision `main`.
    pub fn from_env() -> Self {
        Self::from_env_vars(|k| std::env::var(k).ok())
    }

    /// Settings from an environment lookup (empty values count as unset), so they can be
    /// tested without touching the process environment.
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

    /// `models--org--name` / `datasets--org--name`.
    fn folder_name(self, repo: &str) -> String {
        let prefix = match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        };
        format!("{prefix}--{}", repo.replace('/', "--"))
    }
}

/// The cached copy of `file`, if any. `revision` is a ref name (`main`, `refs/pr/1`,
/// `refs/convert/parquet`) resolved through `refs/` (whitespace around the hash tolerated), or
/// a commit hash.
pub fn cached_file(
    cache_dir: &Path,
    kind: RepoKind,
    repo: &str,
    revision: &str,
    file: &str,
) -> Option<PathBuf> {
    let root = cache_dir.join(kind.folder_name(repo));
    let commit = std::fs::read_to_string(root.join("refs").join(revision))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| revision.to_string());
    let path = root.join("snapshots").join(commit).join(file);
    path.is_file().then_some(path)
}

/// Is this hf-hub error an HTTP 404 (the file is not in the repo at that revision)?
fn is_not_found(e: &ApiError) -> bool {
    matches!(e, ApiError::RequestError(r) if matches!(**r, ureq::Error::Status(404, _)))
}

/// One repo at one revision, online or cache-only.
pub struct HubRepo {
    kind: RepoKind,
    repo_id: String,
    opts: HubOptions,
    api: Option<ApiRepo>,
}

impl HubRepo {
    pub fn new(kind: RepoKind, repo_id: &str, opts: &HubOptions) -> Result<Self> {
        let api = if opts.offline {
            None
        } else {
            let api = ApiBuilder::new()
                .with_cache_dir(opts.cache_dir.clone())
                .with_endpoint(opts.endpoint.trim_end_matches('/').to_string())
                .with_token(opts.token.clone())
                .with_progress(opts.progress)
                .build()
                .map_err(|e| HubError(format!("cannot set up the hub client: {e}")))?;
            Some(api.repo(Repo::with_revision(
                repo_id.to_string(),
                kind.hf(),
                opts.revision.clone(),
            )))
        };
        Ok(Self {
            kind,
            repo_id: repo_id.to_string(),
            opts: opts.clone(),
            api,
        })
    }

    /// "`file` of `org/name` at revision `main`".
    pub fn describe(&self, file: &str) -> String {
        format!(
            "`{file}` of `{}` at revision `{}`",
            self.repo_id, self.opts.revision
        )
    }

    /// The local path of `file`: from the cache, else (online) downloaded into it. `Ok(None)`
    /// when the repo does not have it (HTTP 404, or not cached when offline).
    pub fn try_get(&self, file: &str) -> Result<Option<PathBuf>> {
        if let Some(p) = cached_file(
            &self.opts.cache_dir,
            self.kind,
            &self.repo_id,
            &self.opts.revision,
            file,
        ) {
            return Ok(Some(p));
        }
        let Some(api) = &self.api else {
            return Ok(None);
        };
        match api.get(file) {
            Ok(p) => Ok(Some(p)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(HubError(format!(
                "downloading {} from {}: {}",
                self.describe(file),
                self.opts.endpoint,
                self.redact(&e.to_string())
            ))),
        }
    }

    /// The local path of `file`; its absence is an error naming what was looked for.
    pub fn get(&self, file: &str) -> Result<PathBuf> {
        self.try_get(file)?.ok_or_else(|| self.missing(&[file]))
    }

    /// The error for files the repo (or, offline, the cache) does not have.
    pub fn missing(&self, files: &[&str]) -> HubError {
        let what = files.join("`, `");
        if self.api.is_none() {
            HubError(format!(
                "offline mode (HF_HUB_OFFLINE=1): `{what}` of `{}` at revision `{}` is not in the cache {} \
                 (download it once online, or point zo at local files)",
                self.repo_id,
                self.opts.revision,
                self.opts.cache_dir.display()
            ))
        } else {
            HubError(format!(
                "`{what}` not found in `{}` at revision `{}` on {}",
                self.repo_id, self.opts.revision, self.opts.endpoint
            ))
        }
    }

    /// `text` with the token (should a library ever echo it) replaced.
    fn redact(&self, text: &str) -> String {
        match &self.opts.token {
            Some(t) if !t.is_empty() => text.replace(t.as_str(), "<token>"),
            _ => text.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k: &str| {
            pairs
                .iter()
                .find(|(a, _)| *a == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn env_settings_follow_huggingface_hub() {
        let o = HubOptions::from_env_vars(env(&[("HOME", "/home/u")]));
        assert_eq!(o.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(o.endpoint, DEFAULT_ENDPOINT);
        assert!(!o.offline);
        assert_eq!(o.revision, "main");
        let o = HubOptions::from_env_vars(env(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/x")]));
        assert_eq!(o.cache_dir, PathBuf::from("/x/huggingface/hub"));
        let o = HubOptions::from_env_vars(env(&[
            ("HF_HOME", "/data/hf"),
            ("HF_ENDPOINT", "http://127.0.0.1:9"),
            ("HF_TOKEN", "hf_abc"),
            ("HF_HUB_OFFLINE", "1"),
        ]));
        assert_eq!(o.cache_dir, PathBuf::from("/data/hf/hub"));
        assert_eq!(o.endpoint, "http://127.0.0.1:9");
        assert_eq!(o.token.as_deref(), Some("hf_abc"));
        assert!(o.offline);
        let o = HubOptions::from_env_vars(env(&[
            ("HF_HOME", "/h"),
            ("HF_HUB_CACHE", "/c"),
            ("HF_HUB_OFFLINE", "0"),
        ]));
        assert_eq!(o.cache_dir, PathBuf::from("/c"));
        assert!(!o.offline);
        let o = HubOptions::from_env_vars(|k| {
            (k == "HOME").then(|| "/u".into()).or(Some(String::new()))
        });
        assert_eq!(o.cache_dir, PathBuf::from("/u/.cache/huggingface/hub"));
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

    #[test]
    fn debug_hides_the_token() {
        let o = HubOptions::from_env_vars(env(&[("HOME", "/u"), ("HF_TOKEN", "hf_secret123")]));
        let s = format!("{o:?}");
        assert!(!s.contains("hf_secret123"), "{s}");
        assert!(s.contains("<hidden>"), "{s}");
    }

    #[test]
    fn cache_lookup_by_ref_or_commit_and_offline_errors() {
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
        let mut opts = HubOptions::from_env_vars(env(&[("HOME", "/u"), ("HF_TOKEN", "hf_x1")]));
        opts.cache_dir = dir.path().to_path_buf();
        opts.offline = true;
        let repo = HubRepo::new(RepoKind::Model, "facebook/opt-125m", &opts).unwrap();
        assert!(repo
            .get("config.json")
            .unwrap()
            .ends_with("snapshots/abc/config.json"));
        assert_eq!(repo.try_get("missing.bin").unwrap(), None);
        let e = repo.get("missing.bin").unwrap_err().to_string();
        assert!(e.contains("missing.bin") && e.contains("offline"), "{e}");
        assert!(!e.contains("hf_x1"), "{e}");
    }
}
