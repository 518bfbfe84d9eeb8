//! The decoder's hyper-parameters, read from GGUF metadata and checked before any weight is.

use crate::error::{Error, Result};
use crate::gguf::Gguf;

/// The hyper-parameters of a Llama-family decoder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU feed-forward layer.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_heads`).
    pub n_kv_heads: usize,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// Maximum sequence length the model was trained for.
    pub context_length: usize,
}

impl LlamaConfig {
    /// Reads `llama.*` metadata.
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Self> {
        let arch = g.get_str("general.architecture")?;
        if arch != "llama" {
            return Err(Error::Model(format!(
                "architecture {arch:?} is not supported (only llama-family models such as SmolLM2)"
            )));
        }
        let u = |k: &str| g.get_u64(&format!("llama.{k}")).map(|v| v as usize);
        let hidden_size = u("embedding_length")?;
        let n_heads = u("attention.head_count")?;
        let n_kv_heads = match g.metadata.get("llama.attention.head_count_kv") {
            Some(_) => u("attention.head_count_kv")?,
            None => n_heads,
        };
        let vocab_size = match g.metadata.get("llama.vocab_size") {
            Some(_) => u("vocab_size")?,
            None => g.get_strings("tokenizer.ggml.tokens")?.len(),
        };
        let rope_theta = g.get_f64("llama.rope.freq_base").unwrap_or(10_000.0);
        let cfg = Self {
            vocab_size,
            hidden_size,
            intermediate_size: u("feed_forward_length")?,
            n_layers: u("block_count")?,
            n_heads,
            n_kv_heads,
            rope_theta,
            rms_eps: g.get_f64("llama.attention.layer_norm_rms_epsilon")?,
            context_length: u("context_length")?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::Model(why));
        if self.n_heads == 0
            || self.n_kv_heads == 0
            || !self.n_heads.is_multiple_of(self.n_kv_heads)
        {
            return bad(format!(
                "{} query heads cannot be grouped over {} key/value heads",
                self.n_heads, self.n_kv_heads
            ));
        }
        if !self.hidden_size.is_multiple_of(self.n_heads)
            || !(self.hidden_size / self.n_heads).is_multiple_of(2)
        {
            return bad(format!(
                "hidden size {} does not split into {} heads of even width",
                self.hidden_size, self.n_heads
            ));
        }
        if self.n_layers == 0 || self.vocab_size == 0 || self.context_length == 0 {
            return bad("zero layers, vocabulary or context".into());
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.n_heads
    }
}
