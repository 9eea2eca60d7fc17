//! `tasks/<task>/task.toml`: where a task's data lives on the hub and in this repository.
//! The files are compiled in (`include_str!`) so the binary needs no checkout; tests check
//! them against [`crate::Task::spec`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::sampling::SplitSizes;
use crate::task::Task;

/// A task's manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskManifest {
    /// Our task name (`sst2`, …).
    pub task: Task,
    /// MeZO's template class (`large_models/templates.py`), for the reader.
    pub template: String,
    pub dataset: DatasetRef,
    /// HF split sizes (the pools), for reference and tests.
    pub pool: PoolSizes,
    /// `mezo.sh` defaults.
    pub sizes: SplitSizes,
    pub fixture: FixtureFiles,
    /// Small made-up training data for the quickstart (SST-2 only).
    #[serde(default)]
    pub quickstart: Option<QuickstartFiles>,
}

/// Quickstart rows, relative to `tasks/<task>/`: `train` plays the train+dev pool, `dev` the
/// validation (test) pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuickstartFiles {
    pub train: String,
    pub dev: String,
}

/// A dataset on the hub in the parquet-export layout (`refs/convert/parquet`:
/// `<config>/<split>/0000.parquet`, more shards numbered on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetRef {
    /// The dataset repo today (`nyu-mll/glue`, …).
    pub repo: String,
    /// What MeZO called (`load_dataset('glue', 'sst2')`), for the reader.
    pub mezo_load: String,
    pub config: String,
    pub revision: String,
    /// Files of the train split (the train/dev pool), concatenated in order.
    pub train: Vec<String>,
    /// Files of the validation split (the test pool).
    pub validation: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSizes {
    pub train: usize,
    pub validation: usize,
}

/// Rows we wrote, relative to `tasks/<task>/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureFiles {
    pub jsonl: String,
    #[serde(default)]
    pub parquet: Option<String>,
}

impl TaskManifest {
    pub fn parse(text: &str, origin: &str) -> Result<Self, TaskError> {
        toml::from_str(text).map_err(|e| TaskError::Manifest {
            path: origin.to_string(),
            message: e.to_string(),
        })
    }

    /// Read a `task.toml` from disk.
    pub fn load(path: &std::path::Path) -> Result<Self, TaskError> {
        let text = std::fs::read_to_string(path).map_err(|e| TaskError::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }
}

impl Task {
    /// The compiled-in `tasks/<task>/task.toml`.
    pub fn manifest(self) -> Result<TaskManifest, TaskError> {
        let text = match self {
            Task::Sst2 => include_str!("../../../tasks/sst2/task.toml"),
            Task::Rte => include_str!("../../../tasks/rte/task.toml"),
            Task::Copa => include_str!("../../../tasks/copa/task.toml"),
            Task::Record => include_str!("../../../tasks/record/task.toml"),
            Task::Squad => include_str!("../../../tasks/squad/task.toml"),
            Task::Drop => include_str!("../../../tasks/drop/task.toml"),
        };
        let m = TaskManifest::parse(text, &format!("tasks/{self}/task.toml"))?;
        if m.task != self {
            return Err(TaskError::Manifest {
                path: format!("tasks/{self}/task.toml"),
                message: format!("declares task {} instead", m.task),
            });
        }
        Ok(m)
    }

    /// `tasks/<task>/` in this source tree (for tests and tools; a binary should not rely on it).
    pub fn source_dir(self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tasks")
            .join(self.name())
    }
}
