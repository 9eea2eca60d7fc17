use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::*;
use crate::optim::{As2pConfig, GaConfig, OptimizerConfig, StpConfig};
use crate::record::{replay, MemorySink};
use crate::rng::mix64;
use crate::Distribution;

const N_ROWS: usize = 64;
const D: usize = 12;

/// Mini-batch least squares: rows aᵢ ∈ R^D, targets bᵢ; loss = mean over the batch of
/// (aᵢ·w + c − bᵢ)², with w = "lin.weight" and c = "lin.bias" (exempt from weight decay).
struct LeastSquares {
    a: Vec<[f64; D]>,
    b: Vec<f64>,
}

impl LeastSquares {
    fn new() -> Self {
        let mut s = 3u64;
        let mut u = || {
            s = mix64(s.wrapping_add(1));
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let a: Vec<[f64; D]> = (0..N_ROWS).map(|_| std::array::from_fn(|_| u())).collect();
        let b = a
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(j, x)| x * (j as f64 - 5.0))
                    .sum::<f64>()
                    + 0.3
            })
            .collect();
        LeastSquares { a, b }
    }

    fn loss(&self, p: &ParamSet, batch: &[usize]) -> f64 {
        let w: Vec<f32> = p
            .require("lin.weight")
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap();
        let c: Vec<f32> = p
            .require("lin.bias")
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap();
        let rows: Vec<usize> = if batch.is_empty() {
            (0..N_ROWS).collect()
        } else {
            batch.to_vec()
        };
        rows.iter()
            .map(|&i| {
                let pred: f64 = self.a[i]
                    .iter()
                    .zip(&w)
                    .map(|(x, wi)| x * f64::from(*wi))
                    .sum::<f64>()
                    + f64::from(c[0]);
                (pred - self.b[i]).powi(2)
            })
            .sum::<f64>()
            / rows.len() as f64
    }
}

fn params(dtype: DType) -> ParamSet {
    ParamSet::new(vec![
        (
            "lin.weight".to_string(),
            Tensor::zeros(D, dtype, &Device::Cpu).unwrap(),
        ),
        (
            "lin.bias".to_string(),
            Tensor::zeros(1, dtype, &Device::Cpu).unwrap(),
        ),
    ])
    .unwrap()
}

fn bits(p: &ParamSet) -> Vec<u32> {
    p.tensors()
        .iter()
        .flat_map(|t| t.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap())
        .map(f32::to_bits)
        .collect()
}

fn ga() -> OptimizerConfig {
    OptimizerConfig::Ga(GaConfig {
        lr: 0.05,
        rho: 1e-3,
        weight_decay: 0.01,
        dist: Distribution::Normal,
    })
}

fn as2p() -> OptimizerConfig {
    OptimizerConfig::As2p(As2pConfig {
        rho: 0.1,
        eta_b: 1.0,
        ..As2pConfig::default()
    })
}

fn cfg(steps: u64) -> TrainerConfig {
    TrainerConfig {
        schedule: Schedule::Cosine,
        data: Some(DataOrder {
            n: N_ROWS,
            batch_size: 8,
            seed: 17,
        }),
        ..TrainerConfig::new(1234, Budget::Steps(steps))
    }
}

/// Trains `steps` steps; returns final params and the sink.
fn train(opt: &OptimizerConfig, c: TrainerConfig, dtype: DType) -> (ParamSet, MemorySink) {
    let ls = LeastSquares::new();
    let p = params(dtype);
    let mut sink = MemorySink::default();
    let mut obj = |_: u64, batch: &[usize]| Ok(ls.loss(&p, batch));
    Trainer::new(c, opt.build().unwrap())
        .sink(&mut sink)
        .run(&p, &mut obj)
        .unwrap();
    (p, sink)
}

#[test]
fn training_decreases_loss() {
    let ls = LeastSquares::new();
    let l0 = ls.loss(&params(DType::F32), &[]);
    for opt in [ga(), as2p()] {
        let (p, sink) = train(&opt, cfg(300), DType::F32);
        let l1 = ls.loss(&p, &[]);
        assert!(l1 < 0.5 * l0, "{opt:?}: {l0} -> {l1}");
        assert_eq!(sink.steps.len(), 300);
        assert_eq!(sink.steps.last().unwrap().queries_total, 600);
    }
}

