//! Golden behaviour of the real SmolLM2-135M-Instruct GGUF on Flex: token ids, greedy decoding
//! and candidate scores, against reference values from the Hugging Face tokenizer and an
//! independent NumPy forward pass.

mod common;

use common::real_model;
use recalign_core::ScoreOptions;
use recalign_core::tokenizer::chatml_user;

const FRANCE_PROMPT_IDS: [u32; 16] = [
    1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198,
];

#[test]
fn chatml_prompt_tokenises_to_reference_ids() {
    let ids = real_model()
        .tokenizer
        .encode(&chatml_user("What is the capital of France?"))
        .unwrap();
    assert_eq!(ids, FRANCE_PROMPT_IDS);
}

#[test]
fn greedy_decoding_answers_paris() {
    let g = pollster::block_on(real_model().generate(&FRANCE_PROMPT_IDS, 16)).unwrap();
    assert_eq!(g.ids, [504, 3575, 282, 4649, 314, 7042, 30, 2]);
    assert_eq!(g.text, "The capital of France is Paris.");
}

#[test]
fn titles_round_trip_through_the_tokenizer() {
    let tok = &real_model().tokenizer;
    for text in [
        "Amélie",
        "Léon: The Professional",
        "Star Wars (1977)",
        " leading space",
        "  two leading spaces",
        "Toy Story 2",
        "Seven (Se7en)",
        "Crouching Tiger, Hidden Dragon (Wo hu cang long)",
        "日本語のタイトル",
        "2001: A Space Odyssey",
    ] {
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids, true).unwrap(), text, "ids {ids:?}");
    }
}

#[test]
fn digits_are_split_one_by_one() {
    let tok = &real_model().tokenizer;
    let ids = tok.encode("1977").unwrap();
    let digit = |d: &str| tok.encode(d).unwrap();
    assert!(["1", "9", "7"].iter().all(|d| digit(d).len() == 1));
    assert_eq!(
        ids,
        [digit("1"), digit("9"), digit("7"), digit("7")].concat()
    );
}

#[test]
fn shared_prefix_scores_equal_separate_full_sequences() {
    let lm = real_model();
    let prompt = lm
        .tokenizer
        .encode(&chatml_user(
            "I watched Toy Story, Heat and Fargo. Which of these should I watch next: \
             Casino, Babe, Amélie? Answer with one title.",
        ))
        .unwrap();
    let candidates: Vec<String> = ["Casino", "Babe", "Amélie", "Léon: The Professional"]
        .map(String::from)
        .to_vec();
    let opts = ScoreOptions::default();
    let shared = pollster::block_on(lm.score_candidates(&prompt, &candidates, opts)).unwrap();
    let separate =
        pollster::block_on(lm.score_candidates_separately(&prompt, &candidates, opts)).unwrap();
    for (a, b) in shared.iter().zip(&separate) {
        assert_eq!(a.n_tokens, b.n_tokens);
        assert!(a.log_prob.is_finite() && a.log_prob < 0.0, "{a:?}");
    }
    // Two f32 evaluations of one value, as on the tiny model (`fixtures::scores`), through 30
    // layers instead of 2: rounding error grows with the depth of the chain of reductions, so
    // the bound is the tiny model's scaled by 30/2 layers (and doubled for two evaluations).
    // A wrong KV offset, RoPE position or mask moves a log-probability by nats.
    let a: Vec<f32> = shared.iter().map(|s| s.log_prob).collect();
    let b: Vec<f32> = separate.iter().map(|s| s.log_prob).collect();
    let d = recalign_core::fixtures::scores::deviation(&a, &b).unwrap();
    eprintln!("real model, shared prefix vs separate: {d:.1} u");
    let bound = 2.0 * 15.0 * recalign_core::fixtures::scores::F32_CPU;
    assert!(d <= bound, "{a:?} vs {b:?}: {d} u (bound {bound})");
}

/// The shipped default adapter (`models/default-adapter.safetensors`, committed): within the
/// alignment issue's 2 MB (f16 LoRA factors, int8 projector and item table), trained in the
/// compact prompt on the top layers of this model with LLaRA's hybrid item slots over
/// ML-100K's catalogue, whose title keys it carries; it fits the model and moves its ranking,
/// and a title outside the catalogue still ranks (as text).
#[test]
fn the_default_adapter_ships_small_fits_the_model_and_ranks() {
    use recalign_core::prompt::PromptFormat;
    use recalign_core::train::{Adapter, with_adapter};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/default-adapter.safetensors");
    let bytes = std::fs::read(&path).expect("models/default-adapter.safetensors is committed");
    assert!(bytes.len() <= 2_000_000, "{} bytes", bytes.len());
    let adapter = Adapter::from_safetensors(&bytes, None).unwrap();
    assert_eq!(adapter.prompt, PromptFormat::Compact);
    assert!(adapter.settings.top_layers > 0);
    let catalogue = adapter
        .hybrid
        .as_ref()
        .and_then(|h| h.catalogue.clone())
        .expect("a hybrid adapter with its catalogue");
    assert!(
        catalogue.len() > 1600,
        "ML-100K's items, not {}",
        catalogue.len()
    );
    assert_eq!(catalogue.domain, recalign_core::data::Domain::Movies);
    let base = real_model();
    let lm = with_adapter(base, &adapter).unwrap();
    let titles = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let history = titles(&["GoldenEye", "Seven (Se7en)", "Heat"]);
    let candidates = titles(&["Toy Story", "Fargo", "Babe"]);
    assert!(
        history
            .iter()
            .chain(&candidates)
            .all(|t| catalogue.contains(t)),
        "the test's titles are catalogue titles"
    );
    let domain = recalign_core::data::Domain::Movies;
    let opts = ScoreOptions::default();
    let rank = |h: &[String], c: &[String]| {
        pollster::block_on(recalign_core::hybrid::rank(
            &lm,
            &catalogue,
            PromptFormat::Compact,
            h,
            c,
            opts,
        ))
        .unwrap()
    };
    let tuned = rank(&history, &candidates);
    let plain = pollster::block_on(base.rank_compact(domain, &history, &candidates, opts)).unwrap();
    let score = |r: &recalign_core::Ranking, t: &str| {
        r.ranked
            .iter()
            .find(|c| c.candidate.title == t)
            .map(|c| c.candidate.score)
            .unwrap()
    };
    let moved = candidates
        .iter()
        .map(|t| (score(&tuned, t) - score(&plain, t)).abs())
        .fold(0.0f32, f32::max);
    assert!(
        moved > 0.1,
        "the adapter moves the scores by {moved} nats at most"
    );
    // Typed titles the catalogue lacks are read as text and ranked with the rest.
    let typed = rank(
        &titles(&["GoldenEye", "A Thriller I Liked"]),
        &titles(&["Fargo", "Some Film Nobody Rated"]),
    );
    assert_eq!(typed.ranked.len(), 2);
    assert!(typed.ranked.iter().all(|c| c.candidate.score.is_finite()));
}
