//! Bad input gets a typed error naming what is wrong, never a panic: broken model files, prompts
//! longer than the context, empty candidate lists.

mod common;

use burn::tensor::Device;
use common::tiny_model;
use recalign_core::fixtures::{TINY_CONTEXT, tiny_model_gguf};
use recalign_core::gguf::{Gguf, GgufError, GgufWriter, MetaValue};
use recalign_core::{Error, LanguageModel, ScoreOptions};

fn load(bytes: &[u8]) -> Result<LanguageModel, Error> {
    LanguageModel::from_gguf_bytes(bytes, &Device::flex())
}

#[test]
fn every_truncation_of_a_model_file_is_a_typed_error() {
    let bytes = tiny_model_gguf(1);
    // Every cut inside the header and metadata, then a sample of cuts inside the tensor data.
    let header_len = 4096.min(bytes.len());
    let cuts = (0..header_len).chain((header_len..bytes.len()).step_by(997));
    for cut in cuts {
        let err = load(&bytes[..cut]).expect_err("a truncated file must not load");
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                Error::Gguf(GgufError::Truncated { .. } | GgufError::TensorOutOfBounds { .. })
            ),
            "cut at {cut}: {msg}"
        );
    }
}

#[test]
fn wrong_magic_is_named() {
    let mut bytes = tiny_model_gguf(1);
    bytes[..4].copy_from_slice(b"PK\x03\x04");
    let err = load(&bytes).unwrap_err();
    assert!(matches!(err, Error::Gguf(GgufError::BadMagic { .. })));
    assert!(err.to_string().contains("not a GGUF file"), "{err}");
}

#[test]
fn unknown_quantisation_type_is_named() {
    let mut w = GgufWriter::new();
    w.meta("general.architecture", MetaValue::String("llama".into()));
    w.tensor_raw(
        "blk.0.attn_q.weight",
        &[4, 32],
        recalign_core::gguf::GgmlType::F32,
        vec![0; 512],
    );
    let mut bytes = w.finish();
    // The tensor info is: name, n_dims (u32), two dims (u64 each), type id (u32), offset.
    let name = b"blk.0.attn_q.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 4 + 16;
    bytes[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    let err = Gguf::parse(&bytes).unwrap_err();
    assert_eq!(
        err,
        GgufError::UnknownTensorType {
            name: "blk.0.attn_q.weight".into(),
            type_id: 99
        }
    );
    assert!(err.to_string().contains("unknown ggml type 99"));
}

#[test]
fn known_but_unsupported_quantisation_is_named() {
    let mut w = GgufWriter::new();
    w.tensor_raw(
        "x",
        &[256],
        recalign_core::gguf::GgmlType::Q5K,
        vec![0; 176],
    );
    let bytes = w.finish();
    let g = Gguf::parse(&bytes).unwrap();
    let err = g.tensor_f32("x").unwrap_err();
    assert!(err.to_string().contains("Q5_K"), "{err}");
}

#[test]
fn tensor_data_past_the_end_is_named() {
    let mut w = GgufWriter::new();
    w.tensor_raw(
        "big",
        &[1024],
        recalign_core::gguf::GgmlType::F32,
        vec![0; 64],
    );
    let err = Gguf::parse(&w.finish()).unwrap_err();
    assert!(
        matches!(err, GgufError::TensorOutOfBounds { ref name, end: 4096, .. } if name == "big"),
        "{err}"
    );
}

#[test]
fn hostile_counts_do_not_allocate() {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&u64::MAX.to_le_bytes()); // tensors
    bytes.extend_from_slice(&1u64.to_le_bytes()); // one key
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.push(b'k');
    bytes.extend_from_slice(&9u32.to_le_bytes()); // array
    bytes.extend_from_slice(&8u32.to_le_bytes()); // of strings
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        Gguf::parse(&bytes),
        Err(GgufError::Truncated { .. })
    ));
}

#[test]
fn a_non_llama_model_is_refused() {
    let mut w = GgufWriter::new();
    w.meta("general.architecture", MetaValue::String("gemma".into()));
    w.meta("tokenizer.ggml.model", MetaValue::String("gpt2".into()));
    let err = load(&w.finish()).unwrap_err();
    assert!(err.to_string().contains("gemma"), "{err}");
}

#[test]
fn prompt_longer_than_the_context_is_refused() {
    let lm = tiny_model();
    let prompt = vec![40u32; TINY_CONTEXT + 1];
    let err =
        pollster::block_on(lm.score_candidates(&prompt, &["a".into()], ScoreOptions::default()))
            .unwrap_err();
    assert!(
        matches!(err, Error::PromptTooLong { tokens, context, .. } if tokens == TINY_CONTEXT + 1 && context == TINY_CONTEXT)
    );
    // Fits alone, but not with its answer.
    let prompt = vec![40u32; TINY_CONTEXT - 1];
    let err =
        pollster::block_on(lm.score_candidates(&prompt, &["abc".into()], ScoreOptions::default()))
            .unwrap_err();
    assert!(err.to_string().contains("shorten the history"), "{err}");
    let err = pollster::block_on(lm.generate(&prompt, 8)).unwrap_err();
    assert!(matches!(err, Error::PromptTooLong { .. }));
}

#[test]
fn empty_candidates_are_refused() {
    let lm = tiny_model();
    let err = pollster::block_on(lm.score_candidates(&[40, 41], &[], ScoreOptions::default()))
        .unwrap_err();
    assert!(matches!(err, Error::EmptyCandidates), "{err}");
    let err = pollster::block_on(lm.score_candidates(
        &[40, 41],
        &["x".into(), String::new()],
        ScoreOptions::default(),
    ))
    .unwrap_err();
    assert!(
        matches!(err, Error::EmptyCandidate { index: 1, .. }),
        "{err}"
    );
    let err = pollster::block_on(lm.score_candidates(&[], &["x".into()], ScoreOptions::default()))
        .unwrap_err();
    assert!(
        matches!(err, Error::PromptTooLong { tokens: 0, .. }),
        "{err}"
    );
}

#[test]
fn a_request_that_leaves_no_room_for_the_answer_is_refused() {
    let lm = tiny_model();
    let candidates: Vec<String> = (0..20).map(|i| format!("Film {i}")).collect();
    let fits = recalign_core::prompt::request(
        recalign_core::data::Domain::Movies,
        3,
        &["A".into()],
        &candidates,
    );
    assert!(lm.request_prompt_ids(&fits, &candidates).is_ok());
    let history: Vec<String> = (0..400)
        .map(|i| format!("A long forgotten film {i}"))
        .collect();
    let long = recalign_core::prompt::request(
        recalign_core::data::Domain::Movies,
        3,
        &history,
        &candidates,
    );
    match lm.request_prompt_ids(&long, &candidates) {
        Err(Error::PromptTooLong {
            tokens, context, ..
        }) => {
            assert!(tokens > context - 10);
            assert_eq!(context, TINY_CONTEXT);
        }
        other => panic!("expected PromptTooLong, got {other:?}"),
    }
}
