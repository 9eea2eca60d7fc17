//! Candidate scoring at evaluation, unshared (every candidate's whole sequence in 32-row
//! left-padded batches, as `zo`'s evaluation did) against `mean_option_logprobs_shared` (each
//! example's prompt run once into a KV cache), on opt-125m shapes with random weights:
//!
//!     cargo run --release -p zo-models --example eval_bench -- [examples] [prompt_len] [candidates] [option_len] [repeats]
//!
//! Defaults: 32 examples, 64-token prompts, 2 candidates of 1 token (SST-2's shape). The two
//! ways alternate within each repeat; prints one JSON line with both medians, the ratio and the
//! largest score difference. Token ids come from a fixed LCG.

use std::time::Instant;

use candle_core::{DType, Device};
use zo_models::opt::{Config, Preset};
use zo_models::scoring::{mean_option_logprobs, mean_option_logprobs_shared, Candidate};
use zo_models::{Batch, OptModel};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>())
        .collect::<Result<_, _>>()?;
    let arg = |i: usize, d: usize| args.get(i).copied().unwrap_or(d);
    let (n, plen, ncand, olen, repeats) = (arg(0, 32), arg(1, 64), arg(2, 2), arg(3, 1), arg(4, 5));
    let model = OptModel::random(
        &Config::preset(Preset::Opt125m),
        0,
        DType::F32,
        &Device::Cpu,
    )?;
    let pad = model.config().pad_token_id;
    let mut state = 7u32;
    let mut next = || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        3 + (state >> 8) % 50_000
    };
    let seqs: Vec<Vec<Vec<u32>>> = (0..n)
        .map(|_| {
            let prompt: Vec<u32> = (0..plen).map(|_| next()).collect();
            (0..ncand)
                .map(|_| {
                    let mut s = prompt.clone();
                    s.extend((0..olen).map(|_| next()));
                    s
                })
                .collect()
        })
        .collect();
    let examples: Vec<Vec<Candidate>> = seqs
        .iter()
        .map(|ss| {
            ss.iter()
                .map(|s| Candidate {
                    ids: s,
                    option_len: olen,
                })
                .collect()
        })
        .collect();
    // Whole examples per call, up to 32 candidate rows (the evaluation's grouping).
    let per_call = (32 / ncand).max(1);
    let unshared = || -> Result<Vec<f64>, Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        for chunk in seqs.chunks(per_call) {
            let flat: Vec<Vec<u32>> = chunk.iter().flatten().cloned().collect();
            let batch = Batch::left_padded(&flat, &vec![olen; flat.len()], pad, Some(8))?;
            out.extend(mean_option_logprobs(&model, &batch)?);
        }
        Ok(out)
    };
    let shared = || -> Result<Vec<f64>, Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        for chunk in examples.chunks(per_call) {
            out.extend(mean_option_logprobs_shared(&model, chunk)?.scores);
        }
        Ok(out)
    };
    let (a, b) = (unshared()?, shared()?);
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        let t = Instant::now();
        unshared()?;
        ta.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        shared()?;
        tb.push(t.elapsed().as_secs_f64());
    }
    let (ma, mb) = (median(&mut ta), median(&mut tb));
    println!(
        "{{\"bench\":\"eval_scoring\",\"examples\":{n},\"prompt_len\":{plen},\"candidates\":{ncand},\"option_len\":{olen},\"repeats\":{repeats},\"unshared_s\":{ma:.4},\"shared_s\":{mb:.4},\"shared_over_unshared\":{:.3},\"max_abs_score_diff\":{diff:.3e}}}",
        mb / ma
    );
    Ok(())
}
