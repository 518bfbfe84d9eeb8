//! The model worker's multi-threaded build (`./x build`: nightly, `-Z build-std`, wasm atomics).
//! `web/worker_loader.js` loads it when the page is cross-origin isolated and the model runs on
//! the CPU, builds the thread pool (`initThreadPool`) and then starts the worker
//! (`startWorker`). The code is recalign-app's worker; this crate only links it as a library
//! whose wasm-bindgen exports survive.

#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
pub use recalign_app::worker::{init_thread_pool, start_worker};
