//! The AMX micro-kernel of [`super`] (`model.compute = "bf16"` on Intel Sapphire Rapids and
//! later): A and W are rounded to bfloat16 while they are packed (as the AVX512-BF16 kernel
//! does) and multiplied on the AMX tile unit with `tdpbf16ps`, accumulating in f32.
//!
//! A `32 × 32` tile of C lives in four 16 × 16 f32 tile registers (`tmm0..3`); each step of
//! 32 `k` values loads two A tiles (16 rows × 32 bf16, `tmm4/5`) and two B tiles (16 pairs of
//! `k` × 16 columns, `tmm6/7`) and issues four `tdpbf16ps`: 32 768 multiply-adds, against 512
//! for an AVX-512 FMA chain step.
//!
//! Packing: a packed A micro-panel is, per 32-`k` chunk, 32 rows of 16 pair words (64 bytes:
//! `(bf16(x[2p]), bf16(x[2p+1]))`), so each A tile is 1 KB contiguous; a packed B panel is, per
//! chunk, 16 rows of 32 pair words (one per column of C), loaded as two tiles at a 128-byte
//! stride. A `kc` that is not a multiple of 32 is padded with zero pairs, so the packed panels
//! take `⌈kc/32⌉·16` words per row, which fits the driver's `kc` floats per row for `kc ≥ 16`
//! ([`shape_ok`] sends other shapes to the AVX512-BF16 kernel).
//!
//! Determinism: each element of C is the same chain of `tdpbf16ps` over its chunks in order,
//! from block to block (raw f32 sums stored and reloaded), whatever the blocking or the thread
//! count. It is not the AVX512-BF16 kernel's result (the hardware sums a chunk's products in
//! its own order), so bf16 results are reproducible on one machine kind, as documented for
//! `model.compute = "bf16"`.
//!
//! The tile unit needs the kernel's permission (`arch_prctl(ARCH_REQ_XCOMP_PERM,
//! XFEATURE_XTILEDATA)`, once per process, [`supported`]) and a tile configuration loaded on
//! each thread (`ldtilecfg`, once per thread). The instructions are written with `asm!`: Rust
//! has no stable AMX intrinsics or target features, and the assembler needs neither.

use std::arch::asm;
use std::arch::x86_64::*;
use std::cell::Cell;
use std::sync::OnceLock;

use super::driver::{Kernel, TileEpi};
use super::kernel_bf16::pairs16;

/// Micro-tile shape: 2 × 2 tiles of 16 × 16.
const MR: usize = 32;
const NR: usize = 32;
/// `k` values per tile step (16 pairs).
const CHUNK: usize = 32;

