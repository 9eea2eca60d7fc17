//! LoRA adapters on OPT's linear layers (MeZO's `large_models/lora.py`, itself loralib's
//! `LoRALinear`): `y = x Wᵀ + b + (α/r)·(x Aᵀ) Bᵀ` with `A: [r, in]`, `B: [out, r]`.
//!
//! MeZO initialises `A` with `kaiming_uniform_(a=√5)`, i.e. `U(−1/√in, 1/√in)`
//! (gain `√(2/(1+5))`, bound `gain·√(3/in)`), and `B` with zeros, so a fresh adapter leaves the
//! model's output unchanged. Here `A` is drawn from the documented counter-based stream of
//! [`super::init`] (uniform from the normal stream's first uniform: `u = (a + 1)/2⁵³`, mapped
//! to `(2u − 1)/√in`), keyed by the run seed and the tensor's name, so the same seed gives the
//! same adapter on every machine and thread count.
//!
//! Tensor names are PEFT's without its `base_model.model.` prefix:
//! `model.decoder.layers.N.self_attn.q_proj.lora_A.weight` (`[r, in]`) and `…lora_B.weight`
//! (`[out, r]`); [`PEFT_PREFIX`] is added in the saved `adapter_model.safetensors`.

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use zo_core::ParamSet;

use super::config::Config;
use crate::{Error, Result};

/// The prefix PEFT puts before the base model's parameter names in `adapter_model.safetensors`.
pub const PEFT_PREFIX: &str = "base_model.model.";

/// The linear modules of an OPT decoder layer a LoRA adapter can target, with the attention
/// ones under `self_attn.`.
pub const LORA_MODULES: [&str; 6] = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"];

/// A LoRA adapter's hyper-parameters (MeZO's `--lora_r 8 --lora_alpha 16` on `q_proj` and
/// `v_proj`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraSpec {
    pub r: usize,
    pub alpha: f64,
    /// Module names among [`LORA_MODULES`].
    pub targets: Vec<String>,
}

impl Default for LoraSpec {
    fn default() -> Self {
        Self {
            r: 8,
            alpha: 16.0,
            targets: vec!["q_proj".into(), "v_proj".into()],
        }
    }
}

impl LoraSpec {
    /// `α / r`, the factor of the low-rank product.
    pub fn scaling(&self) -> f64 {
        self.alpha / self.r as f64
    }

    /// Checks r > 0, α finite and every target a known module (named in the error).
    pub fn validate(&self) -> Result<()> {
        if self.r == 0 {
            return Err(Error::Input("LoRA rank r must be at least 1".into()));
        }
        if !self.alpha.is_finite() {
            return Err(Error::Input(format!(
                "LoRA alpha {} is not finite",
                self.alpha
            )));
        }
        if self.targets.is_empty() {
            return Err(Error::Input("LoRA needs at least one target module".into()));
        }
        if let Some(t) = self
            .targets
            .iter()
            .find(|t| !LORA_MODULES.contains(&t.as_str()))
        {
            return Err(Error::Input(format!(
                "LoRA target `{t}` is not one of {}",
                LORA_MODULES.join(", ")
            )));
        }
        Ok(())
    }

    /// The module path (without `.weight`) of target `t` in layer `i`.
    pub fn module_path(i: usize, t: &str) -> String {
        let p = format!("model.decoder.layers.{i}");
        if t.ends_with("_proj") {
            format!("{p}.self_attn.{t}")
        } else {
            format!("{p}.{t}")
        }
    }

    /// `(in, out)` features of target `t` under `cfg`.
    fn features(cfg: &Config, t: &str) -> (usize, usize) {
        let h = cfg.hidden_size;
        match t {
            "fc1" => (h, cfg.ffn_dim),
            "fc2" => (cfg.ffn_dim, h),
            _ => (h, h),
        }
    }

