//! Loading an OPT checkpoint from a local directory in any layout the facebook/opt-* hub repos
//! (and `save_pretrained`) use:
//!
//! - `model.safetensors`, or shards listed in `model.safetensors.index.json`;
//! - `pytorch_model.bin` (a torch zip archive, read by candle's pickle reader, which interprets
//!   only the opcodes needed for tensors and never executes code, after
//!   [`crate::pickle_guard`] refused any callable outside the tensor-rebuild subset), or shards
//!   listed in
//!   `pytorch_model.bin.index.json`;
//! - names under `model.decoder.` (transformers ≥ 4.x `save_pretrained`, opt-350m) or
//!   `decoder.` (opt-125m/1.3b/… `.bin` files);
//! - a tied `lm_head.weight`, present or absent (docs/PROTOCOL.md 7.3: accept both; with
//!   `tie_word_embeddings = true` transformers uses `embed_tokens.weight` for the head); with
//!   `tie_word_embeddings = false` (a head-tuned save) `lm_head.weight` is required.
//!
//! Every tensor is checked against [`Config::expected_params`] (a missing, extra, or
//! wrongly-shaped tensor is an error naming the file and tensor) and cast to the requested dtype.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::safetensors::{Load, MmapedSafetensors};
use candle_core::{DType, Device, Tensor};
use zo_core::ParamSet;

use super::config::{Config, LM_HEAD};
use super::model::OptModel;
use crate::{Error, Result};

/// File names probed in a model directory, in order of preference.
pub const SAFETENSORS_SINGLE: &str = "model.safetensors";
pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";
pub const PYTORCH_SINGLE: &str = "pytorch_model.bin";
pub const PYTORCH_INDEX: &str = "pytorch_model.bin.index.json";
pub const CONFIG: &str = "config.json";

/// Which weight files a directory holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightFiles {
    Safetensors(Vec<PathBuf>),
    Pytorch(Vec<PathBuf>),
}

/// Finds the weight files of `dir` (safetensors preferred over `.bin`, single file over index).
pub fn find_weight_files(dir: &Path) -> Result<WeightFiles> {
    let single = dir.join(SAFETENSORS_SINGLE);
    if single.is_file() {
        return Ok(WeightFiles::Safetensors(vec![single]));
    }
    let index = dir.join(SAFETENSORS_INDEX);
    if index.is_file() {
        return Ok(WeightFiles::Safetensors(read_index(&index)?));
    }
    let single = dir.join(PYTORCH_SINGLE);
    if single.is_file() {
        return Ok(WeightFiles::Pytorch(vec![single]));
    }
    let index = dir.join(PYTORCH_INDEX);
    if index.is_file() {
        return Ok(WeightFiles::Pytorch(read_index(&index)?));
    }
    Err(Error::NoWeights {
        path: dir.to_path_buf(),
        looked_for: format!(
            "{SAFETENSORS_SINGLE}, {SAFETENSORS_INDEX}, {PYTORCH_SINGLE}, {PYTORCH_INDEX}"
        ),
    })
}

/// The shard file names listed in a `*.index.json` (`{"weight_map": {tensor: file}}`), each
/// once, sorted. A name that is not a plain file name (a path) is rejected.
pub fn read_index_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: index.to_path_buf(),
        reason: e.to_string(),
    })?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::Json {
            path: index.to_path_buf(),
            reason: "missing object `weight_map`".into(),
        })?;
    let mut files = std::collections::BTreeSet::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| Error::Json {
            path: index.to_path_buf(),
            reason: format!("weight_map[{tensor:?}] is not a string"),
        })?;
        if file.is_empty() || file.contains('/') || file.contains('\\') || file == ".." {
            return Err(Error::Json {
                path: index.to_path_buf(),
                reason: format!("weight_map[{tensor:?}] = {file:?} is not a plain file name"),
            });
        }
        files.insert(file.to_string());
    }
    Ok(files.into_iter().collect())
}

/// The shard files named by a `*.index.json`, resolved next to the index. A shard that does
/// not exist is an error naming it.
pub fn read_index(index: &Path) -> Result<Vec<PathBuf>> {
    let dir = index.parent().unwrap_or(Path::new("."));
    let paths: Vec<PathBuf> = read_index_names(index)?
        .into_iter()
        .map(|f| dir.join(f))
        .collect();
    for p in &paths {
        if !p.is_file() {
            return Err(Error::io(
                p,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("shard listed in {} not found", index.display()),
                ),
            ));
        }
    }
    Ok(paths)
}

/// Maps a checkpoint key to the ParamSet name (`model.decoder.*`, or `lm_head.weight`, which
/// [`params_from_found`] drops when the head is tied).
fn canonical_name(key: &str) -> String {
    match key.strip_prefix("decoder.") {
        Some(rest) => format!("model.decoder.{rest}"),
        None => key.to_string(),
    }
}

/// Tensors read so far: canonical name → (tensor, file it came from).
type Found = BTreeMap<String, (Tensor, PathBuf)>;

fn insert(found: &mut Found, key: &str, tensor: Tensor, file: &Path) -> Result<()> {
    let name = canonical_name(key);
    if let Some((_, first)) = found.get(&name) {
        return Err(Error::Checkpoint {
            path: file.to_path_buf(),
            reason: format!(
                "tensor `{key}` duplicates `{name}` already read from {}",
                first.display()
            ),
        });
    }
    found.insert(name, (tensor, file.to_path_buf()));
    Ok(())
}

