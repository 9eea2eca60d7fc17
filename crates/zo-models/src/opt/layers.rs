//! The blocks of an OPT decoder layer, as plain structs over plain (non-`Var`) tensors that
//! share storage with the model's [`ParamSet`].
//!
//! Ported from transformers' `models/opt/modeling_opt.py` (`OPTAttention`, `OPTDecoderLayer`),
//! eval mode only: dropout, layerdrop and attention dropout are identities at inference.

use candle_core::{DType, Device, Tensor};
use zo_core::ParamSet;

use super::config::{Config, LAYER_NORM_EPS};
use crate::cpu::{Epilogue, PackedQueries, PackedSeq};
use crate::sgemm::Compute;
use crate::{Error, Result};

/// Fetches `name` from the set, or a [`Error::MissingTensor`] naming it.
pub(crate) fn param(params: &ParamSet, name: &str) -> Result<Tensor> {
    params
        .get(name)
        .cloned()
        .ok_or_else(|| Error::MissingTensor {
            path: "<ParamSet>".into(),
            tensor: name.to_string(),
        })
}

/// `y = x Wᵀ + b` on a 2-D input `[n, in]`. The weight is `[out, in]` as in torch; candle's
/// matmul reads the transposed view without a copy.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    /// The arithmetic of the CPU product (f32, or bf16 inputs where the CPU has AVX512-BF16).
    compute: Compute,
    lora: Option<Lora>,
}

/// A LoRA adapter on a [`Linear`]: `(α/r)·(x Aᵀ) Bᵀ` added to its output
/// (see [`super::adapter`]).
#[derive(Clone, Debug)]
pub(crate) struct Lora {
    pub(crate) a: Tensor,
    pub(crate) b: Tensor,
    pub(crate) scaling: f64,
}

impl Linear {
    pub(crate) fn load(params: &ParamSet, name: &str, bias: bool) -> Result<Self> {
        Ok(Self {
            weight: param(params, &format!("{name}.weight"))?,
            bias: if bias {
                Some(param(params, &format!("{name}.bias"))?)
            } else {
                None
            },
            compute: Compute::F32,
            lora: None,
        })
    }

    pub(crate) fn set_compute(&mut self, compute: Compute) {
        self.compute = compute;
    }

    /// Attaches (or replaces) a LoRA adapter.
    pub(crate) fn set_lora(&mut self, lora: Lora) {
        self.lora = Some(lora);
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_fused(x, 1.0, Epilogue::None)
    }

    /// `scale · (x Wᵀ + b)` followed by `epilogue`: on CPU f32 one GEMM onto the bias (and
    /// residual) rows ([`crate::cpu::linear`]), elsewhere candle's matmul, bias add, scaling,
    /// ReLU and residual add as separate ops.
    pub(crate) fn forward_fused(
        &self,
        x: &Tensor,
        scale: f64,
        epilogue: Epilogue<'_>,
    ) -> Result<Tensor> {
        if let Some(l) = &self.lora {
            // The frozen product first (fused scale, no epilogue), then the low-rank term under
            // the same scale, then the epilogue on the sum: scale·(xWᵀ + b + (α/r)·xAᵀBᵀ).
            let y = self.base_forward(x, scale, Epilogue::None)?;
            let d = x.matmul(&l.a.t()?)?.matmul(&l.b.t()?)?;
            let y = (y + (d * (scale * l.scaling))?)?;
            return Ok(match epilogue {
                Epilogue::None => y,
                Epilogue::Relu => y.relu()?,
                Epilogue::Residual(r) => (r + y)?,
            });
        }
        self.base_forward(x, scale, epilogue)
    }

    /// [`Self::forward_fused`] of the frozen weight and bias alone.
    fn base_forward(&self, x: &Tensor, scale: f64, epilogue: Epilogue<'_>) -> Result<Tensor> {
        let bias = self.bias.as_ref();
        if let Some(y) =
            crate::cpu::linear(x, &self.weight, bias, scale as f32, epilogue, self.compute)?
        {
            return Ok(y);
        }
        let y = x.matmul(&self.weight.t()?)?;
        let y = match bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let y = if scale == 1.0 { y } else { (y * scale)? };
        Ok(match epilogue {
            Epilogue::None => y,
            Epilogue::Relu => y.relu()?,
            Epilogue::Residual(r) => (r + y)?,
        })
    }
}

