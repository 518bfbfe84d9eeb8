//! The tiny fixture model gives the same candidate scores on WebGPU in the browser as on Flex
//! natively (the committed golden `tests/fixtures/tiny_scores.json`, written by the native test
//! `recalign-core/tests/tiny_model.rs`), and bad input is an error in wasm too, never a panic.

#![cfg(target_arch = "wasm32")]
// wasm-bindgen tests are not `#[test]` functions, so clippy's test exemption does not reach them.
#![allow(clippy::unwrap_used)]

use burn::tensor::Device;
use recalign_core::fixtures::tiny_model_gguf;
use recalign_core::{Error, LanguageModel, ScoreOptions};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// WebGPU (SwiftShader in CI) sums in a different order than Flex: allow 1e-3 nats per candidate.
const WEBGPU_TOLERANCE: f32 = 1e-3;
/// Flex in wasm runs the same kernels as natively, without threads: allow float reassociation only.
const FLEX_TOLERANCE: f32 = 1e-4;

struct Golden {
    seed: u64,
    message: String,
    prompt: Vec<u32>,
    candidates: Vec<String>,
    log_probs: Vec<f32>,
}

fn golden() -> Golden {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/fixtures/tiny_scores.json")).unwrap();
    Golden {
        seed: v["seed"].as_u64().unwrap(),
        message: v["message"].as_str().unwrap().to_string(),
        prompt: v["prompt_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect(),
        candidates: v["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect(),
        log_probs: v["log_probs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect(),
    }
}

async fn scores_on(device: &Device) -> Vec<f32> {
    let g = golden();
    let lm = LanguageModel::from_gguf_bytes(&tiny_model_gguf(g.seed), device).unwrap();
    assert_eq!(
        lm.tokenizer
            .encode(&recalign_core::tokenizer::chatml_user(&g.message))
            .unwrap(),
        g.prompt
    );
    lm.score_candidates(&g.prompt, &g.candidates, ScoreOptions::default())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.log_prob)
        .collect()
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what}: candidate {i}: {g} vs native {w} (tolerance {tol})"
        );
    }
}

#[wasm_bindgen_test]
async fn tiny_model_scores_on_webgpu_match_native_flex() {
    let device = Device::wgpu_options()
        .init_async()
        .await
        .expect("no WebGPU adapter: run Chromium with --enable-unsafe-webgpu");
    let got = scores_on(&device).await;
    assert_close(&got, &golden().log_probs, WEBGPU_TOLERANCE, "WebGPU");
    let generated = LanguageModel::from_gguf_bytes(&tiny_model_gguf(golden().seed), &device)
        .unwrap()
        .generate(&golden().prompt, 4)
        .await
        .unwrap();
    assert!(!generated.ids.is_empty());
}

#[wasm_bindgen_test]
async fn tiny_model_scores_on_flex_in_wasm_match_native_flex() {
    let got = scores_on(&Device::flex()).await;
    assert_close(&got, &golden().log_probs, FLEX_TOLERANCE, "Flex in wasm");
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
