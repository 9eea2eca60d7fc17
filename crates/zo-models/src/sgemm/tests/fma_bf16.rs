//! The bf16-input kernel on f32 FMAs ([`Isa::Avx512FmaBf16`]).

use super::*;
use kernel_fma_bf16::Avx512FmaBf16;

/// Rows of `k` values with columns `2q` and `2q + 1` swapped (an odd last one stays).
fn swap_pairs(x: &[f32], k: usize) -> Vec<f32> {
    let mut y = x.to_vec();
    for row in y.chunks_exact_mut(k) {
        for pair in row.chunks_exact_mut(2) {
            pair.swap(0, 1);
        }
    }
    y
}

/// The kernel gives exactly the f32 kernels' bits on the bf16-rounded inputs with the two `k`
/// of each pair swapped (its packing rounds as the other bf16 kernels, nearest even, and
/// swaps; the f32 kernel multiplies), under both
/// blockings, dense and through row pointers (runs that keep the pairs whole) or a gathered
/// copy (runs that do not, or no runs), with every epilogue, edge
/// tiles, several `k` and row blocks, on 1–3 threads; and not the f32 bits of the unrounded
/// inputs.
#[test]
fn fma_bf16_kernel_is_the_f32_kernel_on_rounded_inputs() {
    if !Isa::Avx512FmaBf16.supported() {
        println!("fma_bf16 kernel: skipped (no AVX512-BF16 on this CPU)");
        return;
    }
    for (si, &(n, o, k)) in [
        (1, 1, 1),
        (5, 33, 7),
        (37, 45, 77),
        (130, 70, 1601),
        (401, 96, 800),
    ]
    .iter()
    .enumerate()
    {
        let (a, w) = (data(n * k, 2 * si + 1), data(o * k, 2 * si + 2));
        let (bias, res) = (data(o, 3), data(n * o, 4));
        let (ar, wr) = (swap_pairs(&to_bf16(&a), k), swap_pairs(&to_bf16(&w), k));
        for epi in epilogues(&bias, &res) {
            let want = ours(Isa::Avx512, n, o, k, &ar, &wr, &epi);
            for t in [1, 2, 3] {
                let dense = driver::Dense { a: &a, k };
                // Runs of 50 columns keep the pairs whole (packed from the row pointers), runs
                // of 7 do not (gathered).
                let runs = |len, gather_only| Cut {
                    a: &a,
                    k,
                    len,
                    gather_only,
                    zeros: false,
                };
                let shape = (n, o, k);
                for (what, got) in [
                    (
                        "dispatched",
                        in_pool(t, || ours(Isa::Avx512FmaBf16, n, o, k, &a, &w, &epi)),
                    ),
                    (
                        "larger blocking",
                        in_pool(t, || {
                            run_kernel::<Avx512FmaBf16<12, true>, _>(shape, &dense, &w, &epi)
                        }),
                    ),
                    (
                        "smaller blocking",
                        in_pool(t, || {
                            run_kernel::<Avx512FmaBf16<12, false>, _>(shape, &dense, &w, &epi)
                        }),
                    ),
                    (
                        "row pointers",
                        in_pool(t, || {
                            let src = driver::Gathered(&runs(50, false));
                            run_kernel::<Avx512FmaBf16<12, true>, _>(shape, &src, &w, &epi)
                        }),
                    ),
                    (
                        "odd runs",
                        in_pool(t, || {
                            let src = driver::Gathered(&runs(7, false));
                            run_kernel::<Avx512FmaBf16<12, true>, _>(shape, &src, &w, &epi)
                        }),
                    ),
                    (
                        "gathered",
                        in_pool(t, || {
                            let src = driver::Gathered(&runs(50, true));
                            run_kernel::<Avx512FmaBf16<12, false>, _>(shape, &src, &w, &epi)
                        }),
                    ),
                ] {
                    assert!(
                        same(&want, &got),
                        "{what}: {n}×{o}×{k}, {t} threads, {epi:?}"
                    );
                }
            }
        }
        if k >= 7 {
            let f32 = ours(Isa::Avx512, n, o, k, &a, &w, &Epilogue::PLAIN);
            let got = ours(Isa::Avx512FmaBf16, n, o, k, &a, &w, &Epilogue::PLAIN);
            assert!(!same(&f32, &got), "{n}×{o}×{k}: the f32 bits");
        }
    }
}

/// bf16 compute takes this kernel exactly where `vdpbf16ps` is the slow way (Intel) and there
/// is no AMX; on Intel its bits are `vdpbf16ps`'s (each of its two products per lane added in
/// turn, rounded to nearest even: the f32 FMA chain), the inputs here having no subnormals.
#[test]
fn fma_bf16_kernel_is_picked_on_intel_without_amx_and_matches_vdpbf16ps_there() {
    let intel = dpbf16_is_slow();
    let want = Isa::Avx512Bf16.supported() && intel && !Isa::AmxBf16.supported();
    assert_eq!(Compute::Bf16.isa() == Some(Isa::Avx512FmaBf16), want);
    if !(Isa::Avx512Bf16.supported() && intel) {
        println!("vdpbf16ps bits: skipped (not an Intel CPU with AVX512-BF16)");
        return;
    }
    for &(n, o, k) in &[(5, 33, 8), (37, 45, 77), (130, 70, 1601), (300, 40, 800)] {
        let (a, w) = (data(n * k, 11), data(o * k, 12));
        let fma = ours(Isa::Avx512FmaBf16, n, o, k, &a, &w, &Epilogue::PLAIN);
        let dp = ours(Isa::Avx512Bf16, n, o, k, &a, &w, &Epilogue::PLAIN);
        assert!(same(&fma, &dp), "{n}×{o}×{k}: not vdpbf16ps's bits");
    }
}
