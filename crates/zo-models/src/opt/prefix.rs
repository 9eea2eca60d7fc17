//! Prefix tuning on OPT (MeZO's `--prefix_tuning`, its `large_models/prefix.py`): every
//! attention layer gets `P` (`--num_prefix`, default 5) trainable key and value vectors in
//! front of the sequence's own. Every query attends to them (their attention-mask columns are
//! 0), they take no position (the sequence's positions are those of the plain model), and the
//! base weights are never perturbed or written.
//!
//! Two parameterisations, as in MeZO:
//!
//! - **direct** (MeZO's default, `--no_reparam`): per layer `…self_attn.prefix_keys` and
//!   `…self_attn.prefix_values`, `[P, hidden]`, each row every head's columns side by side (the
//!   layout of `k_proj`'s output). MeZO initialises them by *real activations*
//!   (`--prefix_init_by_real_act`, default on): `P` token ids drawn uniformly from the
//!   vocabulary are run through the plain model (no BOS, positions `0..P`) and each layer's
//!   keys and values of those tokens become its prefix. Here the ids come from the documented
//!   counter-based stream (`prefix_token_ids`, keyed by the run seed), not torch's `randint`.
//!   Without real activations: `N(0, 1)` entries, as torch's `randn`.
//! - **reparameterised** (`reparam`): one shared `…layers.0.self_attn.prefix_input_embeds`
//!   `[P, 512]` (`N(0, 1)`) fed, per layer, through `prefix_mlp_keys` and
//!   `prefix_mlp_values` = `Linear(512, 512) → tanh → Linear(512, hidden)` (torch's `Linear`
//!   initialisation: weight and bias `U(−1/√in, 1/√in)`). MeZO allows no real-activation
//!   initialisation here.
//!
//! PEFT's `PREFIX_TUNING` stores a prefix as one `prompt_embeddings` tensor
//! `[P, layers·2·hidden]`: for layer `l`, columns `2l·hidden..` hold the keys and
//! `(2l+1)·hidden..` the values, in the layout above ([`PrefixSpec::peft_embeddings`]). A
//! reparameterised prefix is saved there as the keys and values its MLPs compute (what PEFT
//! needs to run it), and its own tensors beside them (what training needs to go on).

use candle_core::{DType, Device, Tensor};
use zo_core::ParamSet;

use super::config::Config;
use super::layers::PrefixKv;
use crate::{Error, Result};

/// Width of the reparameterisation's input embeddings (MeZO's `embed_dim`).
pub const REPARAM_EMBED_DIM: usize = 512;
/// Width of the reparameterisation MLP's hidden layer (MeZO's `mid_dim`).
pub const REPARAM_MID_DIM: usize = 512;
/// The key PEFT saves a prefix under in `adapter_model.safetensors`.
pub const PEFT_PREFIX_KEY: &str = "prompt_embeddings";
/// The file beside PEFT's that holds a reparameterised prefix's own tensors.
pub const REPARAM_WEIGHTS: &str = "zo_prefix_reparam.safetensors";

/// A prefix's hyper-parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixSpec {
    /// `P`, MeZO's `--num_prefix`.
    pub num_prefix: usize,
    /// The MLP reparameterisation (MeZO: off).
    pub reparam: bool,
}

impl Default for PrefixSpec {
    fn default() -> Self {
        Self {
            num_prefix: 5,
            reparam: false,
        }
    }
}

fn attn(i: usize) -> String {
    format!("model.decoder.layers.{i}.self_attn")
}

fn embeds_name() -> String {
    format!("{}.prefix_input_embeds", attn(0))
}

impl PrefixSpec {
    pub fn validate(&self) -> Result<()> {
        if self.num_prefix == 0 {
            return Err(Error::Input(
                "prefix tuning needs at least one prefix token".into(),
            ));
        }
        Ok(())
    }

    /// Names and shapes of the prefix tensors (MeZO's parameter names), name-sorted.
    pub fn expected_params(&self, cfg: &Config) -> Vec<(String, Vec<usize>)> {
        let (p, h) = (self.num_prefix, cfg.hidden_size);
        let (e, m) = (REPARAM_EMBED_DIM, REPARAM_MID_DIM);
        let mut v = Vec::new();
        if self.reparam {
            v.push((embeds_name(), vec![p, e]));
        }
        for i in 0..cfg.num_hidden_layers {
            let a = attn(i);
            for kv in ["keys", "values"] {
                if self.reparam {
                    let mlp = format!("{a}.prefix_mlp_{kv}");
                    v.push((format!("{mlp}.0.weight"), vec![m, e]));
                    v.push((format!("{mlp}.0.bias"), vec![m]));
                    v.push((format!("{mlp}.2.weight"), vec![h, m]));
                    v.push((format!("{mlp}.2.bias"), vec![h]));
                } else {
                    v.push((format!("{a}.prefix_{kv}"), vec![p, h]));
                }
            }
        }
        v.sort();
        v
    }

    /// Checks that `set` holds exactly this prefix's tensors for `cfg` (names and shapes).
    pub fn check(&self, cfg: &Config, set: &ParamSet, origin: &std::path::Path) -> Result<()> {
        super::adapter::check_exact(&self.expected_params(cfg), set, origin)
    }