/// Whether this CPU has AMX-TILE and AMX-BF16 (with AVX512-BF16: `zo_core::cpu::detected`)
/// and the kernel lets this process use them (asked once).
pub(super) fn supported() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| zo_core::cpu::detected() >= zo_core::cpu::Level::Amx && request_tile_data())
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: Linux hands out the (8 KB) tile
/// state only to processes that ask. `false` on other systems or when refused.
fn request_tile_data() -> bool {
    #[cfg(target_os = "linux")]
    {
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let ret: i64;
        // SAFETY: a plain system call with integer arguments; it clobbers rcx and r11.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Whether the driver's blocks of `k` suit this kernel: every `kc` block (of [`Amx::KC`], the
/// last one `k mod KC`) at least 16, so the padded panels fit the driver's buffers.
pub(super) fn shape_ok(k: usize) -> bool {
    let last = k % <Amx as Kernel>::KC;
    k >= 16 && (last == 0 || last >= 16)
}

/// The 64-byte tile configuration (palette 1): tiles 0-7 all 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

thread_local! {
    /// Whether this thread has loaded [`TileConfig`].
    static CONFIGURED: Cell<bool> = const { Cell::new(false) };
}

/// Loads the tile configuration on this thread, once.
///
/// # Safety
/// [`supported`] returned true.
#[inline]
unsafe fn configure_thread() {
    if CONFIGURED.with(Cell::get) {
        return;
    }
    let mut cfg = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb: [0; 16],
        rows: [0; 16],
    };
    for t in 0..8 {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    // SAFETY: AMX is available and permitted (the caller's contract); `cfg` is a valid palette-1
    // configuration, 64-byte aligned.
    unsafe { asm!("ldtilecfg [{}]", in(reg) &cfg, options(nostack, readonly)) };
    CONFIGURED.with(|c| c.set(true));
}

/// The AMX kernel with `32 × 32` tiles.
pub(super) struct Amx;

impl Kernel for Amx {
    const MR: usize = MR;
    const NR: usize = NR;
    /// In elements of `k`: 24 chunks, a 48 KB A micro-panel and as much B. The product alone
    /// preferred 256 (`examples/sgemm_bench.rs --kernels amx --threads 1`, GFLOP per
    /// CPU-second on 1024 × 768 → 768 / 3072, 1024 × 3072 → 768, 1024 × 768 → 4096: `KC` 768:
    /// 751 / 535 / 691 / 517; 384: 786 / 522 / 788 / 713; 256: 803 / 701 / 784 / 695; noisy,
    /// shared machine), but the whole forward did not (`zo bench --figure b1 --compute bf16`,
    /// opt-125m, B16, T64, two rounds each, CPU seconds per call: full LM loss 0.570 / 0.558
    /// with 768 against 0.654 / 0.626 with 256, task loss 0.418 / 0.396 against 0.482 /
    /// 0.456): the 16-row task head and the 4096-column slices of the LM head pass over C
    /// once per `k` block.
    const KC: usize = 768;
    /// With [`Self::B_GROUP`]: a row block of 8 A micro-panels (384 KB of bf16 at `KC` 768).
    const MC_MAX: usize = 256;
    const NC: usize = 2048;
    /// Each A micro-panel runs over an L2-resident group of 8 B panels (384 KB) before the
    /// next (the driver's grouped order) rather than each B panel over the row block's A
    /// micro-panels. Neither a 48 KB A micro-panel nor a 48 KB B panel stays in the 48 KB L1
    /// at `KC` 768, so the order decides which one is read from L2 and which from further
    /// away. Measured against the panel-outer order with `MC_MAX` 128 (`sgemm_bench --kernels
    /// amx --threads 2`, the variants alternated in one process, fastest of 25 samples each,
    /// GFLOP/s on 1024 × 768 → 768 / 3072, 1024 × 3072 → 768, 1024 × 768 → 4096 / 50272):
    /// 942 / 716 / 1127 / 636 / 885 against 982 / 881 / 1228 / 981 / 1282; groups of 4 with
    /// `MC_MAX` 128 / 256 / 384 and of 8 / 16 with 256 / 384 came within noise of each other,
    /// all ahead of panel-outer; `KC` 384 with either order was behind. The 16-row task head
    /// (one row block: each panel packed by its one user) keeps the panel-outer order. The
    /// grouped default order now serves only the products that the shared-A order below does
    /// not take (convolutions, more than 1024 rows, fewer than two panels per thread); that
    /// order too runs each A micro-panel over 8 panels at a time.
    const B_GROUP: usize = 8;
    /// Dense products take the driver's shared-A order, 1024 rows (1.5 MB of bf16 at `KC`
    /// 768) at a time: A packed once, each task's 8 B panels packed into its own L2. In the
    /// default order the 3 MB block of packed B went out to L3 and back for every row block,
    /// and A was packed again for every 2048 columns. Measured against it (`sgemm_bench
    /// --kernels amx --threads 2`, both orders alternated in one process, a temporary switch;
    /// GFLOP per CPU-second, four runs, 1024 × 768 → 768 / 3072 / 4096 / 50272, 1024 × 3072
    /// → 768): 0.98–1.01 / 1.08–1.14 / 1.02–1.14 / 1.12–1.35 / 0.97–1.02 times the default
    /// order's; 512-row chunks or 4-panel tasks were behind, and `KC` 384 in this order was
    /// 0.55–0.9 times `KC` 768 (builds alternated 4 times, docs/BENCH.md round 16). Also
    /// measured on the tiles: a `tileloadd` from a 64-byte aligned address took 3.3 ns here,
    /// 16 bytes off ~19 ns, so every packed buffer is 64-byte aligned (`driver::with_buf`);
    /// the output C's alignment made no difference (its tiles are stored once per call).
    const SHARED_A_ROWS: usize = 1024;
    /// The packing stays within `kc·MR` floats for `kc ≥ 16` ([`shape_ok`]).
    const A_SPILL: usize = 0;
    const PREFETCH_C: bool = false;

    unsafe fn pack_a(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut f32) {
        // SAFETY: the trait's contract, which is `pack_rows`'.
        unsafe { pack_rows(src, ld, rows, kc, dst.cast::<u32>()) }
    }

    unsafe fn pack_b(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut f32) {
        // SAFETY: the trait's contract, which is `pack_cols`'.
        unsafe { pack_cols(src, ld, rows, kc, dst.cast::<u32>()) }
    }

    unsafe fn kernel(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        epi: Option<&TileEpi>,
    ) {
        // SAFETY: the trait's contract, which is `kernel_32x32`'s.
        unsafe {
            kernel_32x32(
                kc,
                a.cast::<u32>(),
                b.cast::<u32>(),
                c,
                ldc,
                accumulate,
                epi,
            )
        }
    }
}

/// A: `dst[(c·32 + i)·16 + q]` = pair word `c·16 + q` of row `i` (zero rows from `rows`).
///
/// # Safety
/// AVX-512F + AVX512-BF16 available; `src` readable for rows `0 .. rows`, `kc` elements each
/// at stride `ld`; `dst` writable for `⌈kc/32⌉·16·32` words.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pack_rows(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut u32) {
    let chunks = kc.div_ceil(CHUNK);
    // SAFETY (whole body): the extents listed above.
    unsafe {
        for c in 0..chunks {
            let base = dst.add(c * MR * 16);
            for i in 0..MR {
                let v = if i < rows {
                    pairs16(src.add(i * ld), c * CHUNK, kc)
                } else {
                    _mm512_setzero_si512()
                };
                _mm512_storeu_si512(base.add(i * 16).cast(), v);
            }
        }
    }
}

/// B: `dst[(c·16 + q)·32 + j]` = pair word `c·16 + q` of row `j` of W (zero columns from
/// `rows`). Each 16 × 16 block of words is transposed in registers ([`transpose16`]), so
/// the panel is written in whole 64-byte rows.
///
/// # Safety
/// AVX-512F + AVX512-BF16 available; `src` readable for rows `0 .. rows`, `kc` elements each
/// at stride `ld`; `dst` writable for `⌈kc/32⌉·16·32` words.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pack_cols(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut u32) {
    let chunks = kc.div_ceil(CHUNK);
    // SAFETY (whole body): the extents listed above.
    unsafe {
        for c in 0..chunks {
            let base = dst.add(c * 16 * NR);
            for j0 in (0..NR).step_by(16) {
                let mut r = [_mm512_setzero_si512(); 16];
                for (jj, v) in r.iter_mut().enumerate() {
                    if j0 + jj < rows {
                        *v = pairs16(src.add((j0 + jj) * ld), c * CHUNK, kc);
                    }
                }
                let t = transpose16(&r);
                for (q, v) in t.iter().enumerate() {
                    _mm512_storeu_si512(base.add(q * NR + j0).cast(), *v);
                }
            }
        }
    }
}

