//! Saving an OPT in the layout `OPTForCausalLM.save_pretrained` writes, so transformers (and
//! [`OptModel::from_dir`]) load it back:
//!
//! - `model.safetensors` with header metadata `{"format": "pt"}` (transformers rejects
//!   safetensors without it; `candle_core::safetensors::save` writes none), tensors under
//!   `model.decoder.*`, no `lm_head.weight` (tied);
//! - past `max_shard_bytes`, shards `model-0000k-of-0000n.safetensors` plus
//!   `model.safetensors.index.json` (`{"metadata": {"total_size"}, "weight_map"}`), split as
//!   transformers does: tensors in order, a new shard when the next tensor would overflow;
//! - `config.json` (the loaded config, every unknown key kept, `dtype` set to the saved dtype);
//! - the tokenizer's files, when one is given, plus OPT's `tokenizer_config.json` /
//!   `special_tokens_map.json` if the tokenizer did not come with its own.
//!
//! Each file is written to a temporary name in the target directory and renamed into place, so
//! a crash never leaves a half-written file under a real name. Weight files of an earlier save
//! that the new layout does not use (a stale single file or stale shards) are removed, since
//! a loader would otherwise prefer them.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use safetensors::tensor::{Dtype as StDtype, View};

use super::config::dtype_name;
use super::load::{SAFETENSORS_INDEX, SAFETENSORS_SINGLE};
use super::model::OptModel;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// transformers' default `max_shard_size` ("5GB", decimal).
pub const DEFAULT_MAX_SHARD_BYTES: usize = 5_000_000_000;

/// How to save.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaveOptions {
    /// Dtype of the saved weights (`None`: the model's).
    pub dtype: Option<DType>,
    /// Shard past this many bytes of weights.
    pub max_shard_bytes: usize,
}

impl Default for SaveOptions {
    fn default() -> Self {
        Self {
            dtype: None,
            max_shard_bytes: DEFAULT_MAX_SHARD_BYTES,
        }
    }
}

