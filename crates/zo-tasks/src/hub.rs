//! Dataset (and model) files from the Hugging Face hub, through zo's one hub client
//! ([`zo_hub`]): the cache first, then (unless `HF_HUB_OFFLINE` is set) a download into it.

use std::path::PathBuf;

pub use zo_hub::{cached_file, HubOptions, HubRepo, RepoKind};

use crate::error::TaskError;

/// Resolve one file of a dataset repo to a local path (see [`repo_file`]).
pub fn dataset_file(
    opts: &HubOptions,
    repo: &str,
    revision: &str,
    file: &str,
) -> Result<PathBuf, TaskError> {
    repo_file(opts, RepoKind::Dataset, repo, revision, file)
}

/// Resolve one file of a hub repo at `revision` to a local path (a missing file is an error
/// naming the repo, revision, file and, offline, the cache).
pub fn repo_file(
    opts: &HubOptions,
    kind: RepoKind,
    repo: &str,
    revision: &str,
    file: &str,
) -> Result<PathBuf, TaskError> {
    let err = |message: String| TaskError::Hub {
        repo: repo.to_string(),
        revision: revision.to_string(),
        file: file.to_string(),
        message,
    };
    let opts = opts.clone().with_revision(revision);
    HubRepo::new(kind, repo, &opts)
        .and_then(|r| r.get(file))
        .map_err(|e| err(e.0))
}
