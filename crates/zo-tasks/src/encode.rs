//! Tokenizing rendered prompts the way MeZO does, for any tokenizer (docs/PROTOCOL.md 1.0,
//! "Prompt assembly", "Truncation", "Training-loss encodings").
//!
//! - `option_len[c] = len(encode(verbalized[c])) - len(encode(unverbalized))` — computed on the
//!   *verbalized* strings, while the sequence fed to the model is `encode(final[c])`;
//! - every sequence is left-truncated keeping its first token (the BOS):
//!   `enc[0:1] + enc[1:][-(max_length-1):]`, so the option tokens at the end survive.

use serde::Serialize;

use crate::error::TaskError;
use crate::render::Rendered;
use crate::task::{EvalMode, Objective};

/// Any tokenizer. `encode` must behave like MeZO's `tokenizer.encode(text)`: **with** the
/// special tokens, i.e. one BOS first (id 0 for OPT in MeZO), no EOS.
pub trait TextEncoder {
    fn encode(&self, text: &str) -> Result<Vec<u32>, String>;
}

/// Any closure `|text| -> Result<ids, message>` is an encoder.
impl<F: Fn(&str) -> Result<Vec<u32>, String>> TextEncoder for F {
    fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        self(text)
    }
}

/// One token sequence and how many of its last tokens are the option.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EncodedSeq {
    pub ids: Vec<u32>,
    /// Number of trailing option tokens, `>= 1` for options. Clamped to `ids.len() - 1`, the
    /// number of predicted positions: MeZO's `[-option_len:]` slices select the same tokens.
    /// 0 for a generation prompt.
    pub option_len: usize,
    /// Whether MeZO's left truncation cut tokens ("Exceed max length").
    pub truncated: bool,
}

/// What evaluation needs for one example.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum EncodedEval {
    /// Score each option (mean log-prob of its last `option_len` tokens); correct if the argmax
    /// is in `correct`.
    Candidates {
        options: Vec<EncodedSeq>,
        correct: Vec<usize>,
    },
    /// Greedy-decode from `prompt` (option_len 0), F1 against `gold_answers`.
    Generation {
        prompt: EncodedSeq,
        gold_answers: Vec<String>,
    },
}

/// What the training loss needs for one example.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum TrainFeature {
    /// SST-2/RTE (`--train_as_classification`): one sequence per candidate, CE over candidates.
    Classification {
        options: Vec<EncodedSeq>,
        correct: usize,
    },
    /// LM loss on the option tokens of the gold sequence only.
    Lm(EncodedSeq),
    /// The non-differentiable objective (generation tasks): greedy-decode from `prompt`
    /// (option_len 0), loss −F1 against `gold_answers`.
    Generation {
        prompt: EncodedSeq,
        gold_answers: Vec<String>,
    },
}

/// `enc[0:1] + enc[1:][-(max_length-1):]`.
pub fn truncate_left_keep_bos(ids: &mut Vec<u32>, max_length: usize) -> bool {
    if ids.len() <= max_length {
        return false;
    }
    let cut = ids.len() - max_length;
    ids.drain(1..1 + cut);
    true
}

struct Ctx<'a, E: TextEncoder + ?Sized> {
    enc: &'a E,
    r: &'a Rendered,
    max_length: usize,
}

impl<E: TextEncoder + ?Sized> Ctx<'_, E> {
    fn encode(&self, text: &str, what: &str) -> Result<Vec<u32>, TaskError> {
        self.enc.encode(text).map_err(|message| TaskError::Encode {
            task: self.r.task.to_string(),
            row: self.r.row,
            what: what.to_string(),
            message,
        })
    }

    /// The option sequence: `encode(text)` truncated, with `option_len` measured on
    /// `verbalized` against `base_len = len(encode(unverbalized))`.
    fn option(
        &self,
        verbalized: &str,
        text: &str,
        base_len: usize,
        candidate: usize,
    ) -> Result<EncodedSeq, TaskError> {
        let v = self.encode(verbalized, "a verbalized candidate")?;
        // `final` usually equals `verbalized`; only leading whitespace differs otherwise.
        let mut ids = if text == verbalized {
            v.clone()
        } else {
            self.encode(text, "a candidate")?
        };
        let option_len = v.len() as i64 - base_len as i64;
        if option_len < 1 {
            return Err(TaskError::EmptyOption {
                task: self.r.task.to_string(),
                row: self.r.row,
                candidate,
                option_len,
            });
        }
        let truncated = truncate_left_keep_bos(&mut ids, self.max_length);
        let option_len = (option_len as usize).min(ids.len().saturating_sub(1));
        Ok(EncodedSeq {
            ids,
            option_len,
            truncated,
        })
    }

    fn base_len(&self) -> Result<usize, TaskError> {
        Ok(self
            .encode(&self.r.unverbalized, "the unverbalized prompt")?
            .len())
    }

    fn all_options(&self) -> Result<Vec<EncodedSeq>, TaskError> {
        let base = self.base_len()?;
        (0..self.r.candidates.len())
            .map(|c| self.option(&self.r.verbalized[c], &self.r.candidates[c], base, c))
            .collect()
    }
}

