//! MeZO's objectives on a [`Batch`], ported from `forward_wrap_with_option_len` in
//! princeton-nlp/MeZO `large_models/utils.py` (docs/PROTOCOL.md 1.0, "Loss functions"), and the
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

/// One candidate sequence: the prompt followed by the option, whose last `option_len` tokens
/// are scored.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub ids: &'a [u32],
    pub option_len: usize,
}

/// What [`mean_option_logprobs_shared`] returns.
#[derive(Clone, Debug)]
pub struct SharedScores {
    /// [`mean_option_logprobs`] of every candidate, example after example.
    pub scores: Vec<f64>,
    /// Token positions the forward passes ran (padding excluded).
    pub tokens_run: usize,
    /// Token positions of the candidates taken one by one (what scoring them unshared runs).
    pub tokens_unshared: usize,
}

/// Candidate scoring where the candidates of one example share the forward pass of their
/// common prompt: the prompts of all `examples` run once (left-padded, one row each, into a KV
/// cache), the cache is repeated for each example's candidates, and only the rest of each
/// candidate runs after it (right-padded). Equal to [`mean_option_logprobs`] of the candidates
/// bit for bit where [`OptModel::rows_independent`] (a query's attention depends on the keys
/// it sees alone, whatever the padding and the pass they came from); elsewhere up to float
/// rounding (~1e-7).
///
/// The shared prompt of an example is the longest common prefix of its candidates' ids, cut
/// at the first option token of each: the prompt pass's last position predicts every
/// candidate's first option token, so candidates with one-token options (SST-2, RTE, …) need
/// no second pass at all. A candidate's last token predicts nothing and is never run. Scored
/// labels equal to the pad id are skipped, as in MeZO; a candidate with no scored token gets
/// NaN.
pub fn mean_option_logprobs_shared(
    model: &OptModel,
    examples: &[Vec<Candidate<'_>>],
) -> Result<SharedScores> {
    mean_option_logprobs_shared_to(model, examples, None)
}

/// The padded widths of [`mean_option_logprobs_shared`]'s two passes over a batch: the
/// longest shared prompt and the longest rest of a candidate after it, its last token left out
/// (0: the prompt pass scores every candidate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedWidths {
    pub prompt: usize,
    pub rest: usize,
}