/// LayerNorm over the last dimension (eps 1e-5, torch's default, which OPT uses). Without
/// elementwise affine (`layer_norm_elementwise_affine = false`) the weight and bias are the
/// constants 1 and 0 and are not parameters.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    pub(crate) fn load(
        params: &ParamSet,
        name: &str,
        cfg: &Config,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        if cfg.layer_norm_elementwise_affine {
            Ok(Self {
                weight: param(params, &format!("{name}.weight"))?,
                bias: param(params, &format!("{name}.bias"))?,
            })
        } else {
            Ok(Self {
                weight: Tensor::ones(cfg.hidden_size, dtype, device)?,
                bias: Tensor::zeros(cfg.hidden_size, dtype, device)?,
            })
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(y) = crate::cpu::layer_norm(x, &self.weight, &self.bias, LAYER_NORM_EPS as f32)?
        {
            return Ok(y);
        }
        // Elsewhere candle-nn's fused kernel (one pass per row, f32 accumulation).
        Ok(candle_nn::ops::layer_norm(
            &x.contiguous()?,
            &self.weight,
            &self.bias,
            LAYER_NORM_EPS as f32,
        )?)
    }
}

/// The activation named by `activation_function` (transformers' `ACT2FN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    /// `gelu`: the exact erf form (torch `nn.GELU()`).
    GeluErf,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    Silu,
}

impl Activation {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "relu" => Some(Self::Relu),
            "gelu" => Some(Self::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" => Some(Self::GeluTanh),
            "silu" | "swish" => Some(Self::Silu),
            _ => None,
        }
    }

    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Relu => x.relu()?,
            Self::GeluErf => x.gelu_erf()?,
            Self::GeluTanh => x.gelu()?,
            Self::Silu => x.silu()?,
        })
    }
}

/// Keys and values of the positions already processed, per layer, for incremental decoding:
/// `[batch, heads, capacity, head_dim]` buffers whose first [`LayerCache::len`] positions are
/// live. New positions are written in place ([`LayerCache::append`]); a full buffer is
/// reallocated at twice the size, so a decoding step no longer copies the whole cache (it did,
/// through `Tensor::cat`: ≈ 9 % of a 16-row step with 64-token prompts, more with longer ones).
/// Not `Clone`: a clone would share the buffers, and both would write into them.
#[derive(Debug, Default)]
pub struct LayerCache {
    kv: Option<(Tensor, Tensor)>,
    len: usize,
}

impl LayerCache {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device of the cached tensors (`None` when empty).
    pub(crate) fn device(&self) -> Option<Device> {
        self.kv.as_ref().map(|(k, _)| k.device().clone())
    }

    /// The cached keys and values, `[batch, heads, len, head_dim]` each (views of the
    /// buffers).
    pub(crate) fn kv(&self) -> Result<Option<(Tensor, Tensor)>> {
        match &self.kv {
            Some((k, v)) => Ok(Some((k.narrow(2, 0, self.len)?, v.narrow(2, 0, self.len)?))),
            None => Ok(None),
        }
    }

