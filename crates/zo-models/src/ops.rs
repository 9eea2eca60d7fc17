//! Loss kernels over logits: the negative log-likelihood of one label per row,
//! `nll[i] = logsumexp(logits[i, :]) − logits[i, label[i]]`, without materialising a
//! log-softmax (`[n, vocab]` is the biggest activation of the forward: 200 MB at opt-125m,
//! B=16, T=64 for the full LM loss).
//!
//! On CPU a custom op reads each row once for the max and once for Σ exp, in parallel over rows
//! (rayon), with a branch-free polynomial `exp` that the compiler vectorises. Other devices use
//! candle's composite ops. Rows are independent, so the result does not depend on the thread
//! count.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use crate::cpu::HEAD_CHUNK;
use crate::rows::max_sumexp;
use crate::{Error, Result};

/// `max(row) + ln Σ exp(row − max)`.
fn logsumexp(row: &[f32]) -> f64 {
    let (m, s) = max_sumexp(row);
    m as f64 + s.ln()
}

struct RowNll<'a> {
    labels: &'a [u32],
}

impl CustomOp1 for RowNll<'_> {
    fn name(&self) -> &'static str {
        "zo-row-nll"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, v) = layout.shape().dims2()?;
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("row-nll expects f32 logits");
        };
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("row-nll expects contiguous logits");
        };
        let data = &data[a..b];
        let out: Vec<f32> = data
            .par_chunks(v)
            .zip(self.labels.par_iter())
            .map(|(row, &lab)| (logsumexp(row) - row[lab as usize] as f64) as f32)
            .collect();
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }
}

/// `nll[i] = logsumexp(logits[i]) − logits[i, labels[i]]` for `logits: [n, vocab]` (any float
/// dtype; computed in f32). Returns an f32 tensor `[n]`.
pub fn row_nll(logits: &Tensor, labels: &[u32]) -> Result<Tensor> {
    let (n, v) = logits.dims2()?;
    if labels.len() != n {
        return Err(Error::Input(format!(
            "row_nll: {n} rows but {} labels",
            labels.len()
        )));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l as usize >= v) {
        return Err(Error::Input(format!(
            "row_nll: label {bad} out of range for vocab {v}"
        )));
    }
    let logits = logits.to_dtype(DType::F32)?.contiguous()?;
    if crate::cpu::kernels_serve(&logits) {
        return Ok(logits.apply_op1_no_bwd(&RowNll { labels })?);
    }
    let m = logits.max_keepdim(D::Minus1)?;
    let lse = (logits
        .broadcast_sub(&m)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        + &m)?;
    let idx = Tensor::from_slice(labels, (n, 1), logits.device())?;
    let picked = logits.gather(&idx, D::Minus1)?;
    Ok((lse - picked)?.squeeze(D::Minus1)?)
}

/// Per row of a vocabulary slice `[v0, v0 + width)`: `(max, Σ exp(x − max), logit of the
/// label or NaN when the label is outside the slice)`, as an f32 `[n, 3]`.
struct RowStats<'a> {
    labels: &'a [u32],
    v0: u32,
}

impl CustomOp1 for RowStats<'_> {
    fn name(&self) -> &'static str {
        "zo-row-stats"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, v) = layout.shape().dims2()?;
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("row-stats expects f32 logits");
        };
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("row-stats expects contiguous logits");
        };
        let out: Vec<[f32; 3]> = data[a..b]
            .par_chunks(v)
            .zip(self.labels.par_iter())
            .map(|(row, &lab)| {
                let (m, s) = max_sumexp(row);
                let picked = lab
                    .checked_sub(self.v0)
                    .and_then(|i| row.get(i as usize))
                    .copied()
                    .unwrap_or(f32::NAN);
                [m, s as f32, picked]
            })
            .collect();
        Ok((
            CpuStorage::F32(out.into_iter().flatten().collect()),
            Shape::from((n, 3)),
        ))
    }
}

/// `nll[i] = logsumexp(h[r] Wᵀ) − (h[r] Wᵀ)[labels[i]]` with `r = rows[i]`, for hidden rows
/// `h: [n, E]` and the tied lm_head `W: [vocab, E]`, without materialising `[n, vocab]` logits
/// on CPU: the vocabulary is processed in slices of [`HEAD_CHUNK`] and the logsumexp combined
/// online in f64 (`M' = max(M, m)`, `S' = S·e^{M−M'} + s·e^{m−M'}`); a row that scores several
/// labels (the candidates of one prompt) has its logits computed once. Other devices compute
/// the full logits of each label's row. The logits are f32 on every path, whatever the
/// model's dtype.
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
    // out equal and the step was 0 (`tests/candle_ops.rs`).
    let (h, n) = (&h.to_dtype(DType::F32)?, rows.len());
    if !crate::cpu::kernels_serve(h) {
        let logits = h.matmul(&w.to_dtype(DType::F32)?.t()?)?;
        return Ok(row_nll(&logits, labels)?
            .to_vec1::<f32>()?
            .into_iter()
            .map(f64::from)
            .collect());
    }
    let mut max = vec![f64::NEG_INFINITY; n];
    let mut sum = vec![0f64; n];
    let mut picked = vec![f64::NAN; n];
    let mut v0 = 0;
    while v0 < vocab {
        let width = HEAD_CHUNK.min(vocab - v0);
        let logits = h.matmul(&w.narrow(0, v0, width)?.to_dtype(DType::F32)?.t()?)?;
        let stats = logits
            .apply_op1_no_bwd(&RowStats {
                labels,
                v0: v0 as u32,
            })?
            .flatten_all()?
            .to_vec1::<f32>()?;
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
    #[test]
    fn row_nll_matches_a_float64_reference() {
        let (n, v) = (5, 3001);
        let data: Vec<f32> = (0..n * v)
            .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0)
            .collect();
        let labels: Vec<u32> = vec![0, 17, 3000, 1500, 2];
        let t = Tensor::from_vec(data.clone(), (n, v), &Device::Cpu).unwrap();
        let got = row_nll(&t, &labels).unwrap().to_vec1::<f32>().unwrap();
        for r in 0..n {
            let row = &data[r * v..(r + 1) * v];
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
            let want = lse - row[labels[r] as usize] as f64;
            assert!(
                (got[r] as f64 - want).abs() < 1e-5,
                "row {r}: {} vs {want}",
                got[r]
            );
        }
        assert!(row_nll(&t, &[0, 1]).is_err());
        // The sliced lm_head gives the same NLLs as the full logits (vocab not a multiple of the
        // slice width, labels in different slices).
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
        let full = row_nll(&h.matmul(&w.t().unwrap()).unwrap(), &labels)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let rows: Vec<u32> = (0..n as u32).collect();
        let sliced = head_nll(&h, &w, &rows, &labels, crate::sgemm::Compute::F32).unwrap();
        for (a, b) in full.iter().zip(&sliced) {
            assert!((*a as f64 - b).abs() < 1e-4, "{a} vs {b}");
        }
        assert!(row_nll(&t, &[0, 1, 2, 3, 3001]).is_err());

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
