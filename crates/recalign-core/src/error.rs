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

/// What to do after an error message that says the device ran out of memory or was lost
/// (`on_gpu`: the device is WebGPU; `None` when unknown); `None` for any other message.
pub fn device_advice(message: &str, on_gpu: Option<bool>) -> Option<&'static str> {
    let lower = message.to_lowercase();
    let out_of_memory = OUT_OF_MEMORY.iter().any(|m| lower.contains(m));
    let lost = DEVICE_LOST.iter().any(|m| lower.contains(m));
    match (out_of_memory, lost, on_gpu) {
        (true, _, Some(true)) => Some(
            "The GPU ran out of memory: try a smaller batch (1, with more accumulation), fewer \
             training prompts, LoRA on q, v only, or the CPU (?device=cpu). Your adapters and \
             runs are kept.",
        ),
        (true, _, _) => Some(
            "The page ran out of memory (a wasm page has at most 4 GiB): try batch 1 with more \
             accumulation, fewer training prompts, or LoRA on q, v only. Your adapters and runs \
             are kept.",
        ),
        (false, true, _) => Some(
            "The browser reset the GPU (device lost), often after a long step or a driver \
             problem: reload the page (the model, adapters and the run's last checkpoint are \
             kept in this browser) or use the CPU (?device=cpu).",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::device_advice;

    #[test]
    fn device_errors_get_advice_and_others_do_not() {
        let oom = device_advice("wgpu: Out of Memory", Some(true)).unwrap();
        assert!(
            oom.contains("smaller batch") && oom.contains("?device=cpu"),
            "{oom}"
        );
        let wasm = device_advice("RuntimeError: memory access out of bounds", Some(false));
        assert!(wasm.unwrap().contains("4 GiB"));
        let lost = device_advice("Device lost: reason unknown", Some(true)).unwrap();
        assert!(lost.contains("reload the page"), "{lost}");
        assert_eq!(device_advice("the test split is empty", None), None);
        assert_eq!(device_advice("a room with a zoom", Some(true)), None);
    }
}