    /// Appends the keys and values of new positions (`[batch, heads, t, head_dim]`,
    /// contiguous) and returns all cached ones, `[batch, heads, len + t, head_dim]`.
    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let need = self.len + k.dim(2)?;
        let cap = self.kv.as_ref().map_or(Ok(0), |(kb, _)| kb.dim(2))?;
        if need > cap {
            let (b, h, _, d) = k.dims4()?;
            let shape = (b, h, need.max(2 * cap), d);
            let nk = Tensor::zeros(shape, k.dtype(), k.device())?;
            let nv = Tensor::zeros(shape, v.dtype(), v.device())?;
            if let (Some((pk, pv)), true) = (self.kv.take(), self.len > 0) {
                nk.slice_set(&pk.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                nv.slice_set(&pv.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
            }
            self.kv = Some((nk, nv));
        }
        let (kb, vb) = self.kv.as_ref().expect("allocated above");
        kb.slice_set(&k.contiguous()?, 2, self.len)?;
        vb.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = need;
        Ok((kb.narrow(2, 0, need)?, vb.narrow(2, 0, need)?))
    }

    /// The cache of the sequences `idx` (indices into the batch, repeats allowed).
    pub(crate) fn select_rows(&self, idx: &Tensor) -> Result<Self> {
        let kv = match self.kv()? {
            Some((k, v)) => Some((
                k.contiguous()?.index_select(idx, 0)?,
                v.contiguous()?.index_select(idx, 0)?,
            )),
            None => None,
        };
        Ok(Self { kv, len: self.len })
    }
}

/// Trainable keys and values prepended to one layer's attention (prefix tuning, see
/// [`super::prefix`]): `[P, h]` each, every head's columns side by side as `k_proj` writes
/// them. Every query attends to all `P` of them; they take no position.
#[derive(Clone, Debug)]
pub struct PrefixKv {
    pub k: Tensor,
    pub v: Tensor,
}

impl PrefixKv {
    /// `[P, h]` → contiguous `[b, heads, P, head_dim]`.
    fn heads(x: &Tensor, b: usize, heads: usize) -> Result<Tensor> {
        let (p, h) = x.dims2()?;
        Ok(x.reshape((1, p, heads, h / heads))?
            .transpose(1, 2)?
            .broadcast_as((b, heads, p, h / heads))?
            .contiguous()?)
    }

    fn len(&self) -> usize {
        self.k.dim(0).unwrap_or(0)
    }
}

/// Where a packed pass ([`Attention::forward_packed`]) leaves its keys and values: a layer's
/// (empty) cache, in the padded `[b, t]` layout whose real positions are the packed rows'
/// flat indices `flat` (`b·t + i`, one per packed row).
pub(crate) struct PackedCache<'a> {
    pub cache: &'a mut LayerCache,
    pub b: usize,
    pub t: usize,
    pub flat: &'a Tensor,
}

/// `mask` (additive, last dimension the keys) with `p` zero columns in front: the prefix
/// positions are visible to every query.
fn prepend_visible(mask: &Tensor, p: usize) -> Result<Tensor> {
    let mut dims = mask.dims().to_vec();
    let last = dims.len() - 1;
    dims[last] = p;
    let zeros = Tensor::zeros(dims, mask.dtype(), mask.device())?;
    Ok(Tensor::cat(&[&zeros, mask], last)?)
}

/// Multi-head self-attention (`OPTAttention`): `softmax(q kᵀ / √d + mask) v`, with the
/// 1/√d scaling applied to the projected queries as transformers does.
#[derive(Clone, Debug)]
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    num_heads: usize,
    head_dim: usize,
}

impl Attention {
    pub(crate) fn load(params: &ParamSet, name: &str, cfg: &Config) -> Result<Self> {
        let b = cfg.enable_bias;
        Ok(Self {
            q_proj: Linear::load(params, &format!("{name}.q_proj"), b)?,
            k_proj: Linear::load(params, &format!("{name}.k_proj"), b)?,
            v_proj: Linear::load(params, &format!("{name}.v_proj"), b)?,
            out_proj: Linear::load(params, &format!("{name}.out_proj"), b)?,
            num_heads: cfg.num_attention_heads,
            head_dim: cfg.head_dim(),
        })
    }

    pub(crate) fn set_compute(&mut self, compute: Compute) {
        for l in [
            &mut self.q_proj,
            &mut self.k_proj,
            &mut self.v_proj,
            &mut self.out_proj,
        ] {
            l.set_compute(compute);
        }
    }

