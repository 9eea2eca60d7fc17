//! Row kernels over f32 logits and scores: the max and Σ exp of a row (the log-sum-exp of the
//! losses) and an in-place row softmax (attention), with a branch-free polynomial `exp` the
//! compiler vectorises and a runtime AVX2 / AVX-512 dispatch; and the LayerNorm of rows. Every
//! build computes the same bits, so results do not depend on the CPU or the thread count.

use std::mem::MaybeUninit;

/// `$vis fn $name(args)`: `$generic` compiled twice more, for AVX-512F (`$avx512`) and for
/// AVX2 + FMA (`$avx2`), and dispatched at run time to the widest build the CPU has. The
/// builds run the same code, with plain `+ − × / √` (the compiler never contracts them into
/// FMA) and explicit `mul_add`s (one rounding on every build: `vfmadd` in the AVX builds,
/// libm's exact `fmaf` in the baseline one), so they compute the same bits; the tests compare
/// each build with `$generic`. (FMA is in the AVX2 build's features: without it each
/// `mul_add` there was a call to `fmaf`.)
macro_rules! isa_builds {
    (
        $(#[$doc:meta])*
        $vis:vis fn $name:ident = $generic:ident, $avx512:ident, $avx2:ident
        ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
    ) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx2")]
        unsafe fn $avx512($($arg: $ty),*) $(-> $ret)? {
            $generic($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx2($($arg: $ty),*) $(-> $ret)? {
            $generic($($arg),*)
        }

        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if zo_core::cpu::avx512f() {
                // SAFETY: the CPU supports AVX-512F (checked just above), and so AVX2.
                return unsafe { $avx512($($arg),*) };
            }
            #[cfg(target_arch = "x86_64")]
            if zo_core::cpu::avx2_fma() {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                return unsafe { $avx2($($arg),*) };
            }
            $generic($($arg),*)
        }
    };
}

/// `exp(x)` for `x ≤ 0`, max relative error ≈ 2e-7; exactly 0 below −87 (where `exp` leaves
/// f32's normal range: flushed to zero, so a masked score gets probability 0, not a subnormal).
/// Cody–Waite reduction `x = n·ln2 + r`, `|r| ≤ ln2/2`, then a degree-6 Taylor polynomial for
/// `e^r` (remainder ≤ (ln2/2)^7/7! ≈ 1.2e-7) and `2^n` built in the exponent bits.
///
/// `n = round(x·log2 e)` uses the magic constant `1.5·2²³`: adding it leaves the float whose
/// last mantissa bit has weight 1, so the addition itself rounds to the nearest integer (ties
/// to even) and the integer sits in the low mantissa bits. `f32::round` would be a libm
/// `roundf` call on the x86-64 baseline (no SSE4.1 `roundps`), which keeps the loops below from
/// vectorising.
///
/// The reduction and the polynomial are fused multiply-adds (`f32::mul_add`: one rounding
/// each, so every instruction set computes the same bits: `vfmadd` in the AVX2 and AVX-512
/// builds, the exact software `fmaf` in the baseline x86-64 one, which only CPUs without AVX2
/// run). Nine operations fewer than the plain `*`/`+` form, the dependent chain half as long.
#[inline(always)]
fn exp_nonpos(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    const C: [f32; 7] = [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
    let under = x < -87.0;
    let x = x.max(-87.0);
    let t = x.mul_add(LOG2E, MAGIC);
    let n = t - MAGIC;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let mut p = C[0];
    for c in &C[1..] {
        p = p.mul_add(r, *c);
    }
    // n ∈ [-126, 0] is the difference of the two bit patterns; 2^n is a normal float.
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let scale = f32::from_bits((ni.wrapping_add(127) as u32) << 23);
    if under {
        0.0
    } else {
        p * scale
    }
}

/// Lanes of the blocked reductions below (one AVX2 register; two SSE2 registers).
const L: usize = 8;

/// `Σ exp(x − m)` over `block`, in [`L`] f32 lanes then across lanes (a fixed order, so the
/// result does not depend on the instruction set the caller was compiled for).
///
/// Lane `k` adds `exp(block[i] − m)` for `i ≡ k (mod L)` in increasing `i`. The main loop
/// takes `2·L` elements at a time: their 16 `exp`s are independent (one AVX-512 register, or
/// two AVX2 ones), and the two halves are added in order (`i` before `i + L`), so the sums
/// are those of an `L`-at-a-time loop, bit for bit.
#[inline(always)]
fn sumexp_block(block: &[f32], m: f32) -> f32 {
    let mut acc = [0f32; L];
    let pairs = block.chunks_exact(2 * L);
    let tail = pairs.remainder();
    for c in pairs {
        let mut e = [0f32; 2 * L];
        for k in 0..2 * L {
            e[k] = exp_nonpos(c[k] - m);
        }
        for k in 0..L {
            acc[k] += e[k];
        }
        for k in 0..L {
            acc[k] += e[L + k];
        }
    }
    let chunks = tail.chunks_exact(L);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..L {
            acc[k] += exp_nonpos(c[k] - m);
        }
    }
    acc.iter().sum::<f32>() + rest.iter().map(|&x| exp_nonpos(x - m)).sum::<f32>()
}

/// `max(row)` in 4 × [`L`] lanes: four independent chains, since one chain of `max`es (with
/// its NaN handling, three dependent instructions per step) made the max pass as slow as the
/// `exp`s. The maximum does not depend on the order it is taken in (up to the sign of a zero
/// maximum, which no caller can see: `x − (±0)` and `exp` agree on both).
#[inline(always)]
fn max_lanes(row: &[f32]) -> f32 {
    let mut mx = [[f32::NEG_INFINITY; L]; 4];
    let quads = row.chunks_exact(4 * L);
    let rest = quads.remainder();
    for c in quads {
        for (q, m) in mx.iter_mut().enumerate() {
            for k in 0..L {
                m[k] = m[k].max(c[q * L + k]);
            }
        }
    }
    let mut m = [f32::NEG_INFINITY; L];
    for k in 0..L {
        m[k] = mx[0][k].max(mx[1][k]).max(mx[2][k].max(mx[3][k]));
    }
    let chunks = rest.chunks_exact(L);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..L {
            m[k] = m[k].max(c[k]);
        }
    }
    rest.iter().fold(
        m.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        |a, &b| a.max(b),
    )
}

