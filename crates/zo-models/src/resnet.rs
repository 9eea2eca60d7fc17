//! ResNet-18/34/50/101/152 (He et al. 2016) for the paper's CIFAR experiments, ported from
//! torchvision's `models/resnet.py` (`BasicBlock`, `Bottleneck` with the stride on the 3×3
//! conv, "ResNet v1.5"), eval mode only: BatchNorm uses its running statistics.
//!
//! Parameter names are torchvision's, which timm's `resnet*` models share (`conv1`, `bn1`,
//! `layer{1-4}.{i}.conv{1,2,3}` / `bn{1,2,3}` / `downsample.{0,1}`, `fc`), so both hubs'
//! checkpoints load. Trainable tensors (conv and fc weights, BN affine, fc bias) live in a
//! [`ParamSet`]; BN running statistics are buffers outside it (ZO never perturbs them).
//! The classifier head is replaceable (10 / 100 classes for CIFAR); the stem is ImageNet's
//! (7×7/2 conv + 3×3/2 max-pool) or the usual CIFAR one (3×3/1 conv, no pool).

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use zo_core::ParamSet;

use crate::opt::init::normal_vec;
use crate::{Error, Result};

mod checkpoint;
mod config;
mod conv;

pub use checkpoint::{weights_file, ResNetPreset, WEIGHTS_FILE};
use config::{is_buffer, Kind};
pub use config::{Depth, ResNetConfig, Stem};
pub use conv::conv_vs_sgemm;

/// BatchNorm epsilon (torch default).
const BN_EPS: f64 = 1e-5;

/// A ResNet in eval mode.
#[derive(Clone, Debug)]
pub struct ResNet {
    cfg: ResNetConfig,
    params: ParamSet,
    buffers: BTreeMap<String, Tensor>,
    /// The arithmetic of the convolutions' products on the CPU (see [`ResNet::set_compute`]).
    compute: crate::sgemm::Compute,
}

impl ResNet {
    /// torchvision's initialisation with our counter-based generator (see `opt::init`):
    /// conv weights ~ N(0, 2/fan_out) (kaiming normal, fan_out, relu), BN weight 1 / bias 0,
    /// running mean 0 / var 1; fc weight ~ N(0, 1/(3·in)) and bias 0 (the variance of torch's
    /// default U(±1/√in) Linear init).
    pub fn random(cfg: ResNetConfig, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        let mut tensors = Vec::new();
        for (name, shape, kind) in cfg.tensors() {
            let n: usize = shape.iter().product();
            let data = match kind {
                Kind::Conv => {
                    let fan_out = shape[0] * shape[2] * shape[3];
                    normal_vec(seed, &name, n, (2.0 / fan_out as f64).sqrt())
                }
                Kind::FcWeight => {
                    normal_vec(seed, &name, n, (1.0 / (3.0 * shape[1] as f64)).sqrt())
                }
                Kind::BnWeight | Kind::BnVar => vec![1.0; n],
                Kind::BnBias | Kind::BnMean | Kind::FcBias => vec![0.0; n],
            };
            tensors.push((
                name,
                Tensor::from_vec(data, shape, device)?.to_dtype(dtype)?,
            ));
        }
        Self::from_tensors(cfg, tensors)
    }

    /// Builds from named tensors (torchvision/timm names; `num_batches_tracked` ignored). A
    /// missing or misshapen tensor is an error naming it.
    pub fn from_tensors(
        cfg: ResNetConfig,
        tensors: impl IntoIterator<Item = (String, Tensor)>,
    ) -> Result<Self> {
        let mut map: BTreeMap<String, Tensor> = tensors
            .into_iter()
            .filter(|(n, _)| !n.ends_with("num_batches_tracked"))
            .collect();
        let mut params = Vec::new();
        let mut buffers = BTreeMap::new();
        for (name, shape, kind) in cfg.tensors() {
            let t = map.remove(&name).ok_or_else(|| Error::MissingTensor {
                path: "<resnet tensors>".into(),
                tensor: name.clone(),
            })?;
            if t.dims() != shape.as_slice() {
                return Err(Error::ShapeMismatch {
                    path: "<resnet tensors>".into(),
                    tensor: name,
                    expected: shape,
                    got: t.dims().to_vec(),
                });
            }
            if is_buffer(kind) {
                buffers.insert(name, t);
            } else {
                params.push((name, t));
            }
        }
        if let Some(extra) = map.keys().next() {
            return Err(Error::UnexpectedTensor {
                path: "<resnet tensors>".into(),
                tensor: extra.clone(),
            });
        }
        Ok(Self {
            cfg,
            params: ParamSet::new(params)?,
            buffers,
            compute: crate::sgemm::Compute::F32,
        })
    }