fn check_max_length(max_length: usize) -> Result<(), TaskError> {
    // Python's `[-(max_length-1):]` with max_length 1 is `[-0:]`: the whole list.
    if max_length < 2 {
        return Err(TaskError::MaxLength(max_length));
    }
    Ok(())
}

/// Evaluation encodings of one rendered example.
pub fn encode_example<E: TextEncoder + ?Sized>(
    enc: &E,
    r: &Rendered,
    max_length: usize,
) -> Result<EncodedEval, TaskError> {
    check_max_length(max_length)?;
    let ctx = Ctx { enc, r, max_length };
    match (r.task.spec().eval_mode, &r.prompt) {
        (EvalMode::Generation, Some(prompt)) => {
            let mut ids = ctx.encode(prompt, "the generation prompt")?;
            let truncated = truncate_left_keep_bos(&mut ids, max_length);
            Ok(EncodedEval::Generation {
                prompt: EncodedSeq {
                    ids,
                    option_len: 0,
                    truncated,
                },
                gold_answers: r.gold_answers.clone(),
            })
        }
        _ => Ok(EncodedEval::Candidates {
            options: ctx.all_options()?,
            correct: r.correct.clone(),
        }),
    }
}

/// Training encodings of one rendered example (`Framework.train._convert`).
///
/// `objective` must be the task's ([`crate::TaskSpec::objective`]) except that any candidate task
/// may also train with [`Objective::LmOption`] (MeZO's `--train_as_classification False`).
pub fn encode_train<E: TextEncoder + ?Sized>(
    enc: &E,
    r: &Rendered,
    objective: Objective,
    max_length: usize,
) -> Result<TrainFeature, TaskError> {
    check_max_length(max_length)?;
    let ctx = Ctx { enc, r, max_length };
    let generation = r.task.spec().eval_mode == EvalMode::Generation;
    match objective {
        Objective::Classification if generation => Err(TaskError::ObjectiveMismatch {
            task: r.task.to_string(),
            objective: "the LM option loss",
            requested: "the classification loss",
        }),
        Objective::Classification => Ok(TrainFeature::Classification {
            options: ctx.all_options()?,
            correct: r.train.correct,
        }),
        Objective::NonDiff if !generation => Err(TaskError::ObjectiveMismatch {
            task: r.task.to_string(),
            objective: "a differentiable loss",
            requested: "the non-differentiable F1 objective (generation tasks only)",
        }),
        Objective::LmOption | Objective::NonDiff => {
            let base = ctx.base_len()?;
            let seq = ctx.option(&r.train.verbalized, &r.train.text, base, r.train.correct)?;
            if objective == Objective::LmOption {
                return Ok(TrainFeature::Lm(seq));
            }
            // MeZO (`_convert` with `non_diff`): `encoded[:-option_len]`, after truncation.
            let EncodedSeq {
                mut ids,
                option_len,
                truncated,
            } = seq;
            ids.truncate(ids.len() - option_len);
            if ids.len() < 2 {
                return Err(TaskError::NoPromptLeft {
                    task: r.task.to_string(),
                    row: r.row,
                    budget: max_length,
                });
            }
            Ok(TrainFeature::Generation {
                prompt: EncodedSeq {
                    ids,
                    option_len: 0,
                    truncated,
                },
                gold_answers: r.gold_answers.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::truncate_left_keep_bos;

    #[test]
    fn truncation_keeps_bos_and_the_right_end() {
        let mut ids: Vec<u32> = (0..10).collect();
        assert!(truncate_left_keep_bos(&mut ids, 4));
        assert_eq!(ids, [0, 7, 8, 9]);
        let mut ids: Vec<u32> = (0..4).collect();
        assert!(!truncate_left_keep_bos(&mut ids, 4));
        assert_eq!(ids, [0, 1, 2, 3]);
        let mut ids: Vec<u32> = (0..3).collect();
        assert!(truncate_left_keep_bos(&mut ids, 2));
        assert_eq!(ids, [0, 2]);
    }
}
