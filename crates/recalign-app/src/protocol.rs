//! Messages between the page and the model worker: plain serde types, nothing browser-specific.

use recalign_core::{Generation, Ranking};
use serde::{Deserialize, Serialize};

/// Which device the worker computes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKind {
    /// WebGPU through Burn's wgpu backend.
    WebGpu,
    /// Burn's Flex CPU backend (no WebGPU adapter).
    Cpu,
}

/// Which device the user asked for (`?device=` in the URL).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DevicePreference {
    /// WebGPU on a hardware adapter, otherwise the CPU (a software WebGPU adapter is far slower
    /// than the CPU device: 385 s against 4 s for one SmolLM2 ranking in headless Chromium).
    #[default]
    Auto,
    /// WebGPU whenever an adapter exists, even a software one.
    WebGpu,
    /// The CPU device.
    Cpu,
}

impl DevicePreference {
    /// Parses the `?device=` value; anything unknown means automatic.
    pub fn from_query(value: Option<&str>) -> Self {
        match value {
            Some("cpu") => Self::Cpu,
            Some("webgpu") => Self::WebGpu,
            _ => Self::Auto,
        }
    }
}

/// A request to the worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Choose the device and load the model at `url` (same origin).
    LoadUrl {
        /// URL of a GGUF file.
        url: String,
        /// Which device to use.
        device: DevicePreference,
    },
    /// Load a GGUF the user picked.
    LoadBytes {
        /// File name, for display.
        name: String,
        /// File contents.
        bytes: Vec<u8>,
    },
    /// Rank candidates for a history.
    Rank {
        /// History titles, oldest first.
        history: Vec<String>,
        /// Candidate titles.
        candidates: Vec<String>,
        /// Length-normalise scores.
        length_normalised: bool,
    },
    /// Generate an answer to the recommendation prompt.
    Generate {
        /// History titles, oldest first.
        history: Vec<String>,
        /// Candidate titles.
        candidates: Vec<String>,
        /// Most new tokens.
        max_new_tokens: usize,
    },
}

/// Facts about the loaded model, for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// File name.
    pub name: String,
    /// File size in bytes.
    pub bytes: u64,
    /// Decoder layers.
    pub layers: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Context length.
    pub context: usize,
    /// Time from bytes in memory to a ready model, in ms.
    pub prepare_ms: f64,
}

/// A message from the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// The device chosen, with why when it is not WebGPU.
    Device {
        /// The device.
        kind: DeviceKind,
        /// Why WebGPU is not used, if it is not.
        note: Option<String>,
    },
    /// Progress of a long step.
    Progress {
        /// What is happening.
        stage: String,
        /// Units done (bytes when downloading).
        done: u64,
        /// Units in all, when known.
        total: Option<u64>,
    },
    /// The model is ready.
    Loaded(ModelInfo),
    /// A ranking finished.
    Ranked {
        /// The ranking.
        ranking: Ranking,
        /// Wall time in ms.
        ms: f64,
    },
    /// A generation finished.
    Generated {
        /// The answer.
        generation: Generation,
        /// Index of the candidate it names, if exactly one.
        named: Option<usize>,
        /// Wall time in ms.
        ms: f64,
    },
    /// Something failed; the message says what and, where possible, what to do.
    Failed {
        /// What was being done.
        during: String,
        /// The error.
        message: String,
    },
}
