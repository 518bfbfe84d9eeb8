//! A tiny random Llama written as GGUF, so tests (native and in the browser) exercise the real
//! loading and scoring code without the 94 MB model.

use crate::gguf::{GgufWriter, MetaValue};

/// Shape of the tiny model: 2 layers, width 32, 4 query and 2 key/value heads, context 1024 (long enough for the page's example prompts).
pub const TINY_CONTEXT: usize = 1024;

/// GPT-2's byte-to-character table: printable bytes map to themselves, the rest above U+0100.
pub fn byte_to_char(b: u8) -> char {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    if printable(b) {
        return char::from(b);
    }
    let shifted = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + shifted).unwrap_or('?')
}

/// A deterministic pseudo-random stream (SplitMix64) so fixtures are identical on every target.
struct SplitMix(u64);

impl SplitMix {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() * scale).collect()
    }
}

/// The GGUF bytes of a tiny random byte-level-BPE Llama, deterministic in `seed`.
pub fn tiny_model_gguf(seed: u64) -> Vec<u8> {
    let (d, ff, layers, heads, kv_heads) = (32usize, 64usize, 2usize, 4usize, 2usize);
    let hd = d / heads;
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut types = vec![3i32; 3];
    for b in 0..=255u8 {
        tokens.push(byte_to_char(b).to_string());
        types.push(1);
    }
    let merges = ["Ġ t", "h e", "Ġt he", "i n", "e r"];
    for m in merges {
        tokens.push(m.replace(' ', ""));
        types.push(1);
    }
    let vocab = tokens.len();

    let s = |v: &str| MetaValue::String(v.into());
    let u = |v: usize| MetaValue::U32(v as u32);
    let mut w = GgufWriter::new();
    w.meta("general.architecture", s("llama"))
        .meta("general.name", s("recalign tiny test model"))
        .meta("llama.block_count", u(layers))
        .meta("llama.context_length", u(TINY_CONTEXT))
        .meta("llama.embedding_length", u(d))
        .meta("llama.feed_forward_length", u(ff))
        .meta("llama.attention.head_count", u(heads))
        .meta("llama.attention.head_count_kv", u(kv_heads))
        .meta("llama.rope.freq_base", MetaValue::F32(10_000.0))
        .meta(
            "llama.attention.layer_norm_rms_epsilon",
            MetaValue::F32(1e-5),
        )
        .meta("llama.vocab_size", u(vocab))
        .meta("tokenizer.ggml.model", s("gpt2"))
        .meta("tokenizer.ggml.pre", s("smollm"))
        .meta(
            "tokenizer.ggml.tokens",
            MetaValue::Array(tokens.iter().map(|t| s(t)).collect()),
        )
        .meta(
            "tokenizer.ggml.token_type",
            MetaValue::Array(types.into_iter().map(MetaValue::I32).collect()),
        )
        .meta(
            "tokenizer.ggml.merges",
            MetaValue::Array(merges.iter().map(|m| s(m)).collect()),
        )
        .meta("tokenizer.ggml.bos_token_id", u(1))
        .meta("tokenizer.ggml.eos_token_id", u(2));

    let mut rng = SplitMix(seed);
    w.tensor_f32("token_embd.weight", &[vocab, d], &rng.vec(vocab * d, 1.0));
    for i in 0..layers {
        let mut t = |name: &str, shape: &[usize], scale: f32| {
            let n = shape.iter().product();
            let values = rng.vec(n, scale);
            w.tensor_f32(&format!("blk.{i}.{name}.weight"), shape, &values);
        };
        t("attn_norm", &[d], 0.2);
        t("attn_q", &[d, d], 0.3);
        t("attn_k", &[kv_heads * hd, d], 0.3);
        t("attn_v", &[kv_heads * hd, d], 0.3);
        t("attn_output", &[d, d], 0.3);
        t("ffn_norm", &[d], 0.2);
        t("ffn_gate", &[ff, d], 0.3);
        t("ffn_up", &[ff, d], 0.3);
        t("ffn_down", &[d, ff], 0.3);
    }
    // Norm gains near 1 keep activations in a realistic range.
    let gains: Vec<f32> = rng.vec(d, 0.1).into_iter().map(|g| 1.0 + g).collect();
    w.tensor_f32("output_norm.weight", &[d], &gains);
    w.finish()
}

