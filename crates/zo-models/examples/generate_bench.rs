//! Greedy decoding (`scoring::greedy_generate_batch`, what `zo eval` runs for SQuAD and
//! DROP) on opt-125m shapes with random weights: a batch of prompts, then one token per row
//! per step with the KV cache, where every product has one row per sequence:
//!
//!     cargo run --release -p zo-models --example generate_bench -- [batch] [prompt_len] [new_tokens] [repeats] [min_len] [alone] [dtype]
//!
//! Defaults: 16 prompts of 64 tokens, 32 new tokens each (no stop token, so every step runs),
//! 5 repeats after one warm-up. With `min_len`, each prompt's length is drawn uniformly from
//! `min_len ..= prompt_len`; with `alone` = 1 the prompts are decoded one after the other (a
//! call of one prompt each) instead of together. Prints one JSON line: the median seconds per
//! call (all prompts), per prompt, the decoding steps' share (the call less a prompt pass timed
//! alone) and new tokens per second. Token ids come from a fixed LCG. `dtype` (`f32`, the
//! default, `bf16` or `f16`) is the weights' and activations' dtype (`model.dtype`).

use std::time::Instant;

use candle_core::{DType, Device};
use zo_models::opt::{Config, Preset};
use zo_models::scoring::{greedy_generate_batch, GenerateOptions};
use zo_models::OptModel;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let dtype = match raw.get(6).map(String::as_str) {
        None | Some("f32") => DType::F32,
        Some("bf16") => DType::BF16,
        Some("f16") => DType::F16,
        Some(other) => return Err(format!("dtype {other:?}: expected f32, bf16 or f16").into()),
    };
    let args: Vec<usize> = raw
        .iter()
        .take(6)
        .map(|a| a.parse::<usize>())
        .collect::<Result<_, _>>()?;
    let arg = |i: usize, d: usize| args.get(i).copied().unwrap_or(d);
    let (b, plen, new, repeats) = (arg(0, 16), arg(1, 64), arg(2, 32), arg(3, 5).max(1));
    let (min_len, alone) = (arg(4, plen).clamp(1, plen), arg(5, 0) == 1);
    let model = OptModel::random(&Config::preset(Preset::Opt125m), 0, dtype, &Device::Cpu)?;
    let mut state = 11u32;
    let mut next = || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        state >> 8
    };
    let prompts: Vec<Vec<u32>> = (0..b)
        .map(|_| {
            // (No draw for equal lengths: the prompts of the runs before `min_len` existed.)
            let len = match plen - min_len {
                0 => plen,
                spread => min_len + next() as usize % (spread + 1),
            };
            (0..len).map(|_| 3 + next() % 50_000).collect()
        })
        .collect();
    let real: usize = prompts.iter().map(Vec::len).sum();
    let opts = |n| GenerateOptions {
        max_new_tokens: n,
        stop_ids: Vec::new(),
    };
    // All prompts together, or one call per prompt.
    let run = |n: usize| -> Result<Vec<Vec<u32>>, zo_models::Error> {
        if alone {
            let mut out = Vec::new();
            for p in &prompts {
                out.extend(greedy_generate_batch(
                    &model,
                    std::slice::from_ref(p),
                    &opts(n),
                )?);
            }
            Ok(out)
        } else {
            greedy_generate_batch(&model, &prompts, &opts(n))
        }
    };

    let (mut whole, mut prompt_only) = (Vec::new(), Vec::new());
    let mut tokens = 0;
    for r in 0..=repeats {
        let t0 = Instant::now();
        let out = run(new)?;
        let t1 = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        run(1)?;
        let t2 = t0.elapsed().as_secs_f64();
        if r > 0 {
            whole.push(t1);
            prompt_only.push(t2);
            tokens = out.iter().map(Vec::len).sum::<usize>();
        }
    }
    let (w, p) = (median(&mut whole), median(&mut prompt_only));
    // The decoding steps' time is the difference of two medians: where the prompt pass
    // dominates and the machine is noisy it can come out at or below zero, and is then not
    // reported (null) rather than as a meaningless rate.
    let decode = w - p;
    let (per_step, rate) = if decode > 0.0 && new > 1 {
        (
            format!("{:.2}", 1e3 * decode / (new - 1) as f64),
            format!("{:.1}", tokens.saturating_sub(b) as f64 / decode),
        )
    } else {
        ("null".to_string(), "null".to_string())
    };
    println!(
        "{{\"bench\":\"generate\",\"batch\":{b},\"prompt_len\":{plen},\"min_len\":{min_len},\
         \"real_prompt_tokens\":{real},\"alone\":{alone},\"new_tokens\":{new},\
         \"dtype\":\"{dtype:?}\",\"threads\":{},\"median_s\":{w:.4},\"per_prompt_s\":{:.4},\"prompt_pass_s\":{p:.4},\"decode_s\":{decode:.4},\
         \"decode_ms_per_step\":{per_step},\"new_tokens_per_s\":{rate}}}",
        rayon::current_num_threads(),
        w / b as f64,
    );
    Ok(())
}
