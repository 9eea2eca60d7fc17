//! The built-in OPTs (`builtin:NAME` model sources): random weights from a seed, with the
//! shapes of a preset; `tiny-opt` has the vocabulary of the built-in tiny tokenizer.

use std::str::FromStr;

use candle_core::{DType, Device};

use super::{Config, OptModel, Preset};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// A built-in OPT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// hidden 64, 2 layers, the built-in tiny tokenizer's vocabulary (2048).
    TinyOpt,
    /// facebook/opt-125m shapes.
    Opt125m,
    /// facebook/opt-350m shapes.
    Opt350m,
}

impl Builtin {
    pub const NAMES: &'static str = "tiny-opt, opt-125m, opt-350m";

    /// The config of this built-in (f32, with transformers' `model_type` / `architectures`).
    pub fn config(self) -> Config {
        let mut cfg = match self {
            Builtin::TinyOpt => {
                let mut c = Config::preset(Preset::Tiny);
                c.vocab_size = Tokenizer::builtin_tiny().vocab_size();
                c
            }
            Builtin::Opt125m => Config::preset(Preset::Opt125m),
            Builtin::Opt350m => Config::preset(Preset::Opt350m),
        };
        cfg.dtype = Some("float32".into());
        cfg.with_hf_identity()
    }

    /// The model: random weights drawn from `seed`.
    pub fn load(self, seed: u64, dtype: DType, device: &Device) -> Result<OptModel> {
        OptModel::random(&self.config(), seed, dtype, device)
    }
}

impl FromStr for Builtin {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tiny-opt" => Ok(Builtin::TinyOpt),
            "opt-125m" => Ok(Builtin::Opt125m),
            "opt-350m" => Ok(Builtin::Opt350m),
            other => Err(Error::Input(format!(
                "no built-in model `{other}` ({})",
                Self::NAMES
            ))),
        }
    }
}
