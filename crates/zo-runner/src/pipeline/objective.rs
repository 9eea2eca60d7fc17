//! The training objective and the dev loss: zo-tasks' encoded features → zo-models' batches and
//! MeZO's losses (classification CE for SST-2/RTE, LM loss on the option tokens otherwise, or
//! −F1 of a greedy generation for the non-differentiable objective).

use anyhow::Result;
use zo_models::scoring::{
    classification_loss_shared, greedy_generate_batch, lm_loss, Candidate, GenerateOptions,
};
use zo_models::tokenizer::Tokenizer;
use zo_models::{Batch, OptModel};
use zo_tasks::{f1, generation_answer, TrainFeature};

/// What a loss needs besides the features: the model, its tokenizer (to decode generations)
/// and the generation budget.
#[derive(Clone, Copy)]
pub struct LossModel<'a> {
    pub model: &'a OptModel,
    pub tok: &'a Tokenizer,
    pub max_new_tokens: usize,
}

/// The greedy generation of every prompt (≤ `max_new_tokens`, stop at `"\n"` or EOS, decoded
/// as evaluation decodes it), scored by F1 against its gold answers: the loss is −(mean F1)
/// (MeZO's `zo_forward_nondiff`).
fn non_diff_loss(m: LossModel<'_>, prompts: &[Vec<u32>], gold: &[&[String]]) -> Result<f64> {
    let opts = GenerateOptions {
        max_new_tokens: m.max_new_tokens,
        stop_ids: vec![m.tok.newline_id()?, m.model.config().eos_token_id],
    };
    let outs = greedy_generate_batch(m.model, prompts, &opts)?;
    let mut total = 0.0;
    for (new, answers) in outs.iter().zip(gold) {
        total += f1(
            &generation_answer(&m.tok.decode(new, true, false)?),
            answers,
        );
    }
    Ok(-total / prompts.len() as f64)
}

/// MeZO pads to a multiple of 8 (`pad_to_multiple_of = 8` in its collators); the LM loss does
/// the same.
pub const PAD_MULTIPLE: usize = 8;

/// The loss of a mini-batch of training features. All features of a batch must be of one kind
/// (a task trains with one objective).
///
/// The classification loss runs each example's prompt once for all its candidates
/// ([`classification_loss_shared`]: SST-2's two one-token options cost one prompt, not two);
/// MeZO runs every candidate's whole sequence, which gives the same loss up to float rounding.
/// The LM loss has one sequence per example and computes logits only at the option tokens.
pub fn batch_loss(m: LossModel<'_>, features: &[&TrainFeature]) -> Result<f64> {
    let model = m.model;
    let kind = |f: &TrainFeature| std::mem::discriminant(f);
    let Some(first) = features.first() else {
        anyhow::bail!("an empty batch has no loss");
    };
    anyhow::ensure!(
        features.iter().all(|f| kind(f) == kind(first)),
        "a batch mixes classification, LM and generation features"
    );
    match first {
        TrainFeature::Classification { .. } => {
            let mut examples = Vec::with_capacity(features.len());
            let mut correct = Vec::with_capacity(features.len());
            for f in features {
                if let TrainFeature::Classification {
                    options,
                    correct: c,
                } = f
                {
                    examples.push(
                        options
                            .iter()
                            .map(|o| Candidate {
                                ids: &o.ids,
                                option_len: o.option_len,
                            })
                            .collect::<Vec<_>>(),
                    );
                    correct.push(*c);
                }
            }
            Ok(classification_loss_shared(model, &examples, &correct)?)
        }
        TrainFeature::Lm(_) => {
            let mut seqs = Vec::with_capacity(features.len());
            let mut option_len = Vec::with_capacity(features.len());
            for f in features {
                if let TrainFeature::Lm(s) = f {
                    seqs.push(s.ids.clone());
                    option_len.push(s.option_len);
                }
            }
            let pad = model.config().pad_token_id;
            let batch = Batch::left_padded(&seqs, &option_len, pad, Some(PAD_MULTIPLE))?;
            Ok(lm_loss(model, &batch)?)
        }
        TrainFeature::Generation { .. } => {
            let mut prompts = Vec::with_capacity(features.len());
            let mut gold: Vec<&[String]> = Vec::with_capacity(features.len());
            for f in features {
                if let TrainFeature::Generation {
                    prompt,
                    gold_answers,
                } = f
                {
                    prompts.push(prompt.ids.clone());
                    gold.push(gold_answers);
                }
            }
            non_diff_loss(m, &prompts, &gold)
        }
    }
}

/// The loss over a whole set (the dev loss MeZO selects checkpoints by): batches of
/// `batch_size`, averaged with each batch weighted by its number of examples (what HF's
/// evaluation loop does with per-batch mean losses).
pub fn dataset_loss(m: LossModel<'_>, features: &[TrainFeature], batch_size: usize) -> Result<f64> {
    let mut total = 0.0;
    let mut n = 0usize;
    for chunk in features.chunks(batch_size.max(1)) {
        let refs: Vec<&TrainFeature> = chunk.iter().collect();
        total += batch_loss(m, &refs)? * chunk.len() as f64;
        n += chunk.len();
    }
    anyhow::ensure!(n > 0, "no examples to compute a loss on");
    Ok(total / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use zo_models::opt::builtin::Builtin;
    use zo_models::scoring::greedy_generate;
    use zo_tasks::EncodedSeq;

    /// The batched non-differentiable loss equals −(mean F1) of each prompt decoded alone, with
    /// gold answers set to the model's own answers so that F1 is not 0 everywhere.
    #[test]
    fn non_diff_loss_is_minus_the_mean_f1_of_each_greedy_answer() {
        let model = Builtin::TinyOpt.load(0, DType::F32, &Device::Cpu).unwrap();
        let tok = Tokenizer::builtin_tiny();
        let m = LossModel {
            model: &model,
            tok: &tok,
            max_new_tokens: 6,
        };
        let prompts = [
            "Title: A\nContext: The cat sat on the mat.\nQuestion: Who sat?\nAnswer:",
            "Passage: one two three\nQuestion: what?\nAnswer:",
            "Title: B\nContext: Rain.\nQuestion: Weather?\nAnswer:",
        ];
        let opts = GenerateOptions {
            max_new_tokens: 6,
            stop_ids: vec![tok.newline_id().unwrap(), model.config().eos_token_id],
        };
        let mut feats = Vec::new();
        let mut answered = 0;
        for p in prompts {
            let ids = tok.encode(p).unwrap();
            let alone = greedy_generate(&model, &ids, &opts).unwrap();
            let text = generation_answer(&tok.decode(&alone, true, false).unwrap());
            // F1 1 against its own non-empty answer; 0 against an answer it did not give.
            let gold = if text.is_empty() {
                "zzz unrelated".to_string()
            } else {
                answered += 1;
                text
            };
            feats.push(TrainFeature::Generation {
                prompt: EncodedSeq {
                    ids,
                    option_len: 0,
                    truncated: false,
                },
                gold_answers: vec![gold],
            });
        }
        assert!(answered > 0, "the model answered nothing");
        let refs: Vec<&TrainFeature> = feats.iter().collect();
        let loss = batch_loss(m, &refs).unwrap();
        assert_eq!(loss, -(answered as f64) / prompts.len() as f64);
    }
}
