//! ResNet checkpoints and built-ins: a torchvision/timm file (or a directory holding one, or a
//! hub repo) whose shape is read from its tensor names, zo's own saved weights, and the
//! `builtin:` presets (random weights, CIFAR stem).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};

use super::{Depth, ResNet, ResNetConfig, Stem};
use crate::hub::HubOptions;
use crate::{Error, Result};

/// The weights file zo writes for a ResNet (torchvision names, params and BN buffers), and
/// the one fetched from a hub repo.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Files a directory may hold the weights in, in order of preference.
const WEIGHT_FILES: [&str; 2] = [WEIGHTS_FILE, "pytorch_model.bin"];

/// The built-in ResNets: random weights from a seed, CIFAR stem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResNetPreset {
    /// ResNet-18's layout at width 8 (≈ 0.18 M parameters): tests and quick trials.
    Tiny,
    Standard(Depth),
}

impl ResNetPreset {
    pub const NAMES: &'static str =
        "tiny-resnet, resnet18, resnet34, resnet50, resnet101, resnet152";

    /// The shape of this preset with a `num_classes` head.
    pub fn config(self, num_classes: usize) -> ResNetConfig {
        match self {
            ResNetPreset::Tiny => {
                let mut cfg = ResNetConfig::new(Depth::R18, num_classes, Stem::Cifar);
                cfg.base_width = 8;
                cfg
            }
            ResNetPreset::Standard(d) => ResNetConfig::new(d, num_classes, Stem::Cifar),
        }
    }
}

impl FromStr for ResNetPreset {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "tiny-resnet" => ResNetPreset::Tiny,
            "resnet18" => ResNetPreset::Standard(Depth::R18),
            "resnet34" => ResNetPreset::Standard(Depth::R34),
            "resnet50" => ResNetPreset::Standard(Depth::R50),
            "resnet101" => ResNetPreset::Standard(Depth::R101),
            "resnet152" => ResNetPreset::Standard(Depth::R152),
            other => {
                return Err(Error::Input(format!(
                    "no built-in ResNet `{other}` ({})",
                    Self::NAMES
                )))
            }
        })
    }
}

/// The names and shapes of a checkpoint's tensors, without loading them.
fn tensor_shapes(path: &Path) -> Result<HashMap<String, Vec<usize>>> {
    let bad = |e: candle_core::Error| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if path.extension().is_some_and(|e| e == "safetensors") {
        // SAFETY: the file is only read; a concurrent truncation would be a user error that
        // the safetensors parser reports.
        let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }.map_err(bad)?;
        Ok(st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.shape().to_vec()))
            .collect())
    } else {
        // The pickle is checked (only the tensor-rebuild globals) before candle reads it.
        crate::pickle_guard::check_archive(path)?;
        let infos = candle_core::pickle::read_pth_tensor_info(path, false, None).map_err(bad)?;
        Ok(infos
            .into_iter()
            .map(|i| (i.name, i.layout.shape().dims().to_vec()))
            .collect())
    }
}

impl ResNetConfig {
    /// The shape of a torchvision/timm ResNet checkpoint, read from its tensor names: the
    /// stem from `conv1`'s kernel, the width from its channels, the depth from the blocks per
    /// stage; the head gets `num_classes`.
    pub fn infer_from_checkpoint(path: &Path, num_classes: usize) -> Result<Self> {
        let shapes = tensor_shapes(path)?;
        let bad = |reason: String| Error::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        let conv1 = shapes
            .get("conv1.weight")
            .ok_or_else(|| bad("not a ResNet checkpoint (no conv1.weight)".into()))?;
        if conv1.len() != 4 {
            return Err(bad(format!("conv1.weight has shape {conv1:?}, not 4-D")));
        }
        let stem = match conv1[2] {
            7 => Stem::ImageNet,
            3 => Stem::Cifar,
            k => {
                return Err(bad(format!(
                    "conv1 kernel {k}×{k} is neither 7×7 (ImageNet stem) nor 3×3 (CIFAR stem)"
                )))
            }
        };
        let mut blocks = [0usize; 4];
        for (s, b) in blocks.iter_mut().enumerate() {
            while shapes.contains_key(&format!("layer{}.{}.conv1.weight", s + 1, *b)) {
                *b += 1;
            }
        }
        let bottleneck = shapes.contains_key("layer1.0.conv3.weight");
        let depth = [Depth::R18, Depth::R34, Depth::R50, Depth::R101, Depth::R152]
            .into_iter()
            .find(|d| d.layout() == (blocks, bottleneck))
            .ok_or_else(|| {
                bad(format!(
                    "blocks per stage {blocks:?} (bottleneck: {bottleneck}) is not ResNet-18/34/50/101/152"
                ))
            })?;
        let mut cfg = ResNetConfig::new(depth, num_classes, stem);
        cfg.base_width = conv1[0];
        Ok(cfg)
    }
}

