//! Helpers the training tests share: the native golden and the comparison against it.

use burn::tensor::Device;
use recalign_core::LanguageModel;
use recalign_core::fixtures::tiny_model_gguf;
use recalign_core::fixtures::training::{Outcome, run};

pub fn golden() -> Outcome {
    serde_json::from_str(include_str!("../../../../tests/fixtures/tiny_train.json")).unwrap()
}

pub async fn outcome_on(device: &Device) -> Outcome {
    let lm = LanguageModel::from_gguf_bytes(&tiny_model_gguf(7), device).unwrap();
    run(&lm).await.unwrap()
}

pub fn compare(got: &Outcome, loss_tol: f32, adapter_tol: f32, what: &str) {
    let want = golden();
    assert_eq!(got.losses.len(), want.losses.len());
    for (g, w) in got.losses.iter().zip(&want.losses) {
        assert!(
            (g - w).abs() <= loss_tol * (1.0 + w.abs()),
            "{what}: loss {g} vs native {w} ({:?} vs {:?})",
            got.losses,
            want.losses
        );
    }
    let worst = got
        .adapter
        .iter()
        .zip(&want.adapter)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0f32, f32::max);
    web_sys_log(&format!(
        "{what}: losses {:?}; largest adapter difference from native Flex {worst:e}",
        got.losses
    ));
    assert!(
        worst <= adapter_tol,
        "{what}: adapter differs from native by {worst}"
    );
}

pub fn web_sys_log(s: &str) {
    wasm_bindgen_test::console_log!("{s}");
}