/// `(max(row), Σ exp(row − max))`, the sum in f32 lanes per block of 1024 and in f64 across
/// blocks (so a 50k-entry vocabulary loses no precision that matters at 1e-6).
#[inline(always)]
fn max_sumexp_generic(row: &[f32]) -> (f32, f64) {
    let m = max_lanes(row);
    if !m.is_finite() {
        return (m, 1.0);
    }
    // A plain loop, not `chunks().map().sum()`: the iterator's `fold` is a separate generic
    // function that does not inherit the caller's `target_feature`, so the AVX builds below
    // would run the `exp`s in SSE2 (it did: 4 lanes, 5 % of a full-LM forward's samples).
    let mut total = 0f64;
    for block in row.chunks(1024) {
        total += sumexp_block(block, m) as f64;
    }
    (m, total)
}

isa_builds! {
    /// `(max(row), Σ exp(row − max))`, on the AVX-512F build (the 16 `exp`s of
    /// [`sumexp_block`]'s main loop in one register), the AVX2 one or the baseline one.
    pub(crate) fn max_sumexp = max_sumexp_generic, max_sumexp_avx512, max_sumexp_avx2
        (row: &[f32]) -> (f32, f64)
}

/// In-place softmax of each `width`-long row of `rows`: `exp(x − max) / Σ exp(x − max)`, as
/// torch's `softmax(dim=-1)` (the sum in [`L`] lanes, a fixed order). A row whose entries are
/// all the additive mask value stays uniform, as in torch.
#[inline(always)]
fn softmax_rows_generic(rows: &mut [f32], width: usize) {
    for row in rows.chunks_exact_mut(width) {
        let m = max_lanes(row);
        let mut acc = [0f32; L];
        // Entries more than 87 under the max (the masked keys of a causal row) have
        // probability 0 (see `exp_nonpos`): a chunk of them adds +0 to the lanes, a no-op, and
        // is skipped. The `exp`s are taken 2·L at a time, then added to the lanes in order, as
        // in `sumexp_block`: with L at a time the compiler left them scalar.
        let mut pairs = row.chunks_exact_mut(2 * L);
        for c in &mut pairs {
            if c.iter().all(|&x| x - m < -87.0) {
                c.fill(0.0);
                continue;
            }
            let c: &mut [f32; 2 * L] = c.try_into().expect("chunks of 2·L");
            let mut e = [0f32; 2 * L];
            for k in 0..2 * L {
                e[k] = exp_nonpos(c[k] - m);
            }
            for k in 0..L {
                acc[k] += e[k];
            }
            for k in 0..L {
                acc[k] += e[L + k];
            }
            *c = e;
        }
        let mut chunks = pairs.into_remainder().chunks_exact_mut(L);
        for c in &mut chunks {
            if c.iter().all(|&x| x - m < -87.0) {
                c.fill(0.0);
                continue;
            }
            for k in 0..L {
                c[k] = exp_nonpos(c[k] - m);
                acc[k] += c[k];
            }
        }
        let mut sum = acc.iter().sum::<f32>();
        for x in chunks.into_remainder() {
            *x = exp_nonpos(*x - m);
            sum += *x;
        }
        // Probabilities below f32's normal range are flushed to 0: a subnormal operand costs
        // a microcode assist per multiply on Intel cores, and the `P V` product after this
        // ran 20× slower with them (measured on the AVX-512 machine, 2026-11-23).
        for x in row.iter_mut() {
            let y = *x / sum;
            *x = if y < f32::MIN_POSITIVE { 0.0 } else { y };
        }
    }
}

