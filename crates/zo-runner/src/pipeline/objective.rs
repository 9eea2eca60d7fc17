//! The training objective and the dev loss: zo-tasks' encoded features → zo-models' batches and
//! MeZO's losses (classification CE for SST-2/RTE, LM loss on the option tokens otherwise).
//!
//! A batch's loss is the mean of its terms (one per example for the classification loss, one
//! per scored token for the LM loss), summed in batch order. [`split_batch_loss`] lets the
//! processes of a [`World`] each compute the terms of one slice of the batch, padded to the
//! whole batch's length, and gathers them in order: the same bits as one process.

use anyhow::Result;
use zo_models::scoring::{classification_losses, option_token_nlls, CandidateGroup};
use zo_models::{Batch, OptModel};
use zo_tasks::TrainFeature;

use crate::dist::{slice, World};

/// MeZO pads to a multiple of 8 (`pad_to_multiple_of = 8` in its collators).
pub const PAD_MULTIPLE: usize = 8;

/// The sequences of `features`, with their option lengths and classification groups.
type Encoded = (Vec<Vec<u32>>, Vec<usize>, Vec<CandidateGroup>);

fn encode(features: &[&TrainFeature]) -> Result<Encoded> {
    let mut seqs = Vec::new();
    let mut option_len = Vec::new();
    let mut groups = Vec::new();
    for f in features {
        match f {
            TrainFeature::Classification { options, correct } => {
                groups.push(CandidateGroup {
                    first: seqs.len(),
                    count: options.len(),
                    correct: *correct,
                });
                for o in options {
                    seqs.push(o.ids.clone());
                    option_len.push(o.option_len);
                }
            }
            TrainFeature::Lm(s) => {
                seqs.push(s.ids.clone());
                option_len.push(s.option_len);
            }
        }
    }
    if !groups.is_empty() && groups.len() != features.len() {
        anyhow::bail!("a batch mixes classification and LM features");
    }
    Ok((seqs, option_len, groups))
}

/// The length a batch of `features` is padded to (its longest sequence, rounded up to
/// [`PAD_MULTIPLE`]).
pub fn padded_len(features: &[&TrainFeature]) -> Result<usize> {
    Ok(Batch::padded_len(&encode(features)?.0, Some(PAD_MULTIPLE)))
}

/// The loss terms of `features` in order, their batch left-padded to `seq_len`: one per
/// example (classification) or one per scored option token (LM).
pub fn loss_terms(
    model: &OptModel,
    features: &[&TrainFeature],
    seq_len: usize,
) -> Result<Vec<f64>> {
    if features.is_empty() {
        return Ok(Vec::new());
    }
    let (seqs, option_len, groups) = encode(features)?;
    let batch = Batch::left_padded_to(&seqs, &option_len, model.config().pad_token_id, seq_len)?;
    Ok(if groups.is_empty() {
        option_token_nlls(model, &batch)?
    } else {
        classification_losses(model, &batch, &groups)?
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

/// The loss of a mini-batch of training features, in one forward pass. All features of a
/// batch must be of one kind (a task trains with one objective).
pub fn batch_loss(model: &OptModel, features: &[&TrainFeature]) -> Result<f64> {
    mean(&loss_terms(model, features, padded_len(features)?)?)
}

/// [`batch_loss`] with the batch split over the ranks of `world`: each computes the terms of
/// its slice ([`slice`]) padded to the whole batch's length, all gather them in rank order and
/// take their mean. Equal, bit for bit, to [`batch_loss`] of the whole batch.
pub fn split_batch_loss(
    model: &OptModel,
    features: &[&TrainFeature],
    world: &dyn World,
) -> Result<f64> {
    let len = padded_len(features)?;
    let mine = slice(features.len(), world.rank(), world.size());
    let terms = loss_terms(model, &features[mine], len)?;
    mean(&world.all_gather(&terms)?)
}

/// The loss over a whole set (the dev loss MeZO selects checkpoints by): batches of
/// `batch_size`, averaged with each batch weighted by its number of examples (what HF's
/// evaluation loop does with per-batch mean losses).
pub fn dataset_loss(model: &OptModel, features: &[TrainFeature], batch_size: usize) -> Result<f64> {
    let mut total = 0.0;
    let mut n = 0usize;
    for chunk in features.chunks(batch_size.max(1)) {
        let refs: Vec<&TrainFeature> = chunk.iter().collect();
        total += batch_loss(model, &refs)? * chunk.len() as f64;
        n += chunk.len();
    }
    anyhow::ensure!(n > 0, "no examples to compute a loss on");
    Ok(total / n as f64)
}
