use candle_core::{Device, Tensor};

use super::*;
use crate::rng::z_at;

/// One tensor "w" of `d` values, all `x0`.
fn params(d: usize, x0: f32) -> ParamSet {
    let t = Tensor::full(x0, d, &Device::Cpu).unwrap();
    ParamSet::new(vec![("w".to_string(), t)]).unwrap()
}

fn values(p: &ParamSet) -> Vec<f32> {
    p.tensors()[0].to_vec1::<f32>().unwrap()
}

/// f(x) = ½ Σ hᵢ xᵢ², hᵢ from 1 down to 1/cond (log-spaced).
fn quad(p: &ParamSet, cond: f64) -> f64 {
    let v = values(p);
    let d = v.len();
    v.iter()
        .enumerate()
        .map(|(i, &x)| {
            let h = cond.powf(-(i as f64) / (d.max(2) - 1) as f64);
            0.5 * h * f64::from(x) * f64::from(x)
        })
        .sum()
}

/// Runs `steps` steps of `opt` on the quadratic, fusing like the trainer would; returns the
/// records and the number of closure calls.
fn run(opt: &mut dyn Optimizer, p: &ParamSet, steps: u64, cond: f64) -> (Vec<StepRecord>, u64) {
    let mut sweeper = Sweeper::new(opt.distribution());
    let mut calls = 0u64;
    let mut recs = Vec::new();
    for k in 0..steps {
        sweeper.set_fuse_next(k + 1 < steps);
        let ctx = StepContext {
            step: k,
            total_steps: steps,
            seed: 99,
            lr_factor: 1.0,
        };
        let mut f = || {
            calls += 1;
            Ok(quad(p, cond))
        };
        let mut r = opt.step(p, &ctx, &mut sweeper, &mut f).unwrap();
        r.sweeps = sweeper.drain().len() as u32;
        recs.push(r);
    }
    sweeper.clean(p, steps).unwrap();
    (recs, calls)
}

#[test]
fn ga_converges_on_quadratic() {
    let p = params(20, 1.0);
    let f0 = quad(&p, 10.0);
    let mut ga = GaConfig {
        lr: 0.02,
        rho: 1e-3,
        weight_decay: 0.0,
        dist: Distribution::Normal,
    }
    .build()
    .unwrap();
    let (recs, calls) = run(&mut ga, &p, 1500, 10.0);
    let f1 = quad(&p, 10.0);
    assert!(f1 < 1e-3 * f0, "GA: {f0} -> {f1}");
    assert_eq!(calls, 3000);
    assert!(recs.iter().all(|r| r.queries == 2));
    // Steady state: 2 sweeps per step (the +ρ probe is fused into the previous update).
    assert_eq!(recs[0].sweeps, 3);
    assert!(
        recs[1..].iter().all(|r| r.sweeps == 2),
        "{:?}",
        recs[1].sweeps
    );
}

/// The [decision] on AS2P's sign: the move goes towards the lower probe, so the loss of a
/// convex quadratic decreases (with the literal "+α s" it would climb).
#[test]
fn as2p_decreases_convex_quadratic() {
    let p = params(20, 1.0);
    let f0 = quad(&p, 10.0);
    let mut opt = As2pConfig {
        rho: 0.05,
        rho_decay: false,
        eta_b: 1.0,
        ..As2pConfig::default()
    }
    .build()
    .unwrap();
    let (recs, _) = run(&mut opt, &p, 800, 10.0);
    let f1 = quad(&p, 10.0);
    assert!(f1 < 0.05 * f0, "AS2P: {f0} -> {f1}");
    for r in &recs {
        let (fp, fm) = (r.f_plus.unwrap(), r.f_minus.unwrap());
        // coef = −sign(f₊ − f₋)·α: positive (towards +s) exactly when f₊ < f₋.
        if r.coef != 0.0 {
            assert_eq!(r.coef > 0.0, fp < fm, "step {}", r.step);
        }
        assert_eq!(r.loss, fp.min(fm));
        assert_eq!(r.queries, 2);
    }
    // Warm-up: the first step uses σ = |γ|.
    assert_eq!(recs[0].sigma.unwrap(), recs[0].gamma.unwrap().abs());
}

