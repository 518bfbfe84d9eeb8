//! The float64 references every f32 device is held to (`tests/fixtures/tiny_scores.json` and
//! `tiny_train.json`): the tiny model's scoring and training scenarios on Flex configured for
//! float64. Its own binary, because a device's float type is fixed once per process.
//!
//! `RECALIGN_BLESS=1 cargo test --release -p recalign-core --test f64_reference` rewrites them.
//! Otherwise this checks that the committed files are what float64 gives on this CPU: f64's own
//! rounding differences across CPUs (~1e-16 relative, amplified at most 1/eps = 1e5 times by
//! AdamW) stay far below f32's resolution, so after rounding to f32 the values agree to within
//! one f32 ulp, and [`ULPS`] allows two.

mod common;

use std::sync::OnceLock;

use burn::tensor::{Device, FloatDType};
use recalign_core::LanguageModel;
use recalign_core::fixtures::training::Outcome;
use recalign_core::fixtures::{scores, tiny_model_gguf, training};

/// Allowed distance, in f32 ulps of the reference value, between a fresh f64 run rounded to f32
/// and the committed one.
const ULPS: f32 = 2.0;

fn tiny_model_f64() -> LanguageModel {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    let device = DEVICE.get_or_init(|| {
        let mut d = Device::flex();
        d.configure(FloatDType::F64)
            .expect("Flex takes float64 before any tensor exists");
        d
    });
    LanguageModel::from_gguf_bytes(&tiny_model_gguf(scores::SEED), device).expect("tiny model")
}

fn path(name: &str) -> String {
    format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn bless() -> bool {
    std::env::var_os("RECALIGN_BLESS").is_some()
}

fn within_ulps(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        // One ulp at |w|; subnormal-safe floor for values that are zero in the reference.
        let ulp = (w.abs() * f32::EPSILON).max(f32::MIN_POSITIVE);
        assert!(
            (g - w).abs() <= ULPS * ulp,
            "{what}[{i}]: f64 gives {g}, committed {w}"
        );
    }
}

#[test]
fn the_committed_scores_are_the_f64_scores() {
    let got = pollster::block_on(scores::compute(&tiny_model_f64())).unwrap();
    if bless() {
        std::fs::write(
            path("tiny_scores.json"),
            serde_json::to_string_pretty(&got).unwrap() + "\n",
        )
        .unwrap();
    }
    let want: scores::Reference =
        serde_json::from_str(&std::fs::read_to_string(path("tiny_scores.json")).unwrap()).unwrap();
    assert_eq!(
        (&got.prompt_ids, &got.candidates),
        (&want.prompt_ids, &want.candidates)
    );
    within_ulps(&got.log_probs, &want.log_probs, "log_probs");
}

#[test]
fn the_committed_training_is_the_f64_training() {
    let got = pollster::block_on(training::run(&tiny_model_f64())).unwrap();
    if bless() {
        std::fs::write(
            path("tiny_train.json"),
            serde_json::to_string(&got).unwrap() + "\n",
        )
        .unwrap();
    }
    let want: Outcome =
        serde_json::from_str(&std::fs::read_to_string(path("tiny_train.json")).unwrap()).unwrap();
    within_ulps(&got.losses, &want.losses, "losses");
    within_ulps(&got.adapter, &want.adapter, "adapter");
}
