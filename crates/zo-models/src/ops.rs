//! The lm_head's loss: the negative log-likelihood of one label per hidden row,
//! `nll[i] = logsumexp(h[r] Wᵀ) − (h[r] Wᵀ)[label[i]]`, without materialising `[n, vocab]`
//! logits or a log-softmax (`[n, vocab]` is the biggest activation of the forward: 200 MB at
//! opt-125m, B=16, T=64 for the full LM loss): the vocabulary is taken in slices, and each
//! slice's per-row `(max, Σ exp)` combined online.
//!
//! On CPU zo's kernels do it ([`crate::cpu::head_nll`]); where they do not serve (other
//! devices, `--candle-ops`) each slice's f32 logits come from candle's matmul and their
//! statistics from candle's composite ops. Rows are independent, so the result does not depend
//! on the thread count.

use candle_core::{DType, Tensor, D};

use crate::cpu::HEAD_CHUNK;
use crate::{Error, Result};

/// Per row of a vocabulary slice's f32 logits `[n, width]` starting at column `v0`: `(max,
/// Σ exp(x − max), logit of the label or NaN when the label is outside the slice)`, as `n`
/// rows of 3, by candle's ops on the logits' device and one copy of `[n, 3]` to the host.
fn slice_stats(logits: &Tensor, labels: &[u32], v0: u32) -> Result<Vec<f32>> {
    let (n, width) = logits.dims2()?;
    let m = logits.max_keepdim(D::Minus1)?;
    let s = logits.broadcast_sub(&m)?.exp()?.sum_keepdim(D::Minus1)?;
    // Each label's column where it falls in this slice (0 elsewhere, then NaN below).
    let col = |l: u32| l.checked_sub(v0).filter(|&c| (c as usize) < width);
    let cols: Vec<u32> = labels.iter().map(|&l| col(l).unwrap_or(0)).collect();
    let idx = Tensor::from_vec(cols, (n, 1), logits.device())?;
    let picked = logits.contiguous()?.gather(&idx, D::Minus1)?;
    let mut stats = Tensor::cat(&[&m, &s, &picked], 1)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    for (st, &l) in stats.chunks_exact_mut(3).zip(labels) {
        if col(l).is_none() {
            st[2] = f32::NAN;
        }
    }
    Ok(stats)
}

