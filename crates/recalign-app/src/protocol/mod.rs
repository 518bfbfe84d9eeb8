//! Messages between the page and the model worker: plain serde types, nothing browser-specific.

use serde::{Deserialize, Serialize};

mod request;
mod response;
#[cfg(test)]
mod tests;

pub use request::*;
pub use response::*;

/// Which device the worker computes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKind {
    /// WebGPU through Burn's wgpu backend.
    WebGpu,
    /// Burn's Flex CPU backend (no WebGPU adapter).
    Cpu,
}

/// The device the worker computes on, as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInUse {
    /// The device.
    pub kind: DeviceKind,
    /// Threads computing on the CPU device: 1 in the single-thread build, the rayon pool's size
    /// in the multi-threaded one (1 on WebGPU).
    pub threads: usize,
    /// Why WebGPU is not used, if it is not.
    pub note: Option<String>,
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

    /// The `?device=` value that parses back to this preference.
    pub fn as_query(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::WebGpu => "webgpu",
            Self::Cpu => "cpu",
        }
    }
}

/// The part of the page a request belongs to: where its progress and its failure show, and
/// whether the page waits for it. Defined here once ([`Request::lane`]); the worker tags every
/// progress and failure with it and the page routes them by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lane {
    /// Loading the model and using it (ranking, recommending, generating): the page is busy.
    Model,
    /// Which adapter ranks, exporting and importing one.
    Adapters,
    /// Datasets, test users and the SASRec oracle (the Data card).
    Data,
    /// Training runs and their controls (the Align card).
    Training,
    /// Evaluating a model on a split (the Evaluate card).
    Evaluation,
    /// What is kept in the browser's storage.
    Storage,
}

/// A message with the id of the request it belongs to. The page numbers its requests and the
/// worker echoes the number on every response to one, so the page knows which request a
/// result ends (two rankings in flight no longer free the page when the first one ends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tagged<T> {
    /// The request's number, unique per page.
    pub id: u64,
    /// The message.
    pub body: T,
}