    /// Names and shapes of the adapter tensors, name-sorted.
    pub fn expected_params(&self, cfg: &Config) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        for i in 0..cfg.num_hidden_layers {
            for t in &self.targets {
                let m = Self::module_path(i, t);
                let (inp, out) = Self::features(cfg, t);
                v.push((format!("{m}.lora_A.weight"), vec![self.r, inp]));
                v.push((format!("{m}.lora_B.weight"), vec![out, self.r]));
            }
        }
        v.sort();
        v
    }

    /// A fresh adapter: `A ~ U(−1/√in, 1/√in)` from the stream of `(seed, name)`, `B = 0`.
    pub fn init(&self, cfg: &Config, seed: u64, dtype: DType, device: &Device) -> Result<ParamSet> {
        self.validate()?;
        let mut items = Vec::new();
        for (name, shape) in self.expected_params(cfg) {
            let n: usize = shape.iter().product();
            let data = if name.ends_with("lora_A.weight") {
                let bound = 1.0 / (shape[1] as f64).sqrt();
                super::init::uniform_vec(seed, &name, n)
                    .into_iter()
                    .map(|u| ((2.0 * u - 1.0) * bound) as f32)
                    .collect()
            } else {
                vec![0f32; n]
            };
            items.push((
                name,
                Tensor::from_vec(data, shape.as_slice(), device)?.to_dtype(dtype)?,
            ));
        }
        Ok(ParamSet::new(items)?)
    }

    /// Checks that `set` holds exactly this adapter's tensors for `cfg` (names and shapes).
    pub fn check(&self, cfg: &Config, set: &ParamSet, origin: &std::path::Path) -> Result<()> {
        check_exact(&self.expected_params(cfg), set, origin)
    }
}

/// Checks that `set` holds exactly the tensors `expected` (names and shapes); an error names
/// `origin` and the first tensor missing, misshapen or unexpected.
pub(crate) fn check_exact(
    expected: &[(String, Vec<usize>)],
    set: &ParamSet,
    origin: &std::path::Path,
) -> Result<()> {
    for (name, shape) in expected {
        let t = set.get(name).ok_or_else(|| Error::MissingTensor {
            path: origin.to_path_buf(),
            tensor: name.clone(),
        })?;
        if t.dims() != shape.as_slice() {
            return Err(Error::ShapeMismatch {
                path: origin.to_path_buf(),
                tensor: name.clone(),
                expected: shape.clone(),
                got: t.dims().to_vec(),
            });
        }
    }
    if let Some(extra) = set
        .names()
        .iter()
        .find(|n| !expected.iter().any(|(e, _)| e == *n))
    {
        return Err(Error::UnexpectedTensor {
            path: origin.to_path_buf(),
            tensor: extra.clone(),
        });
    }
    Ok(())
}

/// PEFT's `adapter_config.json` for `spec` on the base model `base` (its hub id or path).
pub fn peft_config_json(spec: &LoraSpec, base: &str) -> serde_json::Value {
    serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": spec.r,
        "lora_alpha": spec.alpha,
        "lora_dropout": 0.0,
        "target_modules": spec.targets,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "modules_to_save": null,
    })
}

/// A PEFT `adapter_config.json`, parsed (any `peft_type`).
pub fn read_peft_config(path: &std::path::Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !v["peft_type"].is_string() {
        return Err(Error::Json {
            path: path.to_path_buf(),
            reason: "`peft_type` is missing or not a string".into(),
        });
    }
    Ok(v)
}

/// Reads the LoRA hyper-parameters of a PEFT `adapter_config.json`.
pub fn spec_from_peft_config(path: &std::path::Path) -> Result<LoraSpec> {
    spec_from_peft_json(&read_peft_config(path)?, path)
}

/// The LoRA hyper-parameters of a parsed PEFT config `v`, read from `path` (named in errors).
pub fn spec_from_peft_json(v: &serde_json::Value, path: &std::path::Path) -> Result<LoraSpec> {
    let bad = |reason: String| Error::Json {
        path: path.to_path_buf(),
        reason,
    };
    if v["peft_type"] != "LORA" {
        return Err(bad(format!("peft_type is {}, not LORA", v["peft_type"])));
    }
    let r = v["r"]
        .as_u64()
        .ok_or_else(|| bad("`r` is not a positive integer".into()))? as usize;
    let alpha = v["lora_alpha"]
        .as_f64()
        .ok_or_else(|| bad("`lora_alpha` is not a number".into()))?;
    let targets = v["target_modules"]
        .as_array()
        .ok_or_else(|| bad("`target_modules` is not a list of module names".into()))?
        .iter()
        .map(|t| {
            t.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad("`target_modules` holds a non-string".into()))
        })
        .collect::<Result<Vec<_>>>()?;
    let spec = LoraSpec { r, alpha, targets };
    spec.validate().map_err(|e| bad(e.to_string()))?;
    Ok(spec)
}

/// The adapter weights file PEFT reads.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// The adapter config file PEFT reads.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
