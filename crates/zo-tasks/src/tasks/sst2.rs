//! SST-2 (`SST2Dataset`, `SST2Template`; docs/PROTOCOL.md 1.1).

use crate::error::RowErrorKind;
use crate::fields::{self, Obj};
use crate::pystr::py_strip;
use crate::tasks::TemplateOut;

/// A row of GLUE `sst2` (`sentence: string, label: ClassLabel(negative, positive), idx: int32`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sst2Row {
    pub sentence: String,
    /// 0 = negative, 1 = positive.
    pub label: usize,
    pub idx: Option<i64>,
}

/// `SST2Template.verbalizer`.
pub const VERBALIZER: [&str; 2] = ["terrible", "great"];

impl Sst2Row {
    pub(crate) fn from_obj(obj: &Obj) -> Result<Self, RowErrorKind> {
        Ok(Sst2Row {
            sentence: fields::string(obj, "sentence")?,
            label: fields::binary_label(obj)?,
            idx: fields::opt_int(obj, "idx")?,
        })
    }

    /// encode: `"{s} It was"`, verbalize(c): `"{s} It was {verbalizer[c]}"`, with
    /// `s = sentence.strip()` (GLUE sentences end with a space).
    pub(crate) fn template(&self) -> TemplateOut {
        let s = py_strip(&self.sentence);
        TemplateOut {
            encode: format!("{s} It was"),
            verbalize: VERBALIZER
                .iter()
                .map(|w| format!("{s} It was {w}"))
                .collect(),
            correct: vec![self.label],
            train_correct: self.label,
            gold_answers: Vec::new(),
        }
    }
}
