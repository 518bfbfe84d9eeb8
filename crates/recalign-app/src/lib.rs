//! recalign's page: a yew UI (`bin/app.rs`) and a Web Worker (`bin/worker.rs`) that owns the model,
//! so loading, scoring and generation never block the page.
//!
//! - [`protocol`]: the serde messages between the two.
//! - [`worker`]: the worker: device selection (WebGPU, else Burn's CPU device), model loading
//!   from the same origin with progress, ranking and generation.
//!   It also parses and splits datasets, trains the SASRec oracle on the CPU device, trains LoRA
//!   adapters (SFT and every preference loss) with the core's trainers, evaluates, and exports
//!   and imports adapters.
//! - [`state`]: the UI's state and its reducer.
//! - [`examples`]: the Recommend card's built-in examples.
//! - [`store`]: the browser's origin-private file system, where the worker keeps models,
//!   adapters, runs and checkpoints across reloads.
//! - [`components`]: the UI's function components.
//! - [`startup`]: what both binaries run first (static constructors, once).
//! - [`hash`]: the playground's settings in the URL hash (reloads and shared links keep them).
//! - [`advice`]: what to do after a device failure, by its kind and the device in use.

pub mod advice;
pub mod components;
pub mod examples;
pub mod hash;
pub mod protocol;
pub mod startup;
pub mod state;
pub mod store;
#[cfg(target_arch = "wasm32")]
pub mod worker;

/// Where the worker's loader script is served, next to `index.html`.
pub const WORKER_LOADER: &str = "worker_loader.js";
/// The model the page loads unless `?model=` names another file on the same origin.
pub const DEFAULT_MODEL_URL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
/// The adapter the page ranks with on the default model (committed; `models/default-adapter.md`).
pub const DEFAULT_ADAPTER_URL: &str = "models/default-adapter.safetensors";
/// The dataset the page loads at start (copied next to the page by `./x build`).
pub const DEFAULT_INTERACTIONS_URL: &str = "data/ml-100k/ml-100k.inter";
/// Its items file.
pub const DEFAULT_ITEMS_URL: &str = "data/ml-100k/ml-100k.item";