isa_builds! {
    /// See [`softmax_rows_generic`]; on the widest build the CPU has (same bits). (The
    /// AVX-512 build was measured level with the AVX2 one on the causal 64 × 64 block.)
    pub(crate) fn softmax_rows = softmax_rows_generic, softmax_rows_avx512, softmax_rows_avx2
        (rows: &mut [f32], width: usize)
}

/// Lanes of the LayerNorm sums (one AVX-512 register, two AVX2 ones).
const LN_L: usize = 16;

/// `Σ f(x)` over `row` in [`LN_L`] lanes (lane `k` adds `f(row[i])` for `i ≡ k (mod LN_L)` in
/// increasing `i`), then the lanes in order, then the tail: a fixed order.
#[inline(always)]
fn lane_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LN_L];
    let chunks = row.chunks_exact(LN_L);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..LN_L {
            acc[k] += f(c[k]);
        }
    }
    acc.iter().sum::<f32>() + rest.iter().map(|&x| f(x)).sum::<f32>()
}

/// LayerNorm of one row into `dst`: the mean, then the (biased) variance as the mean of the
/// squared deviations (two passes, as torch computes it; the one-pass `E[x²] − mean²` of
/// candle's CPU kernel loses the variance to cancellation when the mean is large against the
/// spread), then `(x − mean)·rstd·w + b` with `rstd = 1/√(var + eps)`.
#[inline(always)]
fn layer_norm_row_generic(x: &[f32], w: &[f32], b: &[f32], eps: f32, dst: &mut [MaybeUninit<f32>]) {
    let n = x.len() as f32;
    let mean = lane_sum(x, |v| v) / n;
    let var = lane_sum(x, |v| (v - mean) * (v - mean)) / n;
    let rstd = 1.0 / (var + eps).sqrt();
    for (((d, &v), &wi), &bi) in dst.iter_mut().zip(x).zip(w).zip(b) {
        d.write((v - mean) * rstd * wi + bi);
    }
}

/// [`layer_norm_row_generic`] of each `w.len()`-long row of `x` into the same row of `dst`.
#[inline(always)]
fn layer_norm_rows_generic(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    eps: f32,
    dst: &mut [MaybeUninit<f32>],
) {
    let dim = w.len();
    assert!(dim > 0 && b.len() == dim && x.len() == dst.len() && x.len().is_multiple_of(dim));
    for (xr, dr) in x.chunks_exact(dim).zip(dst.chunks_exact_mut(dim)) {
        layer_norm_row_generic(xr, w, b, eps, dr);
    }
}

