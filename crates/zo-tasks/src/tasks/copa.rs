//! COPA (`CopaDataset`, `CopaTemplate`; docs/PROTOCOL.md 1.3).

use crate::error::RowErrorKind;
use crate::fields::{self, Obj};
use crate::pystr::py_rstrip;
use crate::tasks::{first_index, TemplateOut};

/// COPA's `question` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopaQuestion {
    Cause,
    Effect,
}

/// A row of SuperGLUE `copa` (`premise, choice1, choice2, question: string, idx: int32,
/// label: ClassLabel(choice1, choice2)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopaRow {
    pub premise: String,
    pub choice1: String,
    pub choice2: String,
    pub question: CopaQuestion,
    /// 0 = choice1, 1 = choice2.
    pub label: usize,
    pub idx: Option<i64>,
}

impl CopaRow {
    pub(crate) fn from_obj(obj: &Obj) -> Result<Self, RowErrorKind> {
        let question = match fields::string(obj, "question")?.as_str() {
            "cause" => CopaQuestion::Cause,
            "effect" => CopaQuestion::Effect,
            // CopaTemplate.get_conjucture raises NotImplementedError here.
            other => return Err(RowErrorKind::BadCopaQuestion(other.to_string())),
        };
        Ok(CopaRow {
            premise: fields::string(obj, "premise")?,
            choice1: fields::string(obj, "choice1")?,
            choice2: fields::string(obj, "choice2")?,
            question,
            label: fields::binary_label(obj)?,
            idx: fields::opt_int(obj, "idx")?,
        })
    }

    /// `get_prompt`: premise `.rstrip()`, one trailing `"."` dropped, then `" so "` (effect) or
    /// `" because "` (cause). Capitalization "correct" = unchanged.
    fn prompt(&self) -> String {
        let p = py_rstrip(&self.premise);
        let p = p.strip_suffix('.').unwrap_or(p);
        let conj = match self.question {
            CopaQuestion::Effect => " so ",
            CopaQuestion::Cause => " because ",
        };
        format!("{p}{conj}")
    }

    pub(crate) fn template(&self) -> TemplateOut {
        let prompt = self.prompt();
        let candidates = [self.choice1.clone(), self.choice2.clone()];
        let gold = &candidates[self.label];
        // `candidates.index(correct_candidate)`: identical choices resolve to the first one.
        let correct = first_index(&candidates, gold).unwrap_or(self.label);
        TemplateOut {
            verbalize: candidates
                .iter()
                .map(|c| format!("{prompt}{}", capitalize(c)))
                .collect(),
            encode: prompt,
            correct: vec![correct],
            train_correct: correct,
            gold_answers: Vec::new(),
        }
    }
}

/// `CopaTemplate.capitalize`: split on `" "` (single spaces, empty pieces kept), lower-case the
/// first word unless it is exactly `"I"`, re-join with `" "`.
pub fn capitalize(choice: &str) -> String {
    let mut words: Vec<String> = choice.split(' ').map(str::to_string).collect();
    if words[0] != "I" {
        words[0] = words[0].to_lowercase();
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::capitalize;

    #[test]
    fn capitalize_keeps_i_and_lowercases_other_first_words() {
        assert_eq!(capitalize("The sun was rising."), "the sun was rising.");
        assert_eq!(capitalize("I went home."), "I went home.");
        assert_eq!(capitalize("I'm tired."), "i'm tired.");
        assert_eq!(capitalize("ÉTÉ Came"), "été Came");
        assert_eq!(capitalize(" Leading space"), " Leading space");
        assert_eq!(capitalize(""), "");
    }
}
