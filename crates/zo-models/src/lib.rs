//! Models whose trainable parameters live in a zo-core [`ParamSet`](zo_core::ParamSet): the OPT
//! decoder (every facebook/opt-* layout) and ResNet-18/50/101/152, with hub loading,
//! Hugging Face-compatible saving, the OPT tokenizer and MeZO's scoring objectives.

pub mod batch;
pub mod error;
pub mod hub;
pub(crate) mod ops;
pub mod opt;
pub mod resnet;
pub mod scoring;
pub mod tokenizer;

pub use batch::Batch;
pub use error::{Error, Result};
pub use opt::{Config as OptConfig, OptModel};
