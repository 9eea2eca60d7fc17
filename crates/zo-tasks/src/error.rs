//! Typed errors. Every data error names the file (or source) and the row.

use std::path::PathBuf;

use thiserror::Error;

/// Why one data row cannot become an [`crate::Example`]. MeZO itself would crash on most of
/// these (`assert len(answers) > 0`, `candidates.index(gold)` raising `ValueError`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RowErrorKind {
    #[error("missing field `{0}`")]
    MissingField(String),
    #[error("field `{field}` should be {expected}, found {found}")]
    WrongType {
        field: String,
        expected: &'static str,
        found: String,
    },
    #[error("label {label} is not a candidate index (expected 0..{num_candidates})")]
    LabelOutOfRange { label: i64, num_candidates: usize },
    #[error("no candidates (`{0}` is empty)")]
    NoCandidates(&'static str),
    #[error("gold answer {gold:?} is not among the candidates (`{field}`)")]
    GoldNotAmongCandidates { gold: String, field: &'static str },
    #[error("no gold answers (`{0}` is empty)")]
    EmptyAnswers(&'static str),
    #[error("`question` must be \"cause\" or \"effect\", found {0:?}")]
    BadCopaQuestion(String),
    #[error("`query` contains no \"@placeholder\", so every candidate would render the same")]
    NoPlaceholder,
    #[error("not a JSON object: {0}")]
    NotAnObject(String),
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
}

/// Errors of this crate.
#[derive(Debug, Error)]
pub enum TaskError {
    #[error("unknown task {0:?} (expected one of sst2, rte, copa, record, squad, drop, cifar10, cifar100)")]
    UnknownTask(String),
    /// Image data that cannot be read (the message names the file or directory).
    #[error("{0}")]
    Image(String),
    /// A row that breaks the task's schema or invariants. `location` says where a person finds
    /// it (the file and its line or row there, or the task and the example's index); `row` is
    /// the 0-based row index within its split (all files of the split concatenated, in order).
    #[error("{location}: {kind}")]
    BadRow {
        location: String,
        row: usize,
        kind: RowErrorKind,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: parquet error: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A parquet file the reader could not decode (it failed inside the parquet crate).
    #[error("{path}: corrupt parquet file: {reason}")]
    CorruptParquet { path: PathBuf, reason: String },
    #[error("hub repo {repo} (revision {revision}), file {file}: {message}")]
    Hub {
        repo: String,
        revision: String,
        file: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Manifest { path: String, message: String },
    #[error("no files for split {split} of task {task} in {place}")]
    NoFiles {
        task: String,
        split: String,
        place: String,
    },
    #[error("a pool of {len} rows is beyond numpy's 32-bit permutation path")]
    PoolTooLarge { len: usize },
    #[error("task {task}, row {row}: the tokenizer failed on {what}: {message}")]
    Encode {
        task: String,
        row: usize,
        what: String,
        message: String,
    },
    /// `option_len = len(encode(verbalized)) - len(encode(unverbalized))` must be positive:
    /// MeZO slices `[-option_len:]`, and `[-0:]` would silently select the whole sequence.
    #[error("task {task}, row {row}, candidate {candidate}: the option adds {option_len} tokens (at least 1 expected)")]
    EmptyOption {
        task: String,
        row: usize,
        candidate: usize,
        option_len: i64,
    },
    /// The non-differentiable objective cuts the gold answer off the truncated training
    /// sequence; when the answer fills the whole budget nothing of the prompt is left (MeZO
    /// would generate from an empty input).
    #[error("task {task}, row {row}: the gold answer fills the whole max_length budget ({budget} tokens): no prompt is left to generate from (raise task.max_length)")]
    NoPromptLeft {
        task: String,
        row: usize,
        budget: usize,
    },
    #[error("max_length {0} is too small: MeZO's truncation keeps the BOS plus max_length-1 tokens, so at least 2 are needed")]
    MaxLength(usize),
    #[error("task {task} trains with {objective}, not with {requested}")]
    ObjectiveMismatch {
        task: String,
        objective: &'static str,
        requested: &'static str,
    },
}

impl TaskError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TaskError::Io {
            path: path.into(),
            source,
        }
    }
}
