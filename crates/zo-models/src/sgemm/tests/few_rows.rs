//! The few-row order ([`driver::few_rows`]) against the packed order and the f64 reference.

use super::*;

/// For every `n` of `rows`, `(o, k)` of `shapes` and epilogue: `isa`'s few-row order (what
/// `sgemm_nt_with` runs for few rows) gives the packed order's bits, and, with `reference`,
/// agrees with the f64 reference.
fn assert_few_rows_match_packed(
    isa: Isa,
    rows: &[usize],
    shapes: &[(usize, usize)],
    salt0: usize,
    reference: bool,
) {
    for (si, &n) in rows.iter().enumerate() {
        for (sj, &(o, k)) in shapes.iter().enumerate() {
            let salt = 10 * si + sj + salt0;
            let a = data(n * k, salt + 1);
            let w = data(o * k, salt + 2);
            let bias = data(o, salt + 3);
            let res = data(n * o, salt + 4);
            for epi in epilogues(&bias, &res) {
                let got = ours(isa, n, o, k, &a, &w, &epi);
                let mut want = vec![f32::NAN; n * o];
                assert!(sgemm_nt_packed_with(isa, n, o, k, &a, &w, &mut want, &epi));
                assert!(
                    same(&got, &want),
                    "{isa:?}: few-row and packed orders differ at {n}x{o}x{k}, {epi:?}"
                );
                if reference {
                    check(n, o, k, &a, &w, &epi, &got);
                }
            }
        }
    }
}

#[test]
fn few_row_order_gives_the_bits_of_the_packed_order() {
    if !Isa::Avx512.supported() {
        println!("few_row_order_gives_the_bits_of_the_packed_order: no AVX-512F here, skipped");
        return;
    }
    // Rows: one to four and the most of the wide tiles (`run_wide`), under a group, one group,
    // a pair of groups and one more, the most this order takes (and one past it, which the
    // packed order runs); columns: under a tile, a tile and an edge; `k`: under the 4-step
    // unroll and the 16-step block, odd, one block, and opt-125m's.
    let rows = [
        1,
        2,
        3,
        4,
        driver::few_rows::MAX_ROWS_WIDE,
        5,
        16,
        17,
        32,
        33,
        48,
        100,
        driver::few_rows::MAX_ROWS,
        129,
    ];
    let shapes = [
        (7, 1),
        (16, 3),
        (17, 4),
        (50, 77),
        (33, 768),
        (32, 16),
        (65, 33),
        (20, 1030),
    ];
    assert_few_rows_match_packed(Isa::Avx512, &rows, &shapes, 50, true);
}

#[test]
fn few_row_order_is_the_same_on_any_thread_count_and_for_any_slice_of_rows() {
    if !Isa::Avx512.supported() {
        println!("few_row_order_is_the_same_…: no AVX-512F here, skipped");
        return;
    }
    let (n, o, k) = (40, 1000, 300);
    let a = data(n * k, 61);
    let w = data(o * k, 62);
    let whole = in_pool(1, || ours(Isa::Avx512, n, o, k, &a, &w, &Epilogue::PLAIN));
    for t in [2, 3] {
        let got = in_pool(t, || ours(Isa::Avx512, n, o, k, &a, &w, &Epilogue::PLAIN));
        assert!(same(&whole, &got), "1 vs {t} threads differ");
    }
    // A row's values do not depend on the rows around it (a slice of a batch gives the bits
    // of the whole batch): rows 3..20 alone.
    let part = ours(
        Isa::Avx512,
        17,
        o,
        k,
        &a[3 * k..20 * k],
        &w,
        &Epilogue::PLAIN,
    );
    assert!(same(&whole[3 * o..20 * o], &part));
    // The same for products of at most `MAX_ROWS_WIDE` rows, whose tiles are shaped by the
    // row count: 6 rows against 2 of them alone and 1 of them alone.
    let n = 6;
    let whole = in_pool(1, || {
        ours(Isa::Avx512, n, o, k, &a[..n * k], &w, &Epilogue::PLAIN)
    });
    for t in [2, 3] {
        let got = in_pool(t, || {
            ours(Isa::Avx512, n, o, k, &a[..n * k], &w, &Epilogue::PLAIN)
        });
        assert!(same(&whole, &got), "6 rows: 1 vs {t} threads differ");
    }
    for (i0, rows) in [(2, 2), (5, 1)] {
        let part = ours(
            Isa::Avx512,
            rows,
            o,
            k,
            &a[i0 * k..(i0 + rows) * k],
            &w,
            &Epilogue::PLAIN,
        );
        assert!(
            same(&whole[i0 * o..(i0 + rows) * o], &part),
            "rows {i0}.. alone"
        );
    }
}

