//! Training on WebGPU in the browser: the shared scenario (`recalign_core::fixtures::training`:
//! 3 LoRA SFT steps, then 3 DPO steps) on WebGPU (SwiftShader in CI) gives the losses and the
//! adapter that native Flex committed in `tests/fixtures/tiny_train.json`.

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

mod common;

use burn::tensor::Device;
use common::{compare, outcome_on};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// WebGPU reduces in another order than Flex. Measured on SwiftShader: losses within 3e-6,
/// factors within 1.3e-6 after six AdamW steps; the tolerances leave room for other GPUs.
const WEBGPU_ADAPTER_TOLERANCE: f32 = 1e-4;
/// Losses (SFT ~17 nats per token, DPO ~0.7): relative tolerance on WebGPU.
const WEBGPU_LOSS_TOLERANCE: f32 = 1e-4;

#[wasm_bindgen_test]
async fn sft_and_dpo_steps_on_webgpu_match_native() {
    let device = Device::wgpu_options()
        .init_async()
        .await
        .expect("WebGPU adapter (run Chromium with --enable-unsafe-webgpu)");
    let got = outcome_on(&device).await;
    compare(
        &got,
        WEBGPU_LOSS_TOLERANCE,
        WEBGPU_ADAPTER_TOLERANCE,
        "WebGPU",
    );
}
