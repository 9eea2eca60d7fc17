//! MeZO's objectives on a [`Batch`], ported from `forward_wrap_with_option_len` in
//! princeton-nlp/MeZO `large_models/utils.py` (MEZO-REFERENCE 1.0, "Loss functions"), and the
//! candidate scoring / greedy generation of `Framework.forward` in `large_models/run.py`.
//!
//! Every function runs one forward pass and computes logits only at the hidden states that
//! predict option tokens (the lm_head is 31 % of opt-125m's FLOPs at T=64, and SST-2 needs one
//! row per sequence). Per-token NLLs are f32 on the device; reductions are f64 on the host, and
//! the returned losses are f64.

use crate::batch::Batch;
use crate::opt::{KvCache, OptModel};
use crate::{Error, Result};

/// Per-label NLLs of the batch's option tokens, with the row of each.
fn option_nll(model: &OptModel, batch: &Batch) -> Result<(Vec<usize>, Vec<f64>)> {
    batch.validate()?;
    let labels = batch.label_positions()?;
    if labels.is_empty() {
        // Still run the forward so that bad inputs are reported the same way.
        model.forward_hidden(&batch.ids, &batch.mask, batch.batch, batch.seq_len)?;
        return Ok((Vec::new(), Vec::new()));
    }
    let rows: Vec<u32> = labels.iter().map(|l| l.1).collect();
    let ids: Vec<u32> = labels.iter().map(|l| l.2).collect();
    let hidden =
        model.forward_hidden_rows(&batch.ids, &batch.mask, batch.batch, batch.seq_len, &rows)?;
    let nll = model.nll_from_hidden(&hidden, &ids)?;
    Ok((labels.iter().map(|l| l.0).collect(), nll))
}

/// Log-probabilities of each row's scored option tokens, in order (labels equal to the pad id
/// are skipped, as in MeZO).
pub fn option_token_logprobs(model: &OptModel, batch: &Batch) -> Result<Vec<Vec<f64>>> {
    let (rows, nll) = option_nll(model, batch)?;
    let mut out = vec![Vec::new(); batch.batch];
    for (r, v) in rows.into_iter().zip(nll) {
        out[r].push(-v);
    }
    Ok(out)
}

/// Candidate scores: each row's mean option-token log-probability (MeZO's default,
/// length-normalised score; `run.py` `forward`: `selected_log_probs[-option_len:].mean()`).
/// A row with no scored token gives NaN, as MeZO's `sum / 0` would.
pub fn mean_option_logprobs(model: &OptModel, batch: &Batch) -> Result<Vec<f64>> {
    Ok(option_token_logprobs(model, batch)?
        .into_iter()
        .map(|v| v.iter().sum::<f64>() / v.len() as f64)
        .collect())
}

/// The LM-style loss: cross-entropy averaged over every scored option token of the batch
/// (token-weighted, torch `CrossEntropyLoss(ignore_index=-100)` mean reduction). With
/// [`Batch::full_lm`] this is transformers' causal LM loss.
pub fn lm_loss(model: &OptModel, batch: &Batch) -> Result<f64> {
    let (_, nll) = option_nll(model, batch)?;
    if nll.is_empty() {
        return Err(Error::Input(
            "lm_loss: the batch has no scored token".into(),
        ));
    }
    Ok(nll.iter().sum::<f64>() / nll.len() as f64)
}

/// The candidates of one example: batch rows `first .. first + count`, the right one at
/// `first + correct`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CandidateGroup {
    pub first: usize,
    pub count: usize,
    pub correct: usize,
}

/// The classification loss (`--train_as_classification`): per example, cross-entropy over its
/// candidates with their mean option log-probs as logits; averaged over examples. Groups of
/// different sizes are handled one by one, as MeZO does.
pub fn classification_loss(
    model: &OptModel,
    batch: &Batch,
    groups: &[CandidateGroup],
) -> Result<f64> {
    if groups.is_empty() {
        return Err(Error::Input(
            "classification_loss: no candidate group".into(),
        ));
    }
    for (i, g) in groups.iter().enumerate() {
        if g.count == 0 || g.correct >= g.count || g.first + g.count > batch.batch {
            return Err(Error::Input(format!(
                "classification_loss: group {i} {g:?} does not fit a batch of {} rows",
                batch.batch
            )));
        }
    }
    let scores = mean_option_logprobs(model, batch)?;
    let mut total = 0.0;
    for g in groups {
        let s = &scores[g.first..g.first + g.count];
        let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + s.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
        total += lse - s[g.correct];
    }
    Ok(total / groups.len() as f64)
}

/// Index of the first maximum (torch's `argmax` tie rule).
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Settings of greedy decoding (MeZO: at most 50 new tokens, stop at `"\n"` or EOS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// Generation stops after emitting any of these (HF's `eos_token_id` list).
    pub stop_ids: Vec<u32>,
}

/// Greedy decoding of one prompt with a KV cache: transformers'
/// `generate(do_sample=False, num_beams=1)`. Returns the new tokens, including the stop token
/// when one was produced (as `generate` does). Also stops at `max_position_embeddings`
/// (MeZO: `max_new_tokens = min(50, 2048 − prompt_len)`).
pub fn greedy_generate(
    model: &OptModel,
    prompt: &[u32],
    opts: &GenerateOptions,
) -> Result<Vec<u32>> {
    Ok(greedy_generate_batch(model, &[prompt.to_vec()], opts)?.remove(0))
}

/// Greedy decoding of several prompts at once: left-padded with an attention mask, so each
/// row's tokens equal those of decoding it alone (positions come from the mask). A finished row
/// is fed pad tokens (masked out) until every row is done. (MeZO's batched non-differentiable
/// objective passes no mask at all; we do not copy that.)
pub fn greedy_generate_batch(
    model: &OptModel,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
) -> Result<Vec<Vec<u32>>> {
    if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
        return Err(Error::Input("generate: empty prompt".into()));
    }
    let pad = model.config().pad_token_id;
    let batch = Batch::left_padded(prompts, &vec![0; prompts.len()], pad, None)?;
    let (b, t) = (batch.batch, batch.seq_len);
    let budget = opts
        .max_new_tokens
        .min(model.config().max_position_embeddings.saturating_sub(t));
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut done = vec![false; b];
    if budget == 0 {
        return Ok(out);
    }
    let mut cache = KvCache::default();
    let hidden = model.forward_hidden_cached(&batch.ids, &batch.mask, b, t, &mut cache)?;
    let last: Vec<u32> = (0..b).map(|r| (r * t + t - 1) as u32).collect();
    let mut logits = model.logits_for_rows(&hidden, &last)?;
    for step in 0..budget {
        let rows: Vec<Vec<f32>> = logits.to_dtype(candle_core::DType::F32)?.to_vec2()?;
        let mut next = vec![pad; b];
        let mut mask = vec![0u8; b];
        for r in 0..b {
            if done[r] {
                continue;
            }
            let tok = argmax(&rows[r]);
            out[r].push(tok);
            next[r] = tok;
            mask[r] = 1;
            if opts.stop_ids.contains(&tok) {
                done[r] = true;
            }
        }
        if done.iter().all(|&d| d) || step + 1 == budget {
            break;
        }
        let hidden = model.forward_hidden_cached(&next, &mask, b, 1, &mut cache)?;
        logits = model.logits_from_hidden(&hidden)?;
    }
    Ok(out)
}
