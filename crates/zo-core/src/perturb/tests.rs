use candle_core::{DType, Device, Tensor};

use super::*;
use crate::rng::z_at;

/// A parameter set with awkward sizes: smaller than a group, not a multiple of a group, more
/// than one rayon chunk, and one weight-decay-exempt name.
fn params(dtype: DType) -> ParamSet {
    let sizes = [
        ("a.weight", 7usize),
        ("b.bias", 64),
        ("c.weight", 40_003),
        ("d.weight", 100),
    ];
    let items = sizes.iter().enumerate().map(|(i, (n, len))| {
        let v: Vec<f32> = (0..*len)
            .map(|j| 0.02 * (((i * 7919 + j * 104_729) % 1000) as f32 / 500.0 - 1.0))
            .collect();
        let t = Tensor::from_vec(v, *len, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        (n.to_string(), t)
    });
    ParamSet::new(items).unwrap()
}

fn bits(p: &ParamSet) -> Vec<Vec<u32>> {
    p.tensors()
        .iter()
        .map(|t| {
            t.to_dtype(DType::F32)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        })
        .collect()
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap()
}

fn two_terms() -> Vec<Term> {
    vec![
        Term::new(Key::new(11, 3), 1e-3),
        Term::new(Key::new(11, 4), -2.5e-3),
    ]
}

/// The same sweep run on a 1-thread and a 4-thread rayon pool gives the same bits.
#[test]
fn sweep_bit_identical_with_1_and_4_threads() {
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        let mut results = Vec::new();
        for threads in [1, 4] {
            let p = params(dtype);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| sweep(&p, &two_terms(), Distribution::Normal))
                .unwrap();
            results.push(bits(&p));
        }
        assert_eq!(results[0], results[1], "{dtype:?}");
        assert_ne!(
            results[0],
            bits(&params(dtype)),
            "the sweep changed nothing"
        );
    }
}

/// Every available instruction set gives the same weights.
#[test]
fn sweep_isa_paths_identical() {
    for dist in [
        Distribution::Normal,
        Distribution::Rademacher,
        Distribution::Uniform,
    ] {
        let reference = params(DType::F32);
        apply_with(&reference, &Sweep::add(&two_terms(), dist), Isa::Scalar).unwrap();
        for isa in &Isa::ALL[1..] {
            let isa = *isa;
            if !isa.is_available() {
                eprintln!("note: {isa:?} not available on this CPU");
                continue;
            }
            let p = params(DType::F32);
            apply_with(&p, &Sweep::add(&two_terms(), dist), isa).unwrap();
            assert_eq!(bits(&p), bits(&reference), "{isa:?} {dist:?}");
        }
    }
}

/// Element e of tensor t becomes fma(c₂, z₂, fma(c₁, z₁, x)) with z from the one-element
/// reference `z_at`.
#[test]
fn sweep_equals_elementwise_reference() {
    let p = params(DType::F32);
    let before: Vec<Vec<f32>> = p.tensors().iter().map(vals).collect();
    let terms = two_terms();
    sweep(&p, &terms, Distribution::Normal).unwrap();
    for (t, (x0, tensor)) in before.iter().zip(p.tensors()).enumerate() {
        let x1 = vals(tensor);
        for (e, (a, b)) in x0.iter().zip(&x1).enumerate() {
            let mut want = *a;
            for term in &terms {
                want = z_at(&term.key, t as u32, e as u64, Distribution::Normal)
                    .mul_add(term.coef, want);
            }
            assert_eq!(want.to_bits(), b.to_bits(), "tensor {t} element {e}");
        }
    }
}

/// A contiguous view with a start offset: only its elements move, numbered from the view's 0.
#[test]
fn sweep_respects_start_offset() {
    let base = Tensor::zeros(300, DType::F32, &Device::Cpu).unwrap();
    let view = base.narrow(0, 100, 130).unwrap();
    assert_eq!(view.layout().start_offset(), 100);
    let p = ParamSet::new(vec![("v".to_string(), view)]).unwrap();
    let key = Key::new(1, 2);
    sweep(&p, &[Term::new(key, 1.0)], Distribution::Uniform).unwrap();
    let all = vals(&base);
    assert!(all[..100].iter().chain(&all[230..]).all(|v| *v == 0.0));
    for e in 0..130 {
        assert_eq!(all[100 + e], z_at(&key, 0, e as u64, Distribution::Uniform));
    }
}

