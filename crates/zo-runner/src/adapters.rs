//! The `[adapter]` settings (MeZO's `--lora`, `--lora_r`, `--lora_alpha`, `--prefix_tuning`,
//! `--num_prefix`, `--no_reparam`, `--prefix_init_by_real_act`), `model.untie_embeddings`
//! (`--untie_emb`) and `train.trainable` applied to a loaded OPT: what the optimizer perturbs
//! and updates, and how a saved directory of an adapter run is read back.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use zo_models::opt::adapter::{read_peft_config, ADAPTER_CONFIG, LORA_MODULES};
use zo_models::opt::{LoraSpec, PrefixSpec};
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
    /// `num_prefix` trainable keys and values in front of every attention layer's (MeZO's
    /// `--prefix_tuning`).
    Prefix,
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
    /// Prefix tokens per attention layer (MeZO's `--num_prefix`, default 5).
    pub num_prefix: usize,
    /// The MLP reparameterisation of the prefix (MeZO: off, `--no_reparam`).
    pub prefix_reparam: bool,
    /// Initialise the prefix with the keys and values of random tokens run through the model
    /// (MeZO's `--prefix_init_by_real_act`, default on; not with the reparameterisation).
    pub prefix_init_by_real_act: bool,
}

impl Default for AdapterSettings {
    fn default() -> Self {
        let d = LoraSpec::default();
        Self {
            kind: AdapterKind::None,
            lora_r: d.r,
            lora_alpha: d.alpha,
            lora_targets: d.targets,
            num_prefix: PrefixSpec::default().num_prefix,
            prefix_reparam: false,
            prefix_init_by_real_act: true,
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

    pub fn prefix_spec(&self) -> PrefixSpec {
        PrefixSpec {
            num_prefix: self.num_prefix,
            reparam: self.prefix_reparam,
        }
    }

    /// Checks the keys against each other and against `train.trainable`.
    pub fn validate(&self, trainable: &[String], opt: bool) -> Result<()> {
        let kind = match self.kind {
            AdapterKind::None => return Ok(()),
            AdapterKind::Lora => "lora",
            AdapterKind::Prefix => "prefix",
        };
        anyhow::ensure!(
            opt,
            "config: key `adapter.kind`: adapters apply to OPT models only"
        );
        anyhow::ensure!(
            trainable.is_empty(),
            "config: key `train.trainable`: cannot be combined with adapter.kind = \"{kind}\" (the adapter is what is trained)"
        );
        if self.kind == AdapterKind::Prefix {
            anyhow::ensure!(
                self.num_prefix > 0,
                "config: key `adapter.num_prefix`: must be at least 1"
            );
            anyhow::ensure!(
                !(self.prefix_reparam && self.prefix_init_by_real_act),
                "config: key `adapter.prefix_init_by_real_act`: real activations initialise the direct prefix only; with adapter.prefix_reparam = true set it to false (MeZO asserts the same)"
            );
            return Ok(());
        }
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

/// Applies the untied head, the adapter and the trainable subset to `model`, in that order.
/// With an adapter, `saved` (a directory holding `adapter_config.json`) supplies its tensors;
/// without one the adapter is fresh, drawn from `seed`.
pub fn apply(
    model: OptModel,
    a: &AdapterSettings,
    trainable: &[String],
    untie: bool,
    seed: u64,
    saved: Option<&Path>,
) -> Result<OptModel> {
    let model = if untie { model.untied()? } else { model };
    match (a.kind, saved) {
        (AdapterKind::Lora | AdapterKind::Prefix, Some(dir)) => model
            .load_adapter(dir)
            .with_context(|| format!("{}: cannot load the adapter", dir.display())),
        (AdapterKind::Lora, None) => {
            let spec = a.lora_spec();
            let set = spec.init(model.config(), seed, model.dtype(), model.device())?;
            Ok(model.with_lora(&spec, set)?)
        }
        (AdapterKind::Prefix, None) => {
            let spec = a.prefix_spec();
            let set = model.init_prefix(&spec, seed, a.prefix_init_by_real_act)?;
            Ok(model.with_prefix(&spec, set)?)
        }
        (AdapterKind::None, _) if trainable.is_empty() => Ok(model),
        (AdapterKind::None, _) => model
            .with_trainable(trainable)
            .map_err(|e| anyhow::anyhow!("config: key `train.trainable`: {e}")),
    }
}

/// True when `dir` holds a saved adapter (and no full model is to be read from it).
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG).is_file()
}

/// The kind of the adapter saved in `dir`, from its `peft_type`.
pub fn kind_of_dir(dir: &Path) -> Result<AdapterKind> {
    let path = dir.join(ADAPTER_CONFIG);
    let v = read_peft_config(&path)?;
    Ok(match v["peft_type"].as_str() {
        Some("LORA") => AdapterKind::Lora,
        Some("PREFIX_TUNING") => AdapterKind::Prefix,
        other => anyhow::bail!(
            "{}: peft_type {other:?} is not supported (LORA or PREFIX_TUNING)",
            path.display()
        ),
    })
}
