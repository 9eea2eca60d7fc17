//! Typed errors of zo-core.

/// Errors raised by the zeroth-order engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error from candle (shape, dtype, device, storage).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A configuration value is out of range; `field` names the offending key.
    #[error("invalid value for `{field}`: {reason}")]
    InvalidConfig { field: String, reason: String },

    /// Two parameters with the same name were given to a ParamSet.
    #[error("duplicate parameter name `{0}`")]
    DuplicateParam(String),

    /// A parameter name was looked up but is not in the set.
    #[error("no parameter named `{0}`")]
    MissingParam(String),

    /// The operation is not implemented for this device (never a silent fallback).
    #[error("{op} is not supported on device {device} yet")]
    UnsupportedDevice { op: &'static str, device: String },

    /// The operation is not implemented for this dtype.
    #[error("{op} is not supported for dtype {dtype:?}")]
    UnsupportedDtype {
        op: &'static str,
        dtype: candle_core::DType,
    },

    /// The objective returned a NaN or infinite loss.
    #[error("non-finite loss {value} at step {step}")]
    NonFiniteLoss { step: u64, value: f64 },

    /// Anything else, with a message.
    #[error("{0}")]
    Msg(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidConfig`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias of zo-core.
pub type Result<T> = std::result::Result<T, Error>;
