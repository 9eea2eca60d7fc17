//! The shape of a ResNet: depth, stem, head size and width, its tensors in torchvision's
//! names and kinds, and its forward FLOP count.

/// Network depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    R18,
    R34,
    R50,
    R101,
    R152,
}

impl Depth {
    /// Blocks per stage and whether blocks are bottlenecks (torchvision's table).
    pub(super) fn layout(self) -> ([usize; 4], bool) {
        match self {
            Depth::R18 => ([2, 2, 2, 2], false),
            Depth::R34 => ([3, 4, 6, 3], false),
            Depth::R50 => ([3, 4, 6, 3], true),
            Depth::R101 => ([3, 4, 23, 3], true),
            Depth::R152 => ([3, 8, 36, 3], true),
        }
    }
}

/// The input stem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stem {
    /// 7×7 stride-2 conv, then 3×3 stride-2 max-pool (torchvision / timm).
    ImageNet,
    /// 3×3 stride-1 conv, no pool (the common CIFAR variant of 32×32 inputs).
    Cifar,
}

/// Shape of a ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResNetConfig {
    pub depth: Depth,
    pub num_classes: usize,
    pub stem: Stem,
    /// Channels of the first stage (64 in every standard ResNet; smaller for tests).
    pub base_width: usize,
}

impl ResNetConfig {
    pub fn new(depth: Depth, num_classes: usize, stem: Stem) -> Self {
        Self {
            depth,
            num_classes,
            stem,
            base_width: 64,
        }
    }

    pub(super) fn expansion(&self) -> usize {
        if self.depth.layout().1 {
            4
        } else {
            1
        }
    }

    /// Width of the pooled features (the fc input).
    pub fn feature_dim(&self) -> usize {
        self.base_width * 8 * self.expansion()
    }

    /// Number of trainable parameters (conv and fc weights, BN affine, fc bias).
    pub fn num_params(&self) -> usize {
        self.tensors()
            .iter()
            .filter(|(_, _, k)| !is_buffer(*k))
            .map(|(_, s, _)| s.iter().product::<usize>())
            .sum()
    }

    /// Multiply-adds ×2 of one forward over `batch` images of `h × w` pixels: every
    /// convolution (`2·output elements·c_in·kh·kw`) and the fc layer, as the peer script
    /// (docs/peer/resnet_torch_bench.py) counts them; BN, ReLU, pooling and the residual adds
    /// are not counted.
    pub fn forward_flops(&self, batch: usize, h: usize, w: usize) -> u64 {
        let out = |x: usize, k: usize, s: usize| (x + 2 * (k / 2) - k) / s + 1;
        let conv = |hw: (usize, usize), c: usize, o: usize, k: usize| {
            2 * (batch * hw.0 * hw.1 * o * c * k * k) as u64
        };
        let (k0, s0) = if self.stem == Stem::ImageNet {
            (7, 2)
        } else {
            (3, 1)
        };
        let mut hw = (out(h, k0, s0), out(w, k0, s0));
        let bw = self.base_width;
        let mut total = conv(hw, 3, bw, k0);
        if self.stem == Stem::ImageNet {
            hw = (out(hw.0, 3, 2), out(hw.1, 3, 2));
        }
        let (blocks, bottleneck) = self.depth.layout();
        let exp = self.expansion();
        let mut inp = bw;
        for (s, &n) in blocks.iter().enumerate() {
            let planes = bw << s;
            for i in 0..n {
                let stride = if i == 0 && s > 0 { 2 } else { 1 };
                let hw2 = (out(hw.0, 1, stride), out(hw.1, 1, stride));
                if bottleneck {
                    total += conv(hw, inp, planes, 1);
                    total += conv(hw2, planes, planes, 3);
                    total += conv(hw2, planes, planes * exp, 1);
                } else {
                    total += conv(hw2, inp, planes, 3);
                    total += conv(hw2, planes, planes, 3);
                }
                if i == 0 && (stride != 1 || inp != planes * exp) {
                    total += conv(hw2, inp, planes * exp, 1);
                }
                inp = planes * exp;
                hw = hw2;
            }
        }
        total + 2 * (batch * inp * self.num_classes) as u64
    }

    /// Every tensor (trainable and buffer) with its shape and kind, torchvision names.
    pub(super) fn tensors(&self) -> Vec<(String, Vec<usize>, Kind)> {
        let mut v = Vec::new();
        let w = self.base_width;
        let k = if self.stem == Stem::ImageNet { 7 } else { 3 };
        v.push(("conv1.weight".into(), vec![w, 3, k, k], Kind::Conv));
        bn(&mut v, "bn1", w);
        let (blocks, bottleneck) = self.depth.layout();
        let exp = self.expansion();
        let mut inp = w;
        for (s, &n) in blocks.iter().enumerate() {
            let planes = w << s;
            for i in 0..n {
                let p = format!("layer{}.{i}", s + 1);
                let stride = if i == 0 && s > 0 { 2 } else { 1 };
                if bottleneck {
                    v.push((
                        format!("{p}.conv1.weight"),
                        vec![planes, inp, 1, 1],
                        Kind::Conv,
                    ));
                    bn(&mut v, &format!("{p}.bn1"), planes);
                    v.push((
                        format!("{p}.conv2.weight"),
                        vec![planes, planes, 3, 3],
                        Kind::Conv,
                    ));
                    bn(&mut v, &format!("{p}.bn2"), planes);
                    v.push((
                        format!("{p}.conv3.weight"),
                        vec![planes * exp, planes, 1, 1],
                        Kind::Conv,
                    ));
                    bn(&mut v, &format!("{p}.bn3"), planes * exp);
                } else {
                    v.push((
                        format!("{p}.conv1.weight"),
                        vec![planes, inp, 3, 3],
                        Kind::Conv,
                    ));
                    bn(&mut v, &format!("{p}.bn1"), planes);
                    v.push((
                        format!("{p}.conv2.weight"),
                        vec![planes, planes, 3, 3],
                        Kind::Conv,
                    ));
                    bn(&mut v, &format!("{p}.bn2"), planes);
                }
                if i == 0 && (stride != 1 || inp != planes * exp) {
                    v.push((
                        format!("{p}.downsample.0.weight"),
                        vec![planes * exp, inp, 1, 1],
                        Kind::Conv,
                    ));
                    bn(&mut v, &format!("{p}.downsample.1"), planes * exp);
                }
                inp = planes * exp;
            }
        }
        v.push((
            "fc.weight".into(),
            vec![self.num_classes, inp],
            Kind::FcWeight,
        ));
        v.push(("fc.bias".into(), vec![self.num_classes], Kind::FcBias));
        v
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Conv,
    BnWeight,
    BnBias,
    BnMean,
    BnVar,
    FcWeight,
    FcBias,
}

fn bn(v: &mut Vec<(String, Vec<usize>, Kind)>, name: &str, c: usize) {
    v.push((format!("{name}.weight"), vec![c], Kind::BnWeight));
    v.push((format!("{name}.bias"), vec![c], Kind::BnBias));
    v.push((format!("{name}.running_mean"), vec![c], Kind::BnMean));
    v.push((format!("{name}.running_var"), vec![c], Kind::BnVar));
}

pub(super) fn is_buffer(k: Kind) -> bool {
    matches!(k, Kind::BnMean | Kind::BnVar)
}
