//! Evaluation as MeZO does it (`Framework.evaluate`): candidate scoring (mean option log-prob,
//! first argmax wins) with accuracy, or greedy generation (≤ max_new_tokens, stop at "\n" or
//! EOS, decoded with skip_special_tokens + clean-up, stripped) with SQuAD F1.

use std::ops::Range;

use anyhow::Result;
use serde::Serialize;
use zo_models::scoring::{
    greedy_generate, greedy_generate_batch, mean_option_logprobs_shared, Candidate, GenerateOptions,
};
use zo_models::tokenizer::Tokenizer;
use zo_models::OptModel;
use zo_tasks::{argmax, f1, generation_answer, EncodedEval};

/// Candidate rows scored per call at evaluation (whole examples; one prompt pass and one
/// continuation pass per call).
pub const EVAL_BATCH_ROWS: usize = 32;

/// Generation examples decoded together at evaluation, at most (consecutive ones): a decoding
/// step reads every weight once for all of its rows.
pub const EVAL_GENERATE_ROWS: usize = 8;

/// The padded prompt tokens of a group of generation examples, at most (`rows × longest`):
/// bounds the KV cache and the prompt pass's activations.
pub const EVAL_GENERATE_TOKENS: usize = 8192;

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
/// of whole examples, or up to [`EVAL_GENERATE_ROWS`] generation examples within
/// [`EVAL_GENERATE_TOKENS`]. Fixed by the examples alone, so that a split over ranks by whole
/// groups scores every example as one process does.
pub fn groups(examples: &[(String, EncodedEval)]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < examples.len() {
        if let EncodedEval::Generation { .. } = &examples[i].1 {
            let mut j = i;
            let mut longest = 0;
            while let Some((_, EncodedEval::Generation { prompt, .. })) = examples.get(j) {
                let l = longest.max(prompt.ids.len());
                let full = j - i == EVAL_GENERATE_ROWS || (j - i + 1) * l > EVAL_GENERATE_TOKENS;
                if j > i && full {
                    break;
                }
                longest = l;
                j += 1;
            }
            out.push(i..j);
            i = j;
            continue;
        }
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
/// tokens but its last after it; one-token options need the prompt's pass alone); up to
/// [`EVAL_GENERATE_ROWS`] generation examples are decoded together. The grouping is fixed (not
/// taken from the training batch size): where `OptModel::rows_independent` an example's bits
/// do not depend on its group, elsewhere padding changes the rounding at the 1e-7 level, and either way every
/// evaluation of the same weights on the same examples gives the same bits.
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
            EncodedEval::Generation { .. } => {
                let opts = GenerateOptions {
                    max_new_tokens,
                    stop_ids: vec![tokenizer.newline_id()?, model.config().eos_token_id],
                };
                let mut prompts = Vec::with_capacity(j - i);
                for (id, e) in &examples[i..j] {
                    let EncodedEval::Generation { prompt, .. } = e else {
                        anyhow::bail!("{id}: a candidate example in a group of generation ones");
                    };
                    // The prompts were truncated to leave the budget; a prompt that still
                    // fills the model's positions would silently generate nothing.
                    let positions = model.config().max_position_embeddings;
                    anyhow::ensure!(
                        prompt.ids.len() < positions,
                        "{id}: the prompt has {} tokens, leaving no room for a new token within the model's {positions} positions (lower task.max_length)",
                        prompt.ids.len()
                    );
                    prompts.push(prompt.ids.clone());
                }
                // Decoded together where a row's logits are its logits alone (the same
                // tokens as MeZO's one prompt at a time), elsewhere one by one.
                let outs = if model.rows_independent() {
                    greedy_generate_batch(model, &prompts, &opts)?
                } else {
                    prompts
                        .iter()
                        .map(|p| greedy_generate(model, p, &opts))
                        .collect::<zo_models::Result<_>>()?
                };
                for ((id, e), new) in examples[i..j].iter().zip(outs) {
                    let EncodedEval::Generation { gold_answers, .. } = e else {
                        continue;
                    };
                    let text = generation_answer(&tokenizer.decode(&new, true, false)?);
                    let s = f1(&text, gold_answers);
                    preds.push(Prediction {
                        id: id.clone(),
                        scores: None,
                        generated: Some(text.clone()),
                        new_tokens: Some(new.len()),
                        prediction: text.into(),
                        gold: serde_json::json!(gold_answers),
                        score: s,
                    });
                }
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

    fn gen(len: usize) -> (String, EncodedEval) {
        (
            "g".to_string(),
            EncodedEval::Generation {
                prompt: EncodedSeq {
                    ids: vec![3; len],
                    option_len: 0,
                    truncated: false,
                },
                gold_answers: vec![],
            },
        )
    }

    #[test]
    fn groups_cover_the_examples_in_order_within_the_row_budget() {
        let mut ex = vec![cands(2); 20];
        ex.push(cands(EVAL_BATCH_ROWS + 3));
        ex.push(gen(2));
        ex.push(gen(2));
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
        // 16 two-row examples fill the first group; the oversized example stands alone; the
        // two generation examples go together.
        assert_eq!(g[0], 0..EVAL_BATCH_ROWS / 2);
        assert!(g.contains(&(20..21)) && g.contains(&(21..23)));
    }

    #[test]
    fn generation_groups_keep_to_their_rows_and_padded_tokens() {
        // 20 short prompts: groups of EVAL_GENERATE_ROWS. Then prompts whose padded tokens
        // pass the budget after 2, and one longer than the budget (alone).
        let long = EVAL_GENERATE_TOKENS / 3;
        let mut ex: Vec<_> = (0..20).map(|_| gen(10)).collect();
        ex.extend([
            gen(long),
            gen(10),
            gen(long),
            gen(EVAL_GENERATE_TOKENS + 1),
            cands(2),
        ]);
        let g = groups(&ex);
        let n = EVAL_GENERATE_ROWS;
        assert_eq!(g[0], 0..n);
        assert_eq!(g[1], n..2 * n);
        // The 4 short ones left and a long one would pad to 5 × long tokens, over the budget:
        // the long one starts a group, with the next short and long ones (3 × long within
        // it); the prompt over the budget stands alone.
        assert_eq!(g[2], 2 * n..20);
        assert_eq!(g[3], 20..23);
        assert_eq!(g[4], 23..24);
        assert_eq!(g[5], 24..25);
        let flat: Vec<usize> = g.iter().flat_map(|r| r.clone()).collect();
        assert_eq!(flat, (0..ex.len()).collect::<Vec<_>>());
    }

    /// Generation examples decoded together give the predictions of each decoded alone.
    #[test]
    fn generation_groups_predict_as_one_prompt_at_a_time() {
        use candle_core::{DType, Device};
        use zo_models::opt::builtin::Builtin;
        let model = Builtin::TinyOpt.load(3, DType::F32, &Device::Cpu).unwrap();
        let tok = Tokenizer::builtin_tiny();
        let texts = [
            "Title: A\nContext: The cat sat on the mat.\nQuestion: Who sat?\nAnswer:",
            "Passage: one two three\nQuestion: what?\nAnswer:",
            "Title: B\nContext: Rain, then sun, then rain again all day long.\nQuestion: Weather?\nAnswer:",
        ];
        let ex: Vec<(String, EncodedEval)> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let prompt = EncodedSeq {
                    ids: tok.encode(t).unwrap(),
                    option_len: 0,
                    truncated: false,
                };
                let gold_answers = vec!["cat".to_string()];
                (
                    format!("e{i}"),
                    EncodedEval::Generation {
                        prompt,
                        gold_answers,
                    },
                )
            })
            .collect();
        assert_eq!(groups(&ex), vec![(0..3)]);
        let (_, preds) = evaluate(&model, &tok, &ex, 12, |_| {}).unwrap();
        let opts = GenerateOptions {
            max_new_tokens: 12,
            stop_ids: vec![tok.newline_id().unwrap(), model.config().eos_token_id],
        };
        for ((_, e), p) in ex.iter().zip(&preds) {
            let EncodedEval::Generation { prompt, .. } = e else {
                unreachable!()
            };
            let alone = greedy_generate(&model, &prompt.ids, &opts).unwrap();
            assert_eq!(p.new_tokens, Some(alone.len()));
            let text = generation_answer(&tok.decode(&alone, true, false).unwrap());
            assert_eq!(p.generated.as_deref(), Some(text.as_str()));
        }
    }
}