isa_builds! {
    /// [`layer_norm_row_generic`] of each `w.len()`-long row of `x` into the same row of
    /// `dst`, on the widest build the CPU has: the same operations in the same order, so the
    /// same bits on every CPU. Every element of `dst` is written.
    pub(crate) fn layer_norm_rows = layer_norm_rows_generic, layer_norm_rows_avx512,
        layer_norm_rows_avx2
        (x: &[f32], w: &[f32], b: &[f32], eps: f32, dst: &mut [MaybeUninit<f32>])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_within_3e7_relative() {
        let mut worst = 0f64;
        for i in 0..200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            let got = exp_nonpos(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_nonpos(0.0), 1.0);
        assert_eq!(exp_nonpos(-1000.0), 0.0);
        assert_eq!(exp_nonpos(f32::NEG_INFINITY), 0.0);
        assert!(exp_nonpos(-87.0) >= f32::MIN_POSITIVE);
    }

    /// Masked scores get probability exactly 0 and no probability is subnormal (the `P V`
    /// product after the softmax slows down ~20× on subnormal operands), rows still sum to 1.
    #[test]
    fn softmax_masks_to_zero_and_never_yields_subnormals() {
        let width = 37;
        let mut rows: Vec<f32> = (0..4 * width)
            .map(|i| match i % 5 {
                0 => f32::MIN,
                1 => -86.9 + (i % 7) as f32 * 0.01,
                _ => (i % 11) as f32 * 0.3,
            })
            .collect();
        let input = rows.clone();
        softmax_rows(&mut rows, width);
        for (x, y) in input.iter().zip(&rows) {
            assert!(*y == 0.0 || y.is_normal(), "subnormal probability {y:e}");
            if *x == f32::MIN {
                assert_eq!(*y, 0.0);
            }
        }
        for row in rows.chunks(width) {
            assert!((row.iter().map(|&v| v as f64).sum::<f64>() - 1.0).abs() < 1e-5);
        }
    }

    /// Skipping the chunks of masked entries (causal rows, padded rows, a fully masked row,
    /// entries just above and below the cut at 87 under the max) gives the bits of the full
    /// computation: every `exp` in its lane, the lanes then the rest, the division, the flush.
    #[test]
    fn softmax_skipping_masked_chunks_keeps_the_bits() {
        let reference = |row: &mut [f32]| {
            let m = max_lanes(row);
            let mut acc = [0f32; L];
            let n = row.len() / L * L;
            for (i, x) in row[..n].iter_mut().enumerate() {
                *x = exp_nonpos(*x - m);
                acc[i % L] += *x;
            }
            let mut sum = acc.iter().sum::<f32>();
            for x in &mut row[n..] {
                *x = exp_nonpos(*x - m);
                sum += *x;
            }
            for x in row.iter_mut() {
                let y = *x / sum;
                *x = if y < f32::MIN_POSITIVE { 0.0 } else { y };
            }
        };
        let neg = f32::MIN / 2.0;
        for width in [64, 57, 8, 3] {
            let mut rows = Vec::new();
            for i in 0..width {
                // Causal row i with 2 padded keys in front.
                rows.extend((0..width).map(|j| {
                    if j < 2.min(i) || j > i {
                        neg
                    } else {
                        ((i * 31 + j * 17) % 23) as f32 * 0.4 - 4.0
                    }
                }));
            }
            rows.extend(std::iter::repeat_n(neg, width));
            // Entries near the cut, a chunk at a time: max 0, others at -86.99 (probability
            // 1.7e-38, a normal float) / -87 / -87.01.
            rows.extend((0..width).map(|j| match j {
                0 => 0.0,
                _ => [-86.99, -87.0, -87.01][(j / L) % 3],
            }));
            let mut want = rows.clone();
            for row in want.chunks_mut(width) {
                reference(row);
            }
            softmax_rows(&mut rows, width);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&rows), bits(&want), "width {width}");
        }
    }

    #[test]
    fn exp_rounds_ties_like_the_reference_and_paths_agree() {
        // n = round(x·log2 e) near half-integers: the magic-constant rounding must keep the
        // polynomial argument within ±ln2/2, i.e. stay accurate there too.
        for k in 0..=125 {
            for d in [-1e-4f32, 0.0, 1e-4] {
                let x = -((k as f32 + 0.5) / std::f32::consts::LOG2_E) + d;
                if x <= 0.0 {
                    let want = (x as f64).exp();
                    let got = exp_nonpos(x) as f64;
                    assert!(((got - want) / want).abs() < 3e-7, "x {x}: {got} vs {want}");
                }
            }
        }
        // The AVX2 and AVX-512 builds compute the same bits as the baseline build, and the
        // 16-at-a-time main loop the same sums as one taking 8 at a time.
        let row: Vec<f32> = (0..50_001)
            .map(|i| ((i * 7919) % 4001) as f32 / 97.0 - 20.0)
            .collect();
        let generic = max_sumexp_generic(&row);
        assert_eq!(max_sumexp(&row), generic);
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU supports AVX2 and FMA.
                assert_eq!(unsafe { max_sumexp_avx2(&row) }, generic);
            }
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F and AVX2.
                assert_eq!(unsafe { max_sumexp_avx512(&row) }, generic);
            }
        }
        // The softmax builds too, on rows of 37 (every tail length of the lanes) with entries
        // far under the maximum (skipped chunks).
        let mut want = row[..37 * 200].to_vec();
        for (i, x) in want.iter_mut().enumerate() {
            if i % 37 < 20 && i % 7 == 0 {
                *x -= 200.0;
            }
        }
        let scores = want.clone();
        softmax_rows_generic(&mut want, 37);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let mut got = scores.clone();
        softmax_rows(&mut got, 37);
        assert_eq!(bits(&got), bits(&want), "dispatched softmax");
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                let mut got = scores.clone();
                // SAFETY: the CPU supports AVX2 and FMA.
                unsafe { softmax_rows_avx2(&mut got, 37) };
                assert_eq!(bits(&got), bits(&want), "AVX2 softmax");
            }
            if std::is_x86_feature_detected!("avx512f") {
                let mut got = scores.clone();
                // SAFETY: the CPU supports AVX-512F and AVX2.
                unsafe { softmax_rows_avx512(&mut got, 37) };
                assert_eq!(bits(&got), bits(&want), "AVX-512 softmax");
            }
        }
        // Values of one magnitude in a scrambled order (an LCG), so that any other order of
        // the additions gives other bits.
        let mut state = 0x2545_f491_u32;
        let mixed: Vec<f32> = (0..2100)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / (1u32 << 24) as f32 * 3.0
            })
            .collect();
        // Every length up to two 1024-blocks and a bit: a lane's rounding difference is often
        // absorbed when the 8 lanes are summed, so one length alone would prove little.
        for len in 0..=2100 {
            let r = &mixed[..len];
            let m = max_lanes(r);
            if !m.is_finite() {
                continue;
            }
            let (_, s) = max_sumexp_generic(r);
            assert_eq!(max_sumexp(r), (m, s), "len {len}: the dispatched build");
            let eight_at_a_time: f64 = r
                .chunks(1024)
                .map(|block| {
                    let mut acc = [0f32; L];
                    let chunks = block.chunks_exact(L);
                    let rest = chunks.remainder();
                    for c in chunks {
                        for k in 0..L {
                            acc[k] += exp_nonpos(c[k] - m);
                        }
                    }
                    (acc.iter().sum::<f32>() + rest.iter().map(|&x| exp_nonpos(x - m)).sum::<f32>())
                        as f64
                })
                .sum();
            assert_eq!(s.to_bits(), eight_at_a_time.to_bits(), "len {len}");
        }
        let want: f64 = row
            .iter()
            .map(|&x| (x as f64 - generic.0 as f64).exp())
            .sum();
        assert!((generic.1 - want).abs() / want < 1e-6);
    }

    /// A build of `layer_norm_rows`.
    #[cfg(target_arch = "x86_64")]
    type RowsFn = unsafe fn(&[f32], &[f32], &[f32], f32, &mut [MaybeUninit<f32>]);

    /// Runs a LayerNorm over rows into a fresh vector.
    fn ln_with(
        f: impl Fn(&[f32], &[f32], &[f32], f32, &mut [MaybeUninit<f32>]),
        x: &[f32],
        w: &[f32],
        b: &[f32],
    ) -> Vec<f32> {
        let mut out = vec![MaybeUninit::new(f32::NAN); x.len()];
        f(x, w, b, 1e-5, &mut out);
        // SAFETY: initialised above (and overwritten by `f`).
        out.into_iter()
            .map(|v| unsafe { v.assume_init() })
            .collect()
    }

    /// The LayerNorm of a row is within 2e-6 of the float64 two-pass LayerNorm, also where
    /// the mean is 10⁴ times the spread (the case the one-pass `E[x²] − mean²` gets wrong),
    /// for row lengths around the 16 lanes; the AVX-512, AVX2 and baseline builds and the
    /// row-by-row driver give the same bits.
    #[test]
    fn layer_norm_is_the_two_pass_one_on_every_build() {
        let mut state = 7u32;
        let mut next = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for (dim, offset) in [
            (1, 0.0),
            (15, 0.3),
            (16, -2.0),
            (37, 1.0),
            (768, 0.1),
            (768, 1e4),
        ] {
            let rows = 3;
            let x: Vec<f32> = (0..rows * dim).map(|_| offset + next()).collect();
            let w: Vec<f32> = (0..dim).map(|_| 1.0 + next()).collect();
            let b: Vec<f32> = (0..dim).map(|_| next()).collect();
            let got = ln_with(layer_norm_rows, &x, &w, &b);
            for (r, (xr, gr)) in x.chunks(dim).zip(got.chunks(dim)).enumerate() {
                let n = dim as f64;
                let mean = xr.iter().map(|&v| v as f64).sum::<f64>() / n;
                let var = xr.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
                let rstd = 1.0 / (var + 1e-5).sqrt();
                for j in 0..dim {
                    let want = (xr[j] as f64 - mean) * rstd * w[j] as f64 + b[j] as f64;
                    // The input itself is rounded to ~ulp(offset); relative to the spread that
                    // is 1e-3 at offset 1e4, which f32 cannot beat.
                    let tol = 2e-6 + (offset as f64).abs() * 1.2e-7 * rstd * (w[j] as f64).abs();
                    assert!(
                        (gr[j] as f64 - want).abs() <= tol,
                        "dim {dim} offset {offset} row {r} col {j}: {} vs {want}",
                        gr[j]
                    );
                }
            }
            let generic = ln_with(layer_norm_rows_generic, &x, &w, &b);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&generic), "dim {dim}: dispatched build");
            #[cfg(target_arch = "x86_64")]
            {
                let build = |f: RowsFn| {
                    move |x: &[f32], w: &[f32], b: &[f32], e: f32, d: &mut [MaybeUninit<f32>]| {
                        // SAFETY: called only where the CPU has the build's features.
                        unsafe { f(x, w, b, e, d) }
                    }
                };
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    let v = ln_with(build(layer_norm_rows_avx2), &x, &w, &b);
                    assert_eq!(bits(&v), bits(&generic), "dim {dim}: AVX2 build");
                }
                if std::is_x86_feature_detected!("avx512f") {
                    let v = ln_with(build(layer_norm_rows_avx512), &x, &w, &b);
                    assert_eq!(bits(&v), bits(&generic), "dim {dim}: AVX-512 build");
                }
            }
        }
    }

    /// A timing, not a check (ignored by default): the softmax of a causal 64 × 64 score block
    /// (opt-125m's attention at T = 64), best of 20 loops of 200, in µs:
    /// `cargo test --release -p zo-models --lib softmax_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn softmax_timing() {
        let t = 64;
        let neg = f32::MIN / 2.0;
        let base: Vec<f32> = (0..t * t)
            .map(|x| {
                let (i, j) = (x / t, x % t);
                if j > i {
                    neg
                } else {
                    ((i * 31 + j * 17) % 23) as f32 * 0.4 - 4.0
                }
            })
            .collect();
        for round in 0..3 {
            let mut best = f64::MAX;
            let mut r = base.clone();
            for _ in 0..20 {
                let start = std::time::Instant::now();
                for _ in 0..200 {
                    r.copy_from_slice(&base);
                    softmax_rows(&mut r, t);
                    std::hint::black_box(&r);
                }
                best = best.min(start.elapsed().as_secs_f64());
            }
            println!("round {round} {:.2} us per 64x64", best / 200.0 * 1e6);
        }
    }

    /// A timing, not a check (ignored by default): `max_sumexp` over 16 rows of opt's
    /// 50 272-entry vocabulary (the full-LM loss's log-sum-exp), best of 10 loops, in µs per row:
    /// `cargo test --release -p zo-models --lib lse_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn lse_timing() {
        let v = 50_272;
        let rows: Vec<f32> = (0..16 * v)
            .map(|i| ((i * 7919) % 4001) as f32 / 400.0 - 5.0)
            .collect();
        for round in 0..3 {
            let mut best = f64::MAX;
            for _ in 0..10 {
                let start = std::time::Instant::now();
                for row in rows.chunks_exact(v) {
                    std::hint::black_box(max_sumexp(std::hint::black_box(row)));
                }
                best = best.min(start.elapsed().as_secs_f64());
            }
            println!("round {round} {:.2} us per row", best / 16.0 * 1e6);
        }
    }

    /// The max in four chains of lanes is the plain maximum, for every length around the
    /// 32-entry step, NaNs ignored as `f32::max` ignores them.
    #[test]
    fn max_lanes_is_the_maximum() {
        let v: Vec<f32> = (0..100)
            .map(|i| match i % 13 {
                5 => f32::NAN,
                _ => ((i * 7919) % 211) as f32 - 100.0,
            })
            .collect();
        for len in 0..v.len() {
            for peak in [None, Some(len / 2), Some(len.saturating_sub(1))] {
                let mut r = v[..len].to_vec();
                if let Some(p) = peak.filter(|&p| p < len && r[p].is_finite()) {
                    r[p] = 1e3;
                }
                let want = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                assert_eq!(max_lanes(&r), want, "len {len}, peak {peak:?}");
            }
        }
    }
}
