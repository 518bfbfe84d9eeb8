//! Training on the tiny model (Flex): SFT and preference steps lower their loss, only the LoRA
//! factors move, adapters round-trip through PEFT's layout with identical scores, and bad
//! settings are refused with a clear error.

mod common;

use recalign_core::ScoreOptions;
use recalign_core::data::pairs::PreferencePair;
use recalign_core::losses::{LossConfig, LossKind};
use recalign_core::train::{
    Adapter, LoraSettings, LoraTargets, PreferenceTrainer, Reference, SftExample, SftTrainer,
    TokenisedPair, TrainSettings, reference_log_probs, with_adapter,
};

fn titles() -> Vec<String> {
    ["Alien", "Heat", "Fargo", "Casino"]
        .map(String::from)
        .to_vec()
}

fn sft_examples(lm: &recalign_core::LanguageModel) -> Vec<SftExample> {
    let t = titles();
    (0..4)
        .map(|i| {
            let request = format!("user {i} liked {}; pick one of {}", t[i], t.join(", "));
            SftExample::new(lm, &request, &t[(i + 1) % 4]).expect("example fits")
        })
        .collect()
}

fn settings(steps: usize, lr: f64) -> TrainSettings {
    TrainSettings {
        learning_rate: lr,
        warmup_steps: 0,
        steps,
        batch_size: 2,
        accumulation: 2,
        seed: 11,
        ..TrainSettings::default()
    }
}

#[test]
fn sft_lowers_the_answer_loss_and_moves_only_the_adapter() {
    let lm = common::tiny_model();
    let lora = LoraSettings {
        rank: 4,
        alpha: 8.0,
        ..LoraSettings::default()
    };
    let mut trainer =
        SftTrainer::new(&lm, lora.clone(), settings(16, 3e-2), sft_examples(&lm)).unwrap();
    let mut reports = Vec::new();
    while !trainer.is_done() {
        reports.push(pollster::block_on(trainer.step()).expect("step"));
    }
    let first = reports[0].loss;
    let last = reports.last().unwrap().loss;
    println!(
        "SFT losses: {:?}",
        reports.iter().map(|r| r.loss).collect::<Vec<_>>()
    );
    assert!(last < first * 0.8, "loss {first} -> {last}");
    assert!(
        reports
            .iter()
            .all(|r| r.grad_norm.is_finite() && r.tokens > 0)
    );
    // Warm-up 0, cosine to 0: the first step runs at the peak rate.
    assert!((reports[0].learning_rate - 3e-2).abs() < 1e-12);

    let adapter = pollster::block_on(trainer.adapter()).unwrap();
    assert_eq!(adapter.layers.len(), 2 * lm.model.config.n_layers);
    assert!(adapter.layers.iter().any(|l| l.b.iter().any(|v| *v != 0.0)));

    // Export to PEFT's layout and back: identical factors and identical scores.
    let bytes = adapter.to_safetensors().unwrap();
    let back = Adapter::from_safetensors(&bytes, None).unwrap();
    assert_eq!(back, adapter);
    let config = adapter.peft_config();
    let again = Adapter::from_safetensors(&bytes, Some(&config)).unwrap();
    assert_eq!(again, adapter);
    let tuned = with_adapter(&lm, &adapter).unwrap();
    let reloaded = with_adapter(&lm, &back).unwrap();
    let ex = &sft_examples(&lm)[0];
    let score = |m: &recalign_core::LanguageModel| {
        pollster::block_on(m.score_candidates(&ex.prompt_ids, &titles(), ScoreOptions::default()))
            .unwrap()
            .iter()
            .map(|s| s.log_prob)
            .collect::<Vec<_>>()
    };
    assert_eq!(score(&tuned), score(&reloaded));
    assert_ne!(score(&tuned), score(&lm), "the adapter changes the model");
}

#[test]
fn an_example_of_weight_two_counts_as_two_copies_of_it() {
    // The weighted step's objective, sum_i w_i log p(answer_i) / sum_i w_i |answer_i|, is the
    // unweighted one over a batch holding the weight-2 example twice: same losses, and (with
    // Adam's steps depending on the gradients' sizes from the second on) the same path.
    let lm = common::tiny_model();
    let lora = LoraSettings {
        rank: 4,
        alpha: 8.0,
        ..LoraSettings::default()
    };
    let ex = sft_examples(&lm);
    let one_batch = |n| TrainSettings {
        batch_size: n,
        accumulation: 1,
        ..settings(3, 3e-2)
    };
    let weighted = vec![
        SftExample {
            weight: 2.0,
            ..ex[0].clone()
        },
        ex[1].clone(),
    ];
    let copied = vec![ex[0].clone(), ex[0].clone(), ex[1].clone()];
    let run = |examples: Vec<SftExample>| {
        let n = examples.len();
        let mut t = SftTrainer::new(&lm, lora.clone(), one_batch(n), examples).unwrap();
        let mut losses = Vec::new();
        while !t.is_done() {
            losses.push(pollster::block_on(t.step()).unwrap().loss);
        }
        losses
    };
    let (w, c) = (run(weighted), run(copied));
    let plain = run(vec![ex[0].clone(), ex[1].clone()]);
    println!("weighted {w:?}, copied {c:?}, weight 1 {plain:?}");
    for (a, b) in w.iter().zip(&c) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{w:?} vs {c:?}");
    }
    assert!(
        (w[0] - plain[0]).abs() > 1e-3,
        "the weight changes the objective"
    );
}

