//! Loading a task's split as validated [`Example`]s, in HF row order (the order MeZO's
//! permutation indexes; docs/PROTOCOL.md 1.0 "Data loading").

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::TaskError;
use crate::example::Example;
use crate::hub::{dataset_file, HubOptions};
use crate::rows::for_each_row;
use crate::sampling::{sample_splits, SplitSizes, Splits};
use crate::task::Task;

/// Which HF split: `train` is the train+dev pool, `validation` the test pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Validation,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Validation => "validation",
        })
    }
}

/// What to do with a row that breaks the schema or an invariant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BadRowPolicy {
    /// Stop at the first bad row (MeZO's behaviour: it asserts / raises).
    #[default]
    Fail,
    /// Leave it out and go on; the skipped rows are reported. Kept rows keep their original
    /// `row` index, but MeZO's permutation then indexes a shorter pool.
    Skip,
}

/// Where a task's rows come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// The task's hub dataset (`task.toml` `[dataset]`), through the hub cache.
    Hub(HubOptions),
    /// A local directory: either a copy of the hub layout (the `task.toml` file names under
    /// it), or `train.{parquet,jsonl}` / `validation.{parquet,jsonl}`.
    Dir(PathBuf),
    /// Explicit files per split (parquet or JSONL by extension), concatenated in order.
    Files {
        train: Vec<PathBuf>,
        validation: Vec<PathBuf>,
    },
}

/// The rows of one split.
#[derive(Debug)]
pub struct LoadedRows {
    pub examples: Vec<Example>,
    /// Rows left out under [`BadRowPolicy::Skip`], each a [`TaskError::BadRow`].
    pub skipped: Vec<TaskError>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// The HF split size from `task.toml`, when the files came from the task's dataset
    /// (hub or a local copy of its layout). A different row count means another version of
    /// the data or a missing shard, and MeZO's permutation indices would point elsewhere: it
    /// is logged as a warning, and the runner can refuse it.
    pub expected_rows: Option<usize>,
}

impl LoadedRows {
    /// Rows read, skipped ones included.
    pub fn rows_read(&self) -> usize {
        self.examples.len() + self.skipped.len()
    }
}

/// The files of `split` for `task` from `source`.
pub fn resolve_files(
    task: Task,
    source: &DataSource,
    split: Split,
) -> Result<Vec<PathBuf>, TaskError> {
    let no_files = |place: String| TaskError::NoFiles {
        task: task.to_string(),
        split: split.to_string(),
        place,
    };
    let files = match source {
        DataSource::Files { train, validation } => match split {
            Split::Train => train.clone(),
            Split::Validation => validation.clone(),
        },
        DataSource::Hub(opts) => {
            let m = task.manifest()?;
            let names = split_names(&m.dataset, split);
            names
                .iter()
                .map(|f| dataset_file(opts, &m.dataset.repo, &m.dataset.revision, f))
                .collect::<Result<Vec<_>, _>>()?
        }
        DataSource::Dir(dir) => {
            let m = task.manifest()?;
            let hub_layout: Vec<PathBuf> = split_names(&m.dataset, split)
                .iter()
                .map(|f| dir.join(f))
                .collect();
            if !hub_layout.is_empty() && hub_layout.iter().all(|p| p.is_file()) {
                hub_layout
            } else {
                ["parquet", "jsonl"]
                    .iter()
                    .map(|ext| dir.join(format!("{split}.{ext}")))
                    .find(|p| p.is_file())
                    .map(|p| vec![p])
                    .ok_or_else(|| {
                        no_files(format!(
                            "{} (looked for {} and {split}.parquet / {split}.jsonl)",
                            dir.display(),
                            split_names(&m.dataset, split).join(", ")
                        ))
                    })?
            }
        }
    };
    if files.is_empty() {
        return Err(no_files(format!("{source:?}")));
    }
    Ok(files)
}

fn split_names(d: &crate::manifest::DatasetRef, split: Split) -> &[String] {
    match split {
        Split::Train => &d.train,
        Split::Validation => &d.validation,
    }
}

/// Load `split` of `task` from `source`.
pub fn load_rows(
    task: Task,
    source: &DataSource,
    split: Split,
    policy: BadRowPolicy,
) -> Result<LoadedRows, TaskError> {
    let files = resolve_files(task, source, split)?;
    let mut rows = load_files(task, &files, policy)?;
    let uses_manifest = match source {
        DataSource::Hub(_) => true,
        DataSource::Dir(dir) => {
            let m = task.manifest()?;
            split_names(&m.dataset, split)
                .iter()
                .map(|f| dir.join(f))
                .eq(files.iter().cloned())
        }
        DataSource::Files { .. } => false,
    };
    if uses_manifest {
        let pool = task.manifest()?.pool;
        let expected = match split {
            Split::Train => pool.train,
            Split::Validation => pool.validation,
        };
        rows.expected_rows = Some(expected);
        if rows.rows_read() != expected {
            tracing::warn!(
                task = %task,
                split = %split,
                expected,
                read = rows.rows_read(),
                "row count differs from the HF split MeZO used: sampled indices will not match"
            );
        }
    }
    Ok(rows)
}

/// Load rows of `task` from files (parquet or JSONL), concatenated in order; row indices run
/// across files.
pub fn load_files(
    task: Task,
    files: &[PathBuf],
    policy: BadRowPolicy,
) -> Result<LoadedRows, TaskError> {
    let mut out = LoadedRows {
        examples: Vec::new(),
        skipped: Vec::new(),
        files: files.to_vec(),
        expected_rows: None,
    };
    let mut row = 0usize;
    for path in files {
        load_one(task, path, policy, &mut row, &mut out)?;
    }
    if !out.skipped.is_empty() {
        tracing::warn!(
            task = %task,
            skipped = out.skipped.len(),
            first = %out.skipped[0],
            "bad rows skipped"
        );
    }
    Ok(out)
}

fn load_one(
    task: Task,
    path: &Path,
    policy: BadRowPolicy,
    row: &mut usize,
    out: &mut LoadedRows,
) -> Result<(), TaskError> {
    for_each_row(path, |position, value| {
        let idx = *row;
        *row += 1;
        match value.and_then(|v| Example::from_json(task, idx, &v)) {
            Ok(ex) => out.examples.push(ex),
            Err(kind) => {
                let e = TaskError::BadRow {
                    location: format!("{}, {position}", path.display()),
                    row: idx,
                    kind,
                };
                match policy {
                    BadRowPolicy::Fail => return Err(e),
                    BadRowPolicy::Skip => out.skipped.push(e),
                }
            }
        }
        Ok(())
    })
}

/// Load both pools of `task` and take MeZO's seeded subsets (docs/PROTOCOL.md 1.0): train and
/// dev from the train split, test from the validation split, all with `seed`.
pub fn load_splits(
    task: Task,
    source: &DataSource,
    seed: u32,
    sizes: SplitSizes,
    policy: BadRowPolicy,
) -> Result<Splits<Example>, TaskError> {
    let train = load_rows(task, source, Split::Train, policy)?;
    let valid = load_rows(task, source, Split::Validation, policy)?;
    sample_splits(&train.examples, &valid.examples, seed, sizes)
}