/// Why the committed references are float64 and how far an f32 result may sit from them.
///
/// A golden blessed from one f32 run only holds on CPUs that round the same way: gemm picks its
/// kernels (AVX-512, AVX2, SSE, wasm simd128) and its summation order from the CPU at run time,
/// and WebGPU evaluates `exp`/`log` to a few ulps rather than correctly rounded. So the references
/// in `tests/fixtures/` are computed on Flex configured for float64 (`tests/f64_reference.rs`),
/// whose own error is some 10^9 times below f32's, and every f32 device is held to them with a
/// bound derived from f32's unit roundoff ([`F32_UNIT`]) and the size of the computation.
pub mod tolerance {
    /// f32's unit roundoff, 2^-24: the relative error of one correctly rounded operation.
    pub const F32_UNIT: f32 = f32::EPSILON / 2.0;
}

/// The scoring scenario behind `tests/fixtures/tiny_scores.json`: one prompt and six candidates
/// of very different lengths (1 to 36 tokens, ASCII and UTF-8) on the seed-7 tiny model.
pub mod scores {
    use super::tolerance::F32_UNIT;
    use crate::{LanguageModel, ScoreOptions};

    /// The tiny model's seed.
    pub const SEED: u64 = 7;
    /// The user message (wrapped in ChatML).
    pub const MESSAGE: &str = "history: the thin, the in-between. pick one";
    /// The candidates.
    pub const TITLES: [&str; 6] = [
        "the",
        "Amélie",
        "a much longer title than the others",
        "x",
        "2001",
        "Léon: The Professional",
    ];

    /// The committed reference (float64 log-probabilities rounded to f32).
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct Reference {
        /// The tiny model's seed.
        pub seed: u64,
        /// The user message.
        pub message: String,
        /// Its ChatML token ids.
        pub prompt_ids: Vec<u32>,
        /// The candidates.
        pub candidates: Vec<String>,
        /// Each candidate's summed log-probability.
        pub log_probs: Vec<f32>,
    }

    /// Computes the scenario on `lm`'s device.
    pub async fn compute(lm: &LanguageModel) -> crate::Result<Reference> {
        let prompt_ids = lm
            .tokenizer
            .encode(&crate::tokenizer::chatml_user(MESSAGE))?;
        let candidates: Vec<String> = TITLES.iter().map(|t| t.to_string()).collect();
        let scores = lm
            .score_candidates(&prompt_ids, &candidates, ScoreOptions::default())
            .await?;
        Ok(Reference {
            seed: SEED,
            message: MESSAGE.to_string(),
            prompt_ids,
            candidates,
            log_probs: scores.iter().map(|s| s.log_prob).collect(),
        })
    }

    /// Largest deviation of `got` from `reference`, per candidate as `|got - ref| / (1 + |ref|)`,
    /// in units of [`F32_UNIT`]. A log-probability is a sum over the candidate's tokens of
    /// `z_t - logsumexp(z)`; each term inherits the relative error of the forward pass that made
    /// the logits, so the error grows with the summed magnitude, and the `1 +` covers a
    /// near-zero sum.
    pub fn deviation(got: &[f32], reference: &[f32]) -> Result<f32, String> {
        if got.len() != reference.len() {
            return Err(format!(
                "{} log-probabilities, the reference has {}",
                got.len(),
                reference.len()
            ));
        }
        Ok(got
            .iter()
            .zip(reference)
            .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()) / F32_UNIT)
            .fold(0.0, f32::max))
    }

    /// Bound on [`deviation`] for an f32 CPU (any x86-64 instruction set, any thread count,
    /// wasm). The deepest chain here is ~10 dependent reductions of at most 64 terms (2 layers
    /// of norm, attention and MLP) feeding a 264-term log-sum-exp: a worst-case (linear, Higham)
    /// bound of ~900 u relative to the summed magnitude, and ~30 u for rounding errors of random
    /// sign (the square-root estimate). 2^8 u sits between them, with room over the measured
    /// 1.3-3.8 u (SSE, AVX2, AVX-512). A wrong result (a dropped or extra token, a leaking pad,
    /// a mask or position off by one) moves a log-probability by more than 1e-2 relative, above
    /// 2^17 u.
    pub const F32_CPU: f32 = 256.0;
    /// Bound for WebGPU: WGSL allows `exp` and `log` errors of `3 + 2|x|` ulps (not correctly
    /// rounded) and the adapter may fuse or reorder freely, so 8 times the CPU bound.
    pub const WEBGPU: f32 = 2048.0;
}

