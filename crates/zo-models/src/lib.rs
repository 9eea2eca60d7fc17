//! Models whose trainable parameters live in a zo-core [`ParamSet`](zo_core::ParamSet): the OPT
//! decoder (every facebook/opt-* layout) and ResNet-18/34/50/101/152, with hub loading,
//! Hugging Face-compatible saving, the OPT tokenizer and MeZO's scoring objectives.
//!
//! What a runner calls:
//!
//! | need | call |
//! |---|---|
//! | random model from a config + seed | [`OptModel::random`] (`opt::Config::preset`, then set `vocab_size`) |
//! | the quickstart's pre-trained small OPT | [`OptModel::builtin_quickstart`] (`assets/quickstart-opt`) |
//! | load a local dir / a hub repo / safetensors bytes | [`OptModel::from_dir`], [`OptModel::from_hub`] + [`hub::HubOptions::from_env`], [`OptModel::from_safetensors_bytes`] |
//! | save (HF layout, + tokenizer) | [`OptModel::save_pretrained`] with [`opt::save::SaveOptions`] |
//! | the parameters ZO perturbs | [`OptModel::params`] (shares storage with the model) |
//! | tokenizer | [`tokenizer::Tokenizer`]: `from_dir`, `builtin_tiny`, `with_bos`, `encode`, `decode`, `newline_id` |
//! | batches | [`Batch::left_padded`] (MeZO: pad id 1, multiple of 8) |
//! | MeZO's objectives | [`scoring::lm_loss`], [`scoring::classification_loss`], [`scoring::mean_option_logprobs`] |
//! | generation | [`scoring::greedy_generate`] / [`scoring::greedy_generate_batch`] |
//! | a CPU model on candle's ops (the op sequence of CUDA / Metal) | [`set_candle_ops`] |
//!
//! Goldens against transformers live in `tests/` with their generator scripts in
//! `tests/fixtures/make_fixtures.py`, `assets/tiny-tokenizer/make_tiny_tokenizer.py` and
//! `assets/quickstart-opt/make_quickstart_opt.py`.

pub mod batch;
mod cpu;
pub mod error;
pub mod hub;
pub(crate) mod ops;
pub mod opt;
pub mod pickle_guard;
pub mod resnet;
mod rows;
pub mod scoring;
pub mod sgemm;
pub mod tokenizer;

pub use batch::Batch;
pub use cpu::{candle_ops, set_candle_ops};
pub use error::{Error, Result};
pub use opt::{Config as OptConfig, OptModel};
