//! The OPT decoder (facebook/opt-*), ported from transformers' `modeling_opt.py`.

pub mod adapter;
mod adapter_io;
pub mod builtin;
pub mod config;
pub mod init;
pub mod layers;
pub mod load;
pub mod model;
pub mod prefix;
pub mod save;

pub use adapter::LoraSpec;
pub use builtin::Builtin;
pub use config::{Config, Preset};
pub use model::{KvCache, OptModel};
pub use prefix::PrefixSpec;
