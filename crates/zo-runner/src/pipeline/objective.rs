//! The training objective and the dev loss: zo-tasks' encoded features → zo-models' batches and
//! MeZO's losses (classification CE for SST-2/RTE, LM loss on the option tokens otherwise, or
//! −F1 of a greedy generation for the non-differentiable objective).
//!
//! A batch's loss is the mean of its terms (one per example for the classification loss and the
//! non-differentiable objective, one per scored token for the LM loss), summed in batch order.
//! [`split_batch_loss`] lets the processes of a [`World`] each compute the terms of one slice of
//! the batch, padded to the whole batch's widths, and gathers them in order: the same bits as
//! one process.

use anyhow::Result;
use zo_models::scoring::{
    classification_losses_shared, greedy_generate_batch, option_token_nlls, shared_widths,
    Candidate, GenerateOptions, SharedWidths,
};
use zo_models::tokenizer::Tokenizer;
use zo_models::{Batch, OptModel};
use zo_tasks::{f1, generation_answer, TrainFeature};

use crate::dist::{slice, World};

/// MeZO pads to a multiple of 8 (`pad_to_multiple_of = 8` in its collators); the LM loss does
/// the same.
pub const PAD_MULTIPLE: usize = 8;

/// What a loss needs besides the features: the model, its tokenizer (to decode generations)
/// and the generation budget.
#[derive(Clone, Copy)]
pub struct LossModel<'a> {
    pub model: &'a OptModel,
    pub tok: &'a Tokenizer,
    pub max_new_tokens: usize,
}

/// The widths a batch's passes are padded to: the LM loss's padded length, or the two widths
/// of the shared-prompt classification passes. Computed on the whole batch and given to each
/// slice, so that every slice pads as the whole batch does.
#[derive(Clone, Copy, Debug)]
pub enum Widths {
    Lm(usize),
    Classification(SharedWidths),
    /// The non-differentiable objective is computed on the whole batch by every process.
    Generation,
}

/// The kind of a batch's features (all must be of one kind: a task trains with one objective).
fn check_one_kind(features: &[&TrainFeature]) -> Result<()> {
    let kind = |f: &TrainFeature| std::mem::discriminant(f);
    anyhow::ensure!(!features.is_empty(), "an empty batch has no loss");
    anyhow::ensure!(
        features.iter().all(|f| kind(f) == kind(features[0])),
        "a batch mixes classification, LM and generation features"
    );
    Ok(())
}

/// Each classification example's candidates and the index of its right one.
fn candidates<'a>(features: &[&'a TrainFeature]) -> (Vec<Vec<Candidate<'a>>>, Vec<usize>) {
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
                    .collect(),
            );
            correct.push(*c);
        }
    }
    (examples, correct)
}

/// The LM features' sequences and option lengths.
fn lm_sequences(features: &[&TrainFeature]) -> (Vec<Vec<u32>>, Vec<usize>) {
    let mut seqs = Vec::with_capacity(features.len());
    let mut option_len = Vec::with_capacity(features.len());
    for f in features {
        if let TrainFeature::Lm(s) = f {
            seqs.push(s.ids.clone());
            option_len.push(s.option_len);
        }
    }
    (seqs, option_len)
}

/// The widths of a whole batch of `features` (see [`Widths`]).
pub fn widths(features: &[&TrainFeature]) -> Result<Widths> {
    check_one_kind(features)?;
    Ok(match features[0] {
        TrainFeature::Classification { .. } => {
            Widths::Classification(shared_widths(&candidates(features).0))
        }
        TrainFeature::Lm(_) => Widths::Lm(Batch::padded_len(
            &lm_sequences(features).0,
            Some(PAD_MULTIPLE),
        )),
        TrainFeature::Generation { .. } => Widths::Generation,
    })
}