/// The training scenario that is run on every device and compared with the float64 reference
/// `tests/fixtures/tiny_train.json`: 3 SFT steps, then 3 DPO steps from that adapter, on the tiny
/// model with 4 made-up examples.
pub mod training {
    use crate::LanguageModel;
    use crate::data::pairs::PreferencePair;
    use crate::losses::{LossConfig, LossKind};
    use crate::train::{
        Adapter, LoraSettings, PreferenceTrainer, SftExample, SftTrainer, TokenisedPair,
        TrainSettings, reference_log_probs, with_adapter,
    };

    /// What the scenario produces.
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct Outcome {
        /// Loss of each SFT step, then of each DPO step.
        pub losses: Vec<f32>,
        /// Every factor of the final adapter, layer by layer (A then B).
        pub adapter: Vec<f32>,
    }

    /// How many optimiser steps each stage takes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Scenario {
        /// SFT steps.
        pub sft_steps: usize,
        /// DPO steps, from the SFT adapter.
        pub dpo_steps: usize,
    }

    impl Scenario {
        /// The committed scenario.
        pub const GOLDEN: Scenario = Scenario {
            sft_steps: 3,
            dpo_steps: 3,
        };
    }

    /// Both stages' learning rate: the unit in which adapter deviations are measured.
    pub const LEARNING_RATE: f64 = 1e-2;

    /// How far an outcome is from a reference.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct Deviation {
        /// Largest `|loss - ref| / (1 + |ref|)` over the steps (infinite when the counts differ).
        pub loss: f32,
        /// `||adapter - ref||_2 / (LEARNING_RATE * sqrt(n))`: the distance in units of the size
        /// of one optimiser step (infinite when the sizes differ).
        pub adapter_steps: f32,
    }

    /// Upper bounds on a [`Deviation`].
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct Tolerance {
        /// Bound on [`Deviation::loss`].
        pub loss: f32,
        /// Bound on [`Deviation::adapter_steps`].
        pub adapter_steps: f32,
    }

    impl Tolerance {
        /// Any f32 CPU (x86-64 at any instruction set, wasm), any thread count.
        ///
        /// Adapter: one AdamW step moves every factor by about the learning rate (the update
        /// `m/(sqrt(v)+eps)` has magnitude 1 at the first step wherever `|g| >> eps`, and near 1
        /// after), so a run with one step fewer or more sits a sizeable fraction of a step away:
        /// 0.37 steps for one SFT step fewer, 0.22 for one DPO step fewer (measured by
        /// `a_skipped_step_is_far_outside_the_tolerance`). Rounding reaches the adapter through
        /// the gradient: where `|g| >> eps` the update is insensitive to it (relative error
        /// ~1e-6 in, ~1e-6 of a step out); only factors whose gradient is near `eps` = 1e-5 see
        /// the full `lr·du/eps` sensitivity, and they are few among the 448. Measured against
        /// the f64 reference: 1.1e-5 (AVX2), 1.4e-5 (AVX-512), 1.5e-5 (SSE) steps, and 1.3e-4 on
        /// SSE with the earlier N(0, 1/r) initialisation of A, five times larger. The bound,
        /// 1e-2 steps, is 67 times the worst measured and 22 times below a missed step.
        ///
        /// Loss: step k's loss is a forward pass at the adapter after k-1 steps, so it carries
        /// the forward pass's relative error (under 2^8 u = 1.5e-5, as for scores) plus the
        /// adapter's deviation times the loss's slope; the DPO losses also inherit the f32
        /// rounding of the cached reference log-probabilities (the reference computes them in
        /// f64 and stores them as f32, like every run), 2.2e-6 measured. Bound: 1e-4 relative;
        /// a missed step changes a later loss by more than 1e-2 relative here.
        pub const F32_CPU: Tolerance = Tolerance {
            loss: 1e-4,
            adapter_steps: 1e-2,
        };
        /// WebGPU: as the CPU, with WGSL's looser `exp`/`log` (see `scores::WEBGPU`) on the
        /// losses; the adapter bound stays, as it is already the margin to a missed step.
        pub const WEBGPU: Tolerance = Tolerance {
            loss: 8e-4,
            adapter_steps: 1e-2,
        };
    }

    impl Outcome {
        /// How far `self` is from `reference`.
        pub fn deviation_from(&self, reference: &Outcome) -> Deviation {
            let loss = if self.losses.len() == reference.losses.len() {
                self.losses
                    .iter()
                    .zip(&reference.losses)
                    .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
                    .fold(0.0, f32::max)
            } else {
                f32::INFINITY
            };
            let n = reference.adapter.len();
            let adapter_steps = if self.adapter.len() == n && n > 0 {
                let sq: f64 = self
                    .adapter
                    .iter()
                    .zip(&reference.adapter)
                    .map(|(g, w)| f64::from(g - w).powi(2))
                    .sum();
                (sq.sqrt() / (LEARNING_RATE * (n as f64).sqrt())) as f32
            } else {
                f32::INFINITY
            };
            Deviation {
                loss,
                adapter_steps,
            }
        }
    }

    impl Deviation {
        /// `Err` naming what is out of bounds.
        pub fn check(&self, tolerance: Tolerance) -> Result<(), String> {
            // `<=` is false for NaN, so a NaN fails.
            let loss_ok = self.loss <= tolerance.loss;
            let adapter_ok = self.adapter_steps <= tolerance.adapter_steps;
            if loss_ok && adapter_ok {
                return Ok(());
            }
            Err(format!(
                "loss deviation {:e} (bound {:e}), adapter {:e} steps away (bound {:e})",
                self.loss, tolerance.loss, self.adapter_steps, tolerance.adapter_steps
            ))
        }
    }

    const TITLES: [&str; 4] = ["Alien", "Heat", "Fargo", "Casino"];

    fn request(i: usize) -> String {
        format!(
            "user {i} liked {}; pick one of {}",
            TITLES[i],
            TITLES.join(", ")
        )
    }

    fn settings(steps: usize) -> TrainSettings {
        TrainSettings {
            learning_rate: LEARNING_RATE,
            warmup_steps: 0,
            steps,
            batch_size: 2,
            accumulation: 1,
            seed: 5,
            ..TrainSettings::default()
        }
    }

    /// Runs the committed scenario on `lm`'s device.
    pub async fn run(lm: &LanguageModel) -> crate::Result<Outcome> {
        run_scenario(lm, Scenario::GOLDEN).await
    }

    /// Runs `scenario` on `lm`'s device.
    pub async fn run_scenario(lm: &LanguageModel, scenario: Scenario) -> crate::Result<Outcome> {
        let lora = LoraSettings {
            rank: 2,
            alpha: 4.0,
            ..LoraSettings::default()
        };
        let examples = (0..4)
            .map(|i| SftExample::new(lm, &request(i), TITLES[(i + 1) % 4]))
            .collect::<crate::Result<Vec<_>>>()?;
        let mut sft = SftTrainer::new(lm, lora.clone(), settings(scenario.sft_steps), examples)?;
        let mut losses = Vec::new();
        while !sft.is_done() {
            losses.push(sft.step().await?.loss);
        }
        let start = sft.adapter().await?;
        let pairs = (0..4)
            .map(|i| {
                let pair = PreferencePair {
                    prompt: request(i),
                    chosen: TITLES[(i + 1) % 4].to_string(),
                    rejected: TITLES[(i + 2) % 4].to_string(),
                    ..PreferencePair::default()
                };
                TokenisedPair::new(lm, &pair, 1)
            })
            .collect::<crate::Result<Vec<_>>>()?;
        let reference = with_adapter(lm, &start)?;
        let cached = reference_log_probs(&reference, &pairs, |_, _| {}).await?;
        let mut loss = LossConfig::new(LossKind::Dpo);
        loss.beta = 1.0;
        let mut dpo = PreferenceTrainer::new(
            lm,
            lora,
            Some(&start),
            settings(scenario.dpo_steps),
            loss,
            pairs,
            cached,
        )?;
        while !dpo.is_done() {
            losses.push(dpo.step().await?.loss);
        }
        let adapter: Adapter = dpo.adapter().await?;
        Ok(Outcome {
            losses,
            adapter: adapter
                .layers
                .iter()
                .flat_map(|l| l.a.iter().chain(&l.b).copied())
                .collect(),
        })
    }
}
