//! ResNet × CIFAR (the paper's Table 5) glue: zo-tasks' image splits, zo-models' ResNet
//! (built-in, checkpoint or hub), the mini-batch loss and the evaluation loop.

use std::path::{Path, PathBuf};

use anyhow::Result;
use candle_core::Device;
use zo_models::resnet::{ResNet, ResNetPreset};
use zo_tasks::cifar::{CifarSet, IMAGE_LEN};
use zo_tasks::{load_image_splits, DataSource, HubOptions, ImageSplits, ImageTask, SplitSizes};

use super::model::{hub_options, locate, ModelLocation};
use crate::settings::{ModelSettings, Settings};

/// Images per forward pass when evaluating (bounded memory on any split size).
pub const EVAL_BATCH_IMAGES: usize = 128;

/// The train, dev and test images of a run (`task.data`: `hub` or a local directory).
pub fn load_data(s: &Settings, task: ImageTask) -> Result<ImageSplits> {
    let src = match s.task.data.as_str() {
        "hub" => DataSource::Hub(HubOptions::from_env()),
        dir => DataSource::Dir(PathBuf::from(dir)),
    };
    let sizes = SplitSizes {
        num_train: s.task.num_train,
        num_dev: s.task.num_dev,
        num_eval: s.task.num_eval,
    };
    Ok(load_image_splits(task, &src, s.task.data_seed, sizes)?)
}

/// Loads (or builds) the ResNet of the settings with the task's head. `weights`, when given,
/// replaces `model.source` (a directory this tool saved).
pub fn load_resnet(
    m: &ModelSettings,
    task: ImageTask,
    dev: &Device,
    weights: Option<&Path>,
) -> Result<ResNet> {
    let (classes, seed, dtype) = (task.num_classes(), m.init_seed, m.dtype.candle());
    let mut model = match weights {
        Some(dir) => ResNet::from_path(dir, classes, seed, dtype, dev)?,
        None => locate_resnet(m, classes, seed, dtype, dev)?,
    };
    model.set_compute(m.compute.kernel_for_this_cpu());
    Ok(model)
}

fn locate_resnet(
    m: &ModelSettings,
    classes: usize,
    seed: u64,
    dtype: candle_core::DType,
    dev: &Device,
) -> Result<ResNet> {
    Ok(match locate(&m.source) {
        ModelLocation::Builtin(name) => {
            let preset: ResNetPreset = name
                .parse()
                .map_err(|e| anyhow::anyhow!("config: key `model.source`: {e}"))?;
            ResNet::preset(preset, classes, seed, dtype, dev)?
        }
        ModelLocation::Dir(p) => ResNet::from_path(&p, classes, seed, dtype, dev)?,
        ModelLocation::Hub { repo, revision } => {
            ResNet::from_hub(&repo, &hub_options(&revision), classes, seed, dtype, dev)?
        }
    })
}

/// Per-image loss and prediction of the images at `idx`.
fn score(model: &ResNet, set: &CifarSet, idx: &[usize]) -> Result<Vec<(f64, u32)>> {
    let mut images = Vec::with_capacity(idx.len() * IMAGE_LEN);
    let mut labels = Vec::with_capacity(idx.len());
    for &i in idx {
        let img = set
            .image(i)
            .ok_or_else(|| anyhow::anyhow!("image index {i} out of range"))?;
        images.extend_from_slice(img);
        labels.push(set.labels[i]);
    }
    Ok(model.classify(&images, &labels)?)
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
