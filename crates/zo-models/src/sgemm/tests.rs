use super::*;

fn data(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.0 - 1.0) * 0.7)
        .collect()
}

/// Every kernel; the tests run on each one this CPU supports.
const KERNELS: [Isa; 2] = [Isa::Avx2, Isa::Avx512];

/// The kernels this CPU supports, printing a line for each one it skips.
fn kernels(test: &str) -> Vec<Isa> {
    KERNELS
        .into_iter()
        .filter(|&isa| {
            let ok = isa.supported();
            if !ok {
                println!("{test}: skipping {isa:?} (not supported by this CPU)");
            }
            ok
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn ours(
    isa: Isa,
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    w: &[f32],
    epi: &Epilogue<'_>,
) -> Vec<f32> {
    let mut c = vec![f32::NAN; n * o];
    assert!(
        sgemm_nt_with(isa, n, o, k, a, w, &mut c, epi),
        "{isa:?} refused a supported call"
    );
    c
}

fn same(x: &[f32], y: &[f32]) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
}

/// Checks `got` against the f64 product with the f32 epilogue operands. Bound per element:
/// a sum of `k` products accumulated in f32 with FMA has error ≤ γ_k·Σ|a_p w_p|
/// (γ_k = k·u/(1 − k·u), u = 2⁻²⁴; Higham, "Accuracy and Stability of Numerical Algorithms",
/// §3.1), scaled by |scale|; the epilogue adds at most 3 roundings of the result (FMA with the
/// bias, residual add; ReLU is exact) and the pre-scaled bias one more of |scale·b|.
#[allow(clippy::too_many_arguments)]
fn check(n: usize, o: usize, k: usize, a: &[f32], w: &[f32], epi: &Epilogue<'_>, got: &[f32]) {
    let u = f64::from(f32::EPSILON) / 2.0;
    let gamma = (k as f64 * u) / (1.0 - k as f64 * u);
    let s = f64::from(epi.scale);
    for i in 0..n {
        for j in 0..o {
            let (mut dot, mut mag) = (0f64, 0f64);
            for p in 0..k {
                let t = f64::from(a[i * k + p]) * f64::from(w[j * k + p]);
                dot += t;
                mag += t.abs();
            }
            let b = epi.bias.map_or(0.0, |b| f64::from(b[j]) * s);
            let r = epi.residual.map_or(0.0, |r| f64::from(r[i * o + j]));
            let mut want = s * dot + b + r;
            if epi.relu {
                want = want.max(0.0);
            }
            let bound = gamma * s.abs() * mag
                + 4.0 * u * (s.abs() * dot.abs() + b.abs() + r.abs())
                + f64::from(f32::MIN_POSITIVE);
            let g = f64::from(got[i * o + j]);
            assert!(
                (g - want).abs() <= bound,
                "n={n} o={o} k={k} at ({i}, {j}): got {g}, want {want}, bound {bound}"
            );
        }
    }
}

/// Edges in every direction for every kernel: rows not a multiple of MR (6, 12) and
/// a single row, columns not a multiple of NR (16, 32) and one column, k = 1, k not a multiple
/// of 8 or of KC, k spanning several KC blocks, a column count spanning two NC (4096) blocks.
const ODD_SHAPES: [(usize, usize, usize); 11] = [
    (1, 1, 1),
    (1, 17, 5),
    (7, 1, 300),
    (5, 33, 1),
    (13, 31, 7),
    (6, 16, 8),
    (12, 32, 16),
    (37, 45, 257),
    (29, 70, 19),
    (200, 50, 530),
    (2, 4096 + 21, 9),
];

#[test]
fn matches_f64_reference_on_odd_shapes() {
    for isa in kernels("matches_f64_reference_on_odd_shapes") {
        for (si, &(n, o, k)) in ODD_SHAPES.iter().enumerate() {
            let a = data(n * k, 2 * si);
            let w = data(o * k, 2 * si + 1);
            let got = ours(isa, n, o, k, &a, &w, &Epilogue::PLAIN);
            check(n, o, k, &a, &w, &Epilogue::PLAIN, &got);
        }
    }
}

/// The epilogue combinations worth testing, over `bias: [o]` and `res: [n, o]`.
fn epilogues<'a>(bias: &'a [f32], res: &'a [f32]) -> Vec<Epilogue<'a>> {
    [
        (1.0, None, None, false),
        (0.125, Some(bias), None, false),
        (1.0, Some(bias), None, true),
        (1.0, Some(bias), Some(res), false),
        (1.0, None, Some(res), false),
        (-2.0, None, None, true),
        (0.5, Some(bias), Some(res), true),
    ]
    .into_iter()
    .map(|(scale, bias, residual, relu)| Epilogue {
        scale,
        bias,
        residual,
        relu,
    })
    .collect()
}

#[test]
fn epilogues_match_f64_reference() {
    // Full tiles of every kernel and edges in both directions, several KC blocks.
    let (n, o, k) = (29, 70, 263);
    let a = data(n * k, 11);
    let w = data(o * k, 12);
    let bias = data(o, 13);
    let res = data(n * o, 14);
    for isa in kernels("epilogues_match_f64_reference") {
        for epi in epilogues(&bias, &res) {
            let got = ours(isa, n, o, k, &a, &w, &epi);
            check(n, o, k, &a, &w, &epi, &got);
            if epi.relu {
                assert!(got.iter().all(|&v| v >= 0.0));
            }
        }
        // k = 0: the epilogue of an empty sum.
        let epi = Epilogue {
            scale: 0.5,
            bias: Some(&bias),
            residual: Some(&res),
            relu: true,
        };
        let got = ours(isa, n, o, 0, &[], &[], &epi);
        check(n, o, 0, &[], &[], &epi, &got);
    }
}

#[test]
fn kernels_bit_identical() {
    let isas = kernels("kernels_bit_identical");
    if isas.len() < 2 {
        println!("kernels_bit_identical: fewer than 2 kernels on this CPU, nothing to compare");
        return;
    }
    let shapes = ODD_SHAPES.iter().chain(&[(50, 77, 600), (16, 100, 768)]);
    for (si, &(n, o, k)) in shapes.enumerate() {
        let a = data(n * k, 3 * si + 31);
        let w = data(o * k, 3 * si + 32);
        let bias = data(o, 3 * si + 33);
        let res = data(n * o, 3 * si + 34);
        for epi in epilogues(&bias, &res) {
            let want = ours(isas[0], n, o, k, &a, &w, &epi);
            for &isa in &isas[1..] {
                let got = ours(isa, n, o, k, &a, &w, &epi);
                assert!(
                    same(&want, &got),
                    "{:?} vs {isa:?} differ at {n}x{o}x{k}, {epi:?}",
                    isas[0]
                );
            }
        }
    }
}

#[test]
fn uninit_output_matches() {
    if !available() {
        return;
    }
    let (n, o, k) = (37, 45, 300);
    let a = data(n * k, 41);
    let w = data(o * k, 42);
    let bias = data(o, 43);
    let res = data(n * o, 44);
    let isa = Isa::best().unwrap();
    for epi in epilogues(&bias, &res) {
        let mut v: Vec<f32> = Vec::with_capacity(n * o);
        assert!(sgemm_nt_uninit(
            n,
            o,
            k,
            &a,
            &w,
            &mut v.spare_capacity_mut()[..n * o],
            &epi
        ));
        // SAFETY: `sgemm_nt_uninit` returned true, so the first `n·o` elements are written.
        unsafe { v.set_len(n * o) };
        assert!(same(&v, &ours(isa, n, o, k, &a, &w, &epi)));
    }
}

#[test]
fn bit_identical_across_thread_counts() {
    // Several row blocks and KC blocks, an edge in both directions, and a short-and-wide
    // product (few rows: the split goes over panel groups instead).
    for isa in kernels("bit_identical_across_thread_counts") {
        for (n, o, k) in [(401, 203, 700), (5, 700, 300)] {
            let a = data(n * k, 21);
            let w = data(o * k, 22);
            let bias = data(o, 23);
            let epi = Epilogue {
                scale: 1.0,
                bias: Some(&bias),
                residual: None,
                relu: false,
            };
            let runs: Vec<Vec<f32>> = [1, 2, 3]
                .into_iter()
                .map(|t| in_pool(t, || ours(isa, n, o, k, &a, &w, &epi)))
                .collect();
            assert!(
                same(&runs[0], &runs[1]),
                "{isa:?}: 1 vs 2 threads differ at {n}x{o}x{k}"
            );
            assert!(
                same(&runs[0], &runs[2]),
                "{isa:?}: 1 vs 3 threads differ at {n}x{o}x{k}"
            );
        }
    }
}

#[test]
fn rejects_mismatched_lengths() {
    let a = data(6, 1);
    let w = data(8, 2);
    let bias = [0f32; 3];
    let epi = Epilogue {
        bias: Some(&bias),
        ..Epilogue::PLAIN
    };
    for isa in KERNELS {
        let mut c = vec![7f32; 4];
        // a is 3×2, w is 4×2: fine as (3, 4, 2) but not as (2, 4, 3).
        assert!(!sgemm_nt_with(
            isa,
            2,
            4,
            3,
            &a,
            &w,
            &mut c,
            &Epilogue::PLAIN
        ));
        assert!(c.iter().all(|&v| v == 7.0), "c written on a rejected call");
        let mut c = vec![0f32; 12];
        assert!(!sgemm_nt_with(isa, 3, 4, 2, &a, &w, &mut c, &epi));
    }
    let mut c = vec![7f32; 4];
    assert!(!sgemm_nt(2, 4, 3, &a, &w, &mut c, &Epilogue::PLAIN));
    assert!(c.iter().all(|&v| v == 7.0), "c written on a rejected call");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn row_blocks_cover_rows_evenly() {
    use super::driver::{block_rows, row_blocks};
    for (n, threads, mr, mc_max) in [
        (1024, 2, 12, 96),
        (1024, 2, 6, 192),
        (16, 2, 12, 96),
        (1, 3, 6, 192),
        (401, 3, 12, 96),
    ] {
        let (rb, micro) = row_blocks(n, threads, mr, mc_max);
        let mut next = 0;
        let mut sizes = vec![];
        for b in 0..rb {
            let (i0, m) = block_rows(b, rb, micro, mr, n);
            assert_eq!(i0, next, "blocks of {n} rows are not contiguous");
            assert!(m > 0 && i0 % mr == 0);
            sizes.push(m.div_ceil(mr));
            next = i0 + m;
        }
        assert_eq!(next, n);
        let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(hi - lo <= 1, "uneven blocks {sizes:?}");
        if n >= threads * 4 * mr {
            assert_eq!(rb % threads, 0, "{rb} blocks for {threads} threads");
        }
    }
}

/// Runs `f` in a fresh rayon pool of `threads` threads (the thread-count determinism tests).
pub(crate) fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// The values the bf16 kernel multiplies: each input rounded to bfloat16 (nearest even).
fn to_bf16(x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| half::bf16::from_f32(v).to_f32())
        .collect()
}

/// The bf16 kernel computes the f32-accumulated product of the bf16-rounded inputs: products
/// of two bf16 are exact in f32, so the f32 error bound of `check` over `k` terms holds
/// against the f64 product of the rounded inputs, epilogues, odd `k` and edge tiles included.
/// Its results are not the f32 kernels' (the rounding is real), and do not depend on the
/// thread count.
#[test]
fn bf16_kernel_is_the_f32_product_of_bf16_inputs() {
    if !Isa::Avx512Bf16.supported() {
        println!("bf16 kernel: skipped (no AVX512-BF16 on this CPU)");
        assert_eq!(Compute::Bf16.isa(), Isa::best());
        return;
    }
    assert!(Compute::Bf16.isa().is_some_and(Isa::is_bf16));
    let shapes = [
        (1, 1, 1),
        (5, 33, 7),
        (37, 45, 77),
        (13, 64, 768),
        (130, 70, 1601),
        (200, 96, 2048),
        (150, 2100, 70),
    ];
    check_rounded_kernel(Isa::Avx512Bf16, &shapes, 7);
    // Products wider than one `NC` block take the shared-A order: the default order's bits.
    let (n, o, k) = (150, 2100, 70);
    assert!(kernel_bf16::wide(o) && !kernel_bf16::wide(2048));
    let (a, w) = (data(n * k, 5), data(o * k, 6));
    let (bias, res) = (data(o, 7), data(n * o, 8));
    for epi in epilogues(&bias, &res) {
        let default_order = run_kernel::<kernel_bf16::Avx512Bf16<12, false>, _>(
            (n, o, k),
            &driver::Dense { a: &a, k },
            &w,
            &epi,
        );
        for t in [1, 2, 3] {
            let got = in_pool(t, || ours(Isa::Avx512Bf16, n, o, k, &a, &w, &epi));
            assert!(same(&default_order, &got), "{t} threads, {epi:?}");
        }
    }
}

/// For each shape, with every epilogue: `isa`'s result is within `check`'s bound of the f64
/// product of the bf16-rounded inputs and the same for 1 and 2 threads; for `k ≥ min_k` it is
/// not the f32 kernels' bits.
fn check_rounded_kernel(isa: Isa, shapes: &[(usize, usize, usize)], min_k: usize) {
    for &(n, o, k) in shapes {
        let (a, w) = (data(n * k, 1), data(o * k, 2));
        let (bias, res) = (data(o, 3), data(n * o, 4));
        for epi in epilogues(&bias, &res) {
            let got = ours(isa, n, o, k, &a, &w, &epi);
            check(n, o, k, &to_bf16(&a), &to_bf16(&w), &epi, &got);
            let two = in_pool(2, || ours(isa, n, o, k, &a, &w, &epi));
            let one = in_pool(1, || ours(isa, n, o, k, &a, &w, &epi));
            assert!(
                same(&one, &two) && same(&one, &got),
                "{n}×{o}×{k}: thread counts differ"
            );
        }
        if k >= min_k {
            let f32 = ours(Isa::best().unwrap(), n, o, k, &a, &w, &Epilogue::PLAIN);
            let rounded = ours(isa, n, o, k, &a, &w, &Epilogue::PLAIN);
            assert!(
                !same(&f32, &rounded),
                "{n}×{o}×{k}: the {isa:?} kernel gave the f32 bits"
            );
        }
    }
}

/// The AMX kernel computes the f32-accumulated product of the bf16-rounded inputs (the error
/// bound of `check` against the f64 product of the rounded inputs), for shapes with full and
/// partial 32-`k` chunks, several `k` blocks and row blocks, edge tiles and every epilogue; independently of
/// the thread count; and not the f32 bits. Shapes whose `k` blocks do not suit the tiles go to
/// the AVX512-BF16 kernel, with its bits.
#[test]
fn amx_kernel_is_the_f32_product_of_bf16_inputs() {
    if !Isa::AmxBf16.supported() {
        println!("AMX kernel: skipped (no AMX-BF16 on this CPU, or not permitted)");
        assert_ne!(Compute::Bf16.isa(), Some(Isa::AmxBf16));
        return;
    }
    assert_eq!(Compute::Bf16.isa(), Some(Isa::AmxBf16));
    let shapes = [
        (1, 1, 16),
        (5, 33, 40),
        (37, 45, 77),
        (32, 32, 32),
        (13, 64, 768),
        (130, 70, 1601),
        (200, 96, 2048),
        // Several row blocks, so the grouped order (`B_GROUP` panels per A micro-panel) with
        // a last group of 2 panels, an edge panel of 2 columns, a last micro-panel of 12 rows
        // and a second `k` block of one chunk.
        (300, 290, 800),
    ];
    check_rounded_kernel(Isa::AmxBf16, &shapes, 0);
    // k = 7 (and a last block of 4 after 768): the AVX512-BF16 kernel runs.
    for &(n, o, k) in &[(9, 20, 7), (40, 33, 772)] {
        let (a, w) = (data(n * k, 5), data(o * k, 6));
        let amx = ours(Isa::AmxBf16, n, o, k, &a, &w, &Epilogue::PLAIN);
        let bf = ours(Isa::Avx512Bf16, n, o, k, &a, &w, &Epilogue::PLAIN);
        assert!(
            same(&amx, &bf),
            "{n}×{o}×{k}: not the AVX512-BF16 kernel's bits"
        );
    }
}

/// A driver entry point (`driver::run` or one of its orders) on some kernel.
type Driver<A> = unsafe fn(
    usize,
    usize,
    usize,
    &A,
    &[f32],
    &mut [std::mem::MaybeUninit<f32>],
    &Epilogue<'_>,
    Option<&[f32]>,
);

/// `run` (a [`Driver`]) on a fresh C, the epilogue's bias pre-scaled as `sgemm_nt` does. The
/// caller has checked the kernel's CPU features.
fn run_driver<A: driver::PackA>(
    run: Driver<A>,
    (n, o, k): (usize, usize, usize),
    a: &A,
    w: &[f32],
    epi: &Epilogue<'_>,
) -> Vec<f32> {
    use std::mem::MaybeUninit;
    let mut c = vec![MaybeUninit::new(f32::NAN); n * o];
    let bs: Option<Vec<f32>> = epi.bias.map(|b| b.iter().map(|&v| v * epi.scale).collect());
    // SAFETY: the caller checked the kernel's features; the lengths match the shape; n, o,
    // k > 0.
    unsafe { run(n, o, k, a, w, &mut c, epi, bs.as_deref()) };
    // SAFETY: the drivers initialise every element of C.
    c.into_iter().map(|v| unsafe { v.assume_init() }).collect()
}

/// The driver on kernel `K` (whatever this CPU's cache sizes would pick) for A from `a`.
/// The caller has checked `K`'s CPU features.
fn run_kernel<K: driver::Kernel, A: driver::PackA>(
    shape: (usize, usize, usize),
    a: &A,
    w: &[f32],
    epi: &Epilogue<'_>,
) -> Vec<f32> {
    run_driver::<A>(driver::run::<K, A, [f32]>, shape, a, w, epi)
}

/// The AVX-512 kernel's two blockings (`MC` 96 / 192 rows per A block, both `KC` 768 in
/// groups of 4 panels) give the same bits as each other and as the dispatched kernel: several
/// `k` blocks, several row blocks, edge tiles, every epilogue, 1–3 threads.
#[test]
fn avx512_blockings_bit_identical() {
    use kernel_avx512::Avx512;
    if !Isa::Avx512.supported() {
        println!("avx512_blockings_bit_identical: skipping (no AVX-512F)");
        return;
    }
    fn run<K: driver::Kernel>(
        n: usize,
        o: usize,
        k: usize,
        a: &[f32],
        w: &[f32],
        epi: &Epilogue<'_>,
    ) -> Vec<f32> {
        run_kernel::<K, _>((n, o, k), &driver::Dense { a, k }, w, epi)
    }
    for (si, &(n, o, k)) in [(401, 203, 1700), (37, 140, 768), (16, 70, 800)]
        .iter()
        .enumerate()
    {
        let a = data(n * k, 5 * si + 61);
        let w = data(o * k, 5 * si + 62);
        let bias = data(o, 5 * si + 63);
        let res = data(n * o, 5 * si + 64);
        for epi in epilogues(&bias, &res) {
            let want = ours(Isa::Avx512, n, o, k, &a, &w, &epi);
            for t in [1, 2, 3] {
                let small = in_pool(t, || run::<Avx512<12, false>>(n, o, k, &a, &w, &epi));
                let big = in_pool(t, || run::<Avx512<12, true>>(n, o, k, &a, &w, &epi));
                assert!(
                    same(&want, &small),
                    "MC 96 differs at {n}x{o}x{k}, {t} threads, {epi:?}"
                );
                assert!(
                    same(&want, &big),
                    "MC 192 differs at {n}x{o}x{k}, {t} threads, {epi:?}"
                );
            }
        }
    }
}

/// A dense `[n, k]` A cut into runs of `len` columns (an implicit im2col's rows), where, with
/// `zeros`, the run `q / len` of row `r` is zeros when `(r + q / len) % 5 == 0` (a padding
/// pixel of a convolution), and in every row when `q / len % 4 == 2` (a tap in the padding for
/// the whole micro-panel, which the in-place kernel skips).
pub(super) struct Cut<'a> {
    pub a: &'a [f32],
    pub k: usize,
    pub len: usize,
    /// Serve only `gather` (the packed copy), not `runs`.
    pub gather_only: bool,
    /// Put the runs of zeros in.
    pub zeros: bool,
}
impl Cut<'_> {
    pub fn zero(&self, r: usize, q: usize) -> bool {
        let run = q / self.len;
        self.zeros && (run % 4 == 2 || (r + run).is_multiple_of(5))
    }
}
impl RowSource for Cut<'_> {
    fn gather(&self, i0: usize, rows: usize, p0: usize, kc: usize, dst: &mut [f32]) {
        for (r, d) in dst.chunks_exact_mut(kc).take(rows).enumerate() {
            for (p, v) in d.iter_mut().enumerate() {
                let (row, q) = (i0 + r, p0 + p);
                *v = if self.zero(row, q) {
                    0.0
                } else {
                    self.a[row * self.k + q]
                };
            }
        }
    }
    fn runs(
        &self,
        i0: usize,
        rows: usize,
        p0: usize,
        kc: usize,
        f: &mut dyn FnMut(usize, usize, &[*const f32]),
    ) -> bool {
        if self.gather_only {
            return false;
        }
        let mut q = p0;
        while q < p0 + kc {
            let len = (self.len - q % self.len).min(p0 + kc - q);
            let ptrs: Vec<*const f32> = (i0..i0 + rows)
                .map(|r| match self.zero(r, q) {
                    true => std::ptr::null(),
                    false => self.a[r * self.k + q..].as_ptr(),
                })
                .collect();
            f(q, len, &ptrs);
            q += len;
        }
        true
    }
}