/// `nll[i] = logsumexp(h[r] Wᵀ) − (h[r] Wᵀ)[labels[i]]` with `r = rows[i]`, for hidden rows
/// `h: [n, E]` and the tied lm_head `W: [vocab, E]`, without materialising `[n, vocab]` logits
/// on CPU: the vocabulary is processed in slices of [`HEAD_CHUNK`] and the logsumexp combined
/// online in f64 (`M' = max(M, m)`, `S' = S·e^{M−M'} + s·e^{m−M'}`); a row that scores several
/// labels (the candidates of one prompt) has its logits computed once. Other devices take the
/// same slices, one row per label. The logits are f32 on every path, whatever the model's
/// dtype.
///
/// `compute` is the arithmetic of the CPU product ([`crate::sgemm::Compute`]).
pub fn head_nll(
    h: &Tensor,
    w: &Tensor,
    rows: &[u32],
    labels: &[u32],
    compute: crate::sgemm::Compute,
) -> Result<Vec<f64>> {
    let (n, _) = h.dims2()?;
    let (vocab, _) = w.dims2()?;
    if labels.len() != rows.len() {
        return Err(Error::Input(format!(
            "head_nll: {} rows but {} labels",
            rows.len(),
            labels.len()
        )));
    }
    if let Some(&bad) = rows.iter().find(|&&r| r as usize >= n) {
        return Err(Error::Input(format!(
            "head_nll: row {bad} out of range for {n} hidden rows"
        )));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l as usize >= vocab) {
        return Err(Error::Input(format!(
            "head_nll: label {bad} out of range for vocab {vocab}"
        )));
    }
    // The CPU kernel reads `h` in place: a strided view (a narrowed hidden state, say) is made
    // contiguous here (a no-op for a contiguous tensor).
    if let Some(nll) = crate::cpu::head_nll(&h.contiguous()?, w, rows, labels, compute)? {
        return Ok(nll);
    }
    // One row per label for the paths below.
    let identity = rows.len() == n && rows.iter().enumerate().all(|(i, &r)| r as usize == i);
    let h = if identity {
        h.clone()
    } else {
        h.index_select(&Tensor::from_slice(rows, rows.len(), h.device())?, 0)?
    };
    // The logits in f32, as the CPU kernels compute them: a 16-bit model's logits rounded to
    // 16 bits (what candle's matmul returns in bf16/f16) are steps of 1/32–1/16 for
    // |logit| ≥ 4 in bf16, coarser than the change a ZO perturbation makes: f₊ and f₋ came
    // out equal and the step was 0 (`tests/candle_ops.rs`). A slice of the head at a time is
    // widened, so a 16-bit model's device memory holds no f32 copy of the whole head.
    let (h, n) = (&h.to_dtype(DType::F32)?, rows.len());
    let mut max = vec![f64::NEG_INFINITY; n];
    let mut sum = vec![0f64; n];
    let mut picked = vec![f64::NAN; n];
    let mut v0 = 0;
    while v0 < vocab {
        let width = HEAD_CHUNK.min(vocab - v0);
        let logits = h.matmul(&w.narrow(0, v0, width)?.to_dtype(DType::F32)?.t()?)?;
        let stats = slice_stats(&logits, labels, v0 as u32)?;
        for (i, st) in stats.chunks_exact(3).enumerate() {
            let (m, s, p) = (st[0] as f64, st[1] as f64, st[2]);
            if m > max[i] {
                sum[i] = sum[i] * (max[i] - m).exp() + s;
                max[i] = m;
            } else {
                sum[i] += s * (m - max[i]).exp();
            }
            if !p.is_nan() {
                picked[i] = p as f64;
            }
        }
        v0 += width;
    }
    Ok((0..n).map(|i| max[i] + sum[i].ln() - picked[i]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    /// `nll` of each label under the f64 logits of `h`'s row against `w` (both `[·, e]`).
    fn reference(h: &Tensor, w: &Tensor, rows: &[u32], labels: &[u32]) -> Vec<f64> {
        let f64s =
            |t: &Tensor| -> Vec<Vec<f64>> { t.to_dtype(DType::F64).unwrap().to_vec2().unwrap() };
        let (hv, wv) = (f64s(h), f64s(w));
        rows.iter()
            .zip(labels)
            .map(|(&r, &l)| {
                let row: Vec<f64> = wv
                    .iter()
                    .map(|w| w.iter().zip(&hv[r as usize]).map(|(a, b)| a * b).sum())
                    .collect();
                let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln() - row[l as usize]
            })
            .collect()
    }

    /// A slice's statistics by candle's ops (the device path): the max, Σ exp and the label's
    /// logit where it falls in the slice, NaN elsewhere.
    #[test]
    fn slice_stats_match_a_float64_reference() {
        let (n, v, v0) = (4, 300, 1000u32);
        let data: Vec<f32> = (0..n * v)
            .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0)
            .collect();
        let labels = [1000u32, 1299, 1300, 999];
        let t = Tensor::from_vec(data.clone(), (n, v), &Device::Cpu).unwrap();
        let got = slice_stats(&t, &labels, v0).unwrap();
        for (r, st) in got.chunks_exact(3).enumerate() {
            let row = &data[r * v..(r + 1) * v];
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let s: f64 = row.iter().map(|&x| (x as f64 - m as f64).exp()).sum();
            assert_eq!(st[0], m, "row {r}");
            assert!(
                (st[1] as f64 - s).abs() <= 1e-5 * s,
                "row {r}: {} vs {s}",
                st[1]
            );
            match labels[r].checked_sub(v0).filter(|&c| c < v as u32) {
                Some(c) => assert_eq!(st[2], row[c as usize], "row {r}"),
                None => assert!(st[2].is_nan(), "row {r}: {}", st[2]),
            }
        }
    }

    #[test]
    fn head_nll_matches_a_float64_reference() {
        let n = 5;
        // Vocabulary slices: a vocabulary not a multiple of the slice width, labels in
        // different slices.
        let (e, vocab) = (16, HEAD_CHUNK * 2 + 77);
        let h = Tensor::from_vec(
            (0..n * e)
                .map(|i| ((i * 31) % 17) as f32 / 5.0 - 1.5)
                .collect::<Vec<_>>(),
            (n, e),
            &Device::Cpu,
        )
        .unwrap();
        let w = Tensor::from_vec(
            (0..vocab * e)
                .map(|i| ((i * 7) % 23) as f32 / 11.0 - 1.0)
                .collect::<Vec<_>>(),
            (vocab, e),
            &Device::Cpu,
        )
        .unwrap();
        let labels: Vec<u32> = vec![0, 4095, 4096, vocab as u32 - 1, 8200];
        let rows: Vec<u32> = (0..n as u32).collect();
        let want = reference(&h, &w, &rows, &labels);
        let sliced = head_nll(&h, &w, &rows, &labels, crate::sgemm::Compute::F32).unwrap();
        for (a, b) in want.iter().zip(&sliced) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }

        // Rows scoring several labels (a prompt's candidates): each label's NLL is that of its
        // row repeated, labels in any slice, rows in any order; bit for bit on zo's kernels
        // in f32 (a row's logits do not depend on the other rows).
        let rows = [3u32, 0, 3, 3, 1, 0];
        let labels = [5u32, 4095, 4096, vocab as u32 - 1, 8200, 0];
        let repeated = h
            .index_select(&Tensor::new(&rows[..], &Device::Cpu).unwrap(), 0)
            .unwrap();
        let one_each: Vec<u32> = (0..rows.len() as u32).collect();
        for compute in [crate::sgemm::Compute::F32, crate::sgemm::Compute::Bf16] {
            let want = head_nll(&repeated, &w, &one_each, &labels, compute).unwrap();
            let got = head_nll(&h, &w, &rows, &labels, compute).unwrap();
            for (a, b) in want.iter().zip(&got) {
                if crate::sgemm::available() && compute == crate::sgemm::Compute::F32 {
                    assert_eq!(a.to_bits(), b.to_bits(), "{a} vs {b}");
                } else {
                    assert!((a - b).abs() < 1e-5, "{a} vs {b} ({compute:?})");
                }
            }
        }
        // bf16/f16 hidden rows and head: read widened (each vocabulary slice of the head
        // read in place by the product), so the NLL is that of the widened values, bit for
        // bit.
        for dt in [DType::BF16, DType::F16] {
            let (h16, w16) = (h.to_dtype(dt).unwrap(), w.to_dtype(dt).unwrap());
            let wide = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
            let compute = crate::sgemm::Compute::F32;
            let got = head_nll(&h16, &w16, &rows, &labels, compute).unwrap();
            let want = head_nll(&wide(&h16), &wide(&w16), &rows, &labels, compute).unwrap();
            for (a, b) in want.iter().zip(&got) {
                assert_eq!(a.to_bits(), b.to_bits(), "{dt:?}: {a} vs {b}");
            }
        }
        assert!(head_nll(&h, &w, &[0, 5], &[1, 2], crate::sgemm::Compute::F32).is_err());
        assert!(head_nll(&h, &w, &[0], &[1, 2], crate::sgemm::Compute::F32).is_err());
    }
}
