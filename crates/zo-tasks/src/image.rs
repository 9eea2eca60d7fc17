//! The image tasks (the paper's Table 5): CIFAR-10 and CIFAR-100 as tasks with a compiled-in
//! `tasks/<task>/task.toml` (hub files, binary files, label column, normalisation), their
//! pools read from the hub, a local directory or explicit files, and MeZO's seeded subsets.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::cifar::{self, CifarKind, CifarSet, Normalization, IMAGE_LEN};
use crate::data::DataSource;
use crate::error::TaskError;
use crate::hub::dataset_file;
use crate::sampling::{split_indices, SplitSizes};
use crate::task::Task;

/// An image classification task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageTask {
    Cifar10,
    /// CIFAR-100's 100 fine classes.
    Cifar100,
}

impl ImageTask {
    pub const ALL: [ImageTask; 2] = [ImageTask::Cifar10, ImageTask::Cifar100];

    pub fn name(self) -> &'static str {
        match self {
            ImageTask::Cifar10 => "cifar10",
            ImageTask::Cifar100 => "cifar100",
        }
    }

    /// The dataset and label the readers take.
    pub fn kind(self) -> CifarKind {
        match self {
            ImageTask::Cifar10 => CifarKind::Cifar10,
            ImageTask::Cifar100 => CifarKind::Cifar100Fine,
        }
    }

    pub fn num_classes(self) -> usize {
        self.kind().num_classes()
    }

    /// The compiled-in `tasks/<task>/task.toml`.
    pub fn manifest(self) -> Result<ImageManifest, TaskError> {
        let text = match self {
            ImageTask::Cifar10 => include_str!("../../../tasks/cifar10/task.toml"),
            ImageTask::Cifar100 => include_str!("../../../tasks/cifar100/task.toml"),
        };
        let path = format!("tasks/{self}/task.toml");
        let m: ImageManifest = toml::from_str(text).map_err(|e| TaskError::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if m.task != self {
            return Err(TaskError::Manifest {
                path,
                message: format!("declares task {} instead", m.task),
            });
        }
        Ok(m)
    }
}

impl fmt::Display for ImageTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ImageTask {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cifar10" | "cifar-10" => Ok(ImageTask::Cifar10),
            "cifar100" | "cifar-100" => Ok(ImageTask::Cifar100),
            _ => Err(TaskError::UnknownTask(s.to_string())),
        }
    }
}

/// An image task's `task.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageManifest {
    pub task: ImageTask,
    pub classes: usize,
    /// Per-channel normalisation of pixels scaled to [0, 1].
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub dataset: ImageDataset,
    pub binary: BinaryFiles,
    pub pool: ImagePools,
}

/// The hub's parquet copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDataset {
    pub repo: String,
    pub revision: String,
    pub label_column: String,
    pub train: Vec<String>,
    pub test: Vec<String>,
}

/// The original binary files, relative to the extracted archive's `folder`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinaryFiles {
    pub folder: String,
    pub train: Vec<String>,
    pub test: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagePools {
    pub train: usize,
    pub test: usize,
}

impl ImageManifest {
    pub fn normalization(&self) -> Normalization {
        Normalization {
            mean: self.mean,
            std: self.std,
        }
    }
}

/// The train, dev and test images of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSplits {
    pub train: CifarSet,
    pub dev: CifarSet,
    pub test: CifarSet,
}