    /// Sets the arithmetic of the convolutions' products (the f32 CPU path): f32 (the
    /// default) or bf16 inputs with f32 accumulation where the CPU has AVX512-BF16
    /// ([`crate::sgemm::Compute`]). The classification head stays f32.
    pub fn set_compute(&mut self, compute: crate::sgemm::Compute) {
        self.compute = compute;
    }

    /// Loads a torchvision/timm checkpoint (safetensors or a torch `.bin`/`.pth`) whose
    /// backbone matches `cfg`; when its head has another class count (an ImageNet checkpoint
    /// fine-tuned on CIFAR), the head is re-initialised for `cfg.num_classes` with `seed`.
    pub fn from_checkpoint(
        path: &std::path::Path,
        cfg: ResNetConfig,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let bad = |e: candle_core::Error| Error::Checkpoint {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let raw: Vec<(String, Tensor)> = if path.extension().is_some_and(|e| e == "safetensors") {
            candle_core::safetensors::load(path, device)
                .map_err(bad)?
                .into_iter()
                .collect()
        } else {
            crate::pickle_guard::read_all(path)?
        };
        let mut tensors = Vec::with_capacity(raw.len());
        let mut ckpt_classes = None;
        for (n, t) in raw {
            if n == "fc.weight" {
                ckpt_classes = Some(t.dim(0)?);
            }
            tensors.push((n, t.to_device(device)?.to_dtype(dtype)?));
        }
        match ckpt_classes {
            Some(c) if c != cfg.num_classes => {
                let mut ck = cfg;
                ck.num_classes = c;
                let m = Self::from_tensors(ck, tensors).map_err(|e| name_file(e, path))?;
                m.with_head(cfg.num_classes, seed)
            }
            _ => Self::from_tensors(cfg, tensors).map_err(|e| name_file(e, path)),
        }
    }

    /// The same backbone (sharing storage) with a freshly initialised `num_classes` head
    /// (initialised as in [`Self::random`]).
    pub fn with_head(&self, num_classes: usize, seed: u64) -> Result<Self> {
        let mut cfg = self.cfg;
        cfg.num_classes = num_classes;
        let f = cfg.feature_dim();
        let w = normal_vec(
            seed,
            "fc.weight",
            num_classes * f,
            (1.0 / (3.0 * f as f64)).sqrt(),
        );
        let (dtype, device) = (self.dtype(), self.device().clone());
        let tensors: Vec<(String, Tensor)> = self
            .params
            .iter()
            .filter(|(_, n, _)| !n.starts_with("fc."))
            .map(|(_, n, t)| (n.to_string(), t.clone()))
            .chain(self.buffers.iter().map(|(n, t)| (n.clone(), t.clone())))
            .chain([
                (
                    "fc.weight".to_string(),
                    Tensor::from_vec(w, (num_classes, f), &device)?.to_dtype(dtype)?,
                ),
                (
                    "fc.bias".to_string(),
                    Tensor::zeros(num_classes, dtype, &device)?,
                ),
            ])
            .collect();
        Self::from_tensors(cfg, tensors)
    }

    pub fn config(&self) -> &ResNetConfig {
        &self.cfg
    }

    /// The trainable tensors (sharing storage with the model).
    pub fn params(&self) -> &ParamSet {
        &self.params
    }

    /// BatchNorm running statistics (not trainable).
    pub fn buffers(&self) -> &BTreeMap<String, Tensor> {
        &self.buffers
    }

    pub fn dtype(&self) -> DType {
        self.params.dtype().unwrap_or(DType::F32)
    }

    pub fn device(&self) -> &Device {
        self.params.device().unwrap_or(&Device::Cpu)
    }

    fn p(&self, name: &str) -> Result<&Tensor> {
        Ok(self.params.require(name)?)
    }

    /// Eval-mode BatchNorm as a per-channel affine map: `scale = w/√(var + eps)`,
    /// `shift = b − mean·scale`.
    fn bn_affine(&self, name: &str) -> Result<(Tensor, Tensor)> {
        let w = self.p(&format!("{name}.weight"))?;
        let b = self.p(&format!("{name}.bias"))?;
        let mean = &self.buffers[&format!("{name}.running_mean")];
        let var = &self.buffers[&format!("{name}.running_var")];
        let scale = (w * (var + BN_EPS)?.sqrt()?.recip()?)?;
        let shift = (b - (mean * &scale)?)?;
        Ok((scale, shift))
    }

    /// `relu?(bn(conv(x)) [+ residual])` with candle's ops (any dtype and device).
    fn conv_bn(
        &self,
        x: &Tensor,
        (conv, bn): (&str, &str),
        stride: usize,
        residual: Option<&Tensor>,
        relu: bool,
    ) -> Result<Tensor> {
        let w = self.p(&format!("{conv}.weight"))?;
        let pad = w.dim(2)? / 2;
        let (scale, shift) = self.bn_affine(bn)?;
        let c = scale.dim(0)?;
        // candle's CPU convolution has no bf16 product: widened exactly, convolved in f32 and
        // rounded back, which is what a bf16 convolution accumulating in f32 gives.
        let conv = if x.dtype() == DType::BF16 && x.device().is_cpu() {
            let f32 = |t: &Tensor| t.to_dtype(DType::F32);
            f32(x)?
                .conv2d(&f32(w)?, pad, stride, 1, 1)?
                .to_dtype(DType::BF16)?
        } else {
            x.conv2d(w, pad, stride, 1, 1)?
        };
        let mut y = conv
            .broadcast_mul(&scale.reshape((1, c, 1, 1))?)?
            .broadcast_add(&shift.reshape((1, c, 1, 1))?)?;
        if let Some(r) = residual {
            y = (y + r)?;
        }
        Ok(if relu { y.relu()? } else { y })
    }

    /// The same convolution on the f32 CPU path (`conv.rs`): BN folded into the weights, the
    /// residual and ReLU in the GEMM's epilogue, HWNC activations.
    fn conv_bn_hwnc(
        &self,
        x: &conv::Act,
        (name, bn): (&str, &str),
        stride: usize,
        residual: Option<&[f32]>,
        relu: bool,
    ) -> Result<conv::Act> {
        let w = self.p(&format!("{name}.weight"))?;
        let (o, c, kh, kw) = w.dims4()?;
        let (scale, shift) = self.bn_affine(bn)?;
        let (scale, shift) = (scale.to_vec1::<f32>()?, shift.to_vec1::<f32>()?);
        let f = crate::cpu::with_f32(w, |ws| conv::Folded::new(ws, (o, c, kh, kw), &scale, shift))
            .ok_or_else(|| {
                Error::Input(format!("{name}.weight is not contiguous f32 on the CPU"))
            })?;
        conv::conv_bn(x, &f, stride, kh / 2, residual, relu, self.compute).ok_or_else(|| {
            Error::Input(format!(
                "{name}: a [{o}, {c}, {kh}, {kw}] convolution does not apply to \
                 {}×{}×{} activations",
                x.h, x.w, x.c
            ))
        })
    }

    /// Logits `[N, num_classes]` for images `[N, 3, H, W]` (normalised as the checkpoint
    /// expects), in f32 whatever the model's dtype.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_impl(x, true)
    }