#[test]
fn peft_names_and_shapes_match_the_hugging_face_layout() {
    let lm = common::tiny_model();
    let lora = LoraSettings {
        rank: 2,
        alpha: 4.0,
        targets: LoraTargets::AllLinear,
        ..LoraSettings::default()
    };
    let trainer = SftTrainer::new(&lm, lora, settings(1, 1e-3), sft_examples(&lm)).unwrap();
    let adapter = pollster::block_on(trainer.adapter()).unwrap();
    let bytes = adapter.to_safetensors().unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let c = &lm.model.config;
    let (d, kv, ff) = (
        c.hidden_size,
        c.n_kv_heads * c.head_dim(),
        c.intermediate_size,
    );
    for i in 0..c.n_layers {
        for (module, d_in, d_out) in [
            ("self_attn.q_proj", d, d),
            ("self_attn.k_proj", d, kv),
            ("self_attn.v_proj", d, kv),
            ("self_attn.o_proj", d, d),
            ("mlp.gate_proj", d, ff),
            ("mlp.up_proj", d, ff),
            ("mlp.down_proj", ff, d),
        ] {
            let name = format!("base_model.model.model.layers.{i}.{module}");
            let a = st.tensor(&format!("{name}.lora_A.weight")).unwrap();
            let b = st.tensor(&format!("{name}.lora_B.weight")).unwrap();
            assert_eq!(a.shape(), [2, d_in], "{name} lora_A");
            assert_eq!(b.shape(), [d_out, 2], "{name} lora_B");
        }
    }
    assert_eq!(st.len(), 2 * 7 * c.n_layers);
    let config = adapter.peft_config();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 2);
    assert_eq!(config["target_modules"].as_array().unwrap().len(), 7);
}

fn pairs() -> Vec<PreferencePair> {
    let t = titles();
    (0..4)
        .map(|i| PreferencePair {
            prompt: format!("user {i} liked {}; pick one of {}", t[i], t.join(", ")),
            chosen: t[(i + 1) % 4].clone(),
            rejected: t[(i + 2) % 4].clone(),
            more_rejected: vec![t[(i + 3) % 4].clone()],
            eps: Some(0.05 * (i + 1) as f64),
            more_eps: vec![0.1],
            ..PreferencePair::default()
        })
        .collect()
}

#[test]
fn every_loss_trains_and_raises_the_margin() {
    let lm = common::tiny_model();
    let lora = LoraSettings {
        rank: 4,
        alpha: 8.0,
        ..LoraSettings::default()
    };
    for kind in LossKind::ALL {
        let negatives = if kind == LossKind::Sdpo { 2 } else { 1 };
        let tokenised: Vec<TokenisedPair> = pairs()
            .iter()
            .map(|p| TokenisedPair::new(&lm, p, negatives).unwrap())
            .collect();
        let reference =
            pollster::block_on(reference_log_probs(&lm, &tokenised, |_, _| {})).unwrap();
        let mut loss = LossConfig::new(kind);
        loss.beta = loss.beta.max(0.5);
        let mut trainer = PreferenceTrainer::new(
            &lm,
            lora.clone(),
            None,
            settings(10, 3e-2),
            loss,
            tokenised,
            reference,
        )
        .unwrap();
        let mut reports = Vec::new();
        while !trainer.is_done() {
            reports.push(pollster::block_on(trainer.step()).expect("step"));
        }
        let (first, last) = (&reports[0], reports.last().unwrap());
        // Every example's margin comes back with the step; their mean is the reported margin.
        for r in &reports {
            let s = settings(10, 3e-2);
            assert_eq!(
                r.margins.len(),
                s.batch_size.min(pairs().len()) * s.accumulation
            );
            let mean = r.margins.iter().sum::<f32>() / r.margins.len() as f32;
            assert!(
                (mean - r.margin).abs() < 1e-5,
                "{kind}: {mean} vs {}",
                r.margin
            );
        }
        println!(
            "{kind}: loss {:.4} -> {:.4}, margin {:.4} -> {:.4}, accuracy {} -> {}",
            first.loss, last.loss, first.margin, last.margin, first.accuracy, last.accuracy
        );
        // LoRA's B starts at zero, so the policy starts as the reference: every margin is 0.
        // (SimPO, alpha-DPO and ORPO report their own argument, a length-normalised gap, which
        // is not 0 at the start; their loss falls while the batch mean of that gap may not rise,
        // the loss being convex in it.)
        if !kind.uses_lengths() {
            assert!(
                first.margin.abs() < 1e-4,
                "{kind}: first margin {}",
                first.margin
            );
            assert!(last.margin > first.margin, "{kind}: margin did not grow");
            assert!(last.accuracy >= first.accuracy, "{kind}: accuracy fell");
        }
        // alpha-DPO shifts each example by its standardised policy-over-reference gap; at the
        // first step the policy is the reference, every gap is 0 and so is the shift, so its
        // objective takes its shape only from the second step on: the loss falls from there.
        let from = if kind == LossKind::AlphaDpo {
            &reports[1]
        } else {
            first
        };
        assert!(
            last.loss < from.loss,
            "{kind}: loss did not fall ({} -> {})",
            from.loss,
            last.loss
        );
    }
}