#[test]
fn avx2_few_row_order_gives_the_bits_of_the_packed_order() {
    if !Isa::Avx2.supported() {
        println!("avx2_few_row_order_…: no AVX2 here, skipped");
        return;
    }
    let rows = [
        1,
        7,
        8,
        9,
        16,
        17,
        24,
        40,
        driver::few_rows::MAX_ROWS_AVX2,
        129,
    ];
    let shapes = [(5, 1), (6, 3), (13, 4), (50, 77), (33, 768)];
    assert_few_rows_match_packed(Isa::Avx2, &rows, &shapes, 70, false);
}

/// Both tile widths of the wide few-row order (`wide_tile_cols`: 32 columns, or 16 where `k`
/// is long on a CPU with the smaller L2) give the packed order's bits on any CPU with
/// AVX-512F, whichever width this one's dispatch picks: one to four rows, `k` past the
/// prefetch limit and under it, edge tiles, every epilogue.
#[test]
fn wide_tiles_of_either_width_give_the_bits_of_the_packed_order() {
    if !Isa::Avx512.supported() {
        println!("wide_tiles_of_either_width: no AVX-512F here, skipped");
        return;
    }
    assert_eq!(driver::few_rows::wide_tile_cols(1, 3072, true), 32);
    assert_eq!(driver::few_rows::wide_tile_cols(1, 3072, false), 16);
    assert_eq!(driver::few_rows::wide_tile_cols(4, 768, false), 32);
    assert_eq!(driver::few_rows::wide_tile_cols(5, 768, true), 16);
    for n in 1..=4 {
        for (sj, &(o, k)) in [(50, 1030), (33, 3072), (20, 77)].iter().enumerate() {
            let salt = 10 * n + sj + 900;
            let a = data(n * k, salt + 1);
            let w = data(o * k, salt + 2);
            let bias = data(o, salt + 3);
            let res = data(n * o, salt + 4);
            for epi in epilogues(&bias, &res) {
                let mut want = vec![f32::NAN; n * o];
                assert!(sgemm_nt_packed_with(
                    Isa::Avx512,
                    n,
                    o,
                    k,
                    &a,
                    &w,
                    &mut want,
                    &epi
                ));
                let bias_scaled: Option<Vec<f32>> =
                    epi.bias.map(|b| b.iter().map(|&v| v * epi.scale).collect());
                for tw in [16, 32] {
                    let mut got = vec![MaybeUninit::new(f32::NAN); n * o];
                    // SAFETY: AVX-512F checked above; `a` is `[n, k]`, `w` `[o, k]`, `got`
                    // and the epilogue's slices `[n, o]` / `[o]`; `n ≤ 4`.
                    unsafe {
                        driver::few_rows::run_wide::<f32, { driver::few_rows::W_F32 }>(
                            tw,
                            n,
                            o,
                            k,
                            &a,
                            &w,
                            &mut got,
                            &epi,
                            bias_scaled.as_deref(),
                        )
                    };
                    // SAFETY: every element was written by the tiles (or was the NaN above).
                    let got: Vec<f32> = got.iter().map(|v| unsafe { v.assume_init() }).collect();
                    assert!(
                        same(&got, &want),
                        "{tw}-column tiles differ from the packed order at {n}x{o}x{k}, {epi:?}"
                    );
                }
            }
        }
    }
}

