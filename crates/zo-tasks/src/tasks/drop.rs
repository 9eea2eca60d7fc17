//! DROP (`DROPDataset`, `DROPTemplate`; docs/PROTOCOL.md 1.6).

use crate::error::RowErrorKind;
use crate::fields::{self, Obj};
use crate::pystr::py_strip;
use crate::tasks::TemplateOut;

/// A row of `drop` (`section_id, query_id, passage, question: string,
/// answers_spans: {spans: list<string>, types: list<string>}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropRow {
    pub query_id: Option<String>,
    pub passage: String,
    pub question: String,
    /// `answers_spans.spans`.
    pub answers: Vec<String>,
}

impl DropRow {
    pub(crate) fn from_obj(obj: &Obj) -> Result<Self, RowErrorKind> {
        let answers = fields::nested_string_list(obj, "answers_spans", "spans")?;
        if answers.is_empty() {
            return Err(RowErrorKind::EmptyAnswers("answers_spans.spans"));
        }
        Ok(DropRow {
            query_id: fields::opt_string(obj, "query_id")?,
            passage: fields::string(obj, "passage")?,
            question: fields::string(obj, "question")?,
            answers,
        })
    }

    /// encode: `"Passage: {passage}\nQuestion: {question.strip()}\nAnswer:"`; training adds
    /// `" {answers[0]}\n"`.
    pub(crate) fn template(&self) -> TemplateOut {
        let encode = format!(
            "Passage: {}\nQuestion: {}\nAnswer:",
            self.passage,
            py_strip(&self.question)
        );
        TemplateOut {
            verbalize: vec![format!("{encode} {}\n", self.answers[0])],
            encode,
            correct: Vec::new(),
            train_correct: 0,
            gold_answers: self.answers.clone(),
        }
    }
}
