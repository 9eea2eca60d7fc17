//! A serde mirror of Hugging Face's `OPTConfig` (config.json), with the parameter layout it
//! implies. Field names and defaults follow transformers' `configuration_opt.py`.

use std::path::Path;

use candle_core::DType;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// OPT hyper-parameters as stored in a hub checkpoint's config.json. Unknown keys are kept in
/// `extra` (hub configs carry many that do not affect the forward pass) and written back on save.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub ffn_dim: usize,
    pub max_position_embeddings: usize,
    pub num_attention_heads: usize,
    #[serde(default = "default_true")]
    pub do_layer_norm_before: bool,
    #[serde(default)]
    pub _remove_final_layer_norm: bool,
    /// Width of the token embeddings; when it differs from `hidden_size` (opt-350m) the model
    /// has `project_in` / `project_out`.
    #[serde(default)]
    pub word_embed_proj_dim: Option<usize>,
    #[serde(default = "default_act")]
    pub activation_function: String,
    #[serde(default = "default_true")]
    pub enable_bias: bool,
    #[serde(default = "default_true")]
    pub layer_norm_elementwise_affine: bool,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default = "default_pad")]
    pub pad_token_id: u32,
    #[serde(default = "default_eos")]
    pub bos_token_id: u32,
    #[serde(default = "default_eos")]
    pub eos_token_id: u32,
    /// transformers < 4.56 writes `torch_dtype`, newer versions write `dtype`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_dtype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// Every other key of config.json, preserved verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_true() -> bool {
    true
}
fn default_act() -> String {
    "relu".to_string()
}
fn default_pad() -> u32 {
    1
}
fn default_eos() -> u32 {
    2
}

/// OPT's learned positional embedding table is offset by 2 (fairseq legacy).
pub const POSITION_OFFSET: usize = 2;
/// The name of an untied language-model head (`tie_word_embeddings = false`).
pub const LM_HEAD: &str = "lm_head.weight";
/// The largest width, vocabulary or position count a config may claim (2^24).
pub const MAX_DIM: usize = 1 << 24;
/// The most layers a config may claim.
pub const MAX_LAYERS: usize = 4096;

/// LayerNorm epsilon of every OPT LayerNorm (torch default).
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// Shapes of a built-in preset, mirroring the presets of the peer benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// hidden 64, 2 layers, 4 heads, ffn 256, vocab 50272.
    Tiny,
    /// facebook/opt-125m shapes.
    Opt125m,
    /// facebook/opt-350m shapes (post-LN, project_in/out).
    Opt350m,
}

