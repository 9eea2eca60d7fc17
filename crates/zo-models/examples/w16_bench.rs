//! Products over bf16 weights read in place (`sgemm::sgemm_nt_uninit_w16`) against widening
//! the whole matrix into a fresh f32 buffer first and running the f32 product (what a 16-bit
//! linear layer did before), on opt-125m's shapes, for row counts from a decoding step's to a
//! training batch's. 24 weight matrices per shape are used in turn, so W comes from memory as
//! in a forward; medians of 5 rounds, milliseconds per product:
//!
//!     cargo run --release -p zo-models --example w16_bench

use std::time::Instant;

use zo_models::sgemm::{sgemm_nt_uninit_compute, sgemm_nt_uninit_w16, Compute, Epilogue, W16};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    const MATS: usize = 24;
    let shapes = [(768usize, 3072usize), (3072, 768), (768, 768)];
    let epi = Epilogue::PLAIN;
    for n in [1usize, 4, 8, 9, 16, 32, 64, 128, 256, 640] {
        for &(k, o) in &shapes {
            let ws: Vec<Vec<half::bf16>> = (0..MATS)
                .map(|m| {
                    (0..o * k)
                        .map(|i| half::bf16::from_f32(((i * 7 + m) % 13) as f32 * 0.01))
                        .collect()
                })
                .collect();
            let a: Vec<f32> = (0..n * k).map(|i| (i % 17) as f32 * 0.1).collect();
            let mut c: Vec<f32> = Vec::with_capacity(n * o);
            let (mut in_place, mut widened) = (Vec::new(), Vec::new());
            for _ in 0..5 {
                let t0 = Instant::now();
                for w in &ws {
                    let dst = &mut c.spare_capacity_mut()[..n * o];
                    assert!(sgemm_nt_uninit_w16(
                        Compute::F32,
                        n,
                        o,
                        k,
                        &a,
                        W16::Bf16(w),
                        dst,
                        &epi
                    ));
                }
                in_place.push(t0.elapsed().as_secs_f64() / MATS as f64);
                let t0 = Instant::now();
                for w in &ws {
                    let mut wide = vec![0f32; o * k];
                    zo_core::convert::bf16_to_f32(w, &mut wide);
                    let dst = &mut c.spare_capacity_mut()[..n * o];
                    assert!(sgemm_nt_uninit_compute(
                        Compute::F32,
                        n,
                        o,
                        k,
                        &a,
                        &wide,
                        dst,
                        &epi
                    ));
                }
                widened.push(t0.elapsed().as_secs_f64() / MATS as f64);
            }
            let (p, q) = (median(&mut in_place), median(&mut widened));
            println!(
                "n {n:4} k {k:4} o {o:4}: in place {:.3} ms, widened whole {:.3} ms, ratio {:.2}",
                p * 1e3,
                q * 1e3,
                p / q
            );
        }
    }
}
