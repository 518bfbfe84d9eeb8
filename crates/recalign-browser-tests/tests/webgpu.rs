//! The tiny fixture model gives the same candidate scores on WebGPU in the browser as on Flex
//! natively: both within their derived bounds of the float64 reference
//! `tests/fixtures/tiny_scores.json` (written by `recalign-core/tests/f64_reference.rs`), and bad
//! input is an error in wasm too, never a panic.

#![cfg(target_arch = "wasm32")]
// wasm-bindgen tests are not `#[test]` functions, so clippy's test exemption does not reach them.
#![allow(clippy::unwrap_used)]

use burn::tensor::Device;
use recalign_core::fixtures::{scores, tiny_model_gguf};
use recalign_core::{Error, LanguageModel, ScoreOptions};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn reference() -> scores::Reference {
    serde_json::from_str(include_str!("../../../tests/fixtures/tiny_scores.json")).unwrap()
}

async fn scores_on(device: &Device) -> Vec<f32> {
    let want = reference();
    let lm = LanguageModel::from_gguf_bytes(&tiny_model_gguf(want.seed), device).unwrap();
    let got = scores::compute(&lm).await.unwrap();
    assert_eq!(got.prompt_ids, want.prompt_ids);
    assert_eq!(got.candidates, want.candidates);
    got.log_probs
}

/// Holds `got` to the float64 reference within `bound` units of f32 roundoff (the bounds and
/// their derivation: `recalign_core::fixtures::scores`).
fn assert_close(got: &[f32], bound: f32, what: &str) {
    let want = reference().log_probs;
    let d = scores::deviation(got, &want).unwrap();
    wasm_bindgen_test::console_log!("{what}: scores {d:.1} u from the f64 reference");
    assert!(
        d <= bound,
        "{what}: {got:?} is {d} u from the f64 reference {want:?} (bound {bound})"
    );
}

#[wasm_bindgen_test]
async fn tiny_model_scores_on_webgpu_match_native_flex() {
    let device = Device::wgpu_options()
        .init_async()
        .await
        .expect("no WebGPU adapter: run Chromium with --enable-unsafe-webgpu");
    let got = scores_on(&device).await;
    assert_close(&got, scores::WEBGPU, "WebGPU");
    let generated = LanguageModel::from_gguf_bytes(&tiny_model_gguf(scores::SEED), &device)
        .unwrap()
        .generate(&reference().prompt_ids, 4)
        .await
        .unwrap();
    assert!(!generated.ids.is_empty());
}

#[wasm_bindgen_test]
async fn tiny_model_scores_on_flex_in_wasm_match_native_flex() {
    let got = scores_on(&Device::flex()).await;
    assert_close(&got, scores::F32_CPU, "Flex in wasm");
}

#[wasm_bindgen_test]
async fn bad_input_is_an_error_in_wasm_too() {
    let bytes = tiny_model_gguf(1);
    let err =
        LanguageModel::from_gguf_bytes(&bytes[..bytes.len() / 2], &Device::flex()).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    let err = LanguageModel::from_gguf_bytes(b"not a model at all", &Device::flex()).unwrap_err();
    assert!(err.to_string().contains("not a GGUF file"), "{err}");
    let lm = LanguageModel::from_gguf_bytes(&bytes, &Device::flex()).unwrap();
    let err = lm
        .score_candidates(&[40, 41], &[], ScoreOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EmptyCandidates));
}
