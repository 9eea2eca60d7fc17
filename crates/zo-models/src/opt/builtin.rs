//! The built-in OPTs (`builtin:NAME` model sources): the quickstart's small pre-trained OPT,
//! compiled into the library, and random weights from a seed with the shapes of a preset
//! (`tiny-opt` has the vocabulary of the built-in tiny tokenizer).

use std::path::Path;
use std::str::FromStr;

use candle_core::{DType, Device};

use super::{Config, OptModel, Preset};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// A built-in OPT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// The quickstart's pre-trained OPT ([`OptModel::builtin_quickstart`]).
    QuickstartOpt,
    /// hidden 64, 2 layers, the built-in tiny tokenizer's vocabulary (2048).
    TinyOpt,
    /// facebook/opt-125m shapes.
    Opt125m,
    /// facebook/opt-350m shapes.
    Opt350m,
}

impl Builtin {
    pub const NAMES: &'static str = "quickstart-opt, tiny-opt, opt-125m, opt-350m";

    /// The config of this built-in (f32, with transformers' `model_type` / `architectures`).
    pub fn config(self) -> Result<Config> {
        let mut cfg = match self {
            Builtin::QuickstartOpt => {
                Config::from_json_str(QUICKSTART_CONFIG, Path::new(QUICKSTART_ORIGIN))?
            }
            Builtin::TinyOpt => {
                let mut c = Config::preset(Preset::Tiny);
                c.vocab_size = Tokenizer::builtin_tiny().vocab_size();
                c
            }
            Builtin::Opt125m => Config::preset(Preset::Opt125m),
            Builtin::Opt350m => Config::preset(Preset::Opt350m),
        };
        cfg.dtype = Some("float32".into());
        Ok(cfg.with_hf_identity())
    }

    /// The model: the compiled-in weights, or random weights drawn from `seed`.
    pub fn load(self, seed: u64, dtype: DType, device: &Device) -> Result<OptModel> {
        match self {
            Builtin::QuickstartOpt => OptModel::builtin_quickstart(dtype, device),
            _ => OptModel::random(&self.config()?, seed, dtype, device),
        }
    }
}

impl FromStr for Builtin {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "quickstart-opt" => Ok(Builtin::QuickstartOpt),
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

/// Where errors about the compiled-in model say it comes from.
const QUICKSTART_ORIGIN: &str = "<builtin:quickstart-opt>";
const QUICKSTART_CONFIG: &str = include_str!("../../assets/quickstart-opt/config.json");
const QUICKSTART_WEIGHTS: &[u8] = include_bytes!("../../assets/quickstart-opt/model.safetensors");

impl OptModel {
    /// The quickstart's small pre-trained OPT (`builtin:quickstart-opt`: hidden 64, 2 layers,
    /// 239 488 parameters, the vocabulary of
    /// [`Tokenizer::builtin_tiny`](crate::tokenizer::Tokenizer::builtin_tiny)), trained by
    /// backprop on made-up review text by `assets/quickstart-opt/make_quickstart_opt.py`
    /// (which says what it knows: sentiment, but not SST-2's label words).
    pub fn builtin_quickstart(dtype: DType, device: &Device) -> Result<Self> {
        Self::from_safetensors_bytes(
            QUICKSTART_CONFIG,
            QUICKSTART_WEIGHTS,
            Path::new(QUICKSTART_ORIGIN),
            dtype,
            device,
        )
    }
}
