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

/// The ML-100K folder (RecBole atomic files plus GroupLens' `u.item`): `$RECALIGN_DATA`, the
/// fetched copy in `data/ml-100k`, or the shared test copy. Panics with instructions otherwise.
pub fn ml100k_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        std::env::var_os("RECALIGN_DATA").map(PathBuf::from),
        Some(root.join("data/ml-100k")),
        Some(root.join("../shared/data/ml-100k")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.join("ml-100k.inter").is_file())
    .unwrap_or_else(|| {
        panic!("ML-100K not found: run `cargo run -p recalign-cli -- fetch` or set RECALIGN_DATA")
    })
}

/// ML-100K from the RecBole files, parsed once per test binary.
pub fn ml100k() -> &'static recalign_core::data::InteractionLog {
    static LOG: OnceLock<recalign_core::data::InteractionLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let dir = ml100k_dir();
        let inter = std::fs::read(dir.join("ml-100k.inter")).expect("read .inter");
        let item = std::fs::read(dir.join("ml-100k.item")).expect("read .item");
        recalign_core::data::formats::recbole_atomic(
            &inter,
            &item,
            recalign_core::data::Domain::Movies,
        )
        .expect("parse ML-100K")
    })
}