#[test]
fn bad_settings_and_inputs_are_refused_clearly() {
    let lm = common::tiny_model();
    let bad_lora = LoraSettings {
        dropout: 0.1,
        ..LoraSettings::default()
    };
    let err = SftTrainer::new(&lm, bad_lora, settings(1, 1e-3), sft_examples(&lm))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("dropout"), "{err}");
    let err = SftTrainer::new(
        &lm,
        LoraSettings::default(),
        settings(1, f64::NAN),
        sft_examples(&lm),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("learning rate"), "{err}");
    let err = SftTrainer::new(&lm, LoraSettings::default(), settings(1, 1e-3), vec![])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nothing to train"), "{err}");
    // RosePO without smoothing factors.
    let mut p = pairs();
    for x in &mut p {
        x.eps = None;
        x.more_eps.clear();
    }
    let tokenised: Vec<TokenisedPair> = p
        .iter()
        .map(|p| TokenisedPair::new(&lm, p, 1).unwrap())
        .collect();
    let reference = vec![vec![0.0; 2]; tokenised.len()];
    let err = PreferenceTrainer::new(
        &lm,
        LoraSettings::default(),
        None,
        settings(1, 1e-3),
        LossConfig::new(LossKind::Rosepo),
        tokenised,
        reference,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("oracle"), "{err}");
    // A NaN loss stops before the optimiser moves the weights.
    let tokenised: Vec<TokenisedPair> = pairs()
        .iter()
        .map(|p| TokenisedPair::new(&lm, p, 1).unwrap())
        .collect();
    let reference = vec![vec![f32::NAN; 2]; tokenised.len()];
    let mut trainer = PreferenceTrainer::new(
        &lm,
        LoraSettings::default(),
        None,
        settings(2, 1e-3),
        LossConfig::new(LossKind::Dpo),
        tokenised,
        reference,
    )
    .unwrap();
    let before = pollster::block_on(trainer.adapter()).unwrap();
    let err = pollster::block_on(trainer.step()).unwrap_err().to_string();
    assert!(err.contains("NaN") && err.contains("last good"), "{err}");
    assert_eq!(pollster::block_on(trainer.adapter()).unwrap(), before);
}