    /// Splits `[b*t, h]` into contiguous `[b, heads, t, head_dim]` (the layout batched matmul
    /// wants).
    fn heads(&self, x: &Tensor, b: usize, t: usize) -> Result<Tensor> {
        Ok(x.reshape((b, t, self.num_heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// `x`: `[b*t, h]` (the new positions); `mask`: additive `[b, 1, t, past+t]`, broadcast
    /// over heads. Returns `[b*t, h]`.
    pub fn forward(
        &self,
        x: &Tensor,
        b: usize,
        t: usize,
        mask: &Tensor,
        cache: Option<&mut LayerCache>,
    ) -> Result<Tensor> {
        self.forward_residual(x, b, t, mask, cache, None, None)
    }

    /// [`Self::forward`] plus `residual` (`[b*t, h]`) when given, added by the output projection's
    /// GEMM on CPU, and a prefix's keys and values in front of the sequence's (a cache filled
    /// with a prefix holds it already). On the CPU (f32, or bf16/f16 read widened) it runs
    /// [`crate::cpu::attention`] (no cache, no prefix) or [`crate::cpu::attention_cached`] (the
    /// keys and values in the cache's layout); other devices run candle's matmul and softmax.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_residual(
        &self,
        x: &Tensor,
        b: usize,
        t: usize,
        mask: &Tensor,
        cache: Option<&mut LayerCache>,
        residual: Option<&Tensor>,
        prefix: Option<&PrefixKv>,
    ) -> Result<Tensor> {
        let epilogue = residual.map_or(Epilogue::None, Epilogue::Residual);
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let q = self.q_proj.forward_fused(x, scale, Epilogue::None)?;
        let k = self.k_proj.forward(x)?;
        let v = self.v_proj.forward(x)?;
        if cache.is_none() && prefix.is_none() {
            let (heads, d) = (self.num_heads, self.head_dim);
            if let Some(out) = crate::cpu::attention(&q, &k, &v, mask, b, t, heads, d)? {
                return self.out_proj.forward_fused(&out, 1.0, epilogue);
            }
        }
        let mut k = self.heads(&k, b, t)?;
        let mut v = self.heads(&v, b, t)?;
        let cached = cache.as_ref().is_some_and(|c| c.kv.is_some());
        if let (Some(p), false) = (prefix, cached) {
            k = Tensor::cat(&[&PrefixKv::heads(&p.k, b, self.num_heads)?, &k], 2)?;
            v = Tensor::cat(&[&PrefixKv::heads(&p.v, b, self.num_heads)?, &v], 2)?;
        }
        if let Some(cache) = cache {
            (k, v) = cache.append(&k, &v)?;
        }
        let mask = match prefix {
            Some(p) => prepend_visible(mask, p.len())?,
            None => mask.clone(),
        };
        let (heads, d) = (self.num_heads, self.head_dim);
        if let Some(out) = crate::cpu::attention_cached(&q, &k, &v, &mask, b, t, heads, d)? {
            return self.out_proj.forward_fused(&out, 1.0, epilogue);
        }
        let q = self.heads(&q, b, t)?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(&mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b * t, self.num_heads * self.head_dim))?;
        self.out_proj.forward_fused(&out, 1.0, epilogue)
    }
}

impl Attention {
    /// Attention over a packed batch (the sequences `seqs` one after the other in `x: [N, h]`,
    /// no padding) plus `residual`: the queries are every row of `x` (`sel` `None`) or its
    /// rows `sel`, laid out as `blocks` say (see [`crate::cpu::attention_packed`]). Returns
    /// `[nq, h]`. For f32 tensors on the CPU (the caller checks).
    pub(crate) fn forward_packed(
        &self,
        x: &Tensor,
        seqs: &[PackedSeq],
        sel: Option<&Tensor>,
        blocks: &[PackedQueries],
        residual: &Tensor,
        cache: Option<PackedCache<'_>>,
    ) -> Result<Tensor> {
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let xq = match sel {
            Some(idx) => x.index_select(idx, 0)?,
            None => x.clone(),
        };
        let q = self.q_proj.forward_fused(&xq, scale, Epilogue::None)?;
        let k = self.k_proj.forward(x)?;
        let v = self.v_proj.forward(x)?;
        if let Some(c) = cache {
            // Into the padded layout the cache holds (zeros at the padding, which every
            // query's mask hides).
            let padded = |y: &Tensor| -> Result<Tensor> {
                if y.dim(0)? == c.b * c.t {
                    // No padding: the packed rows are the padded layout's.
                    return self.heads(y, c.b, c.t);
                }
                let z = Tensor::zeros((c.b * c.t, y.dim(1)?), y.dtype(), y.device())?;
                self.heads(&z.index_add(c.flat, y, 0)?, c.b, c.t)
            };
            c.cache.append(&padded(&k)?, &padded(&v)?)?;
        }
        let (heads, d) = (self.num_heads, self.head_dim);
        let out =
            crate::cpu::attention_packed(&q, &k, &v, seqs, blocks, heads, d)?.ok_or_else(|| {
                Error::Input("packed attention needs f32, bf16 or f16 tensors on the CPU".into())
            })?;
        self.out_proj
            .forward_fused(&out, 1.0, Epilogue::Residual(residual))
    }
}

impl Attention {
    /// Attention output at the query rows `rows` only (flat `b·t + i` indices, sequence of each
    /// in `row_batch`): keys and values from every position of `x: [b*t, h]`, `mask_rows` the
    /// rows of the additive mask for those queries, `[n, t]`. Returns `[n, h]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_rows(
        &self,
        x: &Tensor,
        b: usize,
        t: usize,
        rows: &Tensor,
        row_batch: &Tensor,
        mask_rows: &Tensor,
        prefix: Option<&PrefixKv>,
    ) -> Result<Tensor> {
        let n = rows.dim(0)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let q = self
            .q_proj
            .forward_fused(&x.index_select(rows, 0)?, scale, Epilogue::None)?
            .reshape((n, self.num_heads, 1, self.head_dim))?;
        let mut k = self.heads(&self.k_proj.forward(x)?, b, t)?;
        let mut v = self.heads(&self.v_proj.forward(x)?, b, t)?;
        let mut mask_rows = mask_rows.clone();
        if let Some(p) = prefix {
            k = Tensor::cat(&[&PrefixKv::heads(&p.k, b, self.num_heads)?, &k], 2)?;
            v = Tensor::cat(&[&PrefixKv::heads(&p.v, b, self.num_heads)?, &v], 2)?;
            mask_rows = prepend_visible(&mask_rows, p.len())?;
        }
        let keys = k.dim(2)?;
        let k = k.index_select(row_batch, 0)?;
        let v = v.index_select(row_batch, 0)?;
        let scores = q
            .matmul(&k.t()?)?
            .broadcast_add(&mask_rows.reshape((n, 1, 1, keys))?)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs
            .matmul(&v)?
            .reshape((n, self.num_heads * self.head_dim))?;
        self.out_proj.forward(&out)
    }
}

/// One `OPTDecoderLayer`: attention and a two-layer MLP, each with a residual connection and a
/// LayerNorm applied before (pre-LN, `do_layer_norm_before = true`: opt-125m and ≥ 1.3b) or
/// after the residual add (post-LN: opt-350m).
#[derive(Clone, Debug)]
pub struct DecoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    final_layer_norm: LayerNorm,
    activation: Activation,
    pre_ln: bool,
}

