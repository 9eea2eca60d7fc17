//! Evaluation as MeZO does it (`Framework.evaluate`): candidate scoring (mean option log-prob,
//! first argmax wins) with accuracy, or greedy generation (≤ max_new_tokens, stop at "\n" or
//! EOS, decoded with skip_special_tokens + clean-up, stripped) with SQuAD F1.

use std::ops::Range;

use anyhow::Result;
use serde::Serialize;
use zo_models::scoring::{
    greedy_generate, mean_option_logprobs_shared, Candidate, GenerateOptions,
};
use zo_models::tokenizer::Tokenizer;
use zo_models::OptModel;
use zo_tasks::{argmax, f1, generation_answer, EncodedEval};

/// Candidate rows scored per call at evaluation (whole examples; one prompt pass and one
/// continuation pass per call).
pub const EVAL_BATCH_ROWS: usize = 32;

/// One example's evaluation, as `--predictions` writes it.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
    /// Generation: how many tokens were generated (the stop token included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_tokens: Option<usize>,
    pub prediction: serde_json::Value,
    pub gold: serde_json::Value,
    /// 1/0 for accuracy, the F1 for generation.
    pub score: f64,
}

/// The groups `examples` are evaluated in, in order: up to [`EVAL_BATCH_ROWS`] candidate rows
/// of whole examples, a generation example alone. Fixed by the examples alone, so that a split
/// over ranks by whole groups scores every example as one process does.
pub fn groups(examples: &[(String, EncodedEval)]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < examples.len() {
        let mut j = i;
        let mut rows = 0;
        while j < examples.len() {
            let EncodedEval::Candidates { options, .. } = &examples[j].1 else {
                break;
            };
            if rows > 0 && rows + options.len() > EVAL_BATCH_ROWS {
                break;
            }
            rows += options.len();
            j += 1;
        }
        // A generation example (or a candidate example alone past the budget) is a group of one.
        let j = j.max(i + 1);
        out.push(i..j);
        i = j;
    }
    out
}

/// Evaluates `examples` (with their ids) and returns the metric (a fraction) and the predictions.
/// Candidate sequences of several examples are scored together, up to [`EVAL_BATCH_ROWS`]
/// rows, and the candidates of one example share the forward pass of their prompt
/// ([`mean_option_logprobs_shared`]: the prompt once, into a KV cache, then each option's
/// tokens but its last after it; one-token options need the prompt's pass alone). The grouping is fixed (not taken from the training batch size) because padding
/// changes the f32 rounding of the scores at the 1e-7 level: every evaluation of the same
/// weights on the same examples gives the same bits.
pub fn evaluate(
    model: &OptModel,
    tokenizer: &Tokenizer,
    examples: &[(String, EncodedEval)],
    max_new_tokens: usize,
    progress: impl FnMut(usize),
) -> Result<(f64, Vec<Prediction>)> {
    let preds = evaluate_groups(
        model,
        tokenizer,
        examples,
        &groups(examples),
        max_new_tokens,
        progress,
    )?;
    anyhow::ensure!(!preds.is_empty(), "no examples to evaluate");
    Ok((mean_score(preds.iter().map(|p| p.score)), preds))
}

/// Accuracy and F1 are both the mean of the per-example scores (summed in order).
pub fn mean_score(scores: impl ExactSizeIterator<Item = f64>) -> f64 {
    let n = scores.len();
    scores.sum::<f64>() / n as f64
}