    /// A prefix drawn at random from `seed` (see the module documentation): `N(0, 1)` for the
    /// direct tensors and the reparameterisation's embeddings, `U(−1/√in, 1/√in)` for its
    /// linear layers. Each tensor from its own stream `(seed, name)`.
    pub fn init_random(
        &self,
        cfg: &Config,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<ParamSet> {
        self.validate()?;
        let mut items = Vec::new();
        for (name, shape) in self.expected_params(cfg) {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = if name.contains("prefix_mlp_") {
                let fan_in = if name.contains(".0.") {
                    REPARAM_EMBED_DIM
                } else {
                    REPARAM_MID_DIM
                };
                let bound = 1.0 / (fan_in as f64).sqrt();
                super::init::uniform_vec(seed, &name, n)
                    .into_iter()
                    .map(|u| ((2.0 * u - 1.0) * bound) as f32)
                    .collect()
            } else {
                super::init::normal_vec(seed, &name, n, 1.0)
            };
            items.push((
                name,
                Tensor::from_vec(data, shape.as_slice(), device)?.to_dtype(dtype)?,
            ));
        }
        Ok(ParamSet::new(items)?)
    }

    /// Each layer's prefix keys and values `[P, hidden]` from the prefix tensors `set` (the
    /// tensors themselves, or what the reparameterisation MLPs make of the embeddings).
    pub fn kv(&self, cfg: &Config, set: &ParamSet) -> Result<Vec<PrefixKv>> {
        let get = |name: &str| super::layers::param(set, name);
        let embeds = if self.reparam {
            Some(get(&embeds_name())?)
        } else {
            None
        };
        let mlp = |e: &Tensor, m: &str| -> Result<Tensor> {
            let y = e
                .matmul(&get(&format!("{m}.0.weight"))?.t()?)?
                .broadcast_add(&get(&format!("{m}.0.bias"))?)?
                .tanh()?;
            Ok(y.matmul(&get(&format!("{m}.2.weight"))?.t()?)?
                .broadcast_add(&get(&format!("{m}.2.bias"))?)?)
        };
        (0..cfg.num_hidden_layers)
            .map(|i| {
                let a = attn(i);
                Ok(match &embeds {
                    Some(e) => PrefixKv {
                        k: mlp(e, &format!("{a}.prefix_mlp_keys"))?,
                        v: mlp(e, &format!("{a}.prefix_mlp_values"))?,
                    },
                    None => PrefixKv {
                        k: get(&format!("{a}.prefix_keys"))?,
                        v: get(&format!("{a}.prefix_values"))?,
                    },
                })
            })
            .collect()
    }

    /// PEFT's `prompt_embeddings` `[P, layers·2·hidden]` for the prefix `set`.
    pub fn peft_embeddings(&self, cfg: &Config, set: &ParamSet) -> Result<Tensor> {
        let kv = self.kv(cfg, set)?;
        let parts: Vec<&Tensor> = kv.iter().flat_map(|p| [&p.k, &p.v]).collect();
        Ok(Tensor::cat(&parts, 1)?)
    }

    /// The direct prefix tensors held by PEFT's `prompt_embeddings` `t` (read from `origin`):
    /// the inverse of [`Self::peft_embeddings`]. `num_prefix` comes from `t`'s rows.
    pub fn direct_from_peft(
        cfg: &Config,
        t: &Tensor,
        origin: &std::path::Path,
    ) -> Result<(Self, ParamSet)> {
        let (l, h) = (cfg.num_hidden_layers, cfg.hidden_size);
        let bad = |got: Vec<usize>| Error::ShapeMismatch {
            path: origin.to_path_buf(),
            tensor: PEFT_PREFIX_KEY.into(),
            expected: vec![0, 2 * l * h],
            got,
        };
        let (p, width) = t.dims2().map_err(|_| bad(t.dims().to_vec()))?;
        if width != 2 * l * h || p == 0 {
            return Err(bad(t.dims().to_vec()));
        }
        let mut items = Vec::with_capacity(2 * l);
        for i in 0..l {
            let a = attn(i);
            items.push((
                format!("{a}.prefix_keys"),
                t.narrow(1, 2 * i * h, h)?.contiguous()?,
            ));
            items.push((
                format!("{a}.prefix_values"),
                t.narrow(1, (2 * i + 1) * h, h)?.contiguous()?,
            ));
        }
        let spec = Self {
            num_prefix: p,
            reparam: false,
        };
        Ok((spec, ParamSet::new(items)?))
    }
}

/// The `P` token ids of a real-activation initialisation: uniform over `0..vocab` from the
/// stream `(seed, "prefix_token_ids")` (`⌊u · vocab⌋` of its uniforms).
pub fn prefix_token_ids(seed: u64, vocab: usize, p: usize) -> Vec<u32> {
    super::init::uniform_vec(seed, "prefix_token_ids", p)
        .into_iter()
        .map(|u| ((u * vocab as f64) as usize).min(vocab - 1) as u32)
        .collect()
}

/// PEFT's `adapter_config.json` for a prefix of `p` tokens on `cfg` (base model `base`).
pub fn peft_config_json(cfg: &Config, p: usize, base: &str) -> serde_json::Value {
    serde_json::json!({
        "peft_type": "PREFIX_TUNING",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "num_virtual_tokens": p,
        "token_dim": cfg.hidden_size,
        "num_transformer_submodules": 1,
        "num_attention_heads": cfg.num_attention_heads,
        "num_layers": cfg.num_hidden_layers,
        "encoder_hidden_size": cfg.hidden_size,
        "prefix_projection": false,
        "inference_mode": true,
    })
}
