//! One file per task: the row schema (HF export field names), its invariants, and the MeZO
//! template (`large_models/templates.py`) as pure string functions.

pub mod copa;
pub mod drop;
pub mod record;
pub mod rte;
pub mod squad;
pub mod sst2;

/// What a MeZO template produces for one sample, before `encode_prompt`'s strip rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TemplateOut {
    /// `template.encode(sample)`.
    pub encode: String,
    /// Candidate tasks: `template.verbalize(sample, c)` for each candidate, in candidate order.
    /// Generation tasks: the single training string `template.verbalize(sample, gold)`.
    pub verbalize: Vec<String>,
    /// Candidate indices counted as correct at evaluation (`candidates.index(gold)`; a list for
    /// ReCoRD). Empty for generation tasks.
    pub correct: Vec<usize>,
    /// The candidate the training loss uses (`candidates.index(correct_candidate[0])` for list
    /// golds); 0 for generation tasks.
    pub train_correct: usize,
    /// Gold answer strings for generation tasks (F1 against all of them).
    pub gold_answers: Vec<String>,
}

/// Python `list.index`: the first position of `x`.
pub(crate) fn first_index(items: &[String], x: &str) -> Option<usize> {
    items.iter().position(|it| it == x)
}
