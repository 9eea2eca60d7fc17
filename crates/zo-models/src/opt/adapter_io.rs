//! Saving and loading an adapter (LoRA, see [`super::adapter`]; a prefix, see
//! [`super::prefix`]) in PEFT's layout.

use candle_core::Tensor;
use zo_core::ParamSet;

use super::adapter::{
    peft_config_json, read_peft_config, spec_from_peft_json, ADAPTER_CONFIG, ADAPTER_WEIGHTS,
    PEFT_PREFIX,
};
use super::prefix::{self, PrefixSpec, PEFT_PREFIX_KEY, REPARAM_WEIGHTS};
use crate::{Error, Result};

impl super::OptModel {
    /// Saves the adapter into `dir` in PEFT's layout: `adapter_config.json` and
    /// `adapter_model.safetensors` (LoRA: keys `base_model.model.<name>`; a prefix: its
    /// `prompt_embeddings`, plus [`REPARAM_WEIGHTS`] for a reparameterised one); each file
    /// written atomically. `base` names the base model in the config. An error without an
    /// adapter.
    pub fn save_adapter(&self, dir: &std::path::Path, base: &str) -> Result<()> {
        let set = self.params();
        let (named, cfg): (Vec<(String, Tensor)>, serde_json::Value) =
            match (self.lora(), self.prefix()) {
                (Some(spec), _) => (
                    set.iter()
                        .map(|(_, n, t)| (format!("{PEFT_PREFIX}{n}"), t.clone()))
                        .collect(),
                    peft_config_json(spec, base),
                ),
                (None, Some(spec)) => (
                    vec![(
                        PEFT_PREFIX_KEY.to_string(),
                        spec.peft_embeddings(self.config(), set)?,
                    )],
                    prefix::peft_config_json(self.config(), spec.num_prefix, base),
                ),
                (None, None) => {
                    return Err(Error::Input("the model carries no adapter".into()));
                }
            };
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        if self.prefix().is_some_and(|p| p.reparam) {
            let own: Vec<(String, Tensor)> = set
                .iter()
                .map(|(_, n, t)| (n.to_string(), t.clone()))
                .collect();
            super::save::write_tensors(&dir.join(REPARAM_WEIGHTS), &own, self.dtype())?;
        }
        super::save::write_tensors(&dir.join(ADAPTER_WEIGHTS), &named, self.dtype())?;
        let cfg = serde_json::to_string_pretty(&cfg).unwrap_or_default();
        super::save::write_atomic(&dir.join(ADAPTER_CONFIG), (cfg + "\n").as_bytes())
    }

    /// This model with the adapter saved in `dir` (PEFT's layout, as [`Self::save_adapter`]
    /// writes it, or PEFT's own `LORA` / `PREFIX_TUNING` save), cast to the model's dtype.
    pub fn load_adapter(self, dir: &std::path::Path) -> Result<Self> {
        let config = dir.join(ADAPTER_CONFIG);
        let peft = read_peft_config(&config)?;
        match peft["peft_type"].as_str() {
            Some("LORA") => self.load_lora(dir, &peft),
            Some("PREFIX_TUNING") => self.load_prefix(dir, &peft),
            other => Err(Error::Json {
                path: config,
                reason: format!("peft_type {other:?} is not supported (LORA or PREFIX_TUNING)"),
            }),
        }
    }

    fn load_lora(self, dir: &std::path::Path, peft: &serde_json::Value) -> Result<Self> {
        let spec = spec_from_peft_json(peft, &dir.join(ADAPTER_CONFIG))?;
        let file = dir.join(ADAPTER_WEIGHTS);
        let tensors = super::load::read_safetensors_file(&file, self.device())?;
        let mut items = Vec::with_capacity(tensors.len());
        for (k, t) in tensors {
            let name = k
                .strip_prefix(PEFT_PREFIX)
                .map(|n| {
                    n.replace(".lora_A.default.", ".lora_A.")
                        .replace(".lora_B.default.", ".lora_B.")
                })
                .ok_or_else(|| Error::UnexpectedTensor {
                    path: file.clone(),
                    tensor: k.clone(),
                })?;
            items.push((name, t.to_dtype(self.dtype())?));
        }
        let set = ParamSet::new(items)?;
        spec.check(self.config(), &set, &file)?;
        self.with_lora(&spec, set)
    }

    /// A prefix: the reparameterised tensors of [`REPARAM_WEIGHTS`] when the directory holds
    /// them, else the direct ones from PEFT's `prompt_embeddings`.
    fn load_prefix(self, dir: &std::path::Path, peft: &serde_json::Value) -> Result<Self> {
        let config = dir.join(ADAPTER_CONFIG);
        let bad = |reason: String| Error::Json {
            path: config.clone(),
            reason,
        };
        if peft["prefix_projection"] == true {
            return Err(bad(
                "prefix_projection = true (PEFT's own MLP) is not supported: save the prefix in inference mode".into(),
            ));
        }
        let p = peft["num_virtual_tokens"]
            .as_u64()
            .ok_or_else(|| bad("`num_virtual_tokens` is not a positive integer".into()))?
            as usize;
        let cfg = self.config().clone();
        let (spec, set) = if dir.join(REPARAM_WEIGHTS).is_file() {
            let file = dir.join(REPARAM_WEIGHTS);
            let spec = PrefixSpec {
                num_prefix: p,
                reparam: true,
            };
            let items = super::load::read_safetensors_file(&file, self.device())?
                .into_iter()
                .map(|(k, t)| Ok((k, t.to_dtype(self.dtype())?)))
                .collect::<Result<Vec<_>>>()?;
            let set = ParamSet::new(items)?;
            spec.check(&cfg, &set, &file)?;
            (spec, set)
        } else {
            let file = dir.join(ADAPTER_WEIGHTS);
            let mut tensors = super::load::read_safetensors_file(&file, self.device())?;
            let pos = tensors
                .iter()
                .position(|(k, _)| k == PEFT_PREFIX_KEY)
                .ok_or_else(|| Error::MissingTensor {
                    path: file.clone(),
                    tensor: PEFT_PREFIX_KEY.into(),
                })?;
            let (_, t) = tensors.swap_remove(pos);
            if let Some((k, _)) = tensors.first() {
                return Err(Error::UnexpectedTensor {
                    path: file,
                    tensor: k.clone(),
                });
            }
            let (spec, set) =
                PrefixSpec::direct_from_peft(&cfg, &t.to_dtype(self.dtype())?, &file)?;
            if spec.num_prefix != p {
                return Err(bad(format!(
                    "num_virtual_tokens is {p} but {} holds {} prefix rows",
                    file.display(),
                    spec.num_prefix
                )));
            }
            (spec, set)
        };
        self.with_prefix(&spec, set)
    }
}
