//! The OPT decoder (`OPTForCausalLM` in eval mode), ported from transformers'
//! `models/opt/modeling_opt.py` (`OPTDecoder.forward`, `OPTLearnedPositionalEmbedding`).
//!
//! Parameters live in a [`ParamSet`] under Hugging Face's `model.decoder.*` names; the model
//! holds clones of the same tensors (a candle clone shares storage), so an in-place sweep over
//! the set is seen by the next forward without a copy. No tensor is a `Var`, so no op records a
//! backprop graph.
//!
//! The forward returns hidden states; logits are computed only for the rows a loss asks for
//! ([`OptModel::logits_for_rows`]): SST-2's training loss needs one row per sequence, not
//! `T × vocab`.

use candle_core::{DType, Device, Tensor};
use zo_core::ParamSet;

use super::adapter::LoraSpec;
use super::config::{Config, LM_HEAD, POSITION_OFFSET};
use super::init::random_params;
use super::layers::{param, DecoderLayer, LayerCache, LayerNorm, Linear, PrefixKv};
use super::prefix::PrefixSpec;
use crate::sgemm::Compute;
use crate::{Error, Result};

mod adapt;
mod packed;
pub use adapt::name_matches;

/// The OPT decoder with its language-model head: tied to `embed_tokens` (every facebook/opt-*)
/// or, untied ([`OptModel::untied`], MeZO's `--untie_emb`), a tensor of its own.
#[derive(Clone, Debug)]
pub struct OptModel {
    cfg: Config,
    /// Every base tensor (Hugging Face names).
    base: ParamSet,
    /// What an optimizer perturbs and updates: `base` (full fine-tuning), a subset of it
    /// ([`Self::with_trainable`]), or the tensors of a LoRA adapter ([`Self::with_lora`]) or
    /// of a prefix ([`Self::with_prefix`]).
    trainable: ParamSet,
    lora: Option<LoraSpec>,
    prefix: Option<PrefixSpec>,
    dtype: DType,
    device: Device,
    embed_tokens: Tensor,
    /// The untied head (`lm_head.weight`); `None` when tied to `embed_tokens`.
    lm_head: Option<Tensor>,
    embed_positions: Tensor,
    project_in: Option<Linear>,
    project_out: Option<Linear>,
    final_layer_norm: Option<LayerNorm>,
    layers: Vec<DecoderLayer>,
    compute: Compute,
}

/// Keys/values of every layer plus the attention mask of the cached positions, for greedy
/// decoding one token at a time. Not `Clone` (its layers write into their buffers in place);
/// [`KvCache::select_rows`] makes an independent copy.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    /// `[batch, past_len]` attention mask of the cached positions, row-major.
    mask: Vec<u8>,
    batch: usize,
}

impl KvCache {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.mask.len().checked_div(self.batch).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cache of the sequences `rows` of this one, in that order (a row may repeat): one
    /// cached prompt serving several continuations.
    pub fn select_rows(&self, rows: &[u32]) -> Result<KvCache> {
        let past = self.len();
        if let Some(&r) = rows.iter().find(|&&r| r as usize >= self.batch) {
            return Err(Error::Input(format!(
                "KV cache: row {r} out of a batch of {}",
                self.batch
            )));
        }
        let mask = rows
            .iter()
            .flat_map(|&r| &self.mask[r as usize * past..(r as usize + 1) * past])
            .copied()
            .collect();
        let layers = match self.layers.first().and_then(LayerCache::device) {
            Some(device) => {
                let idx = Tensor::from_slice(rows, rows.len(), &device)?;
                self.layers
                    .iter()
                    .map(|l| l.select_rows(&idx))
                    .collect::<Result<_>>()?
            }
            None => self.layers.iter().map(|_| LayerCache::default()).collect(),
        };
        Ok(KvCache {
            layers,
            mask,
            batch: rows.len(),
        })
    }
}

/// Whether [`OptModel::forward_hidden_rows`], asked for `rows` of `tokens` positions, runs its
/// last layer's queries, attention output, MLP and `project_out` at those rows only (at most a
/// quarter of the positions); else it runs the whole forward and selects the rows. What `zo
/// bench` counts as the FLOPs of a forward follows it.
pub fn last_layer_at_rows_only(rows: usize, tokens: usize) -> bool {
    rows * 4 <= tokens
}