/// The transpose of a 16 × 16 matrix of 32-bit words held as 16 row vectors: word `j` of
/// output `q` is word `q` of input `j`. Interleaves of 32- then 64-bit elements, then two
/// rounds of 128-bit lane shuffles.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn transpose16(r: &[__m512i; 16]) -> [__m512i; 16] {
    let mut a = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // b[4i + c], 128-bit lane L: rows 4i .. 4i + 3 of column 4L + c.
    let mut b = [_mm512_setzero_si512(); 16];
    for i in 0..4 {
        b[4 * i] = _mm512_unpacklo_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 1] = _mm512_unpackhi_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 2] = _mm512_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
        b[4 * i + 3] = _mm512_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
    }
    let mut out = [_mm512_setzero_si512(); 16];
    for c in 0..4 {
        let (b0, b1, b2, b3) = (b[c], b[4 + c], b[8 + c], b[12 + c]);
        let p = _mm512_shuffle_i32x4::<0x44>(b0, b1);
        let q = _mm512_shuffle_i32x4::<0xEE>(b0, b1);
        let r2 = _mm512_shuffle_i32x4::<0x44>(b2, b3);
        let s = _mm512_shuffle_i32x4::<0xEE>(b2, b3);
        out[c] = _mm512_shuffle_i32x4::<0x88>(p, r2);
        out[4 + c] = _mm512_shuffle_i32x4::<0xDD>(p, r2);
        out[8 + c] = _mm512_shuffle_i32x4::<0x88>(q, s);
        out[12 + c] = _mm512_shuffle_i32x4::<0xDD>(q, s);
    }
    out
}

