//! Browser tests for recalign (see `tests/`): they run only on `wasm32-unknown-unknown` under
//! `wasm-bindgen-test-runner` with headless Chromium; natively this crate is empty.