#[test]
fn stp_counts_three_queries_and_never_climbs() {
    let p = params(10, 1.0);
    let mut opt = StpConfig {
        lr: 0.05,
        dist: Distribution::Normal,
    }
    .build()
    .unwrap();
    assert_eq!(opt.queries_per_step(), 3);
    let (recs, calls) = run(&mut opt, &p, 50, 1.0);
    assert_eq!(calls, 150);
    for r in &recs {
        assert_eq!(r.queries, 3);
        let fx = r.f_x.unwrap();
        assert!(r.loss <= fx);
        assert_eq!(r.loss, fx.min(r.f_plus.unwrap()).min(r.f_minus.unwrap()));
    }
}

fn s2p(option: u8) -> S2pConfig {
    S2pConfig {
        option,
        lr: Some(0.5),
        l: Some(2.0),
        l0: Some(1.5),
        l1: Some(0.5),
        rho: 1e-3,
        dist: Distribution::Normal,
    }
}

#[test]
fn s2p_options_2_and_4_count_four_queries() {
    for (option, q) in [(1u8, 2u64), (2, 4), (3, 2), (4, 4)] {
        let p = params(10, 1.0);
        let mut opt = s2p(option).build().unwrap();
        assert_eq!(opt.queries_per_step(), q, "option {option}");
        let (recs, calls) = run(&mut opt, &p, 5, 1.0);
        assert_eq!(calls, 5 * q, "option {option}");
        assert!(recs.iter().all(|r| r.queries == q));
    }
}

/// Each option's α equals its formula (d = 10, K = 7, A = B = 1.01), and the weights move by
/// exactly ±α·z towards the lower of f(x ± αs).
#[test]
fn s2p_step_equals_formula() {
    let (d, k) = (10.0f64, 7u64);
    for option in 1..=4u8 {
        let p = params(10, 1.0);
        let before = values(&p);
        let mut opt = s2p(option).build().unwrap();
        let mut sweeper = Sweeper::new(Distribution::Normal);
        let ctx = StepContext {
            step: 0,
            total_steps: k,
            seed: 5,
            lr_factor: 1.0,
        };
        let mut f = || Ok(quad(&p, 1.0));
        let r = opt.step(&p, &ctx, &mut sweeper, &mut f).unwrap();
        let g = r.gamma.unwrap_or(0.0).abs();
        let want = match option {
            1 => 0.5 / (k as f64 * d).sqrt(),
            2 => g / (2.0 * d),
            3 => 2f64.sqrt() / (1.01 * 0.5 * (d * k as f64).sqrt()),
            _ => g / ((1.01 * 1.5 + 2f64.sqrt() * 1.01 * 0.5 * g) * d),
        };
        assert!(
            (r.lr - want).abs() <= 1e-15 * want,
            "option {option}: {} vs {want}",
            r.lr
        );
        assert_eq!(r.coef.abs(), f64::from(want as f32));
        assert_eq!(r.coef > 0.0, r.f_plus.unwrap() <= r.f_minus.unwrap());
        // The weights are x₀ + coef·z up to the rounding of the probe/restore sweeps.
        let after = values(&p);
        for (e, (a, b)) in before.iter().zip(&after).enumerate() {
            let z = z_at(&ctx.key(), 0, e as u64, Distribution::Normal);
            let want = f64::from(*a) + r.coef * f64::from(z);
            assert!(
                (f64::from(*b) - want).abs() < 1e-6,
                "option {option} element {e}"
            );
        }
    }
}