impl DecoderLayer {
    pub(crate) fn set_compute(&mut self, compute: Compute) {
        self.self_attn.set_compute(compute);
        self.fc1.set_compute(compute);
        self.fc2.set_compute(compute);
    }

    pub(crate) fn load(
        params: &ParamSet,
        name: &str,
        cfg: &Config,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let activation = Activation::from_name(&cfg.activation_function).ok_or_else(|| {
            Error::Input(format!(
                "unsupported activation_function {:?}",
                cfg.activation_function
            ))
        })?;
        Ok(Self {
            self_attn: Attention::load(params, &format!("{name}.self_attn"), cfg)?,
            self_attn_layer_norm: LayerNorm::load(
                params,
                &format!("{name}.self_attn_layer_norm"),
                cfg,
                dtype,
                device,
            )?,
            fc1: Linear::load(params, &format!("{name}.fc1"), cfg.enable_bias)?,
            fc2: Linear::load(params, &format!("{name}.fc2"), cfg.enable_bias)?,
            final_layer_norm: LayerNorm::load(
                params,
                &format!("{name}.final_layer_norm"),
                cfg,
                dtype,
                device,
            )?,
            activation,
            pre_ln: cfg.do_layer_norm_before,
        })
    }

    /// `residual + fc2(act(fc1(h)))`; ReLU and the residual add ride on the GEMMs on CPU.
    fn mlp(&self, h: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let a = if self.activation == Activation::Relu {
            self.fc1.forward_fused(h, 1.0, Epilogue::Relu)?
        } else {
            self.activation.forward(&self.fc1.forward(h)?)?
        };
        self.fc2
            .forward_fused(&a, 1.0, Epilogue::Residual(residual))
    }

