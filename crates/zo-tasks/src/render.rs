//! MeZO's `encode_prompt` (`large_models/utils.py`) up to, not including, tokenization:
//! every string it builds, with its exact strip rules (docs/PROTOCOL.md 1.0, 7.5).
//!
//! With no demonstrations, `train_prompts = ""` and `train_sep = "\n\n"`, so
//! `final = ("" + "\n\n" + x).lstrip().strip(' ')`: all leading whitespace goes (`lstrip()`),
//! trailing *spaces* go (`strip(' ')`), a trailing `"\n"` stays.

use serde::Serialize;

use crate::error::{RowErrorKind, TaskError};
use crate::example::Example;
use crate::pystr::{py_lstrip, py_strip, strip_spaces};
use crate::task::{EvalMode, Task};

/// Every string MeZO derives from one sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub task: Task,
    /// The example's row index within its split.
    pub row: usize,
    /// `template.encode(sample).strip(' ')`: the prompt without any option. Only used to count
    /// option tokens (and, for generation tasks, as the evaluation prompt before `lstrip`).
    pub unverbalized: String,
    /// Candidate tasks: `template.verbalize(sample, c).strip(' ')` per candidate; the option
    /// length is `len(encode(verbalized[c])) - len(encode(unverbalized))`. Empty for generation.
    pub verbalized: Vec<String>,
    /// Candidate tasks: the strings actually tokenized and scored,
    /// `("\n\n" + verbalized[c]).lstrip().strip(' ')`. Empty for generation.
    pub candidates: Vec<String>,
    /// Generation tasks: the evaluation prompt `("\n\n" + unverbalized).lstrip().strip(' ')`
    /// (ends with `"Answer:"`); `None` for candidate tasks.
    pub prompt: Option<String>,
    /// Indices into `candidates` counted correct (`pred in correct`); empty for generation.
    pub correct: Vec<usize>,
    /// Generation tasks: the gold answers (F1 is the max over them); empty otherwise.
    pub gold_answers: Vec<String>,
    /// The training sequence (`generation_with_gold=True`).
    pub train: TrainText,
}

/// The training string of one sample (`Framework.train._convert`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrainText {
    /// The candidate the loss targets (classification: the CE target; LM: whose option tokens
    /// are trained). 0 for generation tasks.
    pub correct: usize,
    /// The string the option length is measured on. Candidate tasks: `verbalized[correct]`.
    /// Generation: `template.verbalize(sample, gold)` **not** space-stripped (docs/PROTOCOL.md
    /// 7.5; it ends in `"\n"`, so this changes nothing).
    pub verbalized: String,
    /// The string tokenized for training: `("\n\n" + verbalized).lstrip().strip(' ')`.
    pub text: String,
}

/// `("" + "\n\n" + s).lstrip().strip(' ')`.
pub fn final_prompt(s: &str) -> String {
    strip_spaces(py_lstrip(s)).to_string()
}

/// MeZO's separator between demonstrations, and between them and the prompt (`train_sep`).
pub const TRAIN_SEP: &str = "\n\n";

impl Rendered {
    /// This example as a demonstration: `template.verbalize(sample, sample.correct_candidate)
    /// .strip()` (the whole-whitespace strip: a generation task's trailing `"\n"` goes).
    pub fn demonstration(&self) -> &str {
        py_strip(&self.train.verbalized)
    }

    /// The example with in-context demonstrations before it (`encode_prompt` with
    /// `train_samples`): `train_prompts = "\n\n".join(demos).strip()`, and every string that is
    /// tokenized becomes `(train_prompts + "\n\n" + x).lstrip().strip(' ')`. The option lengths
    /// stay those measured without demonstrations (`verbalized`, `unverbalized` are unchanged),
    /// as in MeZO. No demonstrations leaves the example as it is.
    pub fn with_demos(&self, demos: &[&Rendered]) -> Rendered {
        let joined: Vec<&str> = demos.iter().map(|d| d.demonstration()).collect();
        let train_prompts = py_strip(&joined.join(TRAIN_SEP)).to_string();
        let with = |x: &str| final_prompt(&format!("{train_prompts}{TRAIN_SEP}{x}"));
        let mut out = self.clone();
        out.candidates = self.verbalized.iter().map(|v| with(v)).collect();
        if out.prompt.is_some() {
            out.prompt = Some(with(&self.unverbalized));
        }
        out
    }

    /// The text the option of candidate `c` adds (`verbalized[c]` minus the `unverbalized`
    /// prefix), for display. `None` when the prompt is not a prefix (never for MeZO's templates).
    pub fn option_text(&self, c: usize) -> Option<&str> {
        self.verbalized
            .get(c)?
            .strip_prefix(self.unverbalized.as_str())
    }
}

/// Render one example with its task's MeZO template.
///
/// Rows built by the loaders always render; a hand-built [`Example`] whose label or gold
/// points outside its candidates is reported as a [`TaskError::BadRow`].
pub fn render(example: &Example) -> Result<Rendered, TaskError> {
    let task = example.task();
    let t = example.template();
    let n = t.verbalize.len();
    if let Some(&bad) = t
        .correct
        .iter()
        .chain([&t.train_correct])
        .find(|&&i| i >= n)
    {
        return Err(TaskError::BadRow {
            location: format!(
                "task {task}, example {} of the split (counting from 0)",
                example.row
            ),
            row: example.row,
            kind: RowErrorKind::LabelOutOfRange {
                label: bad as i64,
                num_candidates: n,
            },
        });
    }
    let unverbalized = strip_spaces(&t.encode).to_string();
    match task.spec().eval_mode {
        EvalMode::Candidates => {
            let verbalized: Vec<String> = t
                .verbalize
                .iter()
                .map(|v| strip_spaces(v).to_string())
                .collect();
            let candidates: Vec<String> = verbalized.iter().map(|v| final_prompt(v)).collect();
            let train = TrainText {
                correct: t.train_correct,
                verbalized: verbalized[t.train_correct].clone(),
                text: candidates[t.train_correct].clone(),
            };
            Ok(Rendered {
                task,
                row: example.row,
                unverbalized,
                verbalized,
                candidates,
                prompt: None,
                correct: t.correct,
                gold_answers: t.gold_answers,
                train,
            })
        }
        EvalMode::Generation => {
            let gold_verbalized = t.verbalize[0].clone();
            let train = TrainText {
                correct: 0,
                text: final_prompt(&gold_verbalized),
                verbalized: gold_verbalized,
            };
            Ok(Rendered {
                task,
                row: example.row,
                prompt: Some(final_prompt(&unverbalized)),
                unverbalized,
                verbalized: Vec::new(),
                candidates: Vec::new(),
                correct: t.correct,
                gold_answers: t.gold_answers,
                train,
            })
        }
    }
}
