//! MeZO's task protocol (princeton-nlp/MeZO `large_models`, commit 552cb1b), string for string:
//! data rows (HF parquet exports or JSONL) → seeded subsets → prompts and option spans →
//! token ids through any tokenizer → metrics. Plus CIFAR-10/100 readers.
//!
//! No candle here (docs/ARCHITECTURE.md): everything is strings, ids and `f32` arrays. The spec is
//! `docs/PROTOCOL.md`; section numbers in the docs refer to it.
//!
//! Typical use by a runner:
//! ```no_run
//! use zo_tasks::*;
//! # fn main() -> Result<(), TaskError> {
//! let task: Task = "sst2".parse()?;
//! let spec = task.spec();
//! let src = DataSource::Hub(HubOptions::from_env());
//! let splits = load_splits(task, &src, 0, spec.default_sizes, BadRowPolicy::Fail)?;
//! for ex in &splits.test {
//!     let r = render(ex)?;
//!     // encode_example(&tokenizer, &r, spec.max_length)? → score candidates / generate
//! #   let _ = r;
//! }
//! # Ok(()) }
//! ```

//!
//! Decisions where the protocol left room (each also documented where it lives):
//! - **Parquet** through the Arrow project's `parquet` crate with `default-features = false`
//!   and only `snap` (the HF parquet converter writes snappy; no arrow, zstd, brotli, lz4 or
//!   flate2 compile): rows are read with its record API and converted to the same JSON shape
//!   a JSONL row has, so both formats share one validation path.
//! - **MT19937 written here** (`mt19937.rs`): what must match is numpy's seeding and masked
//!   rejection draw as much as the generator; test vectors pin all three.
//! - **PNG** (CIFAR parquet) decoded with the `png` crate.
//! - **Bad rows**: [`BadRowPolicy::Fail`] (MeZO's behaviour) or `Skip` (reported; kept rows
//!   keep their HF row index). ReCoRD queries without `@placeholder` are rejected, which MeZO
//!   does not do (every real ReCoRD query has one).
//! - **Option lengths** are clamped to the predicted positions after truncation (equivalent to
//!   MeZO's slicing); an option that adds no token is an error, since MeZO's `[-0:]` would
//!   silently score the whole sequence.
//! - `num_dev = 0` means "no dev set" (MeZO's `--num_dev` unset).

pub mod cifar;
pub mod data;
pub mod encode;
pub mod error;
pub mod example;
mod fields;
pub mod hub;
pub mod icl;
pub mod image;
pub mod manifest;
pub mod metrics;
pub mod mt19937;
pub mod pystr;
pub mod render;
pub mod rows;
pub mod sampling;
pub mod task;
pub mod tasks;

pub use data::{
    load_files, load_rows, load_splits, resolve_files, BadRowPolicy, DataSource, LoadedRows, Split,
};
pub use encode::{
    encode_example, encode_train, truncate_left_keep_bos, EncodedEval, EncodedSeq, TextEncoder,
    TrainFeature,
};
pub use error::{RowErrorKind, TaskError};
pub use example::{Example, ExampleData};
pub use hub::{HubOptions, RepoKind};
pub use icl::{demo_seeds, demo_sets};
pub use image::{load_image_splits, AnyTask, ImageManifest, ImageSplits, ImageTask};
pub use manifest::{DatasetRef, FixtureFiles, PoolSizes, QuickstartFiles, TaskManifest};
pub use metrics::{
    accuracy, argmax, clean_up_tokenization, exact_match, f1, generation_answer, mean_f1,
    normalize_answer,
};
pub use render::{render, Rendered, TrainText, TRAIN_SEP};
pub use sampling::{
    sample_splits, sample_subset_indices, split_indices, SplitIndices, SplitSizes, Splits,
};
pub use task::{EvalMode, MetricKind, Objective, Task, TaskSpec, MAX_LENGTH, MAX_NEW_TOKENS};
