//! The training objective and the dev loss: zo-tasks' encoded features → zo-models' batches and
//! MeZO's losses (classification CE for SST-2/RTE, LM loss on the option tokens otherwise).

use anyhow::Result;
use zo_models::scoring::{classification_loss, lm_loss, CandidateGroup};
use zo_models::{Batch, OptModel};
use zo_tasks::TrainFeature;

/// MeZO pads to a multiple of 8 (`pad_to_multiple_of = 8` in its collators).
pub const PAD_MULTIPLE: usize = 8;

/// The loss of a mini-batch of training features, in one forward pass. All features of a
/// batch must be of one kind (a task trains with one objective).
pub fn batch_loss(model: &OptModel, features: &[&TrainFeature]) -> Result<f64> {
    let pad = model.config().pad_token_id;
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
    let batch = Batch::left_padded(&seqs, &option_len, pad, Some(PAD_MULTIPLE))?;
    Ok(if groups.is_empty() {
        lm_loss(model, &batch)?
    } else {
        classification_loss(model, &batch, &groups)?
    })
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
