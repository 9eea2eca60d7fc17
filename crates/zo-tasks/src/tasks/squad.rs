//! SQuAD v1.1 (`SQuADDataset`, `SQuADv2Template`; docs/PROTOCOL.md 1.5).

use crate::error::RowErrorKind;
use crate::fields::{self, Obj};
use crate::pystr::py_strip;
use crate::tasks::TemplateOut;

/// A row of `squad` (`id, title, context, question: string,
/// answers: {text: list<string>, answer_start: list<int32>}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SquadRow {
    pub id: Option<String>,
    pub title: String,
    pub context: String,
    pub question: String,
    /// `answers.text` (validation rows usually carry 3, possibly repeated).
    pub answers: Vec<String>,
}

impl SquadRow {
    pub(crate) fn from_obj(obj: &Obj) -> Result<Self, RowErrorKind> {
        let answers = fields::nested_string_list(obj, "answers", "text")?;
        if answers.is_empty() {
            return Err(RowErrorKind::EmptyAnswers("answers.text"));
        }
        Ok(SquadRow {
            id: fields::opt_string(obj, "id")?,
            title: fields::string(obj, "title")?,
            context: fields::string(obj, "context")?,
            question: fields::string(obj, "question")?,
            answers,
        })
    }

    /// encode: `"Title: {title}\nContext: {context}\nQuestion: {question.strip()}\nAnswer:"`;
    /// training adds `" {answers[0]}\n"`.
    pub(crate) fn template(&self) -> TemplateOut {
        let encode = format!(
            "Title: {}\nContext: {}\nQuestion: {}\nAnswer:",
            self.title,
            self.context,
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