#[test]
fn ga_weight_decay_only_on_decayed_tensors() {
    let items = vec![
        (
            "fc.weight".to_string(),
            Tensor::full(1.0f32, 64, &Device::Cpu).unwrap(),
        ),
        (
            "fc.bias".to_string(),
            Tensor::full(1.0f32, 64, &Device::Cpu).unwrap(),
        ),
    ];
    let p = ParamSet::new(items).unwrap();
    let mut ga = GaConfig {
        lr: 0.1,
        rho: 1e-3,
        weight_decay: 0.5,
        dist: Distribution::Normal,
    }
    .build()
    .unwrap();
    let mut sweeper = Sweeper::new(Distribution::Normal);
    let ctx = StepContext {
        step: 0,
        total_steps: 1,
        seed: 1,
        lr_factor: 1.0,
    };
    // A constant loss: g = 0, so only the decay moves the weights.
    let r = ga.step(&p, &ctx, &mut sweeper, &mut || Ok(1.0)).unwrap();
    assert_eq!(r.coef, 0.0);
    let w = p.get("fc.weight").unwrap().to_vec1::<f32>().unwrap();
    let b = p.get("fc.bias").unwrap().to_vec1::<f32>().unwrap();
    assert!(w.iter().all(|v| (v - 0.95).abs() < 1e-5), "{:?}", &w[..4]);
    assert!(b.iter().all(|v| (v - 1.0).abs() < 1e-6), "{:?}", &b[..4]);
}

fn build_err(json: &str) -> String {
    match serde_json::from_str::<OptimizerConfig>(json) {
        Err(e) => e.to_string(),
        Ok(c) => match c.build() {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{json} was accepted"),
        },
    }
}