/// x + ρz − 2ρz + ρz on f32 weights of LLM scale (|x| ≤ 0.02, ρ = 1e-3): not bit-exact, but
/// each element stays within 1.5 ulp of max(|x|, ρ|z|) of where it started (three FMAs, each
/// rounding by ≤ ½ ulp of an intermediate no larger than |x| + 2ρ|z|). Measured here: printed.
#[test]
fn plus_minus_restore_drift_is_bounded() {
    let p = params(DType::F32);
    let before: Vec<Vec<f32>> = p.tensors().iter().map(vals).collect();
    let (key, rho) = (Key::new(5, 9), 1e-3f32);
    for c in [rho, -2.0 * rho, rho] {
        sweep(&p, &[Term::new(key, c)], Distribution::Normal).unwrap();
    }
    let (mut max_abs, mut max_ulps, mut changed, mut n) = (0.0f64, 0.0f64, 0usize, 0usize);
    for (t, (x0, tensor)) in before.iter().zip(p.tensors()).enumerate() {
        for (e, (a, b)) in x0.iter().zip(vals(tensor)).enumerate() {
            let z = z_at(&key, t as u32, e as u64, Distribution::Normal);
            let scale = a.abs().max(2.0 * rho * z.abs());
            let ulp = f64::from(f32::EPSILON) * f64::from(scale);
            let err = f64::from((b - a).abs());
            max_abs = max_abs.max(err);
            max_ulps = max_ulps.max(err / ulp);
            changed += usize::from(a.to_bits() != b.to_bits());
            n += 1;
            assert!(err <= 1.5 * ulp, "tensor {t} element {e}: {a} -> {b}");
        }
    }
    eprintln!(
        "round trip +ρ−2ρ+ρ (ρ=1e-3, |x|≤0.02): {changed}/{n} elements moved, max |Δ| = {max_abs:.3e}, max {max_ulps:.2} ulp"
    );
}

/// One fused two-term sweep equals the two single-term sweeps: bit for bit in f32 (same FMA
/// sequence, same f32 rounding); in bf16 the fused sweep rounds once instead of twice, so they
/// agree within the two roundings' bound.
#[test]
fn fused_two_term_sweep_equals_two_single_sweeps() {
    let terms = two_terms();
    let fused = params(DType::F32);
    sweep(&fused, &terms, Distribution::Normal).unwrap();
    let single = params(DType::F32);
    for t in &terms {
        sweep(&single, &[*t], Distribution::Normal).unwrap();
    }
    assert_eq!(bits(&fused), bits(&single));

    let fused = params(DType::BF16);
    sweep(&fused, &terms, Distribution::Normal).unwrap();
    let single = params(DType::BF16);
    sweep(&single, &terms[..1], Distribution::Normal).unwrap();
    let inter: Vec<Vec<f32>> = single.tensors().iter().map(vals).collect();
    sweep(&single, &terms[1..], Distribution::Normal).unwrap();
    // Two roundings (½ ulp of the intermediate, ½ ulp of the result) against one.
    for ((a, b), mid) in fused.tensors().iter().zip(single.tensors()).zip(&inter) {
        for ((x, y), m) in vals(a).iter().zip(vals(b)).zip(mid) {
            let bound = 2f32.powi(-8) * (m.abs() + 2.0 * x.abs().max(y.abs()));
            assert!((x - y).abs() <= bound, "{x} vs {y} (intermediate {m})");
        }
    }
}

/// ScaleDecayed multiplies only the tensors MeZO decays (not "bias" / layer-norm names).
#[test]
fn scale_applies_to_decayed_tensors_only() {
    let p = params(DType::F32);
    let before: Vec<Vec<f32>> = p.tensors().iter().map(vals).collect();
    let s = Sweep {
        ops: vec![Op::ScaleDecayed(0.5)],
        dist: Distribution::Normal,
    };
    apply(&p, &s).unwrap();
    for ((name, x0), t) in p.names().iter().zip(&before).zip(p.tensors()) {
        let factor = if name.contains("bias") { 1.0 } else { 0.5 };
        let want: Vec<f32> = x0.iter().map(|v| v * factor).collect();
        assert_eq!(vals(t), want, "{name}");
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let f64p = ParamSet::new(vec![(
        "w".to_string(),
        Tensor::zeros(4, DType::F64, &Device::Cpu).unwrap(),
    )])
    .unwrap();
    let err = sweep(&f64p, &two_terms(), Distribution::Normal).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedDtype {
                dtype: DType::F64,
                ..
            }
        ),
        "{err}"
    );

    let tr = Tensor::zeros((3, 4), DType::F32, &Device::Cpu)
        .unwrap()
        .t()
        .unwrap();
    let p = ParamSet::new(vec![("w".to_string(), tr)]).unwrap();
    let err = sweep(&p, &two_terms(), Distribution::Normal).unwrap_err();
    assert!(err.to_string().contains("`w` is not contiguous"), "{err}");

    let p = params(DType::F32);
    let err = sweep(
        &p,
        &[Term::new(Key::new(0, 0), f32::NAN)],
        Distribution::Normal,
    )
    .unwrap_err();
    assert!(err.to_string().contains("non-finite coefficient"), "{err}");
}

#[test]
fn sweep_serde_round_trip() {
    let s = Sweep {
        ops: vec![
            Op::Add(Term::new(Key::new(1, 2), 0.5)),
            Op::ScaleDecayed(0.99),
        ],
        dist: Distribution::Rademacher,
    };
    let j = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<Sweep>(&j).unwrap(), s);
}

