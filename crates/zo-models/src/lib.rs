//! Models whose trainable parameters live in a zo-core [`ParamSet`](zo_core::ParamSet): the OPT
//! decoder (every facebook/opt-* layout) and ResNet-18/50/101/152, with hub loading,
//! Hugging Face-compatible saving, the OPT tokenizer and MeZO's scoring objectives.

pub mod error;
pub mod hub;
pub mod opt;
pub mod resnet;
pub mod scoring;
pub mod tokenizer;

pub use error::{Error, Result};
