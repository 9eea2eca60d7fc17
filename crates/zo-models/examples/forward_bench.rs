//! Forward + loss latency of zo's OPT on opt-125m shapes (random weights, f32, CPU), to set
//! beside the peer (`docs/peer/mezo_torch_bench.py --mode forward`) run right after:
//!
//!     cargo run --release -p zo-models --example forward_bench -- --preset 125m -B 16 -T 64 --warmup 2 --repeats 10
//!     $VENV/bin/python docs/peer/mezo_torch_bench.py --preset 125m -B 16 -T 64 --mode forward --warmup 2 --repeats 10
//!
//! Prints one JSON line per figure:
//! - `forward_full_lm`: the peer's definition, the mean causal-LM cross-entropy over all
//!   `B·(T−1)` next-token targets of unpadded random sequences (logits at those rows only);
//! - `forward_task_1pos`: the SST-2-style task loss, one option token per sequence (logits at
//!   `B` rows);
//! - `build`: wall and CPU seconds of building the random model.
//!
//! `--only <figure>` runs one figure (`build` alone skips both forwards), for interleaved A/B
//! runs of two builds.
//!
//! `--min-len M` draws each sequence's length uniformly from `M ..= T` (the same stream) and
//! pads the batch to `T` (left, pad id 1), as MeZO's collator pads a batch of real sentences;
//! the computed-FLOP figures then count the real tokens' work (what a forward without the
//! padding's rows must do; the peer-equivalent one every padded position, as the peer computes
//! them), and `real_tokens` says how many there are.
//!
//! Each timed call is a complete forward + loss returning an f64 on the host, so the CPU work
//! is finished inside the timed region. Token ids come from a fixed-seed SplitMix64 stream.

use std::time::Instant;

use candle_core::{DType, Device};
use zo_models::opt::{Config, Preset};
use zo_models::scoring::lm_loss;
use zo_models::{Batch, OptModel};