/// The additive mask value: half of the dtype's most negative finite value, so that
/// `score + mask` never overflows to -inf (a fully masked row, e.g. a left-padding query, then
/// stays finite instead of turning into NaN that would leak through `0 · NaN` in `probs · v`).
fn mask_value(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => f64::from(half::f16::MIN.to_f32()) / 2.0,
        DType::BF16 => f64::from(half::bf16::MIN.to_f32()) / 2.0,
        DType::F64 => f64::MIN / 2.0,
        _ => f64::from(f32::MIN) / 2.0,
    }
}

impl OptModel {
    /// Builds a model over `params`, which must hold exactly the tensors of
    /// [`Config::expected_params`] with those shapes, all of one dtype on one device.
    pub fn new(cfg: Config, params: ParamSet) -> Result<Self> {
        cfg.validate(std::path::Path::new("<config>"))?;
        let expected = cfg.expected_params();
        for (name, shape) in &expected {
            let t = params.get(name).ok_or_else(|| Error::MissingTensor {
                path: "<ParamSet>".into(),
                tensor: name.clone(),
            })?;
            if t.dims() != shape.as_slice() {
                return Err(Error::ShapeMismatch {
                    path: "<ParamSet>".into(),
                    tensor: name.clone(),
                    expected: shape.clone(),
                    got: t.dims().to_vec(),
                });
            }
        }
        if let Some(extra) = params.names().iter().find(|n| {
            expected
                .binary_search_by(|(e, _)| e.as_str().cmp(n))
                .is_err()
        }) {
            return Err(Error::UnexpectedTensor {
                path: "<ParamSet>".into(),
                tensor: extra.clone(),
            });
        }
        let dtype = params
            .dtype()
            .ok_or_else(|| Error::Input("parameters must share one dtype".into()))?;
        let device = params
            .device()
            .cloned()
            .ok_or_else(|| Error::Input("empty parameter set".into()))?;
        let p = "model.decoder";
        let project_in = if cfg.has_projections() {
            Some(Linear::load(&params, &format!("{p}.project_in"), false)?)
        } else {
            None
        };
        let project_out = if cfg.has_projections() {
            Some(Linear::load(&params, &format!("{p}.project_out"), false)?)
        } else {
            None
        };
        let final_layer_norm = if cfg.has_final_layer_norm() {
            Some(LayerNorm::load(
                &params,
                &format!("{p}.final_layer_norm"),
                &cfg,
                dtype,
                &device,
            )?)
        } else {
            None
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::load(&params, &format!("{p}.layers.{i}"), &cfg, dtype, &device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens: param(&params, &format!("{p}.embed_tokens.weight"))?,
            lm_head: if cfg.tie_word_embeddings {
                None
            } else {
                Some(param(&params, LM_HEAD)?)
            },
            embed_positions: param(&params, &format!("{p}.embed_positions.weight"))?,
            project_in,
            project_out,
            final_layer_norm,
            layers,
            cfg,
            trainable: params.clone(),
            base: params,
            lora: None,
            prefix: None,
            dtype,
            device,
            compute: Compute::F32,
        })
    }

    /// Sets the arithmetic of the CPU products (the projections, the MLP and the lm_head of
    /// the loss): [`Compute::F32`] (the default), or [`Compute::Bf16`], which rounds both
    /// operands to bf16 and accumulates in f32 where the CPU has AVX512-BF16 (elsewhere it
    /// stays f32: see [`Compute::isa`]). The weights stay f32: the perturbations and updates
    /// of the optimizers are unchanged.
    pub fn set_compute(&mut self, compute: Compute) {
        self.compute = compute;
        for l in self
            .project_in
            .iter_mut()
            .chain(self.project_out.iter_mut())
        {
            l.set_compute(compute);
        }
        for layer in &mut self.layers {
            layer.set_compute(compute);
        }
    }

    /// The arithmetic of the CPU products (see [`OptModel::set_compute`]).
    pub fn compute(&self) -> Compute {
        self.compute
    }

