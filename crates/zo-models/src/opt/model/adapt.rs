//! What an [`OptModel`] trains: the base tensors, a subset of them ([`OptModel::with_trainable`],
//! [`OptModel::untied`] for MeZO's head tuning), a LoRA adapter ([`OptModel::with_lora`],
//! [`OptModel::merged`]) or a prefix ([`OptModel::with_prefix`], [`OptModel::init_prefix`]).

use candle_core::{DType, Tensor};
use zo_core::ParamSet;

use super::super::adapter::LoraSpec;
use super::super::config::LM_HEAD;
use super::super::layers::{param, Lora, PrefixKv};
use super::super::prefix::{prefix_token_ids, PrefixSpec};
use super::{KvCache, OptModel};
use crate::{Error, Result};

impl OptModel {
    /// This model with a LoRA adapter on `spec.targets` of every layer: the forward adds
    /// `(α/r)·(x Aᵀ) Bᵀ` to each target's output, and [`Self::params`] becomes `adapter` alone
    /// (the base tensors are never perturbed or written). `adapter` must hold exactly
    /// [`LoraSpec::expected_params`], in the model's dtype and on its device.
    pub fn with_lora(mut self, spec: &LoraSpec, adapter: ParamSet) -> Result<Self> {
        spec.validate()?;
        self.check_no_adapter()?;
        spec.check(&self.cfg, &adapter, std::path::Path::new("<adapter>"))?;
        self.check_dtype(&adapter, "adapter")?;
        for (i, layer) in self.layers.iter_mut().enumerate() {
            for t in &spec.targets {
                let m = LoraSpec::module_path(i, t);
                let lin = layer
                    .linear_mut(t)
                    .ok_or_else(|| Error::Input(format!("no linear module `{t}`")))?;
                lin.set_lora(Lora {
                    a: param(&adapter, &format!("{m}.lora_A.weight"))?,
                    b: param(&adapter, &format!("{m}.lora_B.weight"))?,
                    scaling: spec.scaling(),
                });
            }
        }
        self.trainable = adapter;
        self.lora = Some(spec.clone());
        Ok(self)
    }

    /// Restricts [`Self::params`] to the base tensors whose names match one of `patterns`: a
    /// pattern holding `*` or `?` is a glob over the whole name, any other a substring (MeZO
    /// selects by substring, e.g. `"lora" in n`). A pattern that matches no tensor is an error
    /// naming it.
    pub fn with_trainable(mut self, patterns: &[String]) -> Result<Self> {
        if self.lora.is_some() || self.prefix.is_some() {
            return Err(Error::Input(
                "a trainable subset cannot be combined with an adapter".into(),
            ));
        }
        if patterns.is_empty() {
            return Err(Error::Input("the trainable pattern list is empty".into()));
        }
        for p in patterns {
            if !self.base.names().iter().any(|n| name_matches(p, n)) {
                let hint = if p.contains("lm_head") && self.cfg.tie_word_embeddings {
                    " (the head is tied to embed_tokens: untie it first, model.untie_embeddings = true)"
                } else {
                    ""
                };
                return Err(Error::Input(format!(
                    "trainable pattern `{p}` matches no tensor of the model{hint}"
                )));
            }
        }
        self.trainable = self
            .base
            .select(|n| patterns.iter().any(|p| name_matches(p, n)));
        Ok(self)
    }

    /// An error when the tensors of an adapter (`what`) are not all in the model's dtype.
    fn check_dtype(&self, set: &ParamSet, what: &str) -> Result<()> {
        if set.dtype() != Some(self.dtype) {
            return Err(Error::Input(format!(
                "the {what}'s dtype {:?} differs from the model's {:?}",
                set.dtype(),
                self.dtype
            )));
        }
        Ok(())
    }

    /// An error when the model carries an adapter already (one at a time).
    fn check_no_adapter(&self) -> Result<()> {
        if self.lora.is_some() || self.prefix.is_some() {
            return Err(Error::Input("the model already carries an adapter".into()));
        }
        Ok(())
    }

    /// This model with a prefix on every attention layer (see [`super::prefix`]):
    /// [`Self::params`] becomes `prefix` alone (the base tensors are never perturbed or
    /// written). `prefix` must hold exactly [`PrefixSpec::expected_params`], in the model's
    /// dtype and on its device.
    pub fn with_prefix(mut self, spec: &PrefixSpec, prefix: ParamSet) -> Result<Self> {
        spec.validate()?;
        self.check_no_adapter()?;
        spec.check(&self.cfg, &prefix, std::path::Path::new("<prefix>"))?;
        self.check_dtype(&prefix, "prefix")?;
        self.trainable = prefix;
        self.prefix = Some(spec.clone());
        Ok(self)
    }

    /// A fresh prefix for this (plain) model: by real activations (MeZO's default for the
    /// direct parameterisation: the keys and values of `P` random tokens, drawn from `seed`)
    /// or at random (see [`PrefixSpec::init_random`]).
    pub fn init_prefix(&self, spec: &PrefixSpec, seed: u64, real: bool) -> Result<ParamSet> {
        spec.validate()?;
        if !real {
            return spec.init_random(&self.cfg, seed, self.dtype, &self.device);
        }
        if spec.reparam {
            return Err(Error::Input(
                "a reparameterised prefix cannot be initialised by real activations (MeZO asserts the same)"
                    .into(),
            ));
        }
        let ids = prefix_token_ids(seed, self.cfg.vocab_size, spec.num_prefix);
        self.prefix_from_tokens(&ids)
    }

