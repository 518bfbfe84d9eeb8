//! Training on Flex compiled to wasm (the page's CPU fallback): the shared scenario of
//! `recalign_core::fixtures::training` gives the float64 reference `tests/fixtures/tiny_train.json`
//! within `Tolerance::F32_CPU`, the bound every f32 CPU is held to. (A file of its own, so it runs in its own page: the WebGPU
//! test's long SwiftShader work and this one's synchronous CPU work never share a renderer.)

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

mod common;

use burn::tensor::Device;
use common::{compare, outcome_on};
use recalign_core::fixtures::training::Tolerance;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn sft_and_dpo_steps_on_flex_in_wasm_match_native() {
    let got = outcome_on(&Device::flex()).await;
    compare(&got, Tolerance::F32_CPU, "Flex in wasm");
}
