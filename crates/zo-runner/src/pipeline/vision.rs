//! ResNet × CIFAR, the paper's Table 5: CIFAR data (the hub's parquet, or a local directory of
//! binary batches or parquet files) → MeZO-style subsets → ResNet (random `builtin:resnetN` or a
//! torchvision/timm checkpoint, its depth read from the tensor names) → cross-entropy loss and
//! accuracy. The data and model readers are zo-tasks' and zo-models'; this is the glue.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{Device, Tensor};
use zo_models::resnet::{Depth, ResNet, ResNetConfig, Stem};
use zo_tasks::cifar::{self, CifarKind, CifarSet, Normalization, IMAGE_LEN};
use zo_tasks::{HubOptions, RepoKind, SplitSizes};

use crate::settings::{ModelSettings, Settings};

/// Images per forward pass when evaluating (bounded memory on any split size).
pub const EVAL_BATCH_IMAGES: usize = 128;
/// The checkpoint file zo writes for a ResNet (torchvision names, params and BN buffers).
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// The CIFAR variant a task name stands for, if it is one.
pub fn cifar_kind(task: &str) -> Option<CifarKind> {
    match task {
        "cifar10" => Some(CifarKind::Cifar10),
        "cifar100" => Some(CifarKind::Cifar100Fine),
        _ => None,
    }
}

/// The hub's copy of a CIFAR variant: repo and the parquet file of each split. The file names
/// follow the dataset cards' `data_files` (`plain_text/train-*`); not checked online here.
fn hub_files(kind: CifarKind) -> (&'static str, [&'static str; 2]) {
    match kind {
        CifarKind::Cifar10 => (
            "uoft-cs/cifar10",
            [
                "plain_text/train-00000-of-00001.parquet",
                "plain_text/test-00000-of-00001.parquet",
            ],
        ),
        _ => (
            "uoft-cs/cifar100",
            [
                "cifar100/train-00000-of-00001.parquet",
                "cifar100/test-00000-of-00001.parquet",
            ],
        ),
    }
}

/// The train, dev and test images of a run.
pub struct VisionData {
    pub train: CifarSet,
    pub dev: CifarSet,
    pub test: CifarSet,
}

/// Parquet files under `dir` (and one level below) whose name starts with `prefix`, sorted.
fn parquet_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(dir) {
        dirs.extend(
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir()),
        );
    }
    for d in dirs {
        if let Ok(rd) = std::fs::read_dir(&d) {
            out.extend(rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| {
                p.extension().is_some_and(|x| x == "parquet")
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            }));
        }
    }
    out.sort();
    out
}

/// Reads both pools (train, test) from a local directory: the binary batches (in `dir` or the
/// archive's own `cifar-10-batches-bin/` / `cifar-100-binary/` folder), else parquet files.
fn read_dir_pools(dir: &Path, kind: CifarKind, norm: Normalization) -> Result<[CifarSet; 2]> {
    if !dir.is_dir() {
        bail!("task.data {}: not a directory", dir.display());
    }
    let sub = match kind {
        CifarKind::Cifar10 => "cifar-10-batches-bin",
        _ => "cifar-100-binary",
    };
    for base in [dir.to_path_buf(), dir.join(sub)] {
        let files = |train| {
            kind.binary_files(train)
                .into_iter()
                .map(|f| base.join(f))
                .collect::<Vec<_>>()
        };
        let (tr, te) = (files(true), files(false));
        if tr.iter().chain(&te).all(|p| p.is_file()) {
            return Ok([
                cifar::read_binary(&tr, kind, norm)?,
                cifar::read_binary(&te, kind, norm)?,
            ]);
        }
    }
    let (tr, te) = (parquet_files(dir, "train"), parquet_files(dir, "test"));
    if tr.is_empty() || te.is_empty() {
        bail!(
            "task.data {}: no CIFAR files (binary batches {:?} and {:?}, or train*/test* parquet files)",
            dir.display(),
            kind.binary_files(true),
            kind.binary_files(false)
        );
    }
    Ok([
        cifar::read_parquet(&tr, kind, norm)?,
        cifar::read_parquet(&te, kind, norm)?,
    ])
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

/// Loads the data of a run: the pools, then MeZO's sampling rule applied to them (train and
/// dev are disjoint subsets of the training pool, test a subset of the test pool, all from
/// numpy's permutation under `task.data_seed`; sizes above a pool take the whole pool).
pub fn load_data(s: &Settings) -> Result<VisionData> {
    let kind = cifar_kind(&s.task.name).ok_or_else(|| {
        anyhow!(
            "config: key `task.name`: `{}` is not cifar10 or cifar100",
            s.task.name
        )
    })?;
    let norm = Normalization::for_kind(kind);
    let [train_pool, test_pool] = match s.task.data.as_str() {
        "hub" => {
            let opts = HubOptions::from_env();
            let (repo, files) = hub_files(kind);
            let get = |f: &str| zo_tasks::hub::dataset_file(&opts, repo, "main", f);
            let (tr, te) = (get(files[0])?, get(files[1])?);
            [
                cifar::read_parquet(&[tr], kind, norm)?,
                cifar::read_parquet(&[te], kind, norm)?,
            ]
        }
        dir => read_dir_pools(Path::new(dir), kind, norm)?,
    };
    let sizes = SplitSizes {
        num_train: s.task.num_train,
        num_dev: s.task.num_dev,
        num_eval: s.task.num_eval,
    };
    let idx = zo_tasks::sampling::split_indices(
        train_pool.len(),
        test_pool.len(),
        s.task.data_seed,
        sizes,
    )?;
    Ok(VisionData {
        train: pick(&train_pool, &idx.train),
        dev: pick(&train_pool, &idx.dev),
        test: pick(&test_pool, &idx.test),
    })
}

/// The names and shapes of a checkpoint's tensors, without loading them.
fn tensor_shapes(path: &Path) -> Result<HashMap<String, Vec<usize>>> {
    if path.extension().is_some_and(|e| e == "safetensors") {
        // SAFETY: the file is only read; a concurrent truncation would be a user error that
        // the safetensors parser reports.
        let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }
            .map_err(|e| anyhow!("{}: malformed checkpoint: {e}", path.display()))?;
        Ok(st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.shape().to_vec()))
            .collect())
    } else {
        zo_models::pickle_guard::check_archive(path)?;
        let infos = candle_core::pickle::read_pth_tensor_info(path, false, None)
            .map_err(|e| anyhow!("{}: malformed checkpoint: {e}", path.display()))?;
        Ok(infos
            .into_iter()
            .map(|i| (i.name, i.layout.shape().dims().to_vec()))
            .collect())
    }
}

