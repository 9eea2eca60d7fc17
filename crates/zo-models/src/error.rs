//! Typed errors of zo-models. Every error about a file names the file (and the tensor, where
//! there is one), so a user can tell which input is broken.

use std::path::PathBuf;

/// Errors raised while building, loading, saving or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// An error from zo-core (e.g. a ParamSet operation).
    #[error(transparent)]
    Core(#[from] zo_core::Error),

    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (config.json, index, tokenizer) could not be parsed.
    #[error("{}: invalid JSON: {reason}", path.display())]
    Json { path: PathBuf, reason: String },

    /// A config value is invalid or unsupported.
    #[error("{}: invalid config: {reason}", path.display())]
    Config { path: PathBuf, reason: String },

    /// A checkpoint lacks a tensor the config requires.
    #[error("{}: missing tensor `{tensor}`", path.display())]
    MissingTensor { path: PathBuf, tensor: String },

    /// A checkpoint holds a tensor the config does not expect (e.g. a layer index past
    /// `num_hidden_layers`, or a bias with `enable_bias = false`).
    #[error("{}: unexpected tensor `{tensor}`", path.display())]
    UnexpectedTensor { path: PathBuf, tensor: String },

    /// A checkpoint tensor has the wrong shape.
    #[error("{}: tensor `{tensor}` has shape {got:?}, expected {expected:?}", path.display())]
    ShapeMismatch {
        path: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },

    /// A checkpoint file is malformed (truncated, bad header, unreadable pickle, ...).
    #[error("{}: malformed checkpoint: {reason}", path.display())]
    Checkpoint { path: PathBuf, reason: String },

    /// A pickle in a torch checkpoint names a callable outside the tensor-rebuild subset (one
    /// a plain `torch.load` would run), or is malformed; nothing of it was used.
    #[error("{}: unsafe pickle: {reason}", path.display())]
    UnsafePickle { path: PathBuf, reason: String },

    /// No weights in a recognised format were found.
    #[error("{}: no model weights found (looked for {looked_for})", path.display())]
    NoWeights { path: PathBuf, looked_for: String },

    /// A tokenizer could not be built or used.
    #[error("{}: tokenizer: {reason}", path.display())]
    Tokenizer { path: PathBuf, reason: String },

    /// Hugging Face hub resolution or download failed.
    #[error("hub: {0}")]
    Hub(String),

    /// Invalid input to a model function (shapes of ids/masks, spans out of range, ...).
    #[error("{0}")]
    Input(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias of zo-models.
pub type Result<T> = std::result::Result<T, Error>;