    /// `x`: `[b*t, h]` → `[b*t, h]`.
    pub fn forward(
        &self,
        x: &Tensor,
        b: usize,
        t: usize,
        mask: &Tensor,
        cache: Option<&mut LayerCache>,
        prefix: Option<&PrefixKv>,
    ) -> Result<Tensor> {
        self.forward_with(x, x, |h, residual| {
            self.self_attn
                .forward_residual(h, b, t, mask, cache, Some(residual), prefix)
        })
    }

    /// The layer over a packed batch (see [`Attention::forward_packed`]): every row of `x`
    /// (`sel` `None`, `[N, h]` out) or the rows `sel` (`[n, h]` out; the LayerNorm feeding keys
    /// and values still runs on every row).
    pub(crate) fn forward_packed(
        &self,
        x: &Tensor,
        seqs: &[PackedSeq],
        sel: Option<&Tensor>,
        blocks: &[PackedQueries],
        cache: Option<PackedCache<'_>>,
    ) -> Result<Tensor> {
        let residual = match sel {
            Some(idx) => x.index_select(idx, 0)?,
            None => x.clone(),
        };
        self.forward_with(x, &residual, |h, residual| {
            self.self_attn
                .forward_packed(h, seqs, sel, blocks, residual, cache)
        })
    }

    /// The layer around its attention: `attend(h, residual)` must return `residual` plus the
    /// attention of `h` (the normalised `x` before a pre-LN layer's attention, `x` itself
    /// after a post-LN one) at `residual`'s rows; the MLP follows at those rows.
    fn forward_with(
        &self,
        x: &Tensor,
        residual: &Tensor,
        attend: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let h = if self.pre_ln {
            self.self_attn_layer_norm.forward(x)?
        } else {
            x.clone()
        };
        let mut x = attend(&h, residual)?;
        if !self.pre_ln {
            x = self.self_attn_layer_norm.forward(&x)?;
        }
        let h = if self.pre_ln {
            self.final_layer_norm.forward(&x)?
        } else {
            x.clone()
        };
        let mut x = self.mlp(&h, &x)?;
        if !self.pre_ln {
            x = self.final_layer_norm.forward(&x)?;
        }
        Ok(x)
    }
}

impl DecoderLayer {
    /// The linear module `name` (one of [`super::adapter::LORA_MODULES`]).
    pub(crate) fn linear_mut(&mut self, name: &str) -> Option<&mut Linear> {
        Some(match name {
            "q_proj" => &mut self.self_attn.q_proj,
            "k_proj" => &mut self.self_attn.k_proj,
            "v_proj" => &mut self.self_attn.v_proj,
            "out_proj" => &mut self.self_attn.out_proj,
            "fc1" => &mut self.fc1,
            "fc2" => &mut self.fc2,
            _ => return None,
        })
    }

    /// The layer's output at `rows` only (see [`Attention::forward_rows`]): the LayerNorm
    /// feeding keys/values runs on every position, the rest (queries, out_proj, MLP) on `n`
    /// rows. Returns `[n, h]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_rows(
        &self,
        x: &Tensor,
        b: usize,
        t: usize,
        rows: &Tensor,
        row_batch: &Tensor,
        mask_rows: &Tensor,
        prefix: Option<&PrefixKv>,
    ) -> Result<Tensor> {
        let residual = x.index_select(rows, 0)?;
        self.forward_with(x, &residual, |h, residual| {
            let a = self
                .self_attn
                .forward_rows(h, b, t, rows, row_batch, mask_rows, prefix)?;
            Ok((residual + a)?)
        })
    }
}