    /// [`Self::forward`] with candle's ops only (no fused f32 kernel): the reference the fused
    /// path is tested and benchmarked against.
    pub fn forward_unfused(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_impl(x, false)
    }

    fn forward_impl(&self, x: &Tensor, fused: bool) -> Result<Tensor> {
        let x = x.to_dtype(self.dtype())?;
        let fast = fused
            && self.dtype() == DType::F32
            && crate::cpu::kernels_on(self.device())
            && crate::sgemm::available();
        if fast {
            return self.forward_hwnc(&x);
        }
        let stem_stride = if self.cfg.stem == Stem::ImageNet {
            2
        } else {
            1
        };
        let mut x = self.conv_bn(&x, ("conv1", "bn1"), stem_stride, None, true)?;
        if self.cfg.stem == Stem::ImageNet {
            // 3×3/2 max-pool with padding 1; zero padding equals -inf padding after a ReLU.
            x = x
                .pad_with_zeros(2, 1, 1)?
                .pad_with_zeros(3, 1, 1)?
                .max_pool2d_with_stride(3, 2)?;
        }
        let (blocks, bottleneck) = self.cfg.depth.layout();
        for (s, &n) in blocks.iter().enumerate() {
            for i in 0..n {
                let p = format!("layer{}.{i}", s + 1);
                let stride = if i == 0 && s > 0 { 2 } else { 1 };
                let identity = if self.has_downsample(&p) {
                    let names = (format!("{p}.downsample.0"), format!("{p}.downsample.1"));
                    self.conv_bn(&x, (&names.0, &names.1), stride, None, false)?
                } else {
                    x.clone()
                };
                // The last conv of a block takes the residual add and the ReLU.
                let name = |k: usize| (format!("{p}.conv{k}"), format!("{p}.bn{k}"));
                x = if bottleneck {
                    let (c1, b1) = name(1);
                    let (c2, b2) = name(2);
                    let (c3, b3) = name(3);
                    let h = self.conv_bn(&x, (&c1, &b1), 1, None, true)?;
                    let h = self.conv_bn(&h, (&c2, &b2), stride, None, true)?;
                    self.conv_bn(&h, (&c3, &b3), 1, Some(&identity), true)?
                } else {
                    let (c1, b1) = name(1);
                    let (c2, b2) = name(2);
                    let h = self.conv_bn(&x, (&c1, &b1), stride, None, true)?;
                    self.conv_bn(&h, (&c2, &b2), 1, Some(&identity), true)?
                };
            }
        }
        // The head in f32 whatever the dtype: logits rounded to 16 bits are steps coarser than
        // the change a ZO perturbation makes to them (bf16: 1/64 at |logit| ≥ 2), so the two
        // points' losses would often be equal.
        let f32 = |t: &Tensor| t.to_dtype(DType::F32);
        let feats = f32(&x.mean((2, 3))?)?;
        Ok(feats
            .matmul(&f32(self.p("fc.weight")?)?.t()?)?
            .broadcast_add(&f32(self.p("fc.bias")?)?)?)
    }