/// `C[32 × 32] (+)= Apanel · Bpanel` over `⌈kc/32⌉` tile steps, then a plain store of the raw
/// sums (`epi = None`) or the epilogue, with the operations of the other kernels' epilogue.
///
/// # Safety
/// [`supported`]; `a` and `b` readable for `⌈kc/32⌉·512` words; `c` valid for writing (and,
/// when `accumulate`, reading) a `32 × 32` tile with row stride `ldc`; the epilogue pointers
/// as in the other kernels.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn kernel_32x32(
    kc: usize,
    a: *const u32,
    b: *const u32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    epi: Option<&TileEpi>,
) {
    // SAFETY (whole body): the extents listed above; tiles are 16 rows of 64 bytes at the
    // given strides, inside them.
    unsafe {
        configure_thread();
        let sc = ldc * 4;
        let c1 = c.add(16);
        let c2 = c.add(16 * ldc);
        let c3 = c.add(16 * ldc + 16);
        if accumulate {
            asm!(
                "tileloadd tmm0, [{c0} + {s}*1]",
                "tileloadd tmm1, [{c1} + {s}*1]",
                "tileloadd tmm2, [{c2} + {s}*1]",
                "tileloadd tmm3, [{c3} + {s}*1]",
                c0 = in(reg) c, c1 = in(reg) c1, c2 = in(reg) c2, c3 = in(reg) c3,
                s = in(reg) sc,
                options(nostack, readonly),
            );
        } else {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
        }
        let (mut ap, mut bp) = (a, b);
        for _ in 0..kc.div_ceil(CHUNK) {
            asm!(
                "tileloadd tmm4, [{a0} + {s64}*1]",
                "tileloadd tmm6, [{b0} + {s128}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tileloadd tmm7, [{b1} + {s128}*1]",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tileloadd tmm5, [{a1} + {s64}*1]",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a0 = in(reg) ap, a1 = in(reg) ap.add(16 * 16),
                b0 = in(reg) bp, b1 = in(reg) bp.add(16),
                s64 = in(reg) 64usize, s128 = in(reg) 128usize,
                options(nostack, readonly),
            );
            ap = ap.add(MR * 16);
            bp = bp.add(16 * NR);
        }
        match epi {
            None => {
                asm!(
                    "tilestored [{c0} + {s}*1], tmm0",
                    "tilestored [{c1} + {s}*1], tmm1",
                    "tilestored [{c2} + {s}*1], tmm2",
                    "tilestored [{c3} + {s}*1], tmm3",
                    c0 = in(reg) c, c1 = in(reg) c1, c2 = in(reg) c2, c3 = in(reg) c3,
                    s = in(reg) sc,
                    options(nostack),
                );
            }
            Some(e) => {
                // The tiles go through a stack buffer (not zeroed: the stores fill it), and the
                // epilogue reads it back 8 rows at a time: 16 `zmm`, which stay in registers
                // (the whole 32 × 32 tile as one array went through a second stack copy).
                #[repr(C, align(64))]
                struct Tile([f32; MR * NR]);
                let mut t = std::mem::MaybeUninit::<Tile>::uninit();
                let tp = t.as_mut_ptr().cast::<f32>();
                asm!(
                    "tilestored [{c0} + {s}*1], tmm0",
                    "tilestored [{c1} + {s}*1], tmm1",
                    "tilestored [{c2} + {s}*1], tmm2",
                    "tilestored [{c3} + {s}*1], tmm3",
                    c0 = in(reg) tp, c1 = in(reg) tp.add(16), c2 = in(reg) tp.add(16 * NR),
                    c3 = in(reg) tp.add(16 * NR + 16),
                    s = in(reg) NR * 4,
                    options(nostack),
                );
                const ROWS: usize = 8;
                let ldt = NR;
                for r0 in (0..MR).step_by(ROWS) {
                    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
                    let src = tp.add(r0 * NR);
                    load_tile!(acc, src, ldt, 16, _mm512_load_ps);
                    let part = TileEpi {
                        scale: e.scale,
                        bias: e.bias,
                        res: if e.res.is_null() {
                            e.res
                        } else {
                            e.res.add(r0 * e.ldr)
                        },
                        ldr: e.ldr,
                        relu: e.relu,
                    };
                    let (cr, epi) = (c.add(r0 * ldc), Some(&part));
                    store_tile_zmm!(acc, cr, ldc, epi);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose16_transposes() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let m: Vec<u32> = (0..256).collect();
        // SAFETY: AVX-512F detected; the loads and stores are of 16 words each.
        let t = unsafe {
            let mut r = [_mm512_setzero_si512(); 16];
            for (j, v) in r.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(m[j * 16..].as_ptr().cast());
            }
            let out = transpose16(&r);
            let mut t = vec![0u32; 256];
            for (q, v) in out.iter().enumerate() {
                _mm512_storeu_si512(t[q * 16..].as_mut_ptr().cast(), *v);
            }
            t
        };
        for q in 0..16 {
            for j in 0..16 {
                assert_eq!(t[q * 16 + j], m[j * 16 + q], "output {q}, word {j}");
            }
        }
    }
}