struct Args {
    preset: Preset,
    b: usize,
    t: usize,
    warmup: usize,
    repeats: usize,
    seed: u64,
    breakdown: bool,
    only: Option<String>,
    min_len: Option<usize>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        preset: Preset::Opt125m,
        b: 16,
        t: 64,
        warmup: 2,
        repeats: 10,
        seed: 0,
        breakdown: false,
        only: None,
        min_len: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        if argv[i] == "--breakdown" {
            a.breakdown = true;
            i += 1;
            continue;
        }
        let v = argv
            .get(i + 1)
            .ok_or(format!("{} needs a value", argv[i]))?;
        let num = || v.parse::<usize>().map_err(|e| format!("{}: {e}", argv[i]));
        match argv[i].as_str() {
            "--preset" => {
                a.preset = match v.as_str() {
                    "tiny" => Preset::Tiny,
                    "125m" => Preset::Opt125m,
                    "350m" => Preset::Opt350m,
                    o => return Err(format!("unknown preset {o}")),
                }
            }
            "-B" => a.b = num()?,
            "-T" => a.t = num()?,
            "--warmup" => a.warmup = num()?,
            "--repeats" => a.repeats = num()?,
            "--seed" => a.seed = num()? as u64,
            "--min-len" => a.min_len = Some(num()?),
            "--only" => match v.as_str() {
                "forward_full_lm" | "forward_task_1pos" | "build" => a.only = Some(v.clone()),
                o => return Err(format!("--only: unknown figure {o}")),
            },
            o => return Err(format!("unknown argument {o}")),
        }
        i += 2;
    }
    if a.min_len.is_some_and(|m| m < 2 || m > a.t) {
        return Err(format!("--min-len must lie in 2..={}", a.t));
    }
    Ok(a)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|x, y| x.total_cmp(y));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = parse()?;
    let cfg = Config::preset(a.preset);
    let t0 = Instant::now();
    let cpu0 = process_cpu_s();
    let model = OptModel::random(&cfg, a.seed, DType::F32, &Device::Cpu)?;
    let build_s = t0.elapsed().as_secs_f64();
    let build_cpu_s = process_cpu_s().zip(cpu0).map(|(b, a)| b - a);
    println!(
        "{}",
        serde_json::json!({
            "bench": "zo_forward_bench", "figure": "build",
            "preset": format!("{:?}", a.preset),
            "build_s": build_s, "build_cpu_s": build_cpu_s,
        })
    );

    // Random ids in [3, vocab), fixed seed.
    let mut state: u64 = 1234;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let seqs: Vec<Vec<u32>> = (0..a.b)
        .map(|_| {
            let len = match a.min_len {
                Some(m) => m + (next() % (a.t - m + 1) as u64) as usize,
                None => a.t,
            };
            (0..len)
                .map(|_| 3 + (next() % (cfg.vocab_size as u64 - 3)) as u32)
                .collect()
        })
        .collect();
    // Padded to T (the longest drawn length may be shorter), as every figure's shape says.
    let full = Batch::left_padded_to(
        &seqs,
        &seqs.iter().map(|s| s.len() - 1).collect::<Vec<_>>(),
        cfg.pad_token_id,
        a.t,
    )?;
    let task = Batch::left_padded_to(&seqs, &vec![1; a.b], cfg.pad_token_id, a.t)?;
    let real: usize = seqs.iter().map(Vec::len).sum();
    let attn_sq: f64 = seqs.iter().map(|s| (s.len() * s.len()) as f64).sum();

    let (d, l, f, v) = (
        cfg.hidden_size as f64,
        cfg.num_hidden_layers as f64,
        cfg.ffn_dim as f64,
        cfg.vocab_size as f64,
    );
    let dp = cfg.embed_dim() as f64;
    let proj = if cfg.has_projections() {
        2.0 * d * dp
    } else {
        0.0
    };
    let n_tok = real as f64;
    // The decoder's FLOPs over `n` tokens whose attention blocks hold `sq` scores.
    let body_of =
        |n: f64, sq: f64| 2.0 * n * (l * (4.0 * d * d + 2.0 * d * f) + proj) + l * 4.0 * sq * d;
    let body = body_of(n_tok, attn_sq);
    // lm_head FLOPs actually computed: a row per next-token target for the full loss
    // (`B·(T−1)` unpadded), B rows for the task loss.
    let full_flops = body + 2.0 * (real - a.b) as f64 * v * dp;
    let task_flops = body + 2.0 * a.b as f64 * v * dp;
    // The peer's count (all B·T positions, padding and lm_head included), for a like-for-like
    // GFLOP/s.
    let padded = (a.b * a.t) as f64;
    let peer_flops = body_of(padded, padded * a.t as f64) + 2.0 * padded * v * dp;

    for (name, batch, flops) in [
        ("forward_full_lm", &full, full_flops),
        ("forward_task_1pos", &task, task_flops),
    ] {
        if a.only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let mut loss = 0.0;
        for _ in 0..a.warmup {
            loss = lm_loss(&model, batch)?;
        }
        let mut samples = Vec::with_capacity(a.repeats);
        let mut cpu = Vec::with_capacity(a.repeats);
        for _ in 0..a.repeats {
            let c = process_cpu_s();
            let t = Instant::now();
            loss = lm_loss(&model, batch)?;
            samples.push(t.elapsed().as_secs_f64());
            if let (Some(a), Some(b)) = (c, process_cpu_s()) {
                cpu.push(b - a);
            }
        }
        // CPU seconds per call: the work done, less sensitive than wall time to other
        // processes sharing the cores (but it counts rayon's idle spinning).
        let cpu_med = (!cpu.is_empty()).then(|| median(&mut cpu));
        let raw = samples.clone();
        let med = median(&mut samples);
        println!(
            "{}",
            serde_json::json!({
                "bench": "zo_forward_bench",
                "figure": name,
                "preset": format!("{:?}", a.preset),
                "B": a.b, "T": a.t, "real_tokens": real,
                "device": "cpu", "dtype": "f32",
                "threads": rayon::current_num_threads(),
                "median_s": med,
                "cpu_median_s": cpu_med,
                "min_s": samples[0],
                "max_s": samples[samples.len() - 1],
                "n": samples.len(),
                "samples_s": raw,
                "tokens_per_s": n_tok / med,
                "gflops_computed": flops / 1e9,
                "gflops_per_s": flops / med / 1e9,
                "peer_equivalent_gflops_per_s": peer_flops / med / 1e9,
                "loss": loss,
                "build_s": build_s,
            })
        );
    }
    if a.breakdown {
        breakdown(&model, &full, a.repeats)?;
    }
    Ok(())
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, clock ticks of
/// 1/100 s), to show the CPU cost of building the random model apart from its wall time.
fn process_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Median seconds of the phases of the full-LM forward: decoder body, lm_head matmul, NLL.
fn breakdown(
    model: &OptModel,
    batch: &Batch,
    repeats: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let labels = batch.label_positions()?;
    let rows: Vec<u32> = labels.iter().map(|l| l.1).collect();
    let mut body = Vec::new();
    let mut head = Vec::new();
    let mut nll = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        let h = model.forward_hidden(&batch.ids, &batch.mask, batch.batch, batch.seq_len)?;
        let _ = h.sum_all()?.to_scalar::<f32>()?;
        body.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let logits = model.logits_for_rows(&h, &rows)?;
        let _ = logits.get(0)?.get(0)?.to_scalar::<f32>()?;
        head.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let m = logits.max_keepdim(1)?;
        let _ = m.sum_all()?.to_scalar::<f32>()?;
        nll.push(t.elapsed().as_secs_f64());
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "zo_forward_bench", "figure": "breakdown_full_lm",
            "body_median_s": median(&mut body), "lm_head_median_s": median(&mut head),
            "one_pass_over_logits_median_s": median(&mut nll),
        })
    );
    Ok(())
}
