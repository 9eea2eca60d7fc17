//! The `[adapter]` settings (MeZO's `--lora`, `--lora_r`, `--lora_alpha`) and `train.trainable`
//! applied to a loaded OPT: what the optimizer perturbs and updates, and how a saved
//! directory of an adapter run is read back.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use zo_models::opt::adapter::{ADAPTER_CONFIG, LORA_MODULES};
use zo_models::opt::LoraSpec;
use zo_models::OptModel;

/// Which adapter a run trains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    /// No adapter: the base tensors (all, or `train.trainable`'s subset) are trained.
    #[default]
    None,
    /// LoRA on `lora_targets` of every decoder layer (MeZO's `--lora`).
    Lora,
}

/// `[adapter]`: absent from a run.toml without an adapter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdapterSettings {
    pub kind: AdapterKind,
    /// LoRA rank (MeZO's `--lora_r`, default 8).
    pub lora_r: usize,
    /// LoRA α (MeZO's `--lora_alpha`, default 16); the product is scaled by α/r.
    pub lora_alpha: f64,
    /// The linear modules adapted in every layer (MeZO: q_proj and v_proj).
    pub lora_targets: Vec<String>,
}

impl Default for AdapterSettings {
    fn default() -> Self {
        let d = LoraSpec::default();
        Self {
            kind: AdapterKind::None,
            lora_r: d.r,
            lora_alpha: d.alpha,
            lora_targets: d.targets,
        }
    }
}

impl AdapterSettings {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    pub fn lora_spec(&self) -> LoraSpec {
        LoraSpec {
            r: self.lora_r,
            alpha: self.lora_alpha,
            targets: self.lora_targets.clone(),
        }
    }

    /// Checks the keys against each other and against `train.trainable`.
    pub fn validate(&self, trainable: &[String], opt: bool) -> Result<()> {
        if self.kind == AdapterKind::None {
            return Ok(());
        }
        anyhow::ensure!(
            opt,
            "config: key `adapter.kind`: adapters apply to OPT models only"
        );
        anyhow::ensure!(
            trainable.is_empty(),
            "config: key `train.trainable`: cannot be combined with adapter.kind = \"lora\" (the adapter is what is trained)"
        );
        anyhow::ensure!(
            self.lora_r > 0,
            "config: key `adapter.lora_r`: must be at least 1"
        );
        anyhow::ensure!(
            self.lora_alpha.is_finite(),
            "config: key `adapter.lora_alpha`: must be a finite number"
        );
        anyhow::ensure!(
            !self.lora_targets.is_empty(),
            "config: key `adapter.lora_targets`: name at least one module"
        );
        if let Some(t) = self
            .lora_targets
            .iter()
            .find(|t| !LORA_MODULES.contains(&t.as_str()))
        {
            anyhow::bail!(
                "config: key `adapter.lora_targets`: `{t}` is not one of {}",
                LORA_MODULES.join(", ")
            );
        }
        Ok(())
    }
}

/// Applies the adapter and the trainable subset to `model`. With a LoRA adapter, `saved` (a
/// directory holding `adapter_config.json`) supplies its tensors; without one the adapter is
/// fresh, drawn from `seed`.
pub fn apply(
    model: OptModel,
    a: &AdapterSettings,
    trainable: &[String],
    seed: u64,
    saved: Option<&Path>,
) -> Result<OptModel> {
    match a.kind {
        AdapterKind::Lora => match saved {
            Some(dir) => model
                .load_adapter(dir)
                .with_context(|| format!("{}: cannot load the LoRA adapter", dir.display())),
            None => {
                let spec = a.lora_spec();
                let set = spec.init(model.config(), seed, model.dtype(), model.device())?;
                Ok(model.with_lora(&spec, set)?)
            }
        },
        AdapterKind::None if trainable.is_empty() => Ok(model),
        AdapterKind::None => model
            .with_trainable(trainable)
            .map_err(|e| anyhow::anyhow!("config: key `train.trainable`: {e}")),
    }
}

/// True when `dir` holds a saved adapter (and no full model is to be read from it).
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG).is_file()
}
