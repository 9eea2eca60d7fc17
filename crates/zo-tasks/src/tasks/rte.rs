//! RTE (`RTEDataset`, `RTETemplate` "From PromptSource 1"; docs/PROTOCOL.md 1.2).

use crate::error::RowErrorKind;
use crate::fields::{self, Obj};
use crate::tasks::TemplateOut;

/// A row of SuperGLUE `rte` (`premise, hypothesis: string, idx: int32,
/// label: ClassLabel(entailment, not_entailment)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RteRow {
    pub premise: String,
    pub hypothesis: String,
    /// 0 = entailment, 1 = not_entailment.
    pub label: usize,
    pub idx: Option<i64>,
}

/// `RTETemplate.verbalizer`.
pub const VERBALIZER: [&str; 2] = ["Yes", "No"];

impl RteRow {
    pub(crate) fn from_obj(obj: &Obj) -> Result<Self, RowErrorKind> {
        Ok(RteRow {
            premise: fields::string(obj, "premise")?,
            hypothesis: fields::string(obj, "hypothesis")?,
            label: fields::binary_label(obj)?,
            idx: fields::opt_int(obj, "idx")?,
        })
    }

    /// Fields are used raw (no strip). The option (`Yes`/`No`) follows the newline directly.
    pub(crate) fn template(&self) -> TemplateOut {
        let encode = format!(
            "{}\nDoes this mean that \"{}\" is true? Yes or No?\n",
            self.premise, self.hypothesis
        );
        TemplateOut {
            verbalize: VERBALIZER.iter().map(|w| format!("{encode}{w}")).collect(),
            encode,
            correct: vec![self.label],
            train_correct: self.label,
            gold_answers: Vec::new(),
        }
    }
}