/// The greedy generation of every prompt (≤ `max_new_tokens`, stop at `"\n"` or EOS, decoded
/// as evaluation decodes it), scored by F1 against its gold answers: the terms are −F1, one
/// per example (MeZO's `zo_forward_nondiff` averages them).
fn non_diff_terms(m: LossModel<'_>, features: &[&TrainFeature]) -> Result<Vec<f64>> {
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
    let opts = GenerateOptions {
        max_new_tokens: m.max_new_tokens,
        stop_ids: vec![m.tok.newline_id()?, m.model.config().eos_token_id],
    };
    let outs = greedy_generate_batch(m.model, &prompts, &opts)?;
    outs.iter()
        .zip(gold)
        .map(|(new, answers)| {
            Ok(-f1(
                &generation_answer(&m.tok.decode(new, true, false)?),
                answers,
            ))
        })
        .collect()
}

/// The loss terms of `features` in order, their passes padded to `widths`: one per example
/// (classification, generation) or one per scored option token (LM).
///
/// The classification loss runs each example's prompt once for all its candidates
/// ([`classification_losses_shared`]: SST-2's two one-token options cost one pass over the
/// prompt, whose last position predicts both, instead of two whole sequences);
/// MeZO runs every candidate's whole sequence, which gives the same loss (bit for bit where
/// `OptModel::rows_independent`, up to float rounding elsewhere).
pub fn loss_terms(
    m: LossModel<'_>,
    features: &[&TrainFeature],
    widths: Widths,
) -> Result<Vec<f64>> {
    if features.is_empty() {
        return Ok(Vec::new());
    }
    check_one_kind(features)?;
    Ok(match (features[0], widths) {
        (TrainFeature::Classification { .. }, Widths::Classification(w)) => {
            let (examples, correct) = candidates(features);
            classification_losses_shared(m.model, &examples, &correct, Some(w))?
        }
        (TrainFeature::Lm(_), Widths::Lm(len)) => {
            let (seqs, option_len) = lm_sequences(features);
            let pad = m.model.config().pad_token_id;
            let batch = Batch::left_padded_to(&seqs, &option_len, pad, len)?;
            option_token_nlls(m.model, &batch)?
        }
        (TrainFeature::Generation { .. }, Widths::Generation) => non_diff_terms(m, features)?,
        (_, w) => anyhow::bail!("widths {w:?} do not belong to this batch's features"),
    })
}

/// The mean of loss terms, summed in order.
fn mean(terms: &[f64]) -> Result<f64> {
    anyhow::ensure!(!terms.is_empty(), "the batch has no scored token");
    let mut total = 0.0;
    for t in terms {
        total += t;
    }
    Ok(total / terms.len() as f64)
}

/// The loss of a mini-batch of training features. All features of a batch must be of one kind
/// (a task trains with one objective).
pub fn batch_loss(m: LossModel<'_>, features: &[&TrainFeature]) -> Result<f64> {
    mean(&loss_terms(m, features, widths(features)?)?)
}

/// [`batch_loss`] with the batch split over the ranks of `world`: each computes the terms of
/// its slice ([`slice`]) padded to the whole batch's widths, all gather them in rank order and
/// take their mean. Equal, bit for bit, to [`batch_loss`] of the whole batch. The
/// non-differentiable objective (a batched greedy generation) is split the same way where the
/// model's rows are independent (`OptModel::rows_independent`: a prompt decodes to the same
/// tokens in any batch); elsewhere every rank generates the whole batch.
pub fn split_batch_loss(
    m: LossModel<'_>,
    features: &[&TrainFeature],
    world: &dyn World,
) -> Result<f64> {
    let w = widths(features)?;
    let whole = matches!(w, Widths::Generation) && !m.model.rows_independent();
    if whole || world.size() == 1 {
        return batch_loss(m, features);
    }
    let mine = slice(features.len(), world.rank(), world.size());
    let terms = loss_terms(m, &features[mine], w)?;
    mean(&world.all_gather(&terms)?)
}