/// replay(initial weights, trajectory) reproduces the trained weights bit for bit.
#[test]
fn replay_reproduces_trained_weights_bit_identically() {
    for opt in [ga(), as2p()] {
        for dtype in [DType::F32, DType::BF16] {
            let c = TrainerConfig {
                eval_every: Some(7),
                ..cfg(40)
            };
            let ls = LeastSquares::new();
            let p = params(dtype);
            let mut sink = MemorySink::default();
            let mut obj = |_: u64, batch: &[usize]| Ok(ls.loss(&p, batch));
            Trainer::new(c, opt.build().unwrap())
                .sink(&mut sink)
                .on_eval(|_, ps| Ok(BTreeMap::from([("loss".to_string(), ls.loss(ps, &[]))])))
                .run(&p, &mut obj)
                .unwrap();
            let q = params(dtype);
            // Through JSON, as the runner stores it.
            let lines: Vec<String> = sink
                .sweeps
                .iter()
                .map(|s| serde_json::to_string(s).unwrap())
                .collect();
            let traj: Vec<SweepRecord> = lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            replay(&q, &traj).unwrap();
            assert_eq!(bits(&p), bits(&q), "{opt:?} {dtype:?}");
            assert_eq!(sink.evals.len(), 5);
            assert_ne!(bits(&p), bits(&params(dtype)));
        }
    }
}

use crate::record::SweepRecord;

/// GA/AS2P steps cost 2 sweeps in steady state, 3 after a boundary (evaluation) where the
/// probe was not fused; weights at evaluation are clean (equal to a replay of the steps).
#[test]
fn sweeps_per_step_and_clean_evaluation() {
    let c = TrainerConfig {
        eval_every: Some(5),
        ..cfg(20)
    };
    let ls = LeastSquares::new();
    let p = params(DType::F32);
    let mut sink = MemorySink::default();
    let mut seen = Vec::new();
    let mut obj = |_: u64, batch: &[usize]| Ok(ls.loss(&p, batch));
    Trainer::new(c, ga().build().unwrap())
        .sink(&mut sink)
        .on_eval(|step, ps| {
            seen.push((step, bits(ps)));
            Ok(BTreeMap::new())
        })
        .run(&p, &mut obj)
        .unwrap();
    let sweeps: Vec<u32> = sink.steps.iter().map(|r| r.sweeps).collect();
    assert_eq!(sweeps[..6], [3, 2, 2, 2, 2, 3], "{sweeps:?}");
    // Eval weights = replay of the sweeps of the steps before it.
    for (step, b) in seen {
        let q = params(DType::F32);
        let upto: Vec<SweepRecord> = sink
            .sweeps
            .iter()
            .filter(|s| s.step < step)
            .cloned()
            .collect();
        replay(&q, &upto).unwrap();
        assert_eq!(bits(&q), b, "eval at {step}");
    }
}

/// Stopping after step k (stop flag set mid-step) and resuming from the checkpoint gives the
/// uninterrupted run's weights bit for bit; so does resuming from a periodic checkpoint.
#[test]
fn resume_is_bit_identical() {
    for (opt, dtype) in [
        (ga(), DType::F32),
        (as2p(), DType::F32),
        (as2p(), DType::BF16),
    ] {
        let (full, _) = train(&opt, cfg(30), dtype);
        // Run stopped by the flag during step 12.
        let ls = LeastSquares::new();
        let p = params(dtype);
        let flag = Arc::new(AtomicBool::new(false));
        let mut ckpts: Vec<(ParamSet, TrainerState)> = Vec::new();
        let f2 = flag.clone();
        let mut obj = |step: u64, batch: &[usize]| {
            if step == 12 {
                f2.store(true, Ordering::SeqCst);
            }
            Ok(ls.loss(&p, batch))
        };
        let c = TrainerConfig {
            checkpoint_every: Some(5),
            ..cfg(30)
        };
        let summary = Trainer::new(c.clone(), opt.build().unwrap())
            .stop_flag(flag.clone())
            .on_checkpoint(|ps, st| {
                ckpts.push((ps.deep_clone()?, st.clone()));
                Ok(())
            })
            .run(&p, &mut obj)
            .unwrap();
        assert!(summary.stopped);
        assert_eq!(summary.state.step, 13);
        let steps: Vec<u64> = ckpts.iter().map(|(_, s)| s.step).collect();
        assert_eq!(steps, [5, 10, 13]);
        for (weights, state) in ckpts {
            // Through JSON, as the runner stores it.
            let state: TrainerState =
                serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
            let q = weights.deep_clone().unwrap();
            let mut obj = |_: u64, batch: &[usize]| Ok(ls.loss(&q, batch));
            let s = Trainer::new(cfg(30), opt.build().unwrap())
                .resume(state.clone())
                .unwrap()
                .run(&q, &mut obj)
                .unwrap();
            assert!(!s.stopped);
            assert_eq!(s.state.step, 30);
            assert_eq!(
                bits(&q),
                bits(&full),
                "{opt:?} {dtype:?} resumed at {}",
                state.step
            );
        }
    }
}

