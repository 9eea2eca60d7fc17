//! OPT weights compiled into the library.

use std::path::Path;

use candle_core::{DType, Device};

use super::model::OptModel;
use crate::Result;

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
            Path::new("<builtin:quickstart-opt>"),
            dtype,
            device,
        )
    }
}