/// The weights file of a directory (zo's own, or a hub download's), or the file itself.
pub fn weights_file(source: &Path) -> Result<PathBuf> {
    if source.is_file() {
        return Ok(source.to_path_buf());
    }
    if !source.is_dir() {
        return Err(Error::io(
            source,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        ));
    }
    WEIGHT_FILES
        .iter()
        .map(|f| source.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::NoWeights {
            path: source.to_path_buf(),
            looked_for: WEIGHT_FILES.join(", "),
        })
}

impl ResNet {
    /// A built-in ResNet (random weights from `seed`).
    pub fn preset(
        preset: ResNetPreset,
        num_classes: usize,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Self::random(preset.config(num_classes), seed, dtype, device)
    }

    /// Loads a checkpoint file, or a directory holding one (zo's saved `model.safetensors` or
    /// a download's `pytorch_model.bin`), its shape read from the tensor names; a head of
    /// another class count is re-initialised for `num_classes` with `seed`.
    pub fn from_path(
        source: &Path,
        num_classes: usize,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let file = weights_file(source)?;
        let cfg = ResNetConfig::infer_from_checkpoint(&file, num_classes)?;
        Self::from_checkpoint(&file, cfg, seed, dtype, device)
    }

    /// Resolves `repo_id` through the hub (or its cache): its `model.safetensors`.
    pub fn from_hub(
        repo_id: &str,
        opts: &HubOptions,
        num_classes: usize,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let repo = zo_hub::HubRepo::new(zo_hub::RepoKind::Model, repo_id, opts)
            .map_err(|e| Error::Hub(e.0))?;
        let file = repo.get(WEIGHTS_FILE).map_err(|e| Error::Hub(e.0))?;
        Self::from_path(&file, num_classes, seed, dtype, device)
    }

    /// Writes the model (trainable tensors and BN buffers, torchvision names) as
    /// [`WEIGHTS_FILE`] into `dir` (created if needed), through a temporary file renamed into
    /// place.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut map: HashMap<String, Tensor> = self
            .params()
            .iter()
            .map(|(_, n, t)| (n.to_string(), t.clone()))
            .collect();
        map.extend(self.buffers().iter().map(|(n, t)| (n.clone(), t.clone())));
        let path = dir.join(WEIGHTS_FILE);
        let tmp = dir.join(format!(".{WEIGHTS_FILE}.tmp"));
        candle_core::safetensors::save(&map, &tmp).map_err(|e| Error::Checkpoint {
            path: tmp.clone(),
            reason: format!("cannot write: {e}"),
        })?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    /// Per-image cross-entropy (an f64 log-sum-exp of the f32 logits) and argmax prediction
    /// (the first maximum wins ties, as numpy's argmax) of `labels.len()` CHW 32×32 images.
    pub fn classify(&self, images: &[f32], labels: &[u32]) -> Result<Vec<(f64, u32)>> {
        let n = labels.len();
        if images.len() != n * 3 * 32 * 32 {
            return Err(Error::Input(format!(
                "{} image values for {n} labels (expected {} per image)",
                images.len(),
                3 * 32 * 32
            )));
        }
        let x =
            Tensor::from_slice(images, (n, 3, 32, 32), self.device())?.to_dtype(self.dtype())?;
        let logits = self.forward(&x)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        labels
            .iter()
            .zip(logits)
            .enumerate()
            .map(|(i, (&gold, row))| {
                let gold = gold as usize;
                if gold >= row.len() {
                    return Err(Error::Input(format!(
                        "image {i}: label {gold} is not below the head's {} classes",
                        row.len()
                    )));
                }
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let lse = max
                    + row
                        .iter()
                        .map(|&l| (l as f64 - max).exp())
                        .sum::<f64>()
                        .ln();
                let loss = lse - row[gold] as f64;
                if !loss.is_finite() {
                    return Err(Error::Input(format!("non-finite logits for image {i}")));
                }
                let pred = row
                    .iter()
                    .enumerate()
                    .fold(0, |b, (j, &l)| if l > row[b] { j } else { b });
                Ok((loss, pred as u32))
            })
            .collect()
    }
}
