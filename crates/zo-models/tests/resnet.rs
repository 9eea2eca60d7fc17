//! ResNet against torch (torchvision's architecture re-typed in tests/fixtures/make_fixtures.py),
//! head replacement, parameter layout.

mod common;

use candle_core::{DType, Device};
use common::*;
use zo_models::resnet::{Depth, ResNet, ResNetConfig, Stem};
use zo_models::Error;

fn cfg_of(name: &str) -> ResNetConfig {
    let g = read_json(&fixture("resnet/golden.json"));
    let m = &g["models"][name];
    let depth = if m["bottleneck"].as_bool().unwrap() {
        Depth::R50
    } else {
        Depth::R18
    };
    let stem = if m["stem"] == "imagenet" {
        Stem::ImageNet
    } else {
        Stem::Cifar
    };
    ResNetConfig {
        depth,
        num_classes: m["classes"].as_u64().unwrap() as usize,
        stem,
        base_width: m["base_width"].as_u64().unwrap() as usize,
    }
}

#[test]
fn logits_match_torch() {
    for name in ["r18_imagenet", "r50_cifar"] {
        let cfg = cfg_of(name);
        let path = fixture(&format!("resnet/{name}.safetensors"));
        let m = ResNet::from_checkpoint(&path, cfg, 0, DType::F32, &Device::Cpu).unwrap();
        let io = candle_core::safetensors::load(
            fixture(&format!("resnet/{name}.io.safetensors")),
            &Device::Cpu,
        )
        .unwrap();
        // The fused f32 conv+BN+ReLU kernel and candle's ops both match torch.
        for (path, got) in [
            ("fused", m.forward(&io["input"]).unwrap()),
            ("candle ops", m.forward_unfused(&io["input"]).unwrap()),
        ] {
            assert!(!got.track_op());
            let d = max_abs_diff(&vec_of(&got), &vec_of(&io["logits"]));
            eprintln!("{name} ({path}): max |logit - torch| = {d:.3e}");
            assert!(d <= 1e-4, "{name} ({path}): {d}");
        }
        // BN running stats are buffers, not parameters.
        assert!(m.params().names().iter().all(|n| !n.contains("running")));
        assert!(m.buffers().keys().all(|n| n.contains("running")));
    }
}

/// bf16 and f16 ResNets run on the CPU (candle's CPU convolution has no bf16 product: zo
/// convolves the widened values in f32 and rounds back) and give f32 logits near torch's f32
/// ones (seen: bf16 ≤ 0.013, f16 ≤ 0.0023): 16-bit logits would be steps coarser than a ZO
/// perturbation's change.
#[test]
fn sixteen_bit_resnets_run_and_give_f32_logits() {
    for name in ["r18_imagenet", "r50_cifar"] {
        let path = fixture(&format!("resnet/{name}.safetensors"));
        let io = candle_core::safetensors::load(
            fixture(&format!("resnet/{name}.io.safetensors")),
            &Device::Cpu,
        )
        .unwrap();
        for (dtype, bound) in [(DType::BF16, 0.05), (DType::F16, 0.01)] {
            let m = ResNet::from_checkpoint(&path, cfg_of(name), 0, dtype, &Device::Cpu).unwrap();
            let got = m.forward(&io["input"]).unwrap();
            assert_eq!(got.dtype(), DType::F32, "{name} {dtype:?}");
            let d = max_abs_diff(&vec_of(&got), &vec_of(&io["logits"]));
            eprintln!("{name} {dtype:?}: max |logit - torch f32| = {d:.3e}");
            assert!(d <= bound, "{name} {dtype:?}: {d}");
        }
    }
}

#[test]
fn head_is_replaced_for_another_class_count() {
    let mut cfg = cfg_of("r18_imagenet");
    cfg.num_classes = 100; // checkpoint has 10
    let path = fixture("resnet/r18_imagenet.safetensors");
    let m = ResNet::from_checkpoint(&path, cfg, 5, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(m.params().require("fc.weight").unwrap().dims(), &[100, 32]);
    let io =
        candle_core::safetensors::load(fixture("resnet/r18_imagenet.io.safetensors"), &Device::Cpu)
            .unwrap();
    assert_eq!(m.forward(&io["input"]).unwrap().dims(), &[2, 100]);
    // The backbone is the checkpoint's: same conv weights.
    let orig = ResNet::from_checkpoint(&path, cfg_of("r18_imagenet"), 0, DType::F32, &Device::Cpu)
        .unwrap();
    let a = m
        .params()
        .require("layer4.1.conv2.weight")
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = orig
        .params()
        .require("layer4.1.conv2.weight")
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn standard_depths_have_torchvision_parameter_counts() {
    // torchvision: resnet18 11,689,512 / resnet50 25,557,032 / resnet101 44,549,160 /
    // resnet152 60,192,808 parameters with the 1000-class head (BN affine included).
    for (depth, want) in [
        (Depth::R18, 11_689_512),
        (Depth::R50, 25_557_032),
        (Depth::R101, 44_549_160),
        (Depth::R152, 60_192_808),
    ] {
        let cfg = ResNetConfig::new(depth, 1000, Stem::ImageNet);
        assert_eq!(cfg.num_params(), want, "{depth:?}");
    }
}

#[test]
fn cifar_resnet18_runs_and_checkpoint_errors_are_named() {
    let cfg = ResNetConfig::new(Depth::R18, 10, Stem::Cifar);
    let m = ResNet::random(cfg, 1, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(m.params().numel(), cfg.num_params());
    let x = candle_core::Tensor::zeros((1, 3, 32, 32), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(m.forward(&x).unwrap().dims(), &[1, 10]);

    // A checkpoint of another depth: missing tensor named with the file.
    let path = fixture("resnet/r18_imagenet.safetensors");
    let mut wrong = cfg_of("r18_imagenet");
    wrong.depth = Depth::R34;
    let e = ResNet::from_checkpoint(&path, wrong, 0, DType::F32, &Device::Cpu).unwrap_err();
    assert!(
        matches!(&e, Error::MissingTensor { path: p, tensor } if p == &path && tensor == "layer1.2.conv1.weight"),
        "{e}"
    );
}