fn max_diff(a: &Adapter, b: &Adapter) -> f32 {
    a.layers
        .iter()
        .zip(&b.layers)
        .flat_map(|(x, y)| {
            x.a.iter()
                .zip(&y.a)
                .chain(x.b.iter().zip(&y.b))
                .map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let lm = common::tiny_model();
    let lora = LoraSettings {
        rank: 4,
        alpha: 8.0,
        ..LoraSettings::default()
    };
    // SFT: 7 steps straight, or 3 steps, a checkpoint through bytes, a new trainer, 4 more.
    // Batches of 3 over 4 examples wrap epochs mid-run, so the replayed data order is tested.
    let mut s = settings(7, 1e-2);
    s.batch_size = 3;
    s.accumulation = 1;
    let mut straight = SftTrainer::new(&lm, lora.clone(), s.clone(), sft_examples(&lm)).unwrap();
    while !straight.is_done() {
        pollster::block_on(straight.step()).unwrap();
    }
    let mut first = SftTrainer::new(&lm, lora.clone(), s.clone(), sft_examples(&lm)).unwrap();
    for _ in 0..3 {
        pollster::block_on(first.step()).unwrap();
    }
    let bytes = pollster::block_on(first.checkpoint())
        .unwrap()
        .to_bytes()
        .unwrap();
    drop(first);
    let checkpoint = recalign_core::train::Checkpoint::from_bytes(&bytes).unwrap();
    assert_eq!(checkpoint.state.step, 3);
    let mut resumed = SftTrainer::resume(&lm, &checkpoint, sft_examples(&lm)).unwrap();
    while !resumed.is_done() {
        pollster::block_on(resumed.step()).unwrap();
    }
    let a = pollster::block_on(straight.adapter()).unwrap();
    let b = pollster::block_on(resumed.adapter()).unwrap();
    let d = max_diff(&a, &b);
    println!("SFT resume: max |difference| {d:e}");
    // A resumed run performs the same f32 operations on the same values as the uninterrupted
    // one (same process, same kernels), so it is exact: 0 measured on AVX-512, AVX2 and SSE
    // paths, 1 and 2 threads. A lost AdamW moment or data-order position would move factors by
    // about the learning rate.
    assert!(d <= 1e-6, "SFT: resumed adapter differs by {d}");

    // Preference (beta-DPO: its running statistics and sampling must carry over too).
    let tokenised: Vec<TokenisedPair> = pairs()
        .iter()
        .map(|p| TokenisedPair::new(&lm, p, 1).unwrap())
        .collect();
    let reference = pollster::block_on(reference_log_probs(&lm, &tokenised, |_, _| {})).unwrap();
    let loss = LossConfig::new(LossKind::BetaDpo);
    let make = || {
        PreferenceTrainer::new(
            &lm,
            lora.clone(),
            Some(&a),
            s.clone(),
            loss.clone(),
            tokenised.clone(),
            reference.clone(),
        )
        .unwrap()
    };
    let mut straight = make();
    while !straight.is_done() {
        pollster::block_on(straight.step()).unwrap();
    }
    let mut first = make();
    for _ in 0..4 {
        pollster::block_on(first.step()).unwrap();
    }
    let checkpoint = recalign_core::train::Checkpoint::from_bytes(
        &pollster::block_on(first.checkpoint())
            .unwrap()
            .to_bytes()
            .unwrap(),
    )
    .unwrap();
    let mut resumed =
        PreferenceTrainer::resume(&lm, &checkpoint, tokenised.clone(), reference.clone()).unwrap();
    assert_eq!(resumed.loss_state, first.loss_state);
    while !resumed.is_done() {
        pollster::block_on(resumed.step()).unwrap();
    }
    let d = max_diff(
        &pollster::block_on(straight.adapter()).unwrap(),
        &pollster::block_on(resumed.adapter()).unwrap(),
    );
    println!("beta-DPO resume: max |difference| {d:e}");
    // A resumed run performs the same f32 operations on the same values as the uninterrupted
    // one (same process, same kernels), so it is exact: 0 measured on AVX-512, AVX2 and SSE
    // paths, 1 and 2 threads. A lost AdamW moment or data-order position would move factors by
    // about the learning rate.
    assert!(d <= 1e-6, "preference: resumed adapter differs by {d}");
    // A checkpoint of one kind does not resume the other.
    assert!(SftTrainer::resume(&lm, &checkpoint, sft_examples(&lm)).is_err());
    assert!(recalign_core::train::Checkpoint::from_bytes(b"not a checkpoint").is_err());
}

/// An adapter with every factor non-zero (B too), so both factors get a gradient.
fn busy_adapter(lm: &recalign_core::LanguageModel, lora: &LoraSettings) -> Adapter {
    let mut adapter = Adapter::fresh(lora, &lm.model.config, 3).expect("fresh adapter");
    for (i, l) in adapter.layers.iter_mut().enumerate() {
        for (j, b) in l.b.iter_mut().enumerate() {
            *b = (((i * 31 + j * 17) % 13) as f32 - 6.0) * 0.01;
        }
    }
    adapter
}

/// `project` (x W + s (x A) B, factored) against Burn's `Linear::forward` (which merges
/// W + s A B first), on every adapted layer of the tiny model: same value and same gradients of
/// both factors, to f32 rounding of these short (32- and 64-term) reductions.
#[test]
fn factored_lora_equals_the_merged_weight_in_value_and_gradient() {
    use burn::module::Module;
    use burn::tensor::{Distribution, Tensor};
    let lm = common::tiny_model();
    let lora = LoraSettings {
        rank: 2,
        alpha: 4.0,
        targets: LoraTargets::AllLinear,
        ..LoraSettings::default()
    };
    // As the trainers do: the weights on the autodiff view of the device.
    let device = &lm.model.device().clone().autodiff();
    let weights = lm.model.weights.clone().fork(device).train();
    let weights = recalign_core::train::lora::attach(weights, &lora).unwrap();
    let weights = busy_adapter(&lm, &lora).apply(weights, device).unwrap();
    let layer = &weights.layers[1];
    let linears = [
        &layer.self_attn.q_proj,
        &layer.self_attn.k_proj,
        &layer.mlp.gate_proj,
        &layer.mlp.down_proj,
    ];
    for (n, linear) in linears.into_iter().enumerate() {
        let [d_in, d_out] = linear.weight.base().dims();
        let x = Tensor::<3>::random([2, 3, d_in], Distribution::Normal(0.0, 1.0), device);
        let w = Tensor::<3>::random([2, 3, d_out], Distribution::Normal(0.0, 1.0), device);
        let factored = recalign_core::model::project(linear, x.clone());
        let merged = linear.forward(x);
        let (f, m) = (
            factored.clone().into_data().try_to_vec::<f32>().unwrap(),
            merged.clone().into_data().try_to_vec::<f32>().unwrap(),
        );
        let scale = m.iter().fold(1.0f32, |a, v| a.max(v.abs()));
        let worst = f
            .iter()
            .zip(&m)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            worst <= 1e-5 * scale,
            "linear {n}: value differs by {worst}"
        );
        let adapter = linear.weight.adapter().unwrap();
        let grads_f = (factored * w.clone()).sum().backward();
        let grads_m = (merged * w).sum().backward();
        for (which, p) in [("A", &adapter.a), ("B", &adapter.b)] {
            let gf = p
                .val()
                .grad(&grads_f)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let gm = p
                .val()
                .grad(&grads_m)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let scale = gm.iter().fold(1.0f32, |a, v| a.max(v.abs()));
            let worst = gf
                .iter()
                .zip(&gm)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                worst <= 1e-5 * scale,
                "linear {n} {which}: gradient differs by {worst}"
            );
            assert!(
                gm.iter().any(|g| *g != 0.0),
                "linear {n} {which}: no gradient"
            );
        }
    }
}