/// Files under `dir` (and one level below) with extension `ext` whose name starts with
/// `prefix`, sorted.
fn files_with_prefix(dir: &Path, prefix: &str, ext: &str) -> Vec<PathBuf> {
    let list = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(list(dir).into_iter().filter(|p| p.is_dir()));
    let mut out: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| list(d))
        .filter(|p| {
            p.extension().is_some_and(|x| x == ext)
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    out.sort();
    out
}

fn cifar_err(e: cifar::CifarError) -> TaskError {
    TaskError::Image(e.to_string())
}

/// Reads one pool from explicit files: binary batches (`.bin`) or parquet, by extension.
fn read_files(
    files: &[PathBuf],
    kind: CifarKind,
    norm: Normalization,
) -> Result<CifarSet, TaskError> {
    let binary = files
        .iter()
        .all(|p| p.extension().is_some_and(|e| e == "bin"));
    if binary {
        cifar::read_binary(files, kind, norm).map_err(cifar_err)
    } else {
        cifar::read_parquet(files, kind, norm).map_err(cifar_err)
    }
}

/// Reads both pools (train, test) from a local directory: the binary files (in `dir` or the
/// archive's own folder), else `train*` / `test*` parquet files.
fn read_dir_pools(
    m: &ImageManifest,
    dir: &Path,
    norm: Normalization,
) -> Result<[CifarSet; 2], TaskError> {
    let kind = m.task.kind();
    if !dir.is_dir() {
        return Err(TaskError::Image(format!(
            "{}: not a directory",
            dir.display()
        )));
    }
    for base in [dir.to_path_buf(), dir.join(&m.binary.folder)] {
        let files = |names: &[String]| names.iter().map(|f| base.join(f)).collect::<Vec<_>>();
        let (tr, te) = (files(&m.binary.train), files(&m.binary.test));
        if tr.iter().chain(&te).all(|p| p.is_file()) {
            return Ok([read_files(&tr, kind, norm)?, read_files(&te, kind, norm)?]);
        }
    }
    let (tr, te) = (
        files_with_prefix(dir, "train", "parquet"),
        files_with_prefix(dir, "test", "parquet"),
    );
    if tr.is_empty() || te.is_empty() {
        return Err(TaskError::Image(format!(
            "{}: no CIFAR files for {} (binary {:?} and {:?}, or train*/test* parquet files)",
            dir.display(),
            m.task,
            m.binary.train,
            m.binary.test
        )));
    }
    Ok([read_files(&tr, kind, norm)?, read_files(&te, kind, norm)?])
}

/// The images at `idx` of `set`, in that order.
fn pick(set: &CifarSet, idx: &[usize]) -> CifarSet {
    let mut images = Vec::with_capacity(idx.len() * IMAGE_LEN);
    let mut labels = Vec::with_capacity(idx.len());
    for &i in idx {
        images.extend_from_slice(&set.images[i * IMAGE_LEN..(i + 1) * IMAGE_LEN]);
        labels.push(set.labels[i]);
    }
    CifarSet {
        images,
        labels,
        num_classes: set.num_classes,
    }
}

/// The pools of `task` from `src`: the hub's parquet (through the cache), a local directory,
/// or explicit files per split (`validation` plays the test pool).
pub fn load_image_pools(task: ImageTask, src: &DataSource) -> Result<[CifarSet; 2], TaskError> {
    let m = task.manifest()?;
    let (kind, norm) = (task.kind(), m.normalization());
    match src {
        DataSource::Hub(opts) => {
            let get = |files: &[String]| -> Result<Vec<PathBuf>, TaskError> {
                files
                    .iter()
                    .map(|f| dataset_file(opts, &m.dataset.repo, &m.dataset.revision, f))
                    .collect()
            };
            Ok([
                read_files(&get(&m.dataset.train)?, kind, norm)?,
                read_files(&get(&m.dataset.test)?, kind, norm)?,
            ])
        }
        DataSource::Dir(dir) => read_dir_pools(&m, dir, norm),
        DataSource::Files { train, validation } => Ok([
            read_files(train, kind, norm)?,
            read_files(validation, kind, norm)?,
        ]),
    }
}

/// Loads the data of a run: the pools, then MeZO's sampling rule applied to them (train and
/// dev are disjoint subsets of the training pool, test a subset of the test pool, all from
/// numpy's permutation under `seed`; sizes above a pool take the whole pool).
pub fn load_image_splits(
    task: ImageTask,
    src: &DataSource,
    seed: u32,
    sizes: SplitSizes,
) -> Result<ImageSplits, TaskError> {
    let [train_pool, test_pool] = load_image_pools(task, src)?;
    let idx = split_indices(train_pool.len(), test_pool.len(), seed, sizes)?;
    Ok(ImageSplits {
        train: pick(&train_pool, &idx.train),
        dev: pick(&train_pool, &idx.dev),
        test: pick(&test_pool, &idx.test),
    })
}

/// Any task zo trains on: one of MeZO's text tasks or an image task. Parsed once, at the edge
/// (`task.name`), so text and image workloads never meet a task of the other family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AnyTask {
    Text(Task),
    Image(ImageTask),
}

impl fmt::Display for AnyTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyTask::Text(t) => t.fmt(f),
            AnyTask::Image(t) => t.fmt(f),
        }
    }
}

impl FromStr for AnyTask {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<Task>()
            .map(AnyTask::Text)
            .or_else(|_| s.parse().map(AnyTask::Image))
            .map_err(|_| TaskError::UnknownTask(s.to_string()))
    }
}

impl TryFrom<String> for AnyTask {
    type Error = TaskError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<AnyTask> for String {
    fn from(t: AnyTask) -> String {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_agree_with_the_readers() {
        for t in ImageTask::ALL {
            let m = t.manifest().unwrap();
            assert_eq!(m.task, t);
            assert_eq!(m.classes, t.num_classes());
            assert_eq!(m.normalization(), Normalization::for_kind(t.kind()));
            let binary = |train| t.kind().binary_files(train);
            assert_eq!(m.binary.train, binary(true));
            assert_eq!(m.binary.test, binary(false));
            assert_eq!(m.dataset.label_column, t.kind().label_column());
            assert_eq!(t.name().parse::<ImageTask>().unwrap(), t);
        }
        assert!("sst2".parse::<ImageTask>().is_err());
    }
}
