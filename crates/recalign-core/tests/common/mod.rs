//! Shared helpers for the core's integration tests: where the real model is, and loading it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use burn::tensor::Device;
use recalign_core::LanguageModel;

/// The SmolLM2 GGUF: `$RECALIGN_MODEL`, the fetched copy in `models/`, or the shared test copy.
/// Panics with instructions when none exists: these tests must not pass silently without it.
pub fn real_model_path() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        std::env::var_os("RECALIGN_MODEL").map(PathBuf::from),
        Some(root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf")),
        Some(
            root.join("../shared/data/smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf"),
        ),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("SmolLM2 GGUF not found: run `cargo run -p recalign-cli -- fetch` or set RECALIGN_MODEL")
        })
}

/// The real model on Flex, loaded once per test binary.
pub fn real_model() -> &'static LanguageModel {
    static MODEL: OnceLock<LanguageModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let bytes = std::fs::read(real_model_path()).expect("read model");
        LanguageModel::from_gguf_bytes(&bytes, &Device::flex()).expect("load model")
    })
}

/// The tiny fixture model on Flex.
pub fn tiny_model() -> LanguageModel {
    let bytes = recalign_core::fixtures::tiny_model_gguf(7);
    LanguageModel::from_gguf_bytes(&bytes, &Device::flex()).expect("load tiny model")
}
