//! recalign's core: everything the page and the CLI share, with no file system, network or
//! browser API, compiled natively and for `wasm32-unknown-unknown`.
//!
//! - [`gguf`]: reading (and, for fixtures, writing) GGUF model files, dequantisation to f32.
//! - [`tokenizer`]: the model's byte-level BPE and the ChatML template.
//! - [`model`]: the Llama-family decoder (SmolLM2) in Burn with a key/value cache.
//! - [`data`]: dataset parsers, the LLaRA split, candidate sets, preference pairs.
//! - [`oracle`]: SASRec and popularity, the conventional recommenders RosePO's smoothing uses.
//! - [`prompt`]: the recommendation prompt templates.
//! - [`hybrid`]: LLaRA's hybrid item input (oracle item vectors through a projector).
//! - [`lm`]: candidate scoring over a shared prompt prefix, and greedy generation.
//! - [`losses`]: every preference loss, in `f64` (loss lab, reference) and on tensors (training).
//! - [`train`]: LoRA, SFT and preference training as step functions; adapters in PEFT's layout.
//! - [`eval`]: reading generated answers against the candidates; ranking metrics.
//! - [`fixtures`]: a tiny deterministic model for tests on every device.
//!
//! Invariants: no function here panics on bad input (typed [`Error`]s instead), and nothing reads
//! tensors synchronously, because synchronous reads panic on WebGPU.

pub mod data;
pub mod error;
pub mod eval;
pub mod fixtures;
pub mod gguf;
pub mod hybrid;
pub mod lm;
pub mod losses;
pub mod model;
pub mod oracle;
pub mod prompt;
pub mod recommend;
pub mod stats;
pub mod tokenizer;
pub mod train;

pub use error::{Error, Result};
pub use lm::{CandidateScore, Generation, LanguageModel, RankedCandidate, Ranking, ScoreOptions};