    /// The language-model head `[vocab, E]`: `lm_head.weight` when untied, else
    /// `embed_tokens.weight`.
    fn head(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// A model with deterministic random weights (see [`super::init`] for the generator and
    /// the distribution): the same `(cfg, seed)` gives the same weights on every machine,
    /// thread count and device.
    pub fn random(cfg: &Config, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        let params = random_params(cfg, seed, dtype, device)?;
        Self::new(cfg.clone(), params)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The trainable parameters, sharing storage with the model: every base tensor unless
    /// [`Self::with_trainable`] or [`Self::with_lora`] chose otherwise.
    pub fn params(&self) -> &ParamSet {
        &self.trainable
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Hidden states after the last layer, final LayerNorm and `project_out`: `[batch·seq, E]`
    /// (E = `word_embed_proj_dim`), row `b·seq + t` for token `t` of sequence `b`.
    ///
    /// `ids` and `mask` are row-major `[batch, seq]`; `mask[i]` is 1 for a real token and 0 for
    /// padding (left or right). Positions come from the mask as in transformers:
    /// `cumsum(mask)·mask − 1`, looked up at index `+ 2` of `embed_positions` (so padding reads
    /// row 1, and a left-padded sequence gets the same positions as its unpadded self).
    pub fn forward_hidden(
        &self,
        ids: &[u32],
        mask: &[u8],
        batch: usize,
        seq: usize,
    ) -> Result<Tensor> {
        self.run(ids, mask, batch, seq, None)
    }

    /// Like [`Self::forward_hidden`] for `new_len` new positions per sequence after those in
    /// `cache` (which it extends). `mask` covers the new positions only.
    pub fn forward_hidden_cached(
        &self,
        ids: &[u32],
        mask: &[u8],
        batch: usize,
        new_len: usize,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        if let Some(h) = self.forward_packed_cached(ids, mask, batch, new_len, cache)? {
            return Ok(h);
        }
        self.run(ids, mask, batch, new_len, Some(cache))
    }

    fn run(
        &self,
        ids: &[u32],
        mask: &[u8],
        batch: usize,
        seq: usize,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        self.check_inputs(ids, mask, batch, seq)?;
        let (past, past_mask): (usize, &[u8]) = match &cache {
            Some(c) if !c.is_empty() => {
                if c.batch != batch {
                    return Err(Error::Input(format!(
                        "KV cache holds batch {} but the input has batch {batch}",
                        c.batch
                    )));
                }
                (c.len(), &c.mask)
            }
            _ => (0, &[]),
        };
        let total = past + seq;
        // Full [batch, total] mask (cached columns, then the new ones).
        let full: Vec<u8> = (0..batch)
            .flat_map(|b| {
                past_mask[b * past..(b + 1) * past]
                    .iter()
                    .chain(&mask[b * seq..(b + 1) * seq])
                    .copied()
            })
            .collect();
        self.check_positions(&full, total)?;
        let (positions, additive) = self.positions_and_mask(&full, batch, past, seq);
        let additive = Tensor::from_vec(additive, (batch, 1, seq, total), &self.device)?
            .to_dtype(self.dtype)?;

        let mut x = self.embed(ids.to_vec(), positions)?;
        let prefix = self.prefix_kv()?;

        match cache {
            Some(cache) => {
                if cache.layers.len() != self.layers.len() {
                    cache.layers = self.layers.iter().map(|_| LayerCache::default()).collect();
                }
                for (i, (layer, lc)) in self.layers.iter().zip(cache.layers.iter_mut()).enumerate()
                {
                    let p = prefix.as_ref().map(|p| &p[i]);
                    x = layer.forward(&x, batch, seq, &additive, Some(lc), p)?;
                }
                cache.mask = full;
                cache.batch = batch;
            }
            None => {
                for (i, layer) in self.layers.iter().enumerate() {
                    let p = prefix.as_ref().map(|p| &p[i]);
                    x = layer.forward(&x, batch, seq, &additive, None, p)?;
                }
            }
        }
        self.head_in(x)
    }

    /// Token embeddings (through `project_in`) plus the learned positions at the
    /// `embed_positions` rows `positions`: `[n, h]` for `n` tokens.
    fn embed(&self, ids: Vec<u32>, positions: Vec<u32>) -> Result<Tensor> {
        let n = ids.len();
        let mut x = self
            .embed_tokens
            .embedding(&Tensor::from_vec(ids, n, &self.device)?)?;
        if let Some(p) = &self.project_in {
            x = p.forward(&x)?;
        }
        let positions = Tensor::from_vec(positions, n, &self.device)?;
        Ok((x + self.embed_positions.embedding(&positions)?)?)
    }

    /// The final LayerNorm and `project_out`, where the model has them.
    fn head_in(&self, mut x: Tensor) -> Result<Tensor> {
        if let Some(ln) = &self.final_layer_norm {
            x = ln.forward(&x)?;
        }
        if let Some(p) = &self.project_out {
            x = p.forward(&x)?;
        }
        Ok(x)
    }

    /// Embedding-table indices of the new positions and the additive causal+padding mask
    /// `[batch, 1, seq, past+seq]` (0 where query `i` may attend key `j`: `j ≤ past + i` and
    /// key `j` is a real token).
    fn positions_and_mask(
        &self,
        full: &[u8],
        batch: usize,
        past: usize,
        seq: usize,
    ) -> (Vec<u32>, Vec<f32>) {
        let total = past + seq;
        let neg = mask_value(self.dtype) as f32;
        let mut positions = Vec::with_capacity(batch * seq);
        let mut additive = vec![neg; batch * seq * total];
        for b in 0..batch {
            let row = &full[b * total..(b + 1) * total];
            let mut cum: i64 = 0;
            for (j, &m) in row.iter().enumerate() {
                cum += i64::from(m != 0);
                if j >= past {
                    // transformers: (cumsum(mask) * mask - 1)[past:], then + offset 2.
                    let pos = cum * i64::from(m != 0) - 1 + POSITION_OFFSET as i64;
                    positions.push(pos as u32);
                }
            }
            for i in 0..seq {
                let q = past + i;
                let dst = &mut additive[(b * seq + i) * total..(b * seq + i + 1) * total];
                for (j, (d, &m)) in dst.iter_mut().zip(row.iter()).enumerate().take(q + 1) {
                    if m != 0 && j <= q {
                        *d = 0.0;
                    }
                }
            }
        }
        (positions, additive)
    }

    /// Hidden states `[rows.len(), E]` at the given flat rows (`b·seq + t`) only. When few rows
    /// are asked for (at most a quarter: [`last_layer_at_rows_only`]), the last layer computes
    /// queries, attention output and MLP only there (its keys and values still cover every
    /// position): the SST-2 task loss needs one row per sequence.
    ///
    /// On f32 CPU tensors (no prefix, every row asked for a real token) the forward runs over
    /// the real tokens alone, the padding's rows skipped (see `model/packed.rs`), and equals
    /// `forward_hidden(...).index_select(rows)` bit for bit; a sequence's rows then do not
    /// depend on its padding or its batch-mates. Elsewhere equal to it up to float rounding.
    pub fn forward_hidden_rows(
        &self,
        ids: &[u32],
        mask: &[u8],
        batch: usize,
        seq: usize,
        rows: &[u32],
    ) -> Result<Tensor> {
        if let Some(&bad) = rows.iter().find(|&&r| r as usize >= batch * seq) {
            return Err(Error::Input(format!(
                "row {bad} out of range for batch·seq = {}",
                batch * seq
            )));
        }
        if let Some(h) = self.forward_packed_rows(ids, mask, batch, seq, rows)? {
            return Ok(h);
        }
        let rows_t = Tensor::from_slice(rows, rows.len(), &self.device)?;
        if !last_layer_at_rows_only(rows.len(), batch * seq) || self.layers.is_empty() {
            return Ok(self
                .forward_hidden(ids, mask, batch, seq)?
                .index_select(&rows_t, 0)?);
        }
        let (last, body) = (self.layers.len() - 1, &self.layers[..self.layers.len() - 1]);
        let prefix = self.prefix_kv()?;
        let (x, additive) = self.embed_and(ids, mask, batch, seq, body, prefix.as_deref())?;
        let row_batch: Vec<u32> = rows.iter().map(|&r| r / seq as u32).collect();
        let row_batch = Tensor::from_vec(row_batch, rows.len(), &self.device)?;
        let mask_rows = additive
            .reshape((batch * seq, seq))?
            .index_select(&rows_t, 0)?;
        let p = prefix.as_ref().map(|p| &p[last]);
        let x =
            self.layers[last].forward_rows(&x, batch, seq, &rows_t, &row_batch, &mask_rows, p)?;
        self.head_in(x)
    }

    /// Positions come from the attention mask (padding takes none), so what must fit the
    /// learned positions is each row's number of real tokens, not the padded width.
    fn check_positions(&self, mask: &[u8], width: usize) -> Result<()> {
        let longest = mask
            .chunks(width.max(1))
            .map(|row| row.iter().filter(|&&m| m != 0).count())
            .max()
            .unwrap_or(0);
        if longest > self.cfg.max_position_embeddings {
            return Err(Error::Input(format!(
                "sequence length {longest} exceeds max_position_embeddings {}",
                self.cfg.max_position_embeddings
            )));
        }
        Ok(())
    }

    /// Embeddings then `layers`, without a cache: `([batch·seq, h], additive mask)`.
    fn embed_and(
        &self,
        ids: &[u32],
        mask: &[u8],
        batch: usize,
        seq: usize,
        layers: &[DecoderLayer],
        prefix: Option<&[PrefixKv]>,
    ) -> Result<(Tensor, Tensor)> {
        self.check_inputs(ids, mask, batch, seq)?;
        self.check_positions(mask, seq)?;
        let (positions, additive) = self.positions_and_mask(mask, batch, 0, seq);
        let additive =
            Tensor::from_vec(additive, (batch, 1, seq, seq), &self.device)?.to_dtype(self.dtype)?;
        let mut x = self.embed(ids.to_vec(), positions)?;
        for (i, layer) in layers.iter().enumerate() {
            x = layer.forward(&x, batch, seq, &additive, None, prefix.map(|p| &p[i]))?;
        }
        Ok((x, additive))
    }

    fn check_inputs(&self, ids: &[u32], mask: &[u8], batch: usize, seq: usize) -> Result<()> {
        if batch == 0 || seq == 0 || ids.len() != batch * seq || mask.len() != batch * seq {
            return Err(Error::Input(format!(
                "forward: ids ({}) and mask ({}) must both hold batch·seq = {}·{} values",
                ids.len(),
                mask.len(),
                batch,
                seq
            )));
        }
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= self.cfg.vocab_size) {
            return Err(Error::Input(format!(
                "token id {bad} is out of range for vocab_size {}",
                self.cfg.vocab_size
            )));
        }
        Ok(())
    }

    /// Per-row NLL of `labels` under the lm_head, for hidden rows `[n, E]`, without
    /// materialising `[n, vocab]` logits on CPU (the vocabulary is processed in slices).
    pub fn nll_from_hidden(&self, hidden_rows: &Tensor, labels: &[u32]) -> Result<Vec<f64>> {
        let rows: Vec<u32> = (0..labels.len() as u32).collect();
        crate::ops::head_nll(hidden_rows, self.head(), &rows, labels, self.compute)
    }

    /// NLL of each `labels[i]` under the logits of `hidden`'s row `rows[i]`: on CPU the lm_head
    /// runs once per distinct row, however many labels it scores (the candidates' first option
    /// tokens, all predicted by their prompt's last position), and not at all for the rows no
    /// label reads ([`crate::ops::head_nll`]). The same values as
    /// [`Self::nll_from_hidden`] of the rows repeated per label, bit for bit where
    /// [`Self::rows_independent`].
    pub fn nll_at(&self, hidden: &Tensor, rows: &[u32], labels: &[u32]) -> Result<Vec<f64>> {
        crate::ops::head_nll(hidden, self.head(), rows, labels, self.compute)
    }

    /// Logits `[n, vocab]` for hidden-state rows `[n, E]`, through the lm_head
    /// (`embed_tokens.weight` when tied), in the model's dtype: on CPU in f32 our GEMM (a
    /// decoding step's few rows take its few-row order), elsewhere candle's matmul.
    pub fn logits_from_hidden(&self, hidden: &Tensor) -> Result<Tensor> {
        let head = self.head();
        let fused = crate::cpu::linear(
            hidden,
            head,
            None,
            1.0,
            crate::cpu::Epilogue::None,
            self.compute,
        )?;
        Ok(match fused {
            Some(y) => y,
            None => hidden.matmul(&head.t()?)?,
        })
    }

    /// Logits `[rows.len(), vocab]` of the given rows (`b·seq + t`) of a `forward_hidden`
    /// output: the lm_head runs only where a loss needs it.
    pub fn logits_for_rows(&self, hidden: &Tensor, rows: &[u32]) -> Result<Tensor> {
        let idx = Tensor::from_slice(rows, rows.len(), &self.device)?;
        self.logits_from_hidden(&hidden.index_select(&idx, 0)?)
    }

    /// Full logits `[batch, seq, vocab]` (every position; for tests and small inputs).
    pub fn logits(&self, ids: &[u32], mask: &[u8], batch: usize, seq: usize) -> Result<Tensor> {
        let h = self.forward_hidden(ids, mask, batch, seq)?;
        Ok(self
            .logits_from_hidden(&h)?
            .reshape((batch, seq, self.cfg.vocab_size))?)
    }
}