/// The predictions of the examples of `groups` (ranges of [`groups`]), in order; `progress`
/// gets the index past each group done.
pub fn evaluate_groups(
    model: &OptModel,
    tokenizer: &Tokenizer,
    examples: &[(String, EncodedEval)],
    groups: &[Range<usize>],
    max_new_tokens: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Prediction>> {
    let mut preds: Vec<Prediction> =
        Vec::with_capacity(groups.iter().map(|g| g.len()).sum::<usize>());
    for g in groups {
        let (i, j) = (g.start, g.end);
        match &examples[i].1 {
            EncodedEval::Candidates { .. } => {
                // Each example's prompt runs once, its candidates continue from its cache.
                let group: Vec<Vec<Candidate>> = examples[i..j]
                    .iter()
                    .filter_map(|(_, e)| match e {
                        EncodedEval::Candidates { options, .. } => Some(
                            options
                                .iter()
                                .map(|o| Candidate {
                                    ids: &o.ids,
                                    option_len: o.option_len,
                                })
                                .collect(),
                        ),
                        EncodedEval::Generation { .. } => None,
                    })
                    .collect();
                let scores = mean_option_logprobs_shared(model, &group)?.scores;
                let mut at = 0;
                for (id, e) in &examples[i..j] {
                    if let EncodedEval::Candidates { options, correct } = e {
                        let s = scores[at..at + options.len()].to_vec();
                        at += options.len();
                        let p = argmax(&s).unwrap_or(0);
                        let ok = correct.contains(&p);
                        preds.push(Prediction {
                            id: id.clone(),
                            scores: Some(s),
                            generated: None,
                            new_tokens: None,
                            prediction: p.into(),
                            gold: serde_json::json!(correct),
                            score: if ok { 1.0 } else { 0.0 },
                        });
                    }
                }
            }
            EncodedEval::Generation {
                prompt,
                gold_answers,
            } => {
                let opts = GenerateOptions {
                    max_new_tokens,
                    stop_ids: vec![tokenizer.newline_id()?, model.config().eos_token_id],
                };
                // The prompts were truncated to leave the budget; a prompt that still fills
                // the model's positions would silently generate nothing.
                let positions = model.config().max_position_embeddings;
                anyhow::ensure!(
                    prompt.ids.len() < positions,
                    "{}: the prompt has {} tokens, leaving no room for a new token within the model's {positions} positions (lower task.max_length)",
                    examples[i].0,
                    prompt.ids.len()
                );
                let new = greedy_generate(model, &prompt.ids, &opts)?;
                let text = generation_answer(&tokenizer.decode(&new, true, false)?);
                let s = f1(&text, gold_answers);
                preds.push(Prediction {
                    id: examples[i].0.clone(),
                    scores: None,
                    generated: Some(text.clone()),
                    new_tokens: Some(new.len()),
                    prediction: text.into(),
                    gold: serde_json::json!(gold_answers),
                    score: s,
                });
            }
        }
        progress(j);
    }
    Ok(preds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zo_tasks::EncodedSeq;

    fn seq() -> EncodedSeq {
        EncodedSeq {
            ids: vec![1, 2],
            option_len: 1,
            truncated: false,
        }
    }

    fn cands(k: usize) -> (String, EncodedEval) {
        (
            "c".into(),
            EncodedEval::Candidates {
                options: vec![seq(); k],
                correct: vec![0],
            },
        )
    }

    #[test]
    fn groups_cover_the_examples_in_order_within_the_row_budget() {
        let gen = (
            "g".to_string(),
            EncodedEval::Generation {
                prompt: seq(),
                gold_answers: vec![],
            },
        );
        let mut ex = vec![cands(2); 20];
        ex.push(cands(EVAL_BATCH_ROWS + 3));
        ex.push(gen.clone());
        ex.push(gen);
        ex.extend(vec![cands(5); 9]);
        let g = groups(&ex);
        let flat: Vec<usize> = g.iter().flat_map(|r| r.clone()).collect();
        assert_eq!(flat, (0..ex.len()).collect::<Vec<_>>());
        let rows = |r: &Range<usize>| -> usize {
            ex[r.clone()]
                .iter()
                .map(|(_, e)| match e {
                    EncodedEval::Candidates { options, .. } => options.len(),
                    EncodedEval::Generation { .. } => 1,
                })
                .sum()
        };
        assert!(g.iter().all(|r| r.len() == 1 || rows(r) <= EVAL_BATCH_ROWS));
        // 16 two-row examples fill the first group; the oversized example and each generation
        // example stand alone.
        assert_eq!(g[0], 0..EVAL_BATCH_ROWS / 2);
        assert!(g.contains(&(20..21)) && g.contains(&(21..22)) && g.contains(&(22..23)));
    }
}
