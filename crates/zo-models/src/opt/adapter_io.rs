//! Saving and loading a LoRA adapter in PEFT's layout (see [`super::adapter`]).

use candle_core::Tensor;
use zo_core::ParamSet;

use super::adapter::{
    peft_config_json, spec_from_peft_config, ADAPTER_CONFIG, ADAPTER_WEIGHTS, PEFT_PREFIX,
};
use crate::{Error, Result};

impl super::OptModel {
    /// Saves the LoRA adapter into `dir` in PEFT's layout: `adapter_config.json` and
    /// `adapter_model.safetensors` with keys `base_model.model.<name>`; each file written
    /// atomically. `base` names the base model in the config. An error without an adapter.
    pub fn save_adapter(&self, dir: &std::path::Path, base: &str) -> Result<()> {
        let spec = self
            .lora()
            .ok_or_else(|| Error::Input("the model carries no LoRA adapter".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let set = self.params();
        let named: Vec<(String, Tensor)> = set
            .iter()
            .map(|(_, n, t)| (format!("{PEFT_PREFIX}{n}"), t.clone()))
            .collect();
        super::save::write_tensors(&dir.join(ADAPTER_WEIGHTS), &named, self.dtype())?;
        let cfg = serde_json::to_string_pretty(&peft_config_json(spec, base)).unwrap_or_default();
        super::save::write_atomic(&dir.join(ADAPTER_CONFIG), (cfg + "\n").as_bytes())
    }

    /// This model with the LoRA adapter saved in `dir` (PEFT's layout, as
    /// [`Self::save_adapter`] writes it), cast to the model's dtype.
    pub fn load_adapter(self, dir: &std::path::Path) -> Result<Self> {
        let spec = spec_from_peft_config(&dir.join(ADAPTER_CONFIG))?;
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
}