/// The shape of a torchvision/timm ResNet checkpoint, read from its tensor names: the stem
/// from `conv1`'s kernel, the width from its channels, the depth from the blocks per stage.
fn infer_config(path: &Path, num_classes: usize) -> Result<ResNetConfig> {
    let shapes = tensor_shapes(path)?;
    let conv1 = shapes.get("conv1.weight").ok_or_else(|| {
        anyhow!(
            "{}: not a ResNet checkpoint (no conv1.weight)",
            path.display()
        )
    })?;
    if conv1.len() != 4 {
        bail!(
            "{}: conv1.weight has shape {conv1:?}, not 4-D",
            path.display()
        );
    }
    let stem = match conv1[2] {
        7 => Stem::ImageNet,
        3 => Stem::Cifar,
        k => bail!(
            "{}: conv1 kernel {k}×{k} is neither 7×7 (ImageNet stem) nor 3×3 (CIFAR stem)",
            path.display()
        ),
    };
    let mut blocks = [0usize; 4];
    for (s, b) in blocks.iter_mut().enumerate() {
        while shapes.contains_key(&format!("layer{}.{}.conv1.weight", s + 1, *b)) {
            *b += 1;
        }
    }
    let bottleneck = shapes.contains_key("layer1.0.conv3.weight");
    let depth = match (blocks, bottleneck) {
        ([2, 2, 2, 2], false) => Depth::R18,
        ([3, 4, 6, 3], false) => Depth::R34,
        ([3, 4, 6, 3], true) => Depth::R50,
        ([3, 4, 23, 3], true) => Depth::R101,
        ([3, 8, 36, 3], true) => Depth::R152,
        _ => bail!(
            "{}: blocks per stage {blocks:?} (bottleneck: {bottleneck}) is not ResNet-18/34/50/101/152",
            path.display()
        ),
    };
    let mut cfg = ResNetConfig::new(depth, num_classes, stem);
    cfg.base_width = conv1[0];
    Ok(cfg)
}

/// The weights file of a directory (zo's own, or a hub download's), or the file itself.
fn weights_file(source: &Path) -> Result<PathBuf> {
    if source.is_file() {
        return Ok(source.to_path_buf());
    }
    if !source.is_dir() {
        bail!(
            "model.source {}: no such file or directory",
            source.display()
        );
    }
    ["model.safetensors", "pytorch_model.bin"]
        .iter()
        .map(|f| source.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "{}: no ResNet weights (model.safetensors or pytorch_model.bin)",
                source.display()
            )
        })
}

