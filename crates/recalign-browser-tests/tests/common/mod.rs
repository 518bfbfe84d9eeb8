//! Helpers the training tests share: the float64 reference and the comparison against it (the
//! bounds and their derivation live in `recalign_core::fixtures::training::Tolerance`).

use burn::tensor::Device;
use recalign_core::LanguageModel;
use recalign_core::fixtures::tiny_model_gguf;
use recalign_core::fixtures::training::{Outcome, Tolerance, run};

pub fn reference() -> Outcome {
    serde_json::from_str(include_str!("../../../../tests/fixtures/tiny_train.json")).unwrap()
}

pub async fn outcome_on(device: &Device) -> Outcome {
    let lm = LanguageModel::from_gguf_bytes(&tiny_model_gguf(7), device).unwrap();
    run(&lm).await.unwrap()
}

pub fn compare(got: &Outcome, tolerance: Tolerance, what: &str) {
    let d = got.deviation_from(&reference());
    web_sys_log(&format!("{what}: losses {:?}; {d:?}", got.losses));
    if let Err(e) = d.check(tolerance) {
        panic!("{what} against the f64 reference: {e}");
    }
}

pub fn web_sys_log(s: &str) {
    wasm_bindgen_test::console_log!("{s}");
}