/// The loss over a whole set (the dev loss MeZO selects checkpoints by): batches of
/// `batch_size`, averaged with each batch weighted by its number of examples (what HF's
/// evaluation loop does with per-batch mean losses). Each batch is split over the ranks of
/// `world` as a training batch is ([`split_batch_loss`]: the same bits as one process), so
/// every rank must call it.
pub fn dataset_loss(
    m: LossModel<'_>,
    features: &[TrainFeature],
    batch_size: usize,
    world: &dyn World,
) -> Result<f64> {
    let mut total = 0.0;
    let mut n = 0usize;
    for chunk in features.chunks(batch_size.max(1)) {
        let refs: Vec<&TrainFeature> = chunk.iter().collect();
        total += split_batch_loss(m, &refs, world)? * chunk.len() as f64;
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

    /// A world of `size` ranks seen from `rank`: its all-gather records what this rank sends
    /// and returns `all`, what every rank of a real run would have sent.
    struct Sliced {
        rank: usize,
        size: usize,
        all: Vec<f64>,
        sent: std::cell::RefCell<Vec<f64>>,
    }

    impl World for Sliced {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.size
        }
        fn all_gather(&self, values: &[f64]) -> Result<Vec<f64>> {
            self.sent.borrow_mut().extend_from_slice(values);
            Ok(self.all.clone())
        }
        fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>> {
            Ok(vec![value; self.size])
        }
        fn all_gather_bytes(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
            Ok(vec![bytes.to_vec(); self.size])
        }
    }

    /// The non-differentiable objective split over ranks: each rank decodes its slice of the
    /// prompts alone and gets the whole batch's terms for it, so the gathered loss is the
    /// one-process loss bit for bit; with bf16 products (rows not independent) every rank
    /// decodes the whole batch and sends nothing.
    #[test]
    fn the_non_diff_objective_splits_over_ranks_with_the_one_process_bits() {
        let mut model = Builtin::TinyOpt.load(0, DType::F32, &Device::Cpu).unwrap();
        let tok = Tokenizer::builtin_tiny();
        let texts = [
            "Title: A\nContext: The cat sat on the mat.\nQuestion: Who sat?\nAnswer:",
            "Passage: one two three\nQuestion: what?\nAnswer:",
            "Title: B\nContext: Rain.\nQuestion: Weather?\nAnswer:",
            "Title: C\nContext: A long day of sun, then rain, then sun again.\nQuestion: And?\nAnswer:",
            "Passage: four\nQuestion: which?\nAnswer:",
        ];
        let feats: Vec<TrainFeature> = texts
            .iter()
            .map(|t| TrainFeature::Generation {
                prompt: EncodedSeq {
                    ids: tok.encode(t).unwrap(),
                    option_len: 0,
                    truncated: false,
                },
                gold_answers: vec!["cat".into(), "rain".into()],
            })
            .collect();
        let refs: Vec<&TrainFeature> = feats.iter().collect();
        for bf16 in [false, true] {
            if bf16 {
                model.set_compute(zo_models::sgemm::Compute::Bf16);
            }
            let m = LossModel {
                model: &model,
                tok: &tok,
                max_new_tokens: 8,
            };
            let all = loss_terms(m, &refs, Widths::Generation).unwrap();
            let one = batch_loss(m, &refs).unwrap();
            for size in [2, 3] {
                for rank in 0..size {
                    let w = Sliced {
                        rank,
                        size,
                        all: all.clone(),
                        sent: Default::default(),
                    };
                    let loss = split_batch_loss(m, &refs, &w).unwrap();
                    assert_eq!(loss.to_bits(), one.to_bits(), "rank {rank} of {size}");
                    let sent = w.sent.borrow().clone();
                    let want = if bf16 {
                        Vec::new()
                    } else {
                        all[slice(refs.len(), rank, size)].to_vec()
                    };
                    assert_eq!(sent, want, "rank {rank} of {size}, bf16 {bf16}");
                }
            }
        }
    }
}
