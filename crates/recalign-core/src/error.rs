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
    #[error("device: {message}")]
    Device {
        /// What kind of failure, so a front end can advise without reading the message.
        fault: DeviceFault,
        /// The device's own words.
        message: String,
    },
}

/// What kind of failure an [`Error::Device`] is. The core names the kind once, where the
/// device's error enters it; the CLI and the page turn kinds into advice for their own users.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeviceFault {
    /// The device could not allocate (GPU memory, or the wasm page's 4 GiB).
    OutOfMemory,
    /// The device is gone or poisoned: nothing more runs on it until it is made again.
    Lost,
    /// Anything else (a read-back that could not be converted, an unknown failure).
    Other,
}

impl DeviceFault {
    /// The kind of a failure known only by its message. Burn reports a poisoned device as a
    /// variant ([`Error::execution`] reads it) but an allocation failure only in wgpu's or the
    /// allocator's words, so those words are matched here, and nowhere else.
    fn of_message(message: &str) -> Self {
        let lower = message.to_lowercase();
        if OUT_OF_MEMORY.iter().any(|m| lower.contains(m)) {
            DeviceFault::OutOfMemory
        } else if DEVICE_LOST.iter().any(|m| lower.contains(m)) {
            DeviceFault::Lost
        } else {
            DeviceFault::Other
        }
    }
}

impl Error {
    /// Wraps a failure reported by the compute device.
    pub(crate) fn device(e: impl std::fmt::Display) -> Self {
        let message = e.to_string();
        Error::Device {
            fault: DeviceFault::of_message(&message),
            message,
        }
    }

    /// Wraps Burn's execution error (a failed read-back), a poisoned device as [`DeviceFault::Lost`].
    pub(crate) fn execution(e: burn::tensor::ExecutionError) -> Self {
        let message = e.reason().to_string();
        let fault = if e.is_device_poisoned() {
            DeviceFault::Lost
        } else {
            DeviceFault::of_message(&message)
        };
        Error::Device { fault, message }
    }

    /// The kind of device failure this is, if it is one.
    pub fn device_fault(&self) -> Option<DeviceFault> {
        match self {
            Error::Device { fault, .. } => Some(*fault),
            _ => None,
        }
    }
}

/// `Result` with the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

const OUT_OF_MEMORY: [&str; 5] = [
    "out of memory",
    "outofmemory",
    "allocation failed",
    "memory access out of bounds",
    "could not allocate",
];
const DEVICE_LOST: [&str; 4] = [
    "device lost",
    "devicelost",
    "device was lost",
    "device is lost",
];

#[cfg(test)]
mod tests {
    use super::{DeviceFault, Error};

    #[test]
    fn device_failures_get_their_kind() {
        let kind = |m: &str| Error::device(m).device_fault();
        assert_eq!(kind("wgpu: Out of Memory"), Some(DeviceFault::OutOfMemory));
        assert_eq!(
            kind("RuntimeError: memory access out of bounds"),
            Some(DeviceFault::OutOfMemory)
        );
        assert_eq!(kind("Device lost: reason unknown"), Some(DeviceFault::Lost));
        assert_eq!(kind("a room with a zoom"), Some(DeviceFault::Other));
        assert_eq!(Error::EmptyCandidates.device_fault(), None);
    }
}