/// 16-bit weights read in place (the few-row order's registers for up to 8 rows, the packed
/// order's panels beyond) give the bits of the product of the widened weights in the same
/// arithmetic, f32 and bf16 (where this CPU has it): every row count of the wide tiles and
/// more (the few-row orders' range and past it), `k` with and without a tail of 16 and over
/// several `KC` blocks, `o` with partial tiles, every epilogue, special values among the
/// weights, on the best kernel and on each f32 kernel of this CPU; and `k = 0`.
#[test]
fn sixteen_bit_weights_in_place_give_the_widened_product() {
    let computes: Vec<Compute> = [Compute::F32, Compute::Bf16]
        .into_iter()
        .filter(|c| c.isa().is_some_and(|i| i.supported()))
        .collect();
    for (o, k) in [(45, 37), (70, 768), (33, 1030)] {
        let w32 = data(o * k, 52);
        let mut wb: Vec<half::bf16> = w32.iter().map(|&v| half::bf16::from_f32(v)).collect();
        let mut wh: Vec<half::f16> = w32.iter().map(|&v| half::f16::from_f32(v)).collect();
        for (i, bits) in [0x0000u16, 0x8000, 0x0001, 0x7f7f, 0x0080]
            .into_iter()
            .enumerate()
        {
            wb[i * 7] = half::bf16::from_bits(bits);
            wh[i * 7 + 1] = half::f16::from_bits(bits | 0x0001);
        }
        let wide_b: Vec<f32> = wb.iter().map(|v| v.to_f32()).collect();
        let wide_h: Vec<f32> = wh.iter().map(|v| v.to_f32()).collect();
        for n in (1..=MAX_ROWS_W16).chain([9, 17, 40, 130]) {
            let a = data(n * k, 53 + n);
            let bias = data(o, 54);
            let res = data(n * o, 55);
            for (&compute, epi) in computes
                .iter()
                .flat_map(|c| epilogues(&bias, &res).into_iter().map(move |e| (c, e)))
            {
                for (w16, wide) in [(W16::Bf16(&wb), &wide_b), (W16::F16(&wh), &wide_h)] {
                    let mut v: Vec<f32> = Vec::with_capacity(n * o);
                    let dst = &mut v.spare_capacity_mut()[..n * o];
                    assert!(sgemm_nt_uninit_w16(compute, n, o, k, &a, w16, dst, &epi));
                    // SAFETY: it returned true, so the first `n·o` elements are written.
                    unsafe { v.set_len(n * o) };
                    let mut want: Vec<f32> = Vec::with_capacity(n * o);
                    let dst = &mut want.spare_capacity_mut()[..n * o];
                    assert!(sgemm_nt_uninit_compute(
                        compute, n, o, k, &a, wide, dst, &epi
                    ));
                    // SAFETY: as above.
                    unsafe { want.set_len(n * o) };
                    assert!(
                        same(&v, &want),
                        "{compute:?}: n {n} o {o} k {k} epi {epi:?}"
                    );
                }
            }
            // Each f32 kernel of this CPU (the AVX2 few-row tiles and packing included), as
            // a CPU with only that kernel would run it.
            for isa in kernels("sixteen_bit_weights_in_place_give_the_widened_product") {
                let epi = epilogues(&bias, &res)[6];
                let dense = driver::Dense { a: &a, k };
                let mut v = vec![f32::NAN; n * o];
                // SAFETY: `MaybeUninit<f32>` has `f32`'s layout; only values are written.
                let dst = unsafe { &mut *(&mut v[..] as *mut [f32] as *mut [MaybeUninit<f32>]) };
                let w = driver::Widened(&wh[..]);
                assert!(run_src(isa, n, o, k, &dense, &w, dst, &epi, true));
                let want = ours(isa, n, o, k, &a, &wide_h, &epi);
                assert!(same(&v, &want), "{isa:?}: n {n} o {o} k {k}");
            }
        }
    }
    // k = 0: the epilogue of zero sums, as with f32 weights.
    let (bias, none) = ([0.5f32, -1.0], [half::bf16::ONE; 0]);
    let epi = Epilogue {
        scale: 2.0,
        bias: Some(&bias),
        residual: None,
        relu: true,
    };
    let mut v: Vec<f32> = Vec::with_capacity(4);
    let dst = &mut v.spare_capacity_mut()[..4];
    assert!(sgemm_nt_uninit_w16(
        Compute::F32,
        2,
        2,
        0,
        &[],
        W16::Bf16(&none),
        dst,
        &epi
    ));
    // SAFETY: it returned true, so the 4 elements are written.
    unsafe { v.set_len(4) };
    assert_eq!(v, [1.0, 0.0, 1.0, 0.0]);
}