/// A tensor's little-endian bytes, viewed by the safetensors serialiser.
struct Bytes {
    dtype: StDtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> StDtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn to_bytes(t: &Tensor, dtype: DType) -> Result<Bytes> {
    let flat = t
        .to_dtype(dtype)?
        .flatten_all()?
        .to_device(&candle_core::Device::Cpu)?;
    let (st, data): (StDtype, Vec<u8>) = match dtype {
        DType::F32 => (
            StDtype::F32,
            flat.to_vec1::<f32>()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        DType::F16 => (
            StDtype::F16,
            flat.to_vec1::<half::f16>()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        DType::BF16 => (
            StDtype::BF16,
            flat.to_vec1::<half::bf16>()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        other => {
            return Err(Error::Input(format!(
                "cannot save weights as {other:?} (use f32, bf16 or f16)"
            )))
        }
    };
    Ok(Bytes {
        dtype: st,
        shape: t.dims().to_vec(),
        data,
    })
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn write_safetensors(path: &Path, tensors: &[(&str, &Bytes)]) -> Result<()> {
    let tmp = tmp_path(path);
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::tensor::serialize_to_file(tensors.iter().map(|(n, b)| (*n, *b)), Some(meta), &tmp)
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            match e {
                // A write that failed (a full disk): an I/O error, not a malformed file.
                safetensors::SafeTensorError::IoError(io) => Error::io(path, io),
                e => Error::Checkpoint {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                },
            }
        })?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Splits `sizes` (bytes, in order) into shards of at most `max` bytes; a tensor bigger than
/// `max` gets a shard of its own (transformers' `split_torch_state_dict_into_shards`).
fn shard_plan(sizes: &[usize], max: usize) -> Vec<Vec<usize>> {
    let mut shards: Vec<Vec<usize>> = Vec::new();
    let mut current = 0usize;
    for (i, &s) in sizes.iter().enumerate() {
        match shards.last_mut() {
            Some(last) if current + s <= max => {
                last.push(i);
                current += s;
            }
            _ => {
                shards.push(vec![i]);
                current = s;
            }
        }
    }
    shards
}

/// Is `name` a weight file of some save layout (single, index, or a shard)?
fn is_weight_file(name: &str) -> bool {
    name == SAFETENSORS_SINGLE
        || name == SAFETENSORS_INDEX
        || (name.starts_with("model-") && name.contains("-of-") && name.ends_with(".safetensors"))
}

/// OPT's tokenizer settings as the facebook/opt-* repos ship them (GPT2Tokenizer, `</s>` as
/// bos/eos/unk, `<pad>`), for tokenizers that came without their own config.
const OPT_TOKENIZER_CONFIG: &str = r#"{
  "add_bos_token": true,
  "add_prefix_space": false,
  "bos_token": "</s>",
  "eos_token": "</s>",
  "errors": "replace",
  "pad_token": "<pad>",
  "tokenizer_class": "GPT2Tokenizer",
  "unk_token": "</s>"
}
"#;
const OPT_SPECIAL_TOKENS_MAP: &str = r#"{
  "bos_token": "</s>",
  "eos_token": "</s>",
  "pad_token": "<pad>",
  "unk_token": "</s>"
}
"#;

/// Writes `(name, tensor)` pairs, cast to `dtype`, into one safetensors file atomically.
pub(crate) fn write_tensors(path: &Path, named: &[(String, Tensor)], dtype: DType) -> Result<()> {
    let bytes: Vec<Bytes> = named
        .iter()
        .map(|(_, t)| to_bytes(t, dtype))
        .collect::<Result<_>>()?;
    let pairs: Vec<(&str, &Bytes)> = named
        .iter()
        .map(|(n, _)| n.as_str())
        .zip(bytes.iter())
        .collect();
    write_safetensors(path, &pairs)
}

impl OptModel {
    /// Saves to `dir` (created if needed) in `save_pretrained`'s layout; see the module docs.
    pub fn save_pretrained(
        &self,
        dir: &Path,
        tokenizer: Option<&Tokenizer>,
        opts: &SaveOptions,
    ) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let dtype = opts.dtype.unwrap_or(self.dtype());
        let params = self.base_params();
        let bytes: Vec<Bytes> = params
            .tensors()
            .iter()
            .map(|t| to_bytes(t, dtype))
            .collect::<Result<_>>()?;
        let names: Vec<&str> = params.names().iter().map(String::as_str).collect();
        let sizes: Vec<usize> = bytes.iter().map(|b| b.data.len()).collect();
        let total: usize = sizes.iter().sum();
        let plan = shard_plan(&sizes, opts.max_shard_bytes.max(1));

        let mut written: Vec<String> = Vec::new();
        if plan.len() <= 1 {
            let all: Vec<(&str, &Bytes)> = names.iter().copied().zip(bytes.iter()).collect();
            write_safetensors(&dir.join(SAFETENSORS_SINGLE), &all)?;
            written.push(SAFETENSORS_SINGLE.into());
        } else {
            let n = plan.len();
            let mut weight_map = BTreeMap::new();
            for (k, shard) in plan.iter().enumerate() {
                let file = format!("model-{:05}-of-{:05}.safetensors", k + 1, n);
                let part: Vec<(&str, &Bytes)> =
                    shard.iter().map(|&i| (names[i], &bytes[i])).collect();
                write_safetensors(&dir.join(&file), &part)?;
                for &i in shard {
                    weight_map.insert(names[i].to_string(), file.clone());
                }
                written.push(file);
            }
            let index = serde_json::json!({
                "metadata": {"total_size": total},
                "weight_map": weight_map,
            });
            write_atomic(
                &dir.join(SAFETENSORS_INDEX),
                (serde_json::to_string_pretty(&index).unwrap_or_default() + "\n").as_bytes(),
            )?;
            written.push(SAFETENSORS_INDEX.into());
        }
        // Remove weight files of an earlier save that this layout does not use.
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_weight_file(&name) && !written.contains(&name) {
                std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            }
        }

        let mut cfg = self.config().clone().with_hf_identity();
        cfg.dtype = Some(dtype_name(dtype).to_string());
        cfg.torch_dtype = None;
        let cfg_json = serde_json::to_string_pretty(&cfg).map_err(|e| Error::Json {
            path: dir.join("config.json"),
            reason: e.to_string(),
        })?;
        write_atomic(&dir.join("config.json"), (cfg_json + "\n").as_bytes())?;

        if let Some(tok) = tokenizer {
            for (name, data) in tok.files() {
                write_atomic(&dir.join(name), data)?;
            }
            let has = |n: &str| tok.files().iter().any(|(f, _)| f == n);
            if !has("tokenizer_config.json") {
                write_atomic(
                    &dir.join("tokenizer_config.json"),
                    OPT_TOKENIZER_CONFIG.as_bytes(),
                )?;
            }
            if !has("special_tokens_map.json") {
                write_atomic(
                    &dir.join("special_tokens_map.json"),
                    OPT_SPECIAL_TOKENS_MAP.as_bytes(),
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_like_transformers() {
        assert_eq!(shard_plan(&[4, 4, 4], 8), vec![vec![0, 1], vec![2]]);
        assert_eq!(shard_plan(&[10, 1, 1], 8), vec![vec![0], vec![1, 2]]);
        assert_eq!(shard_plan(&[1, 1], 100), vec![vec![0, 1]]);
        assert!(is_weight_file("model-00002-of-00003.safetensors"));
        assert!(!is_weight_file("config.json"));
    }
}