    fn has_downsample(&self, block: &str) -> bool {
        self.params
            .get(&format!("{block}.downsample.0.weight"))
            .is_some()
    }

    /// The forward on the f32 CPU path: HWNC activations, every convolution one SGEMM with BN,
    /// residual and ReLU in its epilogue (`conv.rs`), the pooled head one more.
    fn forward_hwnc(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let xv = x.flatten_all()?.to_vec1::<f32>()?;
        let input = conv::Act::from_nchw(&xv, n, c, h, w);
        let stem_stride = if self.cfg.stem == Stem::ImageNet {
            2
        } else {
            1
        };
        let mut x = self.conv_bn_hwnc(&input, ("conv1", "bn1"), stem_stride, None, true)?;
        input.recycle();
        if self.cfg.stem == Stem::ImageNet {
            let pooled = conv::max_pool_3x3_s2(&x);
            std::mem::replace(&mut x, pooled).recycle();
        }
        let (blocks, bottleneck) = self.cfg.depth.layout();
        for (s, &n) in blocks.iter().enumerate() {
            for i in 0..n {
                let p = format!("layer{}.{i}", s + 1);
                let stride = if i == 0 && s > 0 { 2 } else { 1 };
                let down = if self.has_downsample(&p) {
                    let names = (format!("{p}.downsample.0"), format!("{p}.downsample.1"));
                    Some(self.conv_bn_hwnc(&x, (&names.0, &names.1), stride, None, false)?)
                } else {
                    None
                };
                let identity = down
                    .as_ref()
                    .map_or(x.data.as_slice(), |d| d.data.as_slice());
                let name = |k: usize| (format!("{p}.conv{k}"), format!("{p}.bn{k}"));
                let y = if bottleneck {
                    let (c1, b1) = name(1);
                    let (c2, b2) = name(2);
                    let (c3, b3) = name(3);
                    let h1 = self.conv_bn_hwnc(&x, (&c1, &b1), 1, None, true)?;
                    let h2 = self.conv_bn_hwnc(&h1, (&c2, &b2), stride, None, true)?;
                    h1.recycle();
                    let y = self.conv_bn_hwnc(&h2, (&c3, &b3), 1, Some(identity), true)?;
                    h2.recycle();
                    y
                } else {
                    let (c1, b1) = name(1);
                    let (c2, b2) = name(2);
                    let h = self.conv_bn_hwnc(&x, (&c1, &b1), stride, None, true)?;
                    let y = self.conv_bn_hwnc(&h, (&c2, &b2), 1, Some(identity), true)?;
                    h.recycle();
                    y
                };
                if let Some(d) = down {
                    d.recycle();
                }
                std::mem::replace(&mut x, y).recycle();
            }
        }
        let fc_w = self.p("fc.weight")?;
        let fc_b = self.p("fc.bias")?.to_vec1::<f32>()?;
        let classes = fc_b.len();
        let logits = crate::cpu::with_f32(fc_w, |fw| conv::head(&x, fw, &fc_b))
            .flatten()
            .ok_or_else(|| {
                Error::Input(format!(
                    "fc.weight: {:?} does not apply to {} pooled features",
                    fc_w.dims(),
                    x.c
                ))
            })?;
        x.recycle();
        Ok(Tensor::from_vec(logits, (n, classes), self.device())?)
    }
}

