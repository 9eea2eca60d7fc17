use super::*;
use crate::cpu::tests::in_pool;

fn data(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.0 - 1.0) * 0.7)
        .collect()
}

fn ours(n: usize, o: usize, k: usize, a: &[f32], w: &[f32], epi: &Epilogue<'_>) -> Vec<f32> {
    let mut c = vec![f32::NAN; n * o];
    assert!(
        sgemm_nt(n, o, k, a, w, &mut c, epi),
        "no kernel on this CPU"
    );
    c
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

#[test]
fn matches_f64_reference_on_odd_shapes() {
    if !available() {
        return;
    }
    // Edges in every direction: rows not a multiple of MR (and a single row), columns not a
    // multiple of NR (and one column), k = 1, k not a multiple of 8 or of KC, k spanning
    // several KC blocks, a column count spanning two NC blocks.
    let shapes = [
        (1, 1, 1),
        (1, 17, 5),
        (7, 1, 300),
        (5, 33, 1),
        (13, 31, 7),
        (6, 16, 8),
        (37, 45, 257),
        (200, 50, 530),
        (2, NC + 21, 9),
    ];
    for (si, &(n, o, k)) in shapes.iter().enumerate() {
        let a = data(n * k, 2 * si);
        let w = data(o * k, 2 * si + 1);
        let got = ours(n, o, k, &a, &w, &Epilogue::PLAIN);
        check(n, o, k, &a, &w, &Epilogue::PLAIN, &got);
    }
}

#[test]
fn epilogues_match_f64_reference() {
    if !available() {
        return;
    }
    let (n, o, k) = (19, 40, 263);
    let a = data(n * k, 11);
    let w = data(o * k, 12);
    let bias = data(o, 13);
    let res = data(n * o, 14);
    for (scale, bias, residual, relu) in [
        (0.125, Some(&bias[..]), None, false),
        (1.0, Some(&bias[..]), None, true),
        (1.0, Some(&bias[..]), Some(&res[..]), false),
        (1.0, None, Some(&res[..]), false),
        (-2.0, None, None, true),
    ] {
        let epi = Epilogue {
            scale,
            bias,
            residual,
            relu,
        };
        let got = ours(n, o, k, &a, &w, &epi);
        check(n, o, k, &a, &w, &epi, &got);
        if relu {
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
    let got = ours(n, o, 0, &[], &[], &epi);
    check(n, o, 0, &[], &[], &epi, &got);
}

#[test]
fn bit_identical_across_thread_counts() {
    if !available() {
        return;
    }
    // Several row blocks and KC blocks, an edge in both directions, and a short-and-wide
    // product (few rows: the split goes over panel groups instead).
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
            .map(|t| in_pool(t, || ours(n, o, k, &a, &w, &epi)))
            .collect();
        let same = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
        assert!(
            same(&runs[0], &runs[1]),
            "1 vs 2 threads differ at {n}x{o}x{k}"
        );
        assert!(
            same(&runs[0], &runs[2]),
            "1 vs 3 threads differ at {n}x{o}x{k}"
        );
    }
}

#[test]
fn rejects_mismatched_lengths() {
    let a = data(6, 1);
    let w = data(8, 2);
    let mut c = vec![7f32; 4];
    // a is 3×2, w is 4×2: fine as (3, 4, 2) but not as (2, 4, 3).
    assert!(!sgemm_nt(2, 4, 3, &a, &w, &mut c, &Epilogue::PLAIN));
    assert!(c.iter().all(|&v| v == 7.0), "c written on a rejected call");
    let bias = [0f32; 3];
    let epi = Epilogue {
        bias: Some(&bias),
        ..Epilogue::PLAIN
    };
    let mut c = vec![0f32; 12];
    assert!(!sgemm_nt(3, 4, 2, &a, &w, &mut c, &epi));
}
