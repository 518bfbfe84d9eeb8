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

/// The training scenario that is run on every device and compared (native Flex commits its
/// result as `tests/fixtures/tiny_train.json`; the browser test runs it on WebGPU): 3 SFT steps,
/// then 3 DPO steps from that adapter, on the tiny model with 4 made-up examples.
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

    const TITLES: [&str; 4] = ["Alien", "Heat", "Fargo", "Casino"];

    fn request(i: usize) -> String {
        format!(
            "user {i} liked {}; pick one of {}",
            TITLES[i],
            TITLES.join(", ")
        )
    }

    fn settings() -> TrainSettings {
        TrainSettings {
            learning_rate: 1e-2,
            warmup_steps: 0,
            steps: 3,
            batch_size: 2,
            accumulation: 1,
            seed: 5,
            ..TrainSettings::default()
        }
    }

    /// Runs the scenario on `lm`'s device.
    pub async fn run(lm: &LanguageModel) -> crate::Result<Outcome> {
        let lora = LoraSettings {
            rank: 2,
            alpha: 4.0,
            ..LoraSettings::default()
        };
        let examples = (0..4)
            .map(|i| SftExample::new(lm, &request(i), TITLES[(i + 1) % 4]))
            .collect::<crate::Result<Vec<_>>>()?;
        let mut sft = SftTrainer::new(lm, lora.clone(), settings(), examples)?;
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
        let mut dpo =
            PreferenceTrainer::new(lm, lora, Some(&start), settings(), loss, pairs, cached)?;
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
