//! The synthetic suite: GA, GA_sign, STP, S2P and AS2P (and AS2P_sign) on four
//! objectives with known structure, at a fixed query budget, and per objective the
//! training-cost-ratio table of docs/ALGORITHMS.md (queries to reach GA's loss at 100/80/60/40/20 %
//! of its run, relative to GA's total).
//!
//! Run: `cargo run --release -p zo-core --example synthetic_suite`
//!
//! Protocol (printed with the tables): budget 4000 queries per run; cosine LR schedule; each
//! method's hyper-parameters picked from a small grid (as the paper grid-searched α₀ and ρ₀)
//! by the lowest mean full-data loss over the last 10 % of the seed-averaged curve; curves are
//! the *full-data* loss at clean weights, measured every K/200 steps (not counted as queries),
//! averaged over 3 seeds, smoothed by a centred moving average of 5 points (2.5 % of a run).

use std::collections::BTreeMap;

use zo_core::cost::{cost_ratios, markdown_table, smooth, Curve};
use zo_core::optim::{As2pConfig, GaConfig, S2pConfig, StpConfig};
use zo_core::synthetic::{CoshQuartic, Logistic, Problem, Quadratic, Rosenbrock};
use zo_core::{Budget, Distribution, OptimizerConfig, Schedule, Trainer, TrainerConfig};

const QUERIES: u64 = 4000;
const SEEDS: [u64; 3] = [1, 2, 3];
const FRACTIONS: [f64; 5] = [1.0, 0.8, 0.6, 0.4, 0.2];
const SMOOTH: usize = 5;

/// One run: the full-data loss curve, or None if it diverged (non-finite loss).
fn run(problem: &dyn Problem, opt: &OptimizerConfig, seed: u64) -> Option<Curve> {
    let params = problem.init().ok()?;
    let optimizer = opt.build().ok()?;
    let k = QUERIES / optimizer.queries_per_step();
    let cfg = TrainerConfig {
        schedule: Schedule::Cosine,
        data: problem.data(),
        eval_every: Some((k / 200).max(1)),
        ..TrainerConfig::new(seed, Budget::Queries(QUERIES))
    };
    let mut curve = Curve {
        queries: vec![0],
        loss: vec![problem.full_loss(&params).ok()?],
    };
    let mut sink = zo_core::MemorySink::default();
    let mut obj = |_: u64, batch: &[usize]| problem.loss(&params, batch);
    let result = Trainer::new(cfg, optimizer)
        .sink(&mut sink)
        .on_eval(|_, p| {
            Ok(BTreeMap::from([(
                "loss".to_string(),
                problem.full_loss(p)?,
            )]))
        })
        .run(&params, &mut obj);
    result.ok()?;
    for e in &sink.evals {
        let l = e.metrics["loss"];
        if !l.is_finite() {
            return None;
        }
        curve.queries.push(e.queries_so_far);
        curve.loss.push(l);
    }
    Some(curve)
}

/// Seed-averaged curve (all seeds share the query grid).
fn averaged(problem: &dyn Problem, opt: &OptimizerConfig) -> Option<Curve> {
    let curves: Vec<Curve> = SEEDS
        .iter()
        .map(|&s| run(problem, opt, s))
        .collect::<Option<_>>()?;
    let n = curves[0].loss.len();
    Some(Curve {
        queries: curves[0].queries.clone(),
        loss: (0..n)
            .map(|i| curves.iter().map(|c| c.loss[i]).sum::<f64>() / curves.len() as f64)
            .collect(),
    })
}

fn tail_mean(c: &Curve) -> f64 {
    let s = smooth(&c.loss, SMOOTH);
    let from = s.len() - (s.len() / 10).max(1);
    s[from..].iter().sum::<f64>() / (s.len() - from) as f64
}