fn name_file(e: Error, path: &std::path::Path) -> Error {
    match e {
        Error::MissingTensor { tensor, .. } => Error::MissingTensor {
            path: path.to_path_buf(),
            tensor,
        },
        Error::ShapeMismatch {
            tensor,
            expected,
            got,
            ..
        } => Error::ShapeMismatch {
            path: path.to_path_buf(),
            tensor,
            expected,
            got,
        },
        Error::UnexpectedTensor { tensor, .. } => Error::UnexpectedTensor {
            path: path.to_path_buf(),
            tensor,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forward FLOPs the peer script prints (`forward_flops` of
    /// `python docs/peer/resnet_torch_bench.py --depth 18|50 --stem cifar|imagenet -B 128`).
    #[test]
    fn forward_flops_match_the_peer_count() {
        let f = |d, stem| ResNetConfig::new(d, 10, stem).forward_flops(128, 32, 32);
        assert_eq!(f(Depth::R18, Stem::Cifar), 142_188_216_320);
        assert_eq!(f(Depth::R18, Stem::ImageNet), 9_476_243_456);
        assert_eq!(f(Depth::R50, Stem::Cifar), 332_244_451_328);
        assert_eq!(f(Depth::R50, Stem::ImageNet), 21_358_444_544);
    }

    /// The f32 CPU forward (SGEMM convolutions, pooling, head) gives the same bits on 1 and 3
    /// threads, and agrees with candle's ops, for both stems and both block kinds.
    #[test]
    fn forward_is_thread_count_independent_and_matches_candle_ops() {
        for (depth, stem) in [(Depth::R18, Stem::Cifar), (Depth::R50, Stem::ImageNet)] {
            let mut cfg = ResNetConfig::new(depth, 7, stem);
            cfg.base_width = 8;
            let m = ResNet::random(cfg, 5, DType::F32, &Device::Cpu).unwrap();
            let x = Tensor::randn(0f32, 1.0, (3, 3, 20, 20), &Device::Cpu).unwrap();
            let run = |threads| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| m.forward(&x).unwrap())
            };
            let (a, b) = (run(1), run(3));
            let bits = |t: &Tensor| -> Vec<u32> {
                let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
                v.iter().map(|f| f.to_bits()).collect()
            };
            assert_eq!(bits(&a), bits(&b), "{depth:?}");
            let reference = m.forward_unfused(&x).unwrap();
            let d = (&a - &reference)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-4, "{depth:?}: max |Δ| = {d}");
        }
    }

    /// bf16 compute: where the CPU has AVX512-BF16 the logits move off the f32 ones by the
    /// rounding of the inputs (and stay close), independently of the thread count; elsewhere
    /// they are the f32 logits.
    #[test]
    fn bf16_compute_is_close_to_f32_and_thread_count_independent() {
        let mut cfg = ResNetConfig::new(Depth::R18, 7, Stem::Cifar);
        cfg.base_width = 8;
        let mut m = ResNet::random(cfg, 5, DType::F32, &Device::Cpu).unwrap();
        let x = Tensor::randn(0f32, 1.0, (3, 3, 16, 16), &Device::Cpu).unwrap();
        let vals = |t: Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
        let f32_logits = vals(m.forward(&x).unwrap());
        m.set_compute(crate::sgemm::Compute::Bf16);
        let run = |m: &ResNet, threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| vals(m.forward(&x).unwrap()))
        };
        let (one, three) = (run(&m, 1), run(&m, 3));
        assert!(one
            .iter()
            .zip(&three)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        if crate::sgemm::Isa::Avx512Bf16.supported() {
            assert_ne!(one, f32_logits);
            let scale = f32_logits.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = one
                .iter()
                .zip(&f32_logits)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                d < 0.1 * scale,
                "max |Δ| = {d} against logits up to {scale}"
            );
        } else {
            assert_eq!(one, f32_logits);
        }
    }
}