/// Loads (or builds) the ResNet of the settings with a `num_classes` head. `weights`, when
/// given, replaces `model.source` (a checkpoint of this run).
pub fn load_model(m: &ModelSettings, num_classes: usize, weights: Option<&Path>) -> Result<ResNet> {
    let dev: Device = super::model::device(&m.device)?;
    let dtype = m.dtype.candle();
    let file = match (weights, m.source.strip_prefix("builtin:")) {
        (Some(dir), _) => weights_file(dir)?,
        (None, Some("tiny-resnet")) => {
            // ResNet-18's layout at width 8 (≈ 0.18 M parameters): tests and quick trials.
            let mut cfg = ResNetConfig::new(Depth::R18, num_classes, Stem::Cifar);
            cfg.base_width = 8;
            return Ok(ResNet::random(cfg, m.init_seed, dtype, &dev)?);
        }
        (None, Some(name)) => {
            let depth = match name {
                "resnet18" => Depth::R18,
                "resnet34" => Depth::R34,
                "resnet50" => Depth::R50,
                "resnet101" => Depth::R101,
                "resnet152" => Depth::R152,
                other => bail!("config: key `model.source`: no built-in ResNet `{other}` (tiny-resnet, resnet18, resnet34, resnet50, resnet101, resnet152)"),
            };
            let cfg = ResNetConfig::new(depth, num_classes, Stem::Cifar);
            return Ok(ResNet::random(cfg, m.init_seed, dtype, &dev)?);
        }
        (None, None) => match super::model::locate(&m.source) {
            super::model::ModelLocation::Dir(p) => weights_file(&p)?,
            super::model::ModelLocation::Hub { repo, revision } => {
                let opts = HubOptions::from_env();
                zo_tasks::hub::repo_file(&opts, RepoKind::Model, &repo, &revision, WEIGHTS_FILE)?
            }
        },
    };
    let cfg = infer_config(&file, num_classes)?;
    Ok(ResNet::from_checkpoint(
        &file,
        cfg,
        m.init_seed,
        dtype,
        &dev,
    )?)
}

/// Writes the model (trainable tensors and BN buffers, torchvision names) as `WEIGHTS_FILE`
/// into `dir` (which the caller swaps in atomically).
pub fn save_model(model: &ResNet, dir: &Path) -> Result<()> {
    let mut map: HashMap<String, Tensor> = model
        .params()
        .iter()
        .map(|(_, n, t)| (n.to_string(), t.clone()))
        .collect();
    map.extend(model.buffers().iter().map(|(n, t)| (n.clone(), t.clone())));
    let path = dir.join(WEIGHTS_FILE);
    candle_core::safetensors::save(&map, &path)
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// The images at `idx` as one `[n, 3, 32, 32]` tensor.
fn images(model: &ResNet, set: &CifarSet, idx: &[usize]) -> Result<Tensor> {
    let mut v = Vec::with_capacity(idx.len() * IMAGE_LEN);
    for &i in idx {
        v.extend_from_slice(
            set.image(i)
                .ok_or_else(|| anyhow!("image index {i} out of range"))?,
        );
    }
    Ok(Tensor::from_vec(v, (idx.len(), 3, 32, 32), model.device())?)
}

/// Per-image cross-entropy (f64 log-sum-exp of the f32 logits) and argmax prediction.
fn score(model: &ResNet, set: &CifarSet, idx: &[usize]) -> Result<Vec<(f64, u32)>> {
    let logits = model
        .forward(&images(model, set, idx)?)?
        .to_dtype(candle_core::DType::F32)?
        .to_vec2::<f32>()?;
    idx.iter()
        .zip(logits)
        .map(|(&i, row)| {
            let gold = set.labels[i] as usize;
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = max
                + row
                    .iter()
                    .map(|&l| (l as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            let loss = lse - row[gold] as f64;
            // First maximum wins ties (numpy's argmax).
            let pred = row
                .iter()
                .enumerate()
                .fold(0, |b, (j, &l)| if l > row[b] { j } else { b });
            if !loss.is_finite() {
                bail!("non-finite logits for image {i}");
            }
            Ok((loss, pred as u32))
        })
        .collect()
}

/// Mean cross-entropy of a mini-batch (one forward pass).
pub fn batch_loss(model: &ResNet, set: &CifarSet, idx: &[usize]) -> Result<f64> {
    anyhow::ensure!(!idx.is_empty(), "empty batch");
    let s = score(model, set, idx)?;
    Ok(s.iter().map(|(l, _)| l).sum::<f64>() / s.len() as f64)
}

/// Loss, accuracy and per-image predictions over the first `limit` images of a set (all when
/// `limit` is 0), in batches of [`EVAL_BATCH_IMAGES`].
pub struct Scores {
    pub loss: f64,
    pub accuracy: f64,
    pub predictions: Vec<u32>,
}

pub fn evaluate(model: &ResNet, set: &CifarSet, limit: usize) -> Result<Scores> {
    let n = if limit == 0 {
        set.len()
    } else {
        limit.min(set.len())
    };
    anyhow::ensure!(n > 0, "no images to evaluate");
    let (mut loss, mut correct, mut predictions) = (0.0, 0usize, Vec::with_capacity(n));
    let all: Vec<usize> = (0..n).collect();
    for chunk in all.chunks(EVAL_BATCH_IMAGES) {
        for (&i, (l, p)) in chunk.iter().zip(score(model, set, chunk)?) {
            loss += l;
            correct += usize::from(p == set.labels[i]);
            predictions.push(p);
        }
    }
    Ok(Scores {
        loss: loss / n as f64,
        accuracy: correct as f64 / n as f64,
        predictions,
    })
}
