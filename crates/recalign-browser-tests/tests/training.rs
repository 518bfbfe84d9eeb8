//! Training on WebGPU in the browser: the shared scenario (`recalign_core::fixtures::training`:
//! 3 LoRA SFT steps, then 3 DPO steps) on WebGPU (SwiftShader in CI) gives the losses and the
//! adapter of the float64 reference `tests/fixtures/tiny_train.json`, within
//! `Tolerance::WEBGPU` (derived there).

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

mod common;

use burn::tensor::Device;
use common::{compare, outcome_on};
use recalign_core::fixtures::training::Tolerance;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn sft_and_dpo_steps_on_webgpu_match_native() {
    let device = Device::wgpu_options()
        .init_async()
        .await
        .expect("WebGPU adapter (run Chromium with --enable-unsafe-webgpu)");
    let got = outcome_on(&device).await;
    compare(&got, Tolerance::WEBGPU, "WebGPU");
}