/// A read in place through its runs (`Kernel::KERNEL_RUNS`, both AVX-512 blockings) gives
/// the bits of the same runs packed (the AVX2 kernel, which packs them), of the gathered copy,
/// and of the dense product: runs of several lengths, odd ones too (long ones read in place,
/// short ones packed), zero rows, runs of zeros in every row (skipped, in place and packed;
/// with runs of 7 more zero ranges than `driver::Zeros` holds, so none skipped; whole `k`
/// blocks of zeros, the last one too), runs cut by `k` blocks at odd offsets, edge tiles,
/// every epilogue, 1–3 threads.
#[test]
fn a_read_in_place_gives_the_bits_of_packing() {
    use kernel_avx512::Avx512;
    if !Isa::Avx512.supported() {
        println!("a_read_in_place_gives_the_bits_of_packing: skipping (no AVX-512F)");
        return;
    }
    fn run<K: driver::Kernel>(
        shape: (usize, usize, usize),
        src: &Cut<'_>,
        w: &[f32],
        epi: &Epilogue<'_>,
    ) -> Vec<f32> {
        run_kernel::<K, _>(shape, &driver::Gathered(src), w, epi)
    }
    for (si, &(n, o, k, len)) in [
        (401, 70, 1700, 64),
        (37, 140, 576, 100),
        (250, 64, 800, 7),
        (16, 33, 300, 300),
        // Odd runs read in place, cut by the `k` blocks at odd offsets.
        (45, 50, 1990, 33),
        // A run of zeros in every row that covers whole `k` blocks, the last one included.
        (30, 40, 2100, 700),
    ]
    .iter()
    .enumerate()
    {
        let a = data(n * k, 5 * si + 71);
        let w = data(o * k, 5 * si + 72);
        let bias = data(o, 5 * si + 73);
        let res = data(n * o, 5 * si + 74);
        let cut = |gather_only| Cut {
            a: &a,
            k,
            len,
            gather_only,
            zeros: true,
        };
        let zeroed: Vec<f32> = (0..n * k)
            .map(|e| match cut(true).zero(e / k, e % k) {
                true => 0.0,
                false => a[e],
            })
            .collect();
        for epi in epilogues(&bias, &res) {
            let want = ours(Isa::Avx512, n, o, k, &zeroed, &w, &epi);
            for t in [1, 2, 3] {
                let shape = (n, o, k);
                for (what, got) in [
                    (
                        "in place",
                        in_pool(t, || run::<Avx512<12, true>>(shape, &cut(false), &w, &epi)),
                    ),
                    (
                        "in place, MC 96",
                        in_pool(t, || run::<Avx512<12, false>>(shape, &cut(false), &w, &epi)),
                    ),
                    (
                        "gathered",
                        in_pool(t, || run::<Avx512<12, true>>(shape, &cut(true), &w, &epi)),
                    ),
                    (
                        "packed runs, AVX2",
                        in_pool(t, || run::<kernel_avx2::Avx2>(shape, &cut(false), &w, &epi)),
                    ),
                ] {
                    assert!(
                        same(&want, &got),
                        "{what} differs at {n}x{o}x{k} (runs of {len}), {t} threads, {epi:?}"
                    );
                }
            }
        }
    }
}

mod few_rows;
mod fma_bf16;
mod shared_a;