/// The grid of each method.
fn grids() -> Vec<(&'static str, Vec<OptimizerConfig>)> {
    let lrs = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1];
    let ga = |dist| {
        lrs.iter()
            .map(|&lr| {
                OptimizerConfig::Ga(GaConfig {
                    lr,
                    rho: 1e-3,
                    weight_decay: 0.0,
                    dist,
                })
            })
            .collect()
    };
    let as2p = |dist| {
        let mut v = Vec::new();
        for rho in [1e-2, 3e-2, 1e-1, 3e-1] {
            for eta_b in [0.3, 1.0, 3.0, 10.0] {
                v.push(OptimizerConfig::As2p(As2pConfig {
                    rho,
                    eta_b,
                    dist,
                    ..As2pConfig::default()
                }));
            }
        }
        v
    };
    vec![
        ("GA", ga(Distribution::Normal)),
        ("GA_sign", ga(Distribution::Rademacher)),
        (
            "STP",
            lrs.iter()
                .map(|&lr| {
                    OptimizerConfig::Stp(StpConfig {
                        lr,
                        dist: Distribution::Normal,
                    })
                })
                .collect(),
        ),
        (
            "S2P (option 1)",
            [0.3, 1.0, 3.0, 10.0, 30.0, 100.0]
                .iter()
                .map(|&a| {
                    OptimizerConfig::S2p(S2pConfig {
                        option: 1,
                        lr: Some(a),
                        l: None,
                        l0: None,
                        l1: None,
                        rho: 1e-3,
                        dist: Distribution::Normal,
                    })
                })
                .collect(),
        ),
        ("AS2P", as2p(Distribution::Normal)),
        ("AS2P_sign", as2p(Distribution::Rademacher)),
    ]
}

fn describe(c: &OptimizerConfig) -> String {
    match c {
        OptimizerConfig::Ga(g) => format!("lr={}, rho={}", g.lr, g.rho),
        OptimizerConfig::Stp(s) => format!("lr={}", s.lr),
        OptimizerConfig::S2p(s) => format!("option={}, alpha0={:?}", s.option, s.lr.unwrap_or(0.0)),
        OptimizerConfig::As2p(a) => format!(
            "rho0={}, eta_b={}, eta_a={}, w={}",
            a.rho, a.eta_b, a.eta_a, a.window
        ),
    }
}

fn main() {
    let problems: Vec<Box<dyn Problem>> = vec![
        Box::new(Quadratic { d: 50, cond: 100.0 }),
        Box::new(Rosenbrock { d: 10 }),
        Box::new(CoshQuartic { d: 50 }),
        Box::new(Logistic::new(2000, 20, 32, 7)),
    ];
    println!(
        "Synthetic suite: budget {QUERIES} queries/run, cosine schedule, {} seeds, best of a grid per method;\n\
         curves = full-data loss at clean weights every K/200 steps, centred moving average of {SMOOTH} points.\n",
        SEEDS.len()
    );
    println!(
        "Grids: GA/GA_sign lr in {{3e-4,1e-3,3e-3,1e-2,3e-2,0.1,0.3}} (rho 1e-3); STP lr in the same set;\n\
         S2P option 1 alpha0 in {{0.3,1,3,10,30,100}}; AS2P/AS2P_sign rho0 in {{0.01,0.03,0.1,0.3}} x eta_b in {{0.3,1,3,10}}\n\
         (eta_a 5, rho_end rho0/10, window 10%). Diverged grid points are dropped.\n"
    );
    for p in &problems {
        let mut rows: Vec<(String, Curve)> = Vec::new();
        println!("## {}", p.name());
        for (label, grid) in grids() {
            let best = grid
                .iter()
                .filter_map(|c| averaged(p.as_ref(), c).map(|curve| (c, curve)))
                .min_by(|a, b| tail_mean(&a.1).total_cmp(&tail_mean(&b.1)));
            match best {
                Some((c, curve)) => {
                    println!(
                        "- {label}: {} (final smoothed loss {:.4e}, start {:.4e})",
                        describe(c),
                        tail_mean(&curve),
                        curve.loss[0]
                    );
                    rows.push((label.to_string(), curve));
                }
                None => println!("- {label}: every grid point diverged"),
            }
        }
        let Some(ga) = rows.iter().find(|(l, _)| l == "GA").map(|(_, c)| c.clone()) else {
            println!("(no GA curve: no table)\n");
            continue;
        };
        let curves: Vec<&Curve> = rows.iter().map(|(_, c)| c).collect();
        let ratios = cost_ratios(&ga, &curves, &FRACTIONS, |_| SMOOTH);
        let table: Vec<(String, Vec<Option<f64>>)> =
            rows.iter().map(|(l, _)| l.clone()).zip(ratios).collect();
        println!(
            "\nTraining-cost ratio (queries to reach GA's smoothed loss at x% of its run / GA's total queries):\n"
        );
        println!("{}", markdown_table(&FRACTIONS, &table));
    }
}