#[test]
fn invalid_configs_rejected_with_field_named() {
    let cases = [
        (r#"{"method":"ga","lr":-1}"#, "ga.lr"),
        (r#"{"method":"ga","lr":1e-3,"rho":0}"#, "ga.rho"),
        (
            r#"{"method":"ga","lr":1e-3,"weight_decay":-0.1}"#,
            "ga.weight_decay",
        ),
        (r#"{"method":"stp","lr":0}"#, "stp.lr"),
        (r#"{"method":"s2p","option":5}"#, "s2p.option"),
        (r#"{"method":"s2p","option":2}"#, "s2p.l"),
        (r#"{"method":"s2p","option":4,"l0":1}"#, "s2p.l1"),
        (r#"{"method":"as2p","window":1.5}"#, "as2p.window"),
        (r#"{"method":"as2p","window":0}"#, "as2p.window"),
        (r#"{"method":"as2p","eta_b":0}"#, "as2p.eta_b"),
        (r#"{"method":"as2p","eta_a":-5}"#, "as2p.eta_a"),
        (
            r#"{"method":"as2p","rho":1e-3,"rho_end":1e-2}"#,
            "as2p.rho_end",
        ),
        (r#"{"method":"as2p","auto_lr":false}"#, "as2p.lr"),
        // Unknown keys are rejected by serde, naming the key (deny_unknown_fields works for
        // these newtype variants of the internally tagged enum).
        (r#"{"method":"as2p","eta_c":1}"#, "eta_c"),
        (r#"{"method":"ga","lr":1e-3,"lrr":1}"#, "lrr"),
        (r#"{"method":"adam","lr":1e-3}"#, "adam"),
        (r#"{"method":"ga","lr":1e-3,"dist":"gaussian"}"#, "gaussian"),
    ];
    for (json, field) in cases {
        let msg = build_err(json);
        assert!(
            msg.contains(field),
            "{json}: `{msg}` does not name `{field}`"
        );
    }
}

#[test]
fn valid_configs_build_with_defaults() {
    let c: OptimizerConfig =
        serde_json::from_str(r#"{"method":"as2p","eta_b":50,"dist":"rademacher"}"#).unwrap();
    let o = c.build().unwrap();
    assert_eq!(o.method(), "as2p");
    assert_eq!(o.distribution(), Distribution::Rademacher);
    match &c {
        OptimizerConfig::As2p(a) => {
            assert_eq!((a.rho, a.eta_a, a.window), (1e-3, 5.0, 0.1));
            assert!(a.auto_lr && a.gamma_clip && a.rho_decay);
        }
        _ => unreachable!(),
    }
    let back: OptimizerConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

/// AS2P's state captures the γ window: an optimizer restored from it takes the same step.
#[test]
fn as2p_state_round_trip() {
    let p = params(8, 1.0);
    let mut a = As2pConfig::default().build().unwrap();
    run(&mut a, &p, 5, 1.0);
    let state = a.state();
    let mut b = As2pConfig::default().build().unwrap();
    b.load_state(&state).unwrap();
    assert_eq!(a.window(), b.window());
    assert!(b.load_state(&serde_json::json!({"window": 3})).is_err());
    let mut ga = GaConfig {
        lr: 1.0,
        rho: 1.0,
        weight_decay: 0.0,
        dist: Distribution::Normal,
    }
    .build()
    .unwrap();
    assert!(ga.load_state(&serde_json::json!({"x": 1})).is_err());
}

/// A NaN loss is an error naming the step; the probe stays for the trainer to clean.
#[test]
fn non_finite_loss_is_an_error() {
    let p = params(8, 1.0);
    let mut ga = GaConfig {
        lr: 1.0,
        rho: 1e-3,
        weight_decay: 0.0,
        dist: Distribution::Normal,
    }
    .build()
    .unwrap();
    let mut sweeper = Sweeper::new(Distribution::Normal);
    let ctx = StepContext {
        step: 3,
        total_steps: 10,
        seed: 1,
        lr_factor: 1.0,
    };
    let err = ga
        .step(&p, &ctx, &mut sweeper, &mut || Ok(f64::NAN))
        .unwrap_err();
    assert!(matches!(err, Error::NonFiniteLoss { step: 3, .. }), "{err}");
    assert!(!sweeper.is_clean());
    sweeper.clean(&p, 3).unwrap();
    assert!(values(&p).iter().all(|v| (v - 1.0).abs() < 1e-6));
}

/// One AS2P step with scripted losses (f₊ = 3, f₋ = 1, ρ = 0.1 → γ = 10, β = +1), on the first
/// step (σ = |γ|, τa = 2η_a·σ): α = ρ·c·γ'/(η_b σ) with γ' = |γ|τa/(|γ| + τa); the
/// "no γ-clipping" ablation uses γ' = |γ|, "no auto-LR" α = lr·c·γ'. A constant loss (γ = 0)
/// takes no step and says so.
#[test]
fn as2p_step_equals_formula_and_ablations() {
    let rho = 0.1f64;
    let r32 = f64::from(rho as f32);
    let gamma = 2.0 / (2.0 * r32);
    let (eta_a, eta_b, c, lr) = (5.0, 4.0, 0.5, 0.01);
    let tau = 2.0 * eta_a * gamma;
    let clipped = gamma * tau / (gamma + tau);
    let cases = [
        (true, true, r32 * c * clipped / (eta_b * gamma)),
        (true, false, r32 * c * gamma / (eta_b * gamma)),
        (false, true, lr * c * clipped),
    ];
    for (auto_lr, gamma_clip, want) in cases {
        let p = params(4, 0.0);
        let mut opt = As2pConfig {
            rho,
            rho_decay: false,
            eta_a,
            eta_b,
            auto_lr,
            gamma_clip,
            lr: Some(lr),
            ..As2pConfig::default()
        }
        .build()
        .unwrap();
        let mut sweeper = Sweeper::new(Distribution::Normal);
        let ctx = StepContext {
            step: 0,
            total_steps: 100,
            seed: 1,
            lr_factor: c,
        };
        let mut script = [3.0, 1.0].into_iter();
        let r = opt
            .step(&p, &ctx, &mut sweeper, &mut || Ok(script.next().unwrap()))
            .unwrap();
        assert!((r.gamma.unwrap() - gamma).abs() < 1e-9);
        assert!(
            (r.lr - want).abs() <= 1e-12 * want,
            "{auto_lr} {gamma_clip}: {} vs {want}",
            r.lr
        );
        assert_eq!(
            r.coef,
            f64::from((-want) as f32),
            "moves towards the lower probe (−s)"
        );
        assert!(r.skipped.is_none());
    }
    let p = params(4, 0.0);
    let mut opt = As2pConfig::default().build().unwrap();
    let mut sweeper = Sweeper::new(Distribution::Normal);
    let ctx = StepContext {
        step: 0,
        total_steps: 10,
        seed: 1,
        lr_factor: 1.0,
    };
    let r = opt.step(&p, &ctx, &mut sweeper, &mut || Ok(1.0)).unwrap();
    assert_eq!(r.coef, 0.0);
    assert!(r.skipped.as_deref().unwrap().contains("no step"));
}