/// The staged path (what a device without a native kernel takes), forced on CPU tensors with
/// chunks smaller than, equal to and larger than the tensors, gives the in-place sweep's bits
/// for every storage dtype, two terms and a weight decay included; the tensors stay where
/// they were (shared storage: a model built on them sees the change).
#[test]
fn staged_sweep_equals_the_in_place_sweep() {
    let sweep = Sweep {
        ops: vec![
            Op::Add(two_terms()[0]),
            Op::ScaleDecayed(0.999),
            Op::Add(two_terms()[1]),
        ],
        dist: Distribution::Normal,
    };
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        let native = params(dtype);
        apply(&native, &sweep).unwrap();
        for stage in [1, 100, 128, 40_003, STAGE] {
            let p = params(dtype);
            let alias: Vec<Tensor> = p.tensors().to_vec();
            apply_staged(&p, &sweep, Isa::detect(), stage).unwrap();
            assert_eq!(bits(&p), bits(&native), "{dtype:?}, stage {stage}");
            let seen =
                ParamSet::new(p.names().iter().cloned().zip(alias).collect::<Vec<_>>()).unwrap();
            assert_eq!(
                bits(&seen),
                bits(&native),
                "{dtype:?}: a clone did not see it"
            );
        }
    }
}

/// A 16-bit parameter set like [`params`] with special values among the weights: ±0,
/// subnormals, the largest finite values, ±∞ and NaNs (signalling ones too).
fn params16(dtype: DType) -> ParamSet {
    let p = params(dtype);
    let special: [u16; 12] = [
        0x0000, 0x8000, 0x0001, 0x8003, 0x7f7f, 0x7bff, 0x7f80, 0xfc00, 0x7f81, 0x7c01, 0xffc0,
        0x0400,
    ];
    let items = p.iter().map(|(_, name, t)| {
        let mut bits = bits16_of(t);
        for (b, s) in bits.iter_mut().step_by(5).zip(special) {
            *b = s;
        }
        let n = bits.len();
        let t = match dtype {
            DType::BF16 => {
                let v: Vec<bf16> = bits.into_iter().map(bf16::from_bits).collect();
                Tensor::from_vec(v, n, &Device::Cpu).unwrap()
            }
            _ => {
                let v: Vec<f16> = bits.into_iter().map(f16::from_bits).collect();
                Tensor::from_vec(v, n, &Device::Cpu).unwrap()
            }
        };
        (name.to_string(), t)
    });
    ParamSet::new(items).unwrap()
}

/// The bits of a bf16/f16 tensor.
fn bits16_of(t: &Tensor) -> Vec<u16> {
    match t.dtype() {
        DType::BF16 => t
            .to_vec1::<bf16>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect(),
        _ => t
            .to_vec1::<f16>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect(),
    }
}

fn bits16(p: &ParamSet) -> Vec<Vec<u16>> {
    p.tensors().iter().map(bits16_of).collect()
}

/// Over bf16/f16 weights every instruction set gives the scalar path's bits, whether the
/// terms are fused with the widening and rounding (one, two or three terms: in place, through
/// the f32 tile, with a middle term) or go through the tile buffer (a decay that applies, a
/// direction used twice), with zero coefficients mixed in.
#[test]
fn sweep_isa_paths_identical_in_16_bit_storage() {
    let k = |i: u64| Key::new(23, i);
    let op_lists: Vec<Vec<Op>> = vec![
        vec![Op::Add(Term::new(k(1), 3e-3))],
        vec![
            Op::Add(Term::new(k(1), 3e-3)),
            Op::Add(Term::new(k(2), -1e-2)),
        ],
        vec![
            Op::Add(Term::new(k(1), 3e-3)),
            Op::Add(Term::new(k(2), 0.0)),
            Op::Add(Term::new(k(3), 5e-4)),
            Op::Add(Term::new(k(4), -2e-3)),
        ],
        vec![Op::ScaleDecayed(0.999), Op::Add(Term::new(k(1), 3e-3))],
        vec![
            Op::Add(Term::new(k(1), 3e-3)),
            Op::Add(Term::new(k(1), -1e-3)),
        ],
        vec![Op::ScaleDecayed(1.0), Op::Add(Term::new(k(5), 1e-39))],
    ];
    for dtype in [DType::BF16, DType::F16] {
        for dist in [
            Distribution::Normal,
            Distribution::Rademacher,
            Distribution::Uniform,
        ] {
            for ops in &op_lists {
                let sweep = Sweep {
                    ops: ops.clone(),
                    dist,
                };
                let reference = params16(dtype);
                apply_with(&reference, &sweep, Isa::Scalar).unwrap();
                assert_ne!(bits16(&reference), bits16(&params16(dtype)));
                for isa in Isa::ALL[1..].iter().copied().filter(|i| i.is_available()) {
                    let p = params16(dtype);
                    apply_with(&p, &sweep, isa).unwrap();
                    assert_eq!(
                        bits16(&p),
                        bits16(&reference),
                        "{isa:?} {dtype:?} {dist:?} {ops:?}"
                    );
                }
            }
        }
    }
}