impl Config {
    /// Parses config.json text; `path` is only used in error messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let cfg: Config = serde_json::from_str(text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Reads and validates a config.json file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json_str(&text, path)
    }

    /// Checks the invariants the forward pass relies on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| Error::Config {
            path: path.to_path_buf(),
            reason,
        };
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("ffn_dim", self.ffn_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v == 0 {
                return Err(bad(format!("`{name}` must be > 0")));
            }
        }
        // Bounds far above every OPT (175B: 96 layers, hidden 12288, ffn 49152, vocab 50272,
        // 2048 positions): a config claiming more is refused before anything is sized by it.
        for (name, v, max) in [
            ("vocab_size", self.vocab_size, MAX_DIM),
            ("hidden_size", self.hidden_size, MAX_DIM),
            ("num_attention_heads", self.num_attention_heads, MAX_DIM),
            ("ffn_dim", self.ffn_dim, MAX_DIM),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                MAX_DIM,
            ),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
        ] {
            if v > max {
                return Err(bad(format!("`{name}` = {v} is larger than {max}")));
            }
        }
        if let Some(w) = self.word_embed_proj_dim {
            if w == 0 || w > MAX_DIM {
                return Err(bad(format!(
                    "`word_embed_proj_dim` = {w} must be in 1..={MAX_DIM}"
                )));
            }
        }
        for (name, id) in [
            ("pad_token_id", self.pad_token_id),
            ("bos_token_id", self.bos_token_id),
            ("eos_token_id", self.eos_token_id),
        ] {
            if id as usize >= self.vocab_size {
                return Err(bad(format!(
                    "`{name}` = {id} is not an id of the vocabulary (vocab_size {})",
                    self.vocab_size
                )));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(bad(format!(
                "`hidden_size` ({}) is not divisible by `num_attention_heads` ({})",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if !matches!(
            self.activation_function.as_str(),
            "relu" | "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "silu"
        ) {
            return Err(bad(format!(
                "unsupported `activation_function` {:?}",
                self.activation_function
            )));
        }
        if let Some(d) = self.checkpoint_dtype_name() {
            if parse_dtype(d).is_none() {
                return Err(bad(format!("unknown dtype {d:?}")));
            }
        }
        Ok(())
    }

    /// Width of the token embeddings (`word_embed_proj_dim`, defaulting to `hidden_size`).
    pub fn embed_dim(&self) -> usize {
        self.word_embed_proj_dim.unwrap_or(self.hidden_size)
    }

    /// True when the model has `project_in` / `project_out` (opt-350m).
    pub fn has_projections(&self) -> bool {
        self.embed_dim() != self.hidden_size
    }

    /// True when the decoder ends with `final_layer_norm` (pre-LN models that keep it).
    pub fn has_final_layer_norm(&self) -> bool {
        self.do_layer_norm_before && !self._remove_final_layer_norm
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The dtype named by `dtype` (new key) or `torch_dtype` (old key), if any.
    pub fn checkpoint_dtype_name(&self) -> Option<&str> {
        self.dtype.as_deref().or(self.torch_dtype.as_deref())
    }

    /// The dtype the checkpoint says it was saved in, if it says.
    pub fn checkpoint_dtype(&self) -> Option<DType> {
        self.checkpoint_dtype_name().and_then(parse_dtype)
    }

    /// Every trainable parameter with its shape, under HF's `model.decoder.` names (the names
    /// of the ParamSet). A tied `lm_head.weight` (`tie_word_embeddings = true`, every
    /// facebook/opt-*) is not a separate parameter; an untied one is `lm_head.weight`.
    pub fn expected_params(&self) -> Vec<(String, Vec<usize>)> {
        let h = self.hidden_size;
        let e = self.embed_dim();
        let p = "model.decoder";
        let mut v: Vec<(String, Vec<usize>)> = vec![
            (format!("{p}.embed_tokens.weight"), vec![self.vocab_size, e]),
            (
                format!("{p}.embed_positions.weight"),
                vec![self.max_position_embeddings + POSITION_OFFSET, h],
            ),
        ];
        if !self.tie_word_embeddings {
            v.push((LM_HEAD.into(), vec![self.vocab_size, e]));
        }
        if self.has_projections() {
            v.push((format!("{p}.project_in.weight"), vec![h, e]));
            v.push((format!("{p}.project_out.weight"), vec![e, h]));
        }
        let ln = |v: &mut Vec<(String, Vec<usize>)>, name: String| {
            if self.layer_norm_elementwise_affine {
                v.push((format!("{name}.weight"), vec![h]));
                v.push((format!("{name}.bias"), vec![h]));
            }
        };
        if self.has_final_layer_norm() {
            ln(&mut v, format!("{p}.final_layer_norm"));
        }
        let lin = |v: &mut Vec<(String, Vec<usize>)>, name: String, out: usize, inp: usize| {
            v.push((format!("{name}.weight"), vec![out, inp]));
            if self.enable_bias {
                v.push((format!("{name}.bias"), vec![out]));
            }
        };
        for i in 0..self.num_hidden_layers {
            let l = format!("{p}.layers.{i}");
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                lin(&mut v, format!("{l}.self_attn.{proj}"), h, h);
            }
            ln(&mut v, format!("{l}.self_attn_layer_norm"));
            lin(&mut v, format!("{l}.fc1"), self.ffn_dim, h);
            lin(&mut v, format!("{l}.fc2"), h, self.ffn_dim);
            ln(&mut v, format!("{l}.final_layer_norm"));
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Total number of trainable parameters.
    pub fn num_params(&self) -> usize {
        self.expected_params()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// A built-in preset (the shapes of the peer benchmark's presets).
    pub fn preset(p: Preset) -> Self {
        let (vocab, h, layers, heads, ffn, wepd, pre_ln) = match p {
            Preset::Tiny => (50272, 64, 2, 4, 256, 64, true),
            Preset::Opt125m => (50272, 768, 12, 12, 3072, 768, true),
            Preset::Opt350m => (50272, 1024, 24, 16, 4096, 512, false),
        };
        Config {
            vocab_size: vocab,
            hidden_size: h,
            num_hidden_layers: layers,
            ffn_dim: ffn,
            max_position_embeddings: 2048,
            num_attention_heads: heads,
            do_layer_norm_before: pre_ln,
            _remove_final_layer_norm: false,
            word_embed_proj_dim: Some(wepd),
            activation_function: "relu".into(),
            enable_bias: true,
            layer_norm_elementwise_affine: true,
            tie_word_embeddings: true,
            pad_token_id: 1,
            bos_token_id: 2,
            eos_token_id: 2,
            torch_dtype: None,
            dtype: Some("float32".into()),
            extra: serde_json::Map::new(),
        }
    }

    /// Adds the keys transformers' `AutoConfig` / `AutoModelForCausalLM` dispatch on
    /// (`model_type`, `architectures`) when a config lacks them (a preset's, or a bare
    /// hand-written one); present values are kept.
    pub fn with_hf_identity(mut self) -> Self {
        self.extra
            .entry("model_type")
            .or_insert_with(|| "opt".into());
        self.extra
            .entry("architectures")
            .or_insert_with(|| serde_json::json!(["OPTForCausalLM"]));
        self
    }
}

/// Parses a torch dtype name as written in config.json ("float32", "torch.float16", ...).
pub fn parse_dtype(name: &str) -> Option<DType> {
    match name.trim_start_matches("torch.") {
        "float32" | "float" | "f32" => Some(DType::F32),
        "float16" | "half" | "f16" => Some(DType::F16),
        "bfloat16" | "bf16" => Some(DType::BF16),
        "float64" | "double" | "f64" => Some(DType::F64),
        _ => None,
    }
}

/// The torch name of a dtype, as written in config.json.
pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        DType::F64 => "float64",
        _ => "float32",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opt125m_has_125m_params() {
        // facebook/opt-125m: 125,239,296 parameters (embeddings tied).
        assert_eq!(Config::preset(Preset::Opt125m).num_params(), 125_239_296);
    }

    #[test]
    fn opt350m_layout_has_projections_and_no_final_ln() {
        let c = Config::preset(Preset::Opt350m);
        let names: Vec<String> = c.expected_params().into_iter().map(|p| p.0).collect();
        assert!(names.contains(&"model.decoder.project_in.weight".to_string()));
        assert!(!names.contains(&"model.decoder.final_layer_norm.weight".to_string()));
    }

    #[test]
    fn reads_both_dtype_keys() {
        let base = r#"{"vocab_size":10,"hidden_size":8,"num_hidden_layers":1,"ffn_dim":16,
            "max_position_embeddings":32,"num_attention_heads":2"#;
        let a = Config::from_json_str(
            &format!("{base},\"torch_dtype\":\"float16\"}}"),
            Path::new("c"),
        )
        .unwrap();
        assert_eq!(a.checkpoint_dtype(), Some(DType::F16));
        let b = Config::from_json_str(&format!("{base},\"dtype\":\"bfloat16\"}}"), Path::new("c"))
            .unwrap();
        assert_eq!(b.checkpoint_dtype(), Some(DType::BF16));
        let err = Config::from_json_str("{", Path::new("dir/config.json")).unwrap_err();
        assert!(err.to_string().starts_with("dir/config.json: invalid JSON"));
    }

    #[test]
    fn sizes_beyond_any_opt_are_refused_before_use() {
        let cfg = |layers: &str, positions: &str, extra: &str| {
            format!(
                r#"{{"vocab_size":10,"hidden_size":8,"num_hidden_layers":{layers},"ffn_dim":16,
                "max_position_embeddings":{positions},"num_attention_heads":2{extra}}}"#
            )
        };
        for (text, key) in [
            (cfg("1000000000000", "32", ""), "num_hidden_layers"),
            (
                cfg("1", "18446744073709551615", ""),
                "max_position_embeddings",
            ),
            (
                cfg("1", "32", r#","word_embed_proj_dim":0"#),
                "word_embed_proj_dim",
            ),
        ] {
            let err = Config::from_json_str(&text, Path::new("config.json")).unwrap_err();
            assert!(
                matches!(err, Error::Config { .. }) && err.to_string().contains(key),
                "{err}"
            );
        }
    }
}