#[test]
fn lora_on_the_top_layers_adapts_only_those_and_says_so_to_peft() {
    let lm = common::tiny_model();
    let n = lm.model.config.n_layers;
    let lora = LoraSettings {
        rank: 2,
        alpha: 4.0,
        top_layers: 1,
        ..LoraSettings::default()
    };
    let mut trainer =
        SftTrainer::new(&lm, lora.clone(), settings(2, 1e-2), sft_examples(&lm)).unwrap();
    while !trainer.is_done() {
        pollster::block_on(trainer.step()).unwrap();
    }
    let adapter = pollster::block_on(trainer.adapter()).unwrap();
    let top = format!("model.layers.{}.", n - 1);
    assert_eq!(adapter.layers.len(), 2, "q and v of one layer");
    assert!(adapter.layers.iter().all(|l| l.module.starts_with(&top)));
    assert!(
        adapter.layers.iter().all(|l| l.b.iter().any(|b| *b != 0.0)),
        "trained"
    );
    let config = adapter.peft_config();
    assert_eq!(config["layers_to_transform"], serde_json::json!([n - 1]));
    // Back through PEFT's files: the same adapter, the same scores.
    let bytes = adapter.to_safetensors().unwrap();
    let back = Adapter::from_safetensors(&bytes, Some(&config)).unwrap();
    assert_eq!(back, adapter);
    // Asking for more layers than the model has is refused before any work.
    let too_many = LoraSettings {
        top_layers: n + 1,
        ..lora
    };
    let err = SftTrainer::new(&lm, too_many, settings(1, 1e-2), sft_examples(&lm))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&format!("top {} layers", n + 1)) && err.contains(&format!("has {n}")),
        "{err}"
    );
}

/// Pairs in the compact format: the prompt is the document's tokens (no ChatML), every answer is
/// a title line, and a preference run trains on them (DPO from its own reference starts at
/// ln 2).
#[test]
fn compact_pairs_tokenise_as_lines_and_train() {
    use recalign_core::data::Domain;
    use recalign_core::prompt::{self, PromptFormat};
    let lm = common::tiny_model();
    let t = titles();
    let history = vec![t[0].clone(), t[1].clone()];
    let pair = PreferencePair {
        prompt: prompt::compact_text(Domain::Movies, &history),
        chosen: t[2].clone(),
        rejected: t[3].clone(),
        format: PromptFormat::Compact,
        ..PreferencePair::default()
    };
    let tokenised = TokenisedPair::new(&lm, &pair, 1).unwrap();
    assert_eq!(
        tokenised.prompt_ids,
        prompt::compact_ids(&lm.tokenizer, Domain::Movies, &history).unwrap()
    );
    assert_eq!(
        tokenised.answers[0],
        prompt::compact_line_ids(&lm.tokenizer, &t[2]).unwrap()
    );
    // The format survives the JSONL round trip; LLaRA pairs leave the field out.
    let line = serde_json::to_string(&pair).unwrap();
    assert!(line.contains("\"format\":\"compact\""), "{line}");
    let back: PreferencePair = serde_json::from_str(&line).unwrap();
    assert_eq!(back.format, PromptFormat::Compact);
    let llara = serde_json::to_string(&PreferencePair::default()).unwrap();
    assert!(!llara.contains("format"), "{llara}");

    let pairs = vec![tokenised.clone(), tokenised];
    let cached = pollster::block_on(reference_log_probs(&lm, &pairs, |_, _| {})).unwrap();
    let lora = LoraSettings {
        rank: 2,
        alpha: 4.0,
        ..LoraSettings::default()
    };
    let mut dpo = PreferenceTrainer::new(
        &lm,
        lora,
        None,
        settings(2, 1e-2),
        LossConfig::new(LossKind::Dpo),
        pairs,
        cached,
    )
    .unwrap();
    let first = pollster::block_on(dpo.step()).unwrap();
    assert!(
        (first.loss - std::f32::consts::LN_2).abs() < 1e-4,
        "{}",
        first.loss
    );
}

/// The frozen-layer cache: the states entering the first adapted layer, computed once, then only
/// the layers above, give the log-probs a full pass gives (two f32 evaluations of one value, see
/// `fixtures::scores`); and a preference run with the cache ends where one without it does.
#[test]
fn the_frozen_layer_cache_gives_the_full_pass_log_probs() {
    use recalign_core::fixtures::scores;
    use recalign_core::lm::{FrozenAnswers, answer_log_probs, frozen_answer_bytes, read_f32};
    let lm = common::tiny_model();
    let lora = LoraSettings {
        rank: 2,
        alpha: 4.0,
        top_layers: 1,
        targets: LoraTargets::AllLinear,
        ..LoraSettings::default()
    };
    let policy = with_adapter(&lm, &busy_adapter(&lm, &lora)).unwrap();
    let split = policy.model.first_adapted_layer();
    assert_eq!(
        split,
        lm.model.config.n_layers - 1,
        "LoRA on the top layer only"
    );
    for p in pairs() {
        let t = TokenisedPair::new(&lm, &p, 0).unwrap();
        let full = answer_log_probs(&policy.model, &t.prompt_ids, &t.answers).unwrap();
        let states = FrozenAnswers::new(&policy.model, split, &t.prompt_ids, &t.answers).unwrap();
        // The size refused up front is the size held.
        let hidden = lm.model.config.hidden_size;
        assert_eq!(
            states.bytes(),
            frozen_answer_bytes(t.prompt_ids.len(), &t.answers, hidden)
        );
        let frozen = states.log_probs(&policy.model).unwrap();
        let (full, frozen) = (
            pollster::block_on(read_f32(full)).unwrap(),
            pollster::block_on(read_f32(frozen)).unwrap(),
        );
        let d = scores::deviation(&frozen, &full).unwrap();
        eprintln!("frozen-layer cache vs full pass: {d:.1} u");
        assert!(d <= 2.0 * scores::F32_CPU, "{frozen:?} vs {full:?}");
    }

    // Three epochs over the pairs, so cached entries are reused, with and without the cache;
    // and with the reference computed before the run or by the run on first use (sharing the
    // frozen states when the cache is on).
    let run = |cache_mib: usize, lazy: bool| {
        let settings = TrainSettings {
            cache_mib,
            ..settings(6, 1e-2)
        };
        let start = busy_adapter(&lm, &lora);
        let tokenised: Vec<TokenisedPair> = pairs()
            .iter()
            .map(|p| TokenisedPair::new(&lm, p, 1).unwrap())
            .collect();
        let reference = with_adapter(&lm, &start).unwrap();
        let reference = if lazy {
            Reference::Model(Box::new(reference))
        } else {
            Reference::Precomputed(
                pollster::block_on(reference_log_probs(&reference, &tokenised, |_, _| {})).unwrap(),
            )
        };
        let mut trainer = PreferenceTrainer::new(
            &lm,
            lora.clone(),
            Some(&start),
            settings,
            LossConfig::new(LossKind::Dpo),
            tokenised,
            reference,
        )
        .unwrap();
        let mut losses = Vec::new();
        while !trainer.is_done() {
            losses.push(pollster::block_on(trainer.step()).unwrap().loss);
        }
        (losses, pollster::block_on(trainer.adapter()).unwrap())
    };
    let (without, b) = run(0, false);
    for (cache_mib, lazy) in [(64, false), (64, true), (0, true)] {
        let (with, a) = run(cache_mib, lazy);
        eprintln!(
            "cache {cache_mib} MiB, lazy reference {lazy} vs neither: losses {with:?} / \
             {without:?}, factors {}",
            max_diff(&a, &b)
        );
        for (x, y) in with.iter().zip(&without) {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{with:?} vs {without:?}"
            );
        }
        assert!(max_diff(&a, &b) <= 1e-5, "the factors moved apart");
    }
}