    /// The direct prefix made of the keys and values every layer computes for `ids` (one
    /// sequence, no BOS, positions `0..P`): MeZO's initialisation by real activations.
    pub fn prefix_from_tokens(&self, ids: &[u32]) -> Result<ParamSet> {
        self.check_no_adapter()?;
        let (p, h) = (ids.len(), self.cfg.hidden_size);
        let mut cache = KvCache::default();
        self.forward_hidden_cached(ids, &vec![1; p], 1, p, &mut cache)?;
        let flat = |t: &Tensor| -> Result<Tensor> {
            // [1, heads, P, d] → [P, heads·d], as MeZO's `.squeeze(0).transpose(0, 1).reshape`.
            Ok(t.squeeze(0)?
                .transpose(0, 1)?
                .contiguous()?
                .reshape((p, h))?)
        };
        let mut items = Vec::with_capacity(2 * self.layers.len());
        for (i, lc) in cache.layers.iter().enumerate() {
            let (k, v) = lc
                .kv()?
                .ok_or_else(|| Error::Input("empty KV cache after a forward".into()))?;
            let a = format!("model.decoder.layers.{i}.self_attn");
            items.push((format!("{a}.prefix_keys"), flat(&k)?));
            items.push((format!("{a}.prefix_values"), flat(&v)?));
        }
        Ok(ParamSet::new(items)?)
    }

    /// The prefix's hyper-parameters, when the model carries one.
    pub fn prefix(&self) -> Option<&PrefixSpec> {
        self.prefix.as_ref()
    }

    /// Each layer's prefix keys and values, computed from the current prefix tensors (an
    /// in-place sweep of them is seen here); `None` without a prefix.
    pub(super) fn prefix_kv(&self) -> Result<Option<Vec<PrefixKv>>> {
        self.prefix
            .as_ref()
            .map(|spec| spec.kv(&self.cfg, &self.trainable))
            .transpose()
    }

    /// This model with its language-model head untied from the embeddings (MeZO's
    /// `--untie_emb`, which its `--head_tuning` uses): `lm_head.weight` becomes a base tensor
    /// of its own, a copy of `embed_tokens.weight`, which [`Self::with_trainable`] can select
    /// alone. A model already untied is returned as it is. Call it before choosing what is
    /// trained.
    pub fn untied(self) -> Result<Self> {
        if !self.cfg.tie_word_embeddings {
            return Ok(self);
        }
        self.check_no_adapter()?;
        if self.trainable.len() != self.base.len() {
            return Err(Error::Input(
                "untie the embeddings before choosing the trainable tensors".into(),
            ));
        }
        let mut items: Vec<(String, Tensor)> = self
            .base
            .iter()
            .map(|(_, n, t)| (n.to_string(), t.clone()))
            .collect();
        items.push((LM_HEAD.to_string(), self.embed_tokens.copy()?));
        let mut cfg = self.cfg.clone();
        cfg.tie_word_embeddings = false;
        let mut m = Self::new(cfg, ParamSet::new(items)?)?;
        m.set_compute(self.compute);
        Ok(m)
    }

    /// The LoRA adapter's hyper-parameters, when the model carries one.
    pub fn lora(&self) -> Option<&LoraSpec> {
        self.lora.as_ref()
    }

    /// Every base tensor (with an adapter these are not [`Self::params`]).
    pub fn base_params(&self) -> &ParamSet {
        &self.base
    }

    /// A new model whose weights are `W + (α/r)·B A` for every adapted module (in f32, then
    /// the model's dtype), without an adapter: what `zo merge` saves. Without an adapter, a deep
    /// copy.
    pub fn merged(&self) -> Result<Self> {
        if self.prefix.is_some() {
            return Err(Error::Input(
                "a prefix cannot be merged into the weights: it adds attention positions, not a weight difference"
                    .into(),
            ));
        }
        let mut items = Vec::with_capacity(self.base.len());
        for (_, name, t) in self.base.iter() {
            let mut t = t.copy()?;
            if let Some(spec) = &self.lora {
                if let Some(m) = name.strip_suffix(".weight") {
                    if let (Some(a), Some(b)) = (
                        self.trainable.get(&format!("{m}.lora_A.weight")),
                        self.trainable.get(&format!("{m}.lora_B.weight")),
                    ) {
                        let d = b.to_dtype(DType::F32)?.matmul(&a.to_dtype(DType::F32)?)?;
                        t = (t.to_dtype(DType::F32)? + (d * spec.scaling())?)?
                            .to_dtype(self.dtype)?;
                    }
                }
            }
            items.push((name.to_string(), t));
        }
        Self::new(self.cfg.clone(), ParamSet::new(items)?)
    }
}

/// `pattern` against a tensor name: a glob (`*` any run, `?` one character) over the whole name
/// when it holds `*` or `?`, else a substring.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return name.contains(pattern);
    }
    fn glob(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|k| glob(rest, &n[k..])),
            Some((b'?', rest)) => !n.is_empty() && glob(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && glob(rest, &n[1..]),
        }
    }
    glob(pattern.as_bytes(), name.as_bytes())
}