#[test]
fn resume_rejects_a_foreign_state() {
    let st = TrainerState {
        step: 3,
        queries: 6,
        sweeps: 7,
        seed: 1234,
        total_steps: 30,
        method: "ga".into(),
        optimizer: serde_json::json!({}),
    };
    let t = Trainer::new(cfg(30), as2p().build().unwrap()).resume(st.clone());
    assert!(t.err().unwrap().to_string().contains("resume.method"));
    let t = Trainer::new(cfg(31), ga().build().unwrap()).resume(st.clone());
    assert!(t.err().unwrap().to_string().contains("resume.total_steps"));
    let t = Trainer::new(TrainerConfig { seed: 1, ..cfg(30) }, ga().build().unwrap()).resume(st);
    assert!(t.err().unwrap().to_string().contains("resume.seed"));
}

/// A NaN loss stops the run with NonFiniteLoss{step} and leaves clean weights: those of the
/// previous step up to the +ρ−ρ rounding, and exactly a replay of the recorded trajectory.
#[test]
fn non_finite_loss_stops_with_clean_weights() {
    let ls = LeastSquares::new();
    let p = params(DType::F32);
    let mut sink = MemorySink::default();
    let mut at_eval = Vec::new();
    let mut obj = |step: u64, batch: &[usize]| {
        Ok(if step == 6 {
            f64::NAN
        } else {
            ls.loss(&p, batch)
        })
    };
    let c = TrainerConfig {
        eval_every: Some(6),
        ..cfg(20)
    };
    let err = Trainer::new(c, ga().build().unwrap())
        .sink(&mut sink)
        .on_eval(|_, ps| {
            at_eval = ps
                .tensors()
                .iter()
                .flat_map(|t| t.to_vec1::<f32>().unwrap())
                .collect();
            Ok(BTreeMap::new())
        })
        .run(&p, &mut obj)
        .unwrap_err();
    assert!(matches!(err, Error::NonFiniteLoss { step: 6, .. }), "{err}");
    let now: Vec<f32> = p
        .tensors()
        .iter()
        .flat_map(|t| t.to_vec1::<f32>().unwrap())
        .collect();
    for (a, b) in at_eval.iter().zip(&now) {
        assert!(
            (a - b).abs() <= 2.0 * f32::EPSILON * a.abs().max(1e-3),
            "{a} vs {b}"
        );
    }
    let q = params(DType::F32);
    replay(&q, &sink.sweeps).unwrap();
    assert_eq!(bits(&q), bits(&p));
}

#[test]
fn query_budget_sets_the_number_of_steps() {
    let opt = OptimizerConfig::Stp(StpConfig {
        lr: 1e-2,
        dist: Distribution::Normal,
    });
    let c = TrainerConfig {
        budget: Budget::Queries(31),
        ..cfg(0)
    };
    let (_, sink) = train(&opt, c, DType::F32);
    assert_eq!(sink.steps.len(), 10);
    assert_eq!(sink.steps.last().unwrap().queries_total, 30);
    let c: TrainerConfig = serde_json::from_str(
        r#"{"seed":1,"budget":{"queries":100},"schedule":"cosine","eval_every":5}"#,
    )
    .unwrap();
    assert_eq!(c.budget, Budget::Queries(100));
    assert!(c.fuse_next_probe);
    assert!(
        serde_json::from_str::<TrainerConfig>(r#"{"seed":1,"budget":{"steps":1},"evl":2}"#)
            .is_err()
    );
}