/// A frozen-layer cache that would not fit its limit is refused before any work, naming the
/// figure and the way out.
#[test]
fn a_cache_that_does_not_fit_is_refused_up_front() {
    let lm = common::tiny_model();
    let lora = LoraSettings {
        rank: 2,
        alpha: 4.0,
        top_layers: 1,
        ..LoraSettings::default()
    };
    // Long prompts: about 2 MiB of 32-wide states over 400 pairs.
    let long = "a history of many titles, ".repeat(6);
    let tokenised: Vec<TokenisedPair> = (0..400)
        .map(|i| {
            let p = PreferencePair {
                prompt: format!("{long} user {i}"),
                chosen: "Heat".into(),
                rejected: "Fargo".into(),
                ..PreferencePair::default()
            };
            TokenisedPair::new(&lm, &p, 1).unwrap()
        })
        .collect();
    let reference = vec![vec![0.0; 2]; tokenised.len()];
    let settings = TrainSettings {
        cache_mib: 1,
        ..settings(2, 1e-2)
    };
    let err = PreferenceTrainer::new(
        &lm,
        lora,
        None,
        settings,
        LossConfig::new(LossKind::Dpo),
        tokenised,
        reference,
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(
        err.contains("frozen-layer cache of 400 pairs") && err.contains("--cache-mib"),
        "{err}"
    );
}

/// An adapter written with f16 factors stores them in half the bytes and reads back with every factor
/// within half-precision rounding (2^-11 relative, or the smallest subnormal near zero), its
/// settings and prompt format intact.
#[test]
fn an_f16_adapter_stores_factors_in_half_the_bytes_and_reads_back_within_rounding() {
    use recalign_core::train::FactorType;
    let lm = common::tiny_model();
    let lora = LoraSettings {
        rank: 2,
        alpha: 4.0,
        ..LoraSettings::default()
    };
    let adapter = busy_adapter(&lm, &lora);
    let full = adapter.to_safetensors().unwrap();
    let half = adapter.to_safetensors_as(FactorType::F16).unwrap();
    // The factors take 2 bytes instead of 4; the header (names, offsets, settings) stays.
    let factors: usize = adapter.layers.iter().map(|l| l.a.len() + l.b.len()).sum();
    assert!(
        half.len() + 2 * factors <= full.len() + 64,
        "{} vs {} bytes for {factors} factors",
        half.len(),
        full.len()
    );
    let back = Adapter::from_safetensors(&half, None).unwrap();
    assert_eq!(back.settings, adapter.settings);
    assert_eq!(back.prompt, adapter.prompt);
    for (x, y) in adapter.layers.iter().zip(&back.layers) {
        for (p, q) in x.a.iter().zip(&y.a).chain(x.b.iter().zip(&y.b)) {
            assert!(
                (p - q).abs() <= p.abs() * 2f32.powi(-11) + 6e-8,
                "{p} -> {q}"
            );
        }
    }
}

/// Several adapters of one base scored in one pass (`score_answer_ids_with`, the lower layers
/// run once) give each model's own scores: the base model, LoRA on the top layer only, and
/// LoRA on every layer (so nothing is shared below it).
#[test]
fn adapters_scored_together_match_each_scored_alone() {
    use recalign_core::fixtures::scores;
    let lm = common::tiny_model();
    let top = LoraSettings {
        rank: 2,
        alpha: 4.0,
        top_layers: 1,
        targets: LoraTargets::AllLinear,
        ..LoraSettings::default()
    };
    let every = LoraSettings {
        top_layers: 0,
        targets: LoraTargets::QueryValue,
        ..top.clone()
    };
    let a = with_adapter(&lm, &busy_adapter(&lm, &top)).unwrap();
    let b = with_adapter(&lm, &busy_adapter(&lm, &every)).unwrap();
    assert_eq!(b.model.first_adapted_layer(), 0);
    for p in pairs() {
        let t = TokenisedPair::new(&lm, &p, 0).unwrap();
        for others in [vec![&a], vec![&a, &b]] {
            let together =
                pollster::block_on(lm.score_answer_ids_with(&others, &t.prompt_ids, &t.answers))
                    .unwrap();
            assert_eq!(together.len(), others.len() + 1);
            let models = std::iter::once(&lm).chain(others.iter().copied());
            for (model, got) in models.zip(&together) {
                let alone =
                    pollster::block_on(model.score_answer_ids(&t.prompt_ids, &t.answers)).unwrap();
                let d = scores::deviation(got, &alone).unwrap();
                assert!(
                    d <= 2.0 * scores::F32_CPU,
                    "{got:?} vs {alone:?} ({d:.1} u)"
                );
            }
        }
        // The models' scores differ, so the comparison above could fail.
        let alone_a = pollster::block_on(a.score_answer_ids(&t.prompt_ids, &t.answers)).unwrap();
        let alone_base =
            pollster::block_on(lm.score_answer_ids(&t.prompt_ids, &t.answers)).unwrap();
        assert_ne!(alone_a, alone_base);
    }
}

/// LLaRA's hybrid item slots: SFT trains the projector (its item table stays frozen); the
/// scoring path (frozen layers cached, slots split between the prompt and the answer rows)
/// gives the training path's log-probs; the slots change the scores; and the adapter saved and
/// loaded scores exactly as before.
#[test]
fn a_hybrid_adapter_trains_scores_as_it_trained_and_round_trips() {
    use recalign_core::data::{Domain, ItemId};
    use recalign_core::fixtures::scores;
    use recalign_core::hybrid::{self, HybridWeights};
    use recalign_core::lm::{ScoredSequence, read_f32, sequence_log_probs_with};
    let lm = common::tiny_model();
    let c = lm.model.config.clone();
    let tok = &lm.tokenizer;
    let lora = LoraSettings {
        rank: 2,
        alpha: 4.0,
        top_layers: 1,
        targets: LoraTargets::AllLinear,
        ..LoraSettings::default()
    };
    let mut start = Adapter::fresh(&lora, &c, 11).unwrap();
    let items: Vec<f32> = (0..5 * 4).map(|i| (i as f32 * 0.37).sin()).collect();
    let fresh = HybridWeights::fresh(items, 4, c.hidden_size, c.n_layers - 1, 11).unwrap();
    start.hybrid = Some(fresh.clone());
    let t = titles();
    let title = |i: ItemId| t[i.index()].clone();
    let examples: Vec<SftExample> = (0..4u32)
        .map(|i| {
            let seq = [ItemId(i), ItemId((i + 1) % 4), ItemId((i + 2) % 4)];
            let (ids, slots) = hybrid::compact_ids(tok, Domain::Movies, &seq, title).unwrap();
            let cut = slots.positions[0] as usize + 1;
            SftExample {
                prompt_ids: ids[..cut].to_vec(),
                answer_ids: ids[cut..].to_vec(),
                weight: 1.0,
                slots,
            }
        })
        .collect();
    // The slots are the newlines that end the titles' lines: the text is the text-only
    // document's, token for token.
    let plain = recalign_core::prompt::compact_ids(
        tok,
        Domain::Movies,
        &[t[0].clone(), t[1].clone(), t[2].clone()],
    )
    .unwrap();
    assert_eq!(examples[0].joined_ids(), plain);
    assert_eq!(examples[0].slots.positions.len(), 3);
    let mut trainer = SftTrainer::continue_from(&lm, &start, settings(8, 3e-2), examples).unwrap();
    let mut losses = Vec::new();
    while !trainer.is_done() {
        losses.push(pollster::block_on(trainer.step()).unwrap().loss);
    }
    assert!(losses[7] < losses[0], "{losses:?}");
    let adapter = pollster::block_on(trainer.adapter()).unwrap();
    let h = adapter.hybrid.as_ref().expect("the projector is saved");
    assert!(h.down.iter().any(|&v| v != 0.0), "the projector trained");
    assert_eq!(h.items, fresh.items, "the item table is frozen");

    let model = with_adapter(&lm, &adapter).unwrap();
    let history = [ItemId(0), ItemId(1)];
    let (ids, slots) = hybrid::compact_ids(tok, Domain::Movies, &history, title).unwrap();
    let answers: Vec<Vec<u32>> = t
        .iter()
        .map(|x| recalign_core::prompt::compact_line_ids(tok, x).unwrap())
        .collect();
    let score = |m: &recalign_core::LanguageModel| {
        pollster::block_on(m.score_hybrid_with(&[], &ids, &slots, &answers))
            .unwrap()
            .remove(0)
    };
    let split = score(&model);
    // A fresh projector writes zero: the text-only model's scores, exactly.
    let fresh_model = with_adapter(&lm, &start).unwrap();
    let text_start = with_adapter(
        &lm,
        &Adapter {
            hybrid: None,
            ..start.clone()
        },
    )
    .unwrap();
    assert_eq!(score(&fresh_model), score(&text_start));
    let joined: Vec<Vec<u32>> = answers
        .iter()
        .map(|a| [ids.as_slice(), a].concat())
        .collect();
    let rows: Vec<ScoredSequence<'_>> = joined
        .iter()
        .map(|j| ScoredSequence {
            ids: j,
            from: ids.len(),
        })
        .collect();
    let per_row = vec![&slots; rows.len()];
    let full = sequence_log_probs_with(&model.model, &rows, &per_row, tok.eos_id()).unwrap();
    let full = pollster::block_on(read_f32(full)).unwrap();
    let d = scores::deviation(&split, &full).unwrap();
    assert!(
        d <= 2.0 * scores::F32_CPU,
        "{split:?} vs {full:?} ({d:.1} u)"
    );
    let text_only = with_adapter(
        &lm,
        &Adapter {
            hybrid: None,
            ..adapter.clone()
        },
    )
    .unwrap();
    assert_ne!(score(&text_only), split, "the slots change the scores");

    let back = Adapter::from_safetensors(&adapter.to_safetensors().unwrap(), None).unwrap();
    assert_eq!(back, adapter);
    assert_eq!(score(&with_adapter(&lm, &back).unwrap()), split);
}

/// Preference training of a hybrid adapter: compact pairs carry their history's items, the
/// policy and the reference read the slots, and a run through the frozen-layer cache (slots
/// split between the cached prompt and the answer rows) ends where one without it does.
#[test]
fn hybrid_preference_training_reads_the_slots_with_and_without_the_cache() {
    use recalign_core::data::Domain;
    use recalign_core::hybrid::HybridWeights;
    use recalign_core::prompt::{PromptFormat, compact_text};
    let lm = common::tiny_model();
    let c = lm.model.config.clone();
    let lora = LoraSettings {
        rank: 2,
        alpha: 4.0,
        top_layers: 1,
        targets: LoraTargets::AllLinear,
        ..LoraSettings::default()
    };
    let mut start = busy_adapter(&lm, &lora);
    let items: Vec<f32> = (0..5 * 4).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut h = HybridWeights::fresh(items, 4, c.hidden_size, c.n_layers - 1, 5).unwrap();
    h.down
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = 0.05 * (i as f32 * 0.11).cos());
    start.hybrid = Some(h);
    let t = titles();
    let pairs: Vec<PreferencePair> = (0..4)
        .map(|i| PreferencePair {
            prompt: compact_text(Domain::Movies, &[t[i].clone(), t[(i + 1) % 4].clone()]),
            chosen: t[(i + 2) % 4].clone(),
            rejected: t[(i + 3) % 4].clone(),
            format: PromptFormat::Compact,
            history_items: vec![i as u32, ((i + 1) % 4) as u32],
            ..PreferencePair::default()
        })
        .collect();
    let tokenised = |hybrid| -> Vec<TokenisedPair> {
        pairs
            .iter()
            .map(|p| TokenisedPair::new_with(&lm, p, 1, hybrid).unwrap())
            .collect()
    };
    assert_eq!(tokenised(true)[0].slots.positions.len(), 2);
    // A pair without its items is refused for a hybrid run, with the reason.
    let bare = PreferencePair {
        history_items: vec![],
        ..pairs[0].clone()
    };
    let err = TokenisedPair::new_with(&lm, &bare, 1, true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("history_items"), "{err}");
    // A LLaRA pair reads a slot after every listed title, the history's and the candidates'.
    let names = |ids: &[u32]| {
        ids.iter()
            .map(|&i| t[i as usize].clone())
            .collect::<Vec<_>>()
    };
    let llara = PreferencePair {
        prompt: recalign_core::prompt::request(Domain::Movies, 0, &names(&[0, 1]), &names(&[2, 3])),
        chosen: t[2].clone(),
        rejected: t[3].clone(),
        format: PromptFormat::Llara,
        history_items: vec![0, 1],
        candidate_items: vec![2, 3],
        ..PreferencePair::default()
    };
    let read = TokenisedPair::new_with(&lm, &llara, 1, true).unwrap();
    assert_eq!(read.slots.rows, [1, 2, 3, 4]);

    let run = |cache_mib: usize| {
        let settings = TrainSettings {
            cache_mib,
            ..settings(4, 1e-2)
        };
        let reference = with_adapter(&lm, &start).unwrap();
        let mut trainer = PreferenceTrainer::new(
            &lm,
            lora.clone(),
            Some(&start),
            settings,
            LossConfig::new(LossKind::Dpo),
            tokenised(true),
            Reference::Model(Box::new(reference)),
        )
        .unwrap();
        let mut losses = Vec::new();
        while !trainer.is_done() {
            losses.push(pollster::block_on(trainer.step()).unwrap().loss);
        }
        (losses, pollster::block_on(trainer.adapter()).unwrap())
    };
    let (with, a) = run(64);
    let (without, b) = run(0);
    for (x, y) in with.iter().zip(&without) {
        assert!(
            (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
            "{with:?} vs {without:?}"
        );
    }
    assert!(max_diff(&a, &b) <= 1e-5, "the factors moved apart");
    let (ha, hs) = (a.hybrid.unwrap(), start.hybrid.clone().unwrap());
    assert_ne!(ha.down, hs.down, "the projector trained");
}