fn read_safetensors(file: &Path, device: &Device, found: &mut Found) -> Result<()> {
    // SAFETY: the file is memory-mapped read-only; like every safetensors loader we rely on it
    // not being modified while we read it.
    let st = unsafe { MmapedSafetensors::new(file) }.map_err(|e| Error::Checkpoint {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    for (key, view) in st.tensors() {
        let t = view.load(device).map_err(|e| Error::Checkpoint {
            path: file.to_path_buf(),
            reason: format!("tensor `{key}`: {e}"),
        })?;
        insert(found, &key, t, file)?;
    }
    Ok(())
}

fn read_pytorch(file: &Path, device: &Device, found: &mut Found) -> Result<()> {
    // Refuses a pickle naming any callable but the tensor-rebuild subset, and tensors larger
    // than their storage, before anything is read.
    let tensors = crate::pickle_guard::read_all(file)?;
    if tensors.is_empty() {
        return Err(Error::Checkpoint {
            path: file.to_path_buf(),
            reason: "no tensors found in the pickle (not a state dict?)".into(),
        });
    }
    for (key, t) in tensors {
        insert(found, &key, t.to_device(device)?, file)?;
    }
    Ok(())
}

/// Reads the weights of `files` into a [`ParamSet`] matching `cfg`, cast to `dtype`.
/// `origin` (the directory or index) names the checkpoint in "missing tensor" errors.
pub fn load_params(
    files: &WeightFiles,
    cfg: &Config,
    origin: &Path,
    dtype: DType,
    device: &Device,
) -> Result<ParamSet> {
    check_dtype(dtype)?;
    let mut found = Found::new();
    match files {
        WeightFiles::Safetensors(fs) => {
            for f in fs {
                read_safetensors(f, device, &mut found)?;
            }
        }
        WeightFiles::Pytorch(fs) => {
            for f in fs {
                read_pytorch(f, device, &mut found)?;
            }
        }
    }
    params_from_found(found, cfg, origin, dtype)
}

fn check_dtype(dtype: DType) -> Result<()> {
    if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
        return Err(Error::Input(format!(
            "unsupported model dtype {dtype:?} (use f32, bf16 or f16)"
        )));
    }
    Ok(())
}

/// The tensors read, checked against `cfg` (none missing, extra or misshapen) and cast.
fn params_from_found(
    mut found: Found,
    cfg: &Config,
    origin: &Path,
    dtype: DType,
) -> Result<ParamSet> {
    if cfg.tie_word_embeddings {
        found.remove(LM_HEAD);
    }
    let expected = cfg.expected_params();
    let mut items = Vec::with_capacity(expected.len());
    for (name, shape) in &expected {
        let (t, file) = found.remove(name).ok_or_else(|| Error::MissingTensor {
            path: origin.to_path_buf(),
            tensor: name.clone(),
        })?;
        if t.dims() != shape.as_slice() {
            return Err(Error::ShapeMismatch {
                path: file,
                tensor: name.clone(),
                expected: shape.clone(),
                got: t.dims().to_vec(),
            });
        }
        if !t.dtype().is_float() {
            return Err(Error::Checkpoint {
                path: file,
                reason: format!("tensor `{name}` has non-float dtype {:?}", t.dtype()),
            });
        }
        items.push((name.clone(), t.to_dtype(dtype)?));
    }
    if let Some((name, (_, file))) = found.into_iter().next() {
        return Err(Error::UnexpectedTensor {
            path: file,
            tensor: name,
        });
    }
    Ok(ParamSet::new(items)?)
}

impl OptModel {
    /// Loads `config.json` and the weights of a local model directory (any layout listed in
    /// the module docs), cast to `dtype` on `device`.
    pub fn from_dir(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "model directory not found"),
            ));
        }
        let cfg = Config::from_file(&dir.join(CONFIG))?;
        let files = find_weight_files(dir)?;
        let params = load_params(&files, &cfg, dir, dtype, device)?;
        OptModel::new(cfg, params)
    }

    /// Builds a model from the text of a config.json and the bytes of one safetensors file (a
    /// model compiled into a binary), with the checks of [`OptModel::from_dir`]; `origin` names
    /// the model in errors.
    pub fn from_safetensors_bytes(
        config_json: &str,
        weights: &[u8],
        origin: &Path,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        check_dtype(dtype)?;
        let cfg = Config::from_json_str(config_json, origin)?;
        let tensors = candle_core::safetensors::load_buffer(weights, device).map_err(|e| {
            Error::Checkpoint {
                path: origin.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        let mut keys: Vec<&String> = tensors.keys().collect();
        keys.sort();
        let mut found = Found::new();
        for key in keys {
            insert(&mut found, key, tensors[key].clone(), origin)?;
        }
        let params = params_from_found(found, &cfg, origin, dtype)?;
        OptModel::new(cfg, params)
    }
}

/// Reads the tensors of one safetensors file as `(name, tensor)` pairs, names as stored (for
/// tests and tools).
pub fn read_safetensors_file(file: &Path, device: &Device) -> Result<Vec<(String, Tensor)>> {
    let mut found = Found::new();
    let st = unsafe { MmapedSafetensors::new(file) }.map_err(|e| Error::Checkpoint {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    for (key, view) in st.tensors() {
        let t = view.load(device).map_err(|e| Error::Checkpoint {
            path: file.to_path_buf(),
            reason: format!("tensor `{key}`: {e}"),
        })?;
        found.insert(key, (t, file.to_path_buf()));
    }
    Ok(found.into_iter().map(|(k, (t, _))| (k, t)).collect())
}
