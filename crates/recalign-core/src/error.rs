//! One error type for everything `recalign-core` can refuse, so the CLI and the page can show a
//! precise message instead of panicking.

use crate::data::DataError;
use crate::gguf::GgufError;

/// Everything that can go wrong in the core crate. Each variant names what was wrong with the
/// input; none is a bug (a bug would be a panic, which the core avoids).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file could not be read as GGUF.
    #[error("model file: {0}")]
    Gguf(#[from] GgufError),
    /// The GGUF is well-formed but does not describe a model this crate can run.
    #[error("model: {0}")]
    Model(String),
    /// The tokenizer could not be built or could not encode/decode.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The prompt (plus what must follow it) does not fit the model's context window.
    #[error(
        "the prompt is {tokens} tokens long and needs {needed} more for its answers, \
         but the model's context is {context} tokens; shorten the history"
    )]
    PromptTooLong {
        /// Tokens in the prompt.
        tokens: usize,
        /// Tokens that must fit after the prompt (the longest candidate, or new tokens).
        needed: usize,
        /// The model's context length.
        context: usize,
    },
    /// Ranking was asked for without any candidate.
    #[error("the candidate list is empty: give at least one candidate to rank")]
    EmptyCandidates,
    /// A candidate encodes to no tokens (for example an empty title).
    #[error("candidate {index} ({title:?}) is empty after tokenisation")]
    EmptyCandidate {
        /// Position in the candidate list.
        index: usize,
        /// The candidate as given.
        title: String,
    },
    /// A dataset, split or pair file could not be used.
    #[error("data: {0}")]
    Data(#[from] DataError),
    /// A saved oracle could not be loaded or saved.
    #[error("oracle: {0}")]
    Oracle(String),
    /// A loss was asked for with invalid parameters or inputs.
    #[error("loss: {0}")]
    Loss(String),
    /// Training could not start or continue (bad settings, a non-finite loss, a bad checkpoint).
    #[error("training: {0}")]
    Train(String),
    /// An adapter file could not be read, written or matched to the model.
    #[error("adapter: {0}")]
    Adapter(String),
    /// The compute device failed (lost device, out of memory, read-back failure).
    #[error("device: {0}")]
    Device(String),
}

impl Error {
    /// Wraps a failure reported by the compute device (Burn's `ExecutionError` and friends).
    pub(crate) fn device(e: impl std::fmt::Display) -> Self {
        Error::Device(e.to_string())
    }
}

/// `Result` with the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
