//! The driver's shared-A order ([`driver::shared_a`]) against the default order.

use super::*;

/// `K` with [`driver::Kernel::SHARED_A_ROWS`] set to `R` (0: the default order).
struct SharedA<K, const R: usize>(std::marker::PhantomData<K>);

impl<K: driver::Kernel, const R: usize> driver::Kernel for SharedA<K, R> {
    const MR: usize = K::MR;
    const NR: usize = K::NR;
    const KC: usize = K::KC;
    const MC_MAX: usize = K::MC_MAX;
    const NC: usize = K::NC;
    const A_SPILL: usize = K::A_SPILL;
    const PREFETCH_C: bool = K::PREFETCH_C;
    const B_GROUP: usize = K::B_GROUP;
    const SHARED_A_ROWS: usize = R;
    const PACK_A_PTRS: Option<unsafe fn(&[*const f32], usize, *mut f32)> = K::PACK_A_PTRS;
    const PACK_A_PTRS_PAIRS: bool = K::PACK_A_PTRS_PAIRS;
    const KERNEL_RUNS: Option<driver::KernelRuns> = K::KERNEL_RUNS;

    unsafe fn pack_a(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut f32) {
        // SAFETY: the same contract.
        unsafe { K::pack_a(src, ld, rows, kc, dst) }
    }

    unsafe fn pack_b(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut f32) {
        // SAFETY: the same contract.
        unsafe { K::pack_b(src, ld, rows, kc, dst) }
    }

    unsafe fn kernel(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        epi: Option<&driver::TileEpi>,
    ) {
        // SAFETY: the same contract.
        unsafe { K::kernel(kc, a, b, c, ldc, accumulate, epi) }
    }
}

/// [`driver::shared_a::run`] on `K`, whatever `suits` would say.
fn run_shared<K: driver::Kernel>(
    shape: (usize, usize, usize),
    a: &[f32],
    w: &[f32],
    epi: &Epilogue<'_>,
) -> Vec<f32> {
    let k = shape.2;
    run_driver(
        driver::shared_a::run::<K, _, [f32]>,
        shape,
        &driver::Dense { a, k },
        w,
        epi,
    )
}

/// The shared-A order (A packed once per `k` block and row chunk, column tasks packing their
/// own B panels; the AMX kernel's) gives the bits of the default order: row chunks of 64
/// (the last one partial) and of 1024 rows, several `k` blocks, edge tiles, fewer panels
/// than threads, every epilogue, 1–3 threads, on the AMX kernel, the AVX-512 one and the
/// AVX512-BF16 one (the order is generic).
#[test]
fn shared_a_order_gives_the_bits_of_the_default_order() {
    use kernel_avx512::Avx512;
    fn check<K: driver::Kernel>(name: &str) {
        for (si, &(n, o, k)) in [(300, 290, 800), (401, 203, 1700), (1100, 70, 100)]
            .iter()
            .enumerate()
        {
            let a = data(n * k, 7 * si + 1);
            let w = data(o * k, 7 * si + 2);
            let bias = data(o, 7 * si + 3);
            let res = data(n * o, 7 * si + 4);
            let dense = driver::Dense { a: &a, k };
            for epi in epilogues(&bias, &res) {
                let want = run_kernel::<SharedA<K, 0>, _>((n, o, k), &dense, &w, &epi);
                for t in [1, 2, 3] {
                    for (rows, got) in [
                        (
                            64,
                            in_pool(t, || run_shared::<SharedA<K, 64>>((n, o, k), &a, &w, &epi)),
                        ),
                        (
                            1024,
                            in_pool(t, || {
                                run_shared::<SharedA<K, 1024>>((n, o, k), &a, &w, &epi)
                            }),
                        ),
                    ] {
                        assert!(
                            same(&want, &got),
                            "{name}: chunks of {rows} rows differ at {n}x{o}x{k}, {t} threads, {epi:?}"
                        );
                    }
                }
            }
        }
    }
    if Isa::Avx512.supported() {
        check::<Avx512<12, true>>("avx512");
    } else {
        println!("shared_a_order: skipping the AVX-512 kernel (no AVX-512F)");
    }
    if Isa::Avx512Bf16.supported() {
        check::<kernel_bf16::Avx512Bf16<12, false>>("avx512bf16");
    } else {
        println!("shared_a_order: skipping the AVX512-BF16 kernel (not on this CPU)");
    }
    if Isa::AmxBf16.supported() {
        check::<kernel_amx::Amx>("amx");
    } else {
        println!("shared_a_order: skipping the AMX kernel (not on this CPU)");
    }
}

/// The column tasks deal every panel out once, in order, evenly, in a multiple of the thread
/// count where there are enough panels.
#[test]
fn column_tasks_cover_the_panels_evenly() {
    use driver::shared_a::{column_tasks, task_panels};
    for panels in [1usize, 2, 3, 7, 24, 72, 97, 1571] {
        for group in [1, 4, 8] {
            for threads in [1, 2, 3, 8] {
                let tasks = column_tasks(panels, group, threads);
                assert!(tasks >= 1 && tasks <= panels);
                if panels >= threads * panels.div_ceil(group).div_ceil(threads) {
                    assert_eq!(tasks % threads, 0, "{panels} panels, {threads} threads");
                }
                let mut next = 0;
                let mut sizes = vec![];
                for t in 0..tasks {
                    let (p0, p1) = task_panels(t, tasks, panels);
                    assert_eq!(p0, next);
                    sizes.push(p1 - p0);
                    next = p1;
                }
                assert_eq!(next, panels);
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1 && *lo >= 1, "{sizes:?}");
                assert!(
                    *hi <= group,
                    "{panels} panels in groups of {group}: {sizes:?}"
                );
            }
        }
    }
}

/// Which products take the shared-A order: one row chunk at most, two panels per thread at
/// least.
#[test]
fn shared_a_order_suits_one_chunk_and_enough_panels() {
    use driver::shared_a::suits;
    use kernel_amx::Amx;
    type D<'a> = driver::Dense<'a>;
    assert!(suits::<Amx, D>(1024, 768, 4, 2));
    assert!(suits::<Amx, D>(300, 128, 2, 2));
    assert!(!suits::<Amx, D>(1025, 768, 4, 2), "two row chunks");
    assert!(!suits::<Amx, D>(1024, 96, 4, 2), "3 panels for 2 threads");
    assert!(
        !suits::<Amx, D>(1024, 768, 16, 16),
        "24 panels for 16 threads"
    );
    assert!(!suits::<Amx, D>(1024, 768, 1, 2), "one row block");
}
