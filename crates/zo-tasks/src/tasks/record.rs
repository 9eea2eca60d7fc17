//! ReCoRD (`ReCoRDDataset`, template version 0 = `ReCoRDTemplateGPT3`; docs/PROTOCOL.md 1.4).

use crate::error::RowErrorKind;
use crate::fields::{self, Obj};
use crate::tasks::{first_index, TemplateOut};

/// A row of SuperGLUE `record` (`passage, query: string, entities, answers: list<string>,
/// idx: {passage, query}`; newer exports add `entity_spans`, which MeZO does not read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRow {
    pub passage: String,
    pub query: String,
    /// The candidates, in data order (docs/PROTOCOL.md 7.4: never re-sorted).
    pub entities: Vec<String>,
    pub answers: Vec<String>,
}

impl RecordRow {
    pub(crate) fn from_obj(obj: &Obj) -> Result<Self, RowErrorKind> {
        let row = RecordRow {
            passage: fields::string(obj, "passage")?,
            query: fields::string(obj, "query")?,
            entities: fields::string_list(obj, "entities")?,
            answers: fields::string_list(obj, "answers")?,
        };
        if row.entities.is_empty() {
            return Err(RowErrorKind::NoCandidates("entities"));
        }
        if row.answers.is_empty() {
            return Err(RowErrorKind::EmptyAnswers("answers"));
        }
        if let Some(a) = row
            .answers
            .iter()
            .find(|a| first_index(&row.entities, a).is_none())
        {
            // MeZO: `candidates.index(a)` raises ValueError.
            return Err(RowErrorKind::GoldNotAmongCandidates {
                gold: a.clone(),
                field: "entities",
            });
        }
        if !row.query.contains("@placeholder") {
            return Err(RowErrorKind::NoPlaceholder);
        }
        Ok(row)
    }

    /// encode: `"{P}\n-"`; verbalize(e): `"{P}\n- {query with every @placeholder → e}"`, where
    /// `P = passage.replace("@highlight\n", "- ")`. The option is the whole filled-in query.
    pub(crate) fn template(&self) -> TemplateOut {
        let passage = self.passage.replace("@highlight\n", "- ");
        let correct: Vec<usize> = self
            .answers
            .iter()
            .filter_map(|a| first_index(&self.entities, a))
            .collect();
        TemplateOut {
            encode: format!("{passage}\n-"),
            verbalize: self
                .entities
                .iter()
                .map(|e| format!("{passage}\n- {}", self.query.replace("@placeholder", e)))
                .collect(),
            // Validated in from_obj: every answer is an entity, answers is non-empty.
            train_correct: correct.first().copied().unwrap_or(0),
            correct,
            gold_answers: Vec::new(),
        }
    }
}
