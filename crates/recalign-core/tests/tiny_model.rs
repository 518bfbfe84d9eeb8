//! The tiny fixture model through the real loading and scoring code: shared-prefix scores equal
//! separate full sequences, padding does not leak, and scores are proper log-probabilities.

mod common;

use common::tiny_model;
use recalign_core::ScoreOptions;
use recalign_core::tokenizer::chatml_user;

/// The message and candidates of the cross-device golden (also recorded in its JSON).
const GOLDEN_MESSAGE: &str = "history: the thin, the in-between. pick one";
const GOLDEN_TITLES: [&str; 6] = [
    "the",
    "Amélie",
    "a much longer title than the others",
    "x",
    "2001",
    "Léon: The Professional",
];

fn titles(t: &[&str]) -> Vec<String> {
    t.iter().map(|s| s.to_string()).collect()
}

#[test]
fn shared_prefix_equals_separate_sequences_on_the_tiny_model() {
    let lm = tiny_model();
    let prompt = lm.tokenizer.encode(&chatml_user(GOLDEN_MESSAGE)).unwrap();
    let cands = titles(&GOLDEN_TITLES);
    for length_normalised in [false, true] {
        let opts = ScoreOptions { length_normalised };
        let shared = pollster::block_on(lm.score_candidates(&prompt, &cands, opts)).unwrap();
        let separate =
            pollster::block_on(lm.score_candidates_separately(&prompt, &cands, opts)).unwrap();
        for (a, b) in shared.iter().zip(&separate) {
            assert!((a.score - b.score).abs() < 1e-4, "{a:?} vs {b:?}");
        }
    }
}

#[test]
fn a_candidate_scores_the_same_alone_and_in_a_padded_batch() {
    let lm = tiny_model();
    let prompt = lm.tokenizer.encode(&chatml_user("pick one")).unwrap();
    let opts = ScoreOptions::default();
    let alone = pollster::block_on(lm.score_candidates(&prompt, &titles(&["x"]), opts)).unwrap();
    let batch = pollster::block_on(lm.score_candidates(
        &prompt,
        &titles(&["a very long padded neighbour", "x"]),
        opts,
    ))
    .unwrap();
    assert!((alone[0].log_prob - batch[1].log_prob).abs() < 1e-5);
}

#[test]
fn single_token_log_probs_over_the_vocabulary_sum_to_one() {
    let lm = tiny_model();
    let prompt = lm.tokenizer.encode("hello").unwrap();
    // Every single-byte token except control tokens: with eos appended each scores
    // log p(byte) + log p(eos | byte), so instead check p(byte) alone via the first-token factor.
    let cands: Vec<String> = (b'a'..=b'z').map(|b| char::from(b).to_string()).collect();
    let scores =
        pollster::block_on(lm.score_candidates(&prompt, &cands, ScoreOptions::default())).unwrap();
    let total: f32 = scores.iter().map(|s| s.log_prob.exp()).sum();
    assert!(
        total > 0.0 && total < 1.0,
        "probabilities of disjoint answers sum to {total}"
    );
    assert!(scores.iter().all(|s| s.n_tokens == 2));
}

#[test]
fn the_tiny_model_generates_deterministically() {
    let lm = tiny_model();
    let prompt = lm.tokenizer.encode(&chatml_user("hi")).unwrap();
    let a = pollster::block_on(lm.generate(&prompt, 6)).unwrap();
    let b = pollster::block_on(lm.generate(&prompt, 6)).unwrap();
    assert_eq!(a, b);
    assert!(!a.ids.is_empty() && a.ids.len() <= 6);
}

/// Native Flex scores of the tiny model, committed as the reference the browser test compares
/// WebGPU against. `RECALIGN_BLESS=1 cargo test -p recalign-core --test tiny_model` rewrites it.
#[test]
fn tiny_scores_match_the_committed_golden() {
    let lm = tiny_model();
    let prompt = lm.tokenizer.encode(&chatml_user(GOLDEN_MESSAGE)).unwrap();
    let cands = titles(&GOLDEN_TITLES);
    let scores =
        pollster::block_on(lm.score_candidates(&prompt, &cands, ScoreOptions::default())).unwrap();
    let log_probs: Vec<f32> = scores.iter().map(|s| s.log_prob).collect();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/tiny_scores.json"
    );
    if std::env::var_os("RECALIGN_BLESS").is_some() {
        let v = serde_json::json!({"seed": 7, "message": GOLDEN_MESSAGE, "prompt_ids": prompt, "candidates": cands, "log_probs": log_probs});
        std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(golden["seed"], 7);
    assert_eq!(golden["message"], GOLDEN_MESSAGE);
    assert_eq!(golden["prompt_ids"], serde_json::json!(prompt));
    assert_eq!(golden["candidates"], serde_json::json!(cands));
    for (g, w) in log_probs
        .iter()
        .zip(golden["log_probs"].as_array().unwrap())
    {
        // Same device, same code: only summation order may differ (Burn's feature set changes
        // kernel fusion), so allow a few f32 ulps relative to the magnitude.
        let w = w.as_f64().unwrap() as f32;
        assert!((g - w).abs() <= 1e-5 + 4e-7 * w.abs(), "{g} vs {w}");
    }
}

/// The shared training scenario (3 SFT + 3 DPO steps) on native Flex, committed as the reference
/// the browser test holds WebGPU to. `RECALIGN_BLESS=1` rewrites it.
#[test]
fn tiny_training_matches_the_committed_golden() {
    let lm = tiny_model();
    let got = pollster::block_on(recalign_core::fixtures::training::run(&lm)).unwrap();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/tiny_train.json"
    );
    if std::env::var_os("RECALIGN_BLESS").is_some() {
        std::fs::write(path, serde_json::to_string(&got).unwrap()).unwrap();
    }
    let want: recalign_core::fixtures::training::Outcome =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(got.losses.len(), 6);
    assert_eq!(got.adapter.len(), want.adapter.len());
    for (g, w) in got.losses.iter().zip(&want.losses) {
        assert!((g - w).abs() <= 1e-5 + 1e-6 * w.abs(), "loss {g} vs {w}");
    }
    let worst = got
        .adapter
        .iter()
        .zip(&want.adapter)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-6, "adapter differs from the golden by {worst}");
}