/// Each example's shared prompt length: the longest common prefix of its candidates' ids, cut
/// at each candidate's first option token (before its last token when it has no option).
fn shared_prefixes(examples: &[Vec<Candidate<'_>>]) -> Vec<usize> {
    examples
        .iter()
        .map(|cs| {
            let Some(first) = cs.first() else { return 0 };
            cs.iter().fold(first.ids.len(), |p, c| {
                let common = first
                    .ids
                    .iter()
                    .zip(c.ids)
                    .take(p)
                    .take_while(|(a, b)| a == b)
                    .count();
                let keep = if c.option_len > 0 {
                    c.ids.len() - c.option_len
                } else {
                    c.ids.len().saturating_sub(1)
                };
                common.min(keep)
            })
        })
        .collect()
}

/// The widths [`mean_option_logprobs_shared`] pads `examples` to.
pub fn shared_widths(examples: &[Vec<Candidate<'_>>]) -> SharedWidths {
    let prefix = shared_prefixes(examples);
    let prompt = prefix.iter().copied().max().unwrap_or(0);
    let rest = examples
        .iter()
        .zip(&prefix)
        .flat_map(|(cs, &p)| {
            cs.iter()
                .map(move |c| (c.ids.len() - 1).saturating_sub(if prompt > 0 { p } else { 0 }))
        })
        .max()
        .unwrap_or(0);
    SharedWidths { prompt, rest }
}

/// [`mean_option_logprobs_shared`] with both passes padded to `widths` (at least this batch's
/// own [`shared_widths`]) instead of this batch's own: with the widths of a larger batch, the
/// scores of a slice of it equal the whole batch's bit for bit (every kernel computes a row
/// independently of the others; only the padded width could differ, and where
/// [`OptModel::rows_independent`] not even that changes a row's bits).
pub fn mean_option_logprobs_shared_to(
    model: &OptModel,
    examples: &[Vec<Candidate<'_>>],
    widths: Option<SharedWidths>,
) -> Result<SharedScores> {
    let pad = model.config().pad_token_id;
    let cands: Vec<(usize, &Candidate<'_>)> = examples
        .iter()
        .enumerate()
        .flat_map(|(e, c)| c.iter().map(move |c| (e, c)))
        .collect();
    if cands.is_empty() {
        return Err(Error::Input("scoring: no candidate".into()));
    }
    for (e, c) in &cands {
        if c.ids.is_empty() || c.option_len > c.ids.len() {
            return Err(Error::Input(format!(
                "scoring: example {e} has a candidate of {} tokens with option_len {}",
                c.ids.len(),
                c.option_len
            )));
        }
    }
    let tokens_unshared = cands.iter().map(|(_, c)| c.ids.len()).sum();
    let prefix = shared_prefixes(examples);
    let own = shared_widths(examples);
    let w = widths.unwrap_or(own);
    if w.prompt < own.prompt || w.rest < own.rest {
        return Err(Error::Input(format!(
            "scoring: widths {w:?} do not hold this batch's {own:?}"
        )));
    }
    let plen = w.prompt;
    let clen = w.rest;
    let rows = cands.len();
    let n = examples.len();
    // Tokens of each candidate run by the prompt pass.
    let skip_of = |e: usize| if plen > 0 { prefix[e] } else { 0 };
    // Each scored token t is predicted by position t − 1's hidden state: the prompt's last
    // position (t − 1 = skip − 1, the first option token) is the prompt pass's, every later one
    // the rest pass's. The last token of a candidate predicts nothing, so it is not run.
    let mut from_prompt: (Vec<u32>, Vec<u32>, Vec<usize>) = Default::default();
    let mut from_rest: (Vec<u32>, Vec<u32>, Vec<usize>) = Default::default();
    for (r, &(e, c)) in cands.iter().enumerate() {
        let skip = skip_of(e);
        for t in c.ids.len() - c.option_len..c.ids.len() {
            if c.ids[t] == pad || t == 0 {
                continue;
            }
            let (list, row) = if t == skip {
                (&mut from_prompt, e)
            } else if t > skip {
                (&mut from_rest, r * clen + t - 1 - skip)
            } else {
                return Err(Error::Input(format!(
                    "scoring: example {e}: a scored token inside the shared prompt"
                )));
            };
            list.0.push(row as u32);
            list.1.push(c.ids[t]);
            list.2.push(r);
        }
    }
    let mut sums = vec![(0f64, 0usize); rows];
    let mut add = |hidden: &candle_core::Tensor,
                   (idx, labels, of): (Vec<u32>, Vec<u32>, Vec<usize>)|
     -> Result<()> {
        if labels.is_empty() {
            return Ok(());
        }
        let nll = model.nll_at(hidden, &idx, &labels)?;
        for (r, v) in of.into_iter().zip(nll) {
            sums[r].0 -= v;
            sums[r].1 += 1;
        }
        Ok(())
    };
    let mut cache = KvCache::default();
    let mut tokens_run = 0;
    if plen > 0 {
        let mut ids = vec![pad; n * plen];
        let mut mask = vec![0u8; n * plen];
        for (e, cs) in examples.iter().enumerate() {
            let p = prefix[e];
            if let Some(c) = cs.first() {
                ids[e * plen + plen - p..(e + 1) * plen].copy_from_slice(&c.ids[..p]);
                mask[e * plen + plen - p..(e + 1) * plen].fill(1);
            }
            tokens_run += p;
        }
        // The hidden state at each prompt's last position. With no rest to run (one-token
        // options: SST-2, RTE, …) the prompts are the only pass, and its last layer runs at
        // those positions only; which path runs depends on the widths alone, so a slice padded
        // to a batch's widths gets the batch's bits.
        let last: Vec<u32> = (0..n).map(|e| (e * plen + plen - 1) as u32).collect();
        let hidden_last = if clen == 0 {
            model.forward_hidden_rows(&ids, &mask, n, plen, &last)?
        } else {
            let hidden = model.forward_hidden_cached(&ids, &mask, n, plen, &mut cache)?;
            let last = candle_core::Tensor::from_slice(&last, n, hidden.device())?;
            hidden.index_select(&last, 0)?
        };
        add(&hidden_last, from_prompt)?;
        if clen > 0 {
            let of_row: Vec<u32> = cands.iter().map(|(e, _)| *e as u32).collect();
            cache = cache.select_rows(&of_row)?;
        }
    }
    if clen > 0 {
        // The rest of each candidate but its last token, right-padded.
        let mut ids = vec![pad; rows * clen];
        let mut mask = vec![0u8; rows * clen];
        for (r, &(e, c)) in cands.iter().enumerate() {
            let tail = &c.ids[skip_of(e)..c.ids.len() - 1];
            ids[r * clen..r * clen + tail.len()].copy_from_slice(tail);
            mask[r * clen..r * clen + tail.len()].fill(1);
            tokens_run += tail.len();
        }
        let hidden = model.forward_hidden_cached(&ids, &mask, rows, clen, &mut cache)?;
        add(&hidden, from_rest)?;
    }
    Ok(SharedScores {
        scores: sums.iter().map(|&(s, n)| s / n as f64).collect(),
        tokens_run,
        tokens_unshared,
    })
}

/// The LM-style loss: cross-entropy averaged over every scored option token of the batch
/// (token-weighted, torch `CrossEntropyLoss(ignore_index=-100)` mean reduction). With
/// [`Batch::full_lm`] this is transformers' causal LM loss.
pub fn lm_loss(model: &OptModel, batch: &Batch) -> Result<f64> {
    let nll = option_token_nlls(model, batch)?;
    if nll.is_empty() {
        return Err(Error::Input(
            "lm_loss: the batch has no scored token".into(),
        ));
    }
    Ok(nll.iter().sum::<f64>() / nll.len() as f64)
}

/// The NLLs of the batch's scored option tokens, row after row: the terms [`lm_loss`] averages
/// (an empty vector when no token is scored).
pub fn option_token_nlls(model: &OptModel, batch: &Batch) -> Result<Vec<f64>> {
    Ok(option_nll(model, batch)?.1)
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
    let losses = classification_losses(model, batch, groups)?;
    let mut total = 0.0;
    for l in &losses {
        total += l;
    }
    Ok(total / groups.len() as f64)
}

/// The per-example terms [`classification_loss`] averages, one per group, in order.
pub fn classification_losses(
    model: &OptModel,
    batch: &Batch,
    groups: &[CandidateGroup],
) -> Result<Vec<f64>> {
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
    Ok(candidate_ce_terms(&scores, groups))
}

/// The cross-entropy of each group's scores against its correct one, group after group.
fn candidate_ce_terms(scores: &[f64], groups: &[CandidateGroup]) -> Vec<f64> {
    groups
        .iter()
        .map(|g| {
            let s = &scores[g.first..g.first + g.count];
            let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + s.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
            lse - s[g.correct]
        })
        .collect()
}

/// [`classification_losses`] where the candidates of an example share their prompt's forward
/// pass ([`mean_option_logprobs_shared_to`]): `examples[i]` are example `i`'s candidates and
/// `correct[i]` the index of its right one; one term per example. Equal to
/// [`classification_losses`] of the same sequences (bit for bit where
/// [`OptModel::rows_independent`]); for SST-2 (two
/// one-token options) it runs each prompt once instead of twice. `widths` pads the passes to a
/// larger batch's [`shared_widths`], so that a slice of that batch gives the same bits as the
/// whole (row-independent kernels, equal padding).
pub fn classification_losses_shared(
    model: &OptModel,
    examples: &[Vec<Candidate<'_>>],
    correct: &[usize],
    widths: Option<SharedWidths>,
) -> Result<Vec<f64>> {
    if examples.is_empty() || examples.len() != correct.len() {
        return Err(Error::Input(format!(
            "classification_loss_shared: {} examples with {} correct indices",
            examples.len(),
            correct.len()
        )));
    }
    let mut groups = Vec::with_capacity(examples.len());
    let mut first = 0;
    for (i, (cs, &c)) in examples.iter().zip(correct).enumerate() {
        if cs.is_empty() || c >= cs.len() {
            return Err(Error::Input(format!(
                "classification_loss_shared: example {i} has {} candidates, correct {c}",
                cs.len()
            )));
        }
        groups.push(CandidateGroup {
            first,
            count: cs.len(),
            correct: c,
        });
        first += cs.len();
    }
    let scores = mean_option_logprobs_shared_to(model, examples, widths)?.scores;
    Ok(candidate_ce_terms(&scores, &groups))
}

/// The mean of [`classification_losses_shared`] (summed in order).
pub fn classification_loss_shared(
    model: &OptModel,
    examples: &[Vec<Candidate<'_>>],
    correct: &[usize],
) -> Result<f64> {
    let terms = classification_losses_shared(model, examples, correct, None)?;
    let mut total = 0.0;
    for t in &terms {
        total += t;
    }
    Ok(total / terms.len() as f64)
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
/// row's tokens equal those of decoding it alone (positions come from the mask; each row's
/// budget is its own, `max_new_tokens` or what its positions leave). A finished row is fed pad
/// tokens (masked out) until every row is done. Where [`OptModel::rows_independent`] (f32
/// products on the CPU over f32, bf16 or f16 weights, no prefix) a row's logits are its
/// logits alone bit for bit; elsewhere they may
/// differ in the last bits, so a near-tie could decode differently. (MeZO's batched
/// non-differentiable objective passes no mask at all; we do not copy that.)
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
    let positions = model.config().max_position_embeddings;
    let budget: Vec<usize> = prompts
        .iter()
        .map(|p| opts.max_new_tokens.min(positions.saturating_sub(p.len())))
        .collect();
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut done: Vec<bool> = budget.iter().map(|&n| n == 0).collect();
    if done.iter().all(|&d| d) {
        return Ok(out);
    }
    let mut cache = KvCache::default();
    let hidden = model.forward_hidden_cached(&batch.ids, &batch.mask, b, t, &mut cache)?;
    let last: Vec<u32> = (0..b).map(|r| (r * t + t - 1) as u32).collect();
    let mut logits = model.logits_for_rows(&hidden, &last)?;
    loop {
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
            if opts.stop_ids.contains(&tok) || out[r].len() == budget[r] {
                done[r] = true;
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        let hidden = model.forward_hidden_cached(&next, &mask, b, 1, &mut cache)?;
        logits = model.logits_from_hidden(&hidden)?;
    }
    Ok(out)
}
