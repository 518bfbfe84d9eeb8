//! SASRec (Kang & McAuley 2018) in Burn, the preference oracle of RosePO (method.md §4): item and
//! position embeddings, causal self-attention blocks, scores = last hidden state · item
//! embeddings, cross-entropy over every item. Training is a step function so the CLI, the tests
//! and the page's worker all drive the same loop; every read-back is async (WebGPU-safe).

use burn::module::{Initializer, Module};
use burn::nn::attention::generate_autoregressive_mask;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::token;
use crate::data::ItemId;
use crate::data::split::Example;
use crate::{Error, Result};

mod train;

pub use train::{OracleStep, SasRecTrainer};

/// Metadata key under which a saved oracle stores its [`SasRecConfig`] as JSON.
const CONFIG_KEY: &str = "recalign.sasrec.config";

/// Shape of the network. Defaults are method.md's (hidden 64, history 10).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SasRecConfig {
    /// Items in the catalogue (the embedding table has one more row, for padding).
    pub n_items: usize,
    /// Embedding and hidden size.
    pub hidden: usize,
    /// Longest history read (the most recent items).
    pub max_len: usize,
    /// Self-attention blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Dropout during training.
    pub dropout: f64,
    /// Fingerprint of the catalogue the oracle was trained on (item keys in order), so that a
    /// saved oracle is not applied to another dataset.
    pub catalogue_fingerprint: u64,
}

impl SasRecConfig {
    /// Defaults for a catalogue of `n_items` items with `fingerprint`.
    pub fn new(n_items: usize, catalogue_fingerprint: u64) -> Self {
        Self {
            n_items,
            hidden: 64,
            max_len: 10,
            layers: 2,
            heads: 1,
            dropout: 0.2,
            catalogue_fingerprint,
        }
    }

    fn check(&self) -> Result<()> {
        if self.n_items == 0 || self.hidden == 0 || self.max_len == 0 || self.layers == 0 {
            return Err(Error::Oracle("SASRec sizes must be positive".into()));
        }
        if self.heads == 0 || !self.hidden.is_multiple_of(self.heads) {
            return Err(Error::Oracle(
                "hidden size must be a multiple of the head count".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Oracle("dropout must be in [0, 1)".into()));
        }
        Ok(())
    }
}

/// Optimisation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SasRecTraining {
    /// Passes over the training windows.
    pub epochs: usize,
    /// Windows per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Seeds initialisation and shuffling.
    pub seed: u64,
}

impl Default for SasRecTraining {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 256,
            learning_rate: 3e-3,
            seed: 2024,
        }
    }
}

/// FNV-1a over the item keys: cheap, stable across platforms, enough to catch a wrong dataset.
pub fn catalogue_fingerprint(catalogue: &crate::data::Catalogue) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for item in catalogue.items() {
        for b in item.key.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The network.
#[derive(Module, Debug)]
pub struct SasRec {
    items: Embedding,
    positions: Embedding,
    encoder: TransformerEncoder,
    norm: LayerNorm,
    dropout: Dropout,
}

impl SasRec {
    fn init(config: &SasRecConfig, device: &Device) -> Self {
        Self {
            // Burn's default N(0, 1) embeddings, scaled by sqrt(hidden) and dotted with each other,
            // start the cross-entropy near 50 nats; std 1/sqrt(hidden) starts it near ln(n_items).
            items: EmbeddingConfig::new(config.n_items + 1, config.hidden)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: (config.hidden as f64).powf(-0.5),
                })
                .init(device),
            positions: EmbeddingConfig::new(config.max_len, config.hidden)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: (config.hidden as f64).powf(-0.5),
                })
                .init(device),
            encoder: TransformerEncoderConfig::new(
                config.hidden,
                config.hidden,
                config.heads,
                config.layers,
            )
            .with_dropout(config.dropout)
            .with_norm_first(true)
            .init(device),
            norm: LayerNormConfig::new(config.hidden).init(device),
            dropout: DropoutConfig::new(config.dropout).init(),
        }
    }

    /// Hidden states `[batch, len, hidden]` of left-padded token sequences (0 = padding).
    fn hidden_states(&self, seq: Tensor<2, Int>) -> Tensor<3> {
        let [batch, len] = seq.dims();
        let device = seq.device();
        let hidden = self.items.weight.val().dims()[1];
        let x = self.items.forward(seq.clone()) * (hidden as f64).sqrt();
        let positions = Tensor::<1, Int>::arange(0..len as i64, &device)
            .reshape([1, len])
            .expand([batch, len]);
        let x = self.dropout.forward(x + self.positions.forward(positions));
        let input = TransformerEncoderInput::new(x)
            .mask_pad(seq.equal_elem(0))
            .mask_attn(generate_autoregressive_mask(batch, len, &device));
        self.norm.forward(self.encoder.forward(input))
    }

    /// Scores of every token (padding included) after each sequence's last position: `[batch, n+1]`.
    fn next_item_logits(&self, seq: Tensor<2, Int>) -> Tensor<2> {
        let [batch, len] = seq.dims();
        let h = self.hidden_states(seq);
        let hidden = h.dims()[2];
        let last = h
            .slice([0..batch, len - 1..len, 0..hidden])
            .reshape([batch, hidden]);
        last.matmul(self.items.weight.val().transpose())
    }
}

/// Left-pads (or cuts to the most recent `len`) a history as SASRec tokens.
fn encode_history(history: &[ItemId], len: usize) -> Vec<i64> {
    let recent = &history[history.len().saturating_sub(len)..];
    let mut out = vec![0; len - recent.len()];
    out.extend(recent.iter().map(|&i| token(i)));
    out
}

/// Training windows of `max_len + 1` tokens cut from the end of each sequence backwards, so
/// every transition is predicted once, with up to `max_len` items of context.
fn windows(sequences: &[Vec<ItemId>], max_len: usize) -> Vec<Vec<i64>> {
    let mut out = Vec::new();
    for seq in sequences {
        let mut end = seq.len();
        while end >= 2 {
            let start = end.saturating_sub(max_len + 1);
            let mut w = vec![0; max_len + 1 - (end - start)];
            w.extend(seq[start..end].iter().map(|&i| token(i)));
            out.push(w);
            if start == 0 {
                break;
            }
            end -= max_len;
        }
    }
    out
}

/// A trained SASRec ready to score (cloning shares the weights).
#[derive(Clone, Debug)]
pub struct SasRecOracle {
    model: SasRec,
    config: SasRecConfig,
    device: Device,
}

impl SasRecOracle {
    /// The network's shape.
    pub fn config(&self) -> &SasRecConfig {
        &self.config
    }

    fn batch_logits(&self, examples: &[Example]) -> Tensor<2> {
        let len = self.config.max_len;
        let tokens: Vec<i64> = examples
            .iter()
            .flat_map(|e| encode_history(&e.history, len))
            .collect();
        let seq = Tensor::<2, Int>::from_data(
            TensorData::new(tokens, [examples.len(), len]),
            &self.device,
        );
        self.model.next_item_logits(seq)
    }

    async fn read(t: Tensor<2>) -> Result<Vec<f32>> {
        crate::lm::read_f32(t).await
    }

    /// Scores of each example's candidates (same order), one read-back per 256 examples.
    pub async fn candidate_scores(&self, examples: &[Example]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(examples.len());
        for chunk in examples.chunks(256) {
            let width = chunk.iter().map(|e| e.candidates.len()).max().unwrap_or(0);
            if width == 0 {
                out.extend(chunk.iter().map(|_| Vec::new()));
                continue;
            }
            if let Some(bad) = chunk
                .iter()
                .flat_map(|e| e.candidates.iter().chain(&e.history))
                .find(|i| i.index() >= self.config.n_items)
            {
                return Err(Error::Oracle(format!(
                    "item {} is outside the oracle's catalogue of {}",
                    bad.0, self.config.n_items
                )));
            }
            let ids: Vec<i64> = chunk
                .iter()
                .flat_map(|e| (0..width).map(move |k| e.candidates.get(k).map_or(0, |&c| token(c))))
                .collect();
            let ids = Tensor::<2, Int>::from_data(
                TensorData::new(ids, [chunk.len(), width]),
                &self.device,
            );
            let scores = Self::read(self.batch_logits(chunk).gather(1, ids)).await?;
            for (row, e) in scores.chunks(width).zip(chunk) {
                out.push(row[..e.candidates.len()].to_vec());
            }
        }
        Ok(out)
    }

    /// Scores of every catalogue item for each example (`n_items` per row).
    pub async fn catalogue_scores(&self, examples: &[Example]) -> Result<Vec<Vec<f32>>> {
        let n = self.config.n_items;
        let mut out = Vec::with_capacity(examples.len());
        for chunk in examples.chunks(256) {
            if let Some(bad) = chunk
                .iter()
                .flat_map(|e| &e.history)
                .find(|i| i.index() >= n)
            {
                return Err(Error::Oracle(format!(
                    "item {} is outside the oracle's catalogue of {n}",
                    bad.0
                )));
            }
            let scores = Self::read(self.batch_logits(chunk)).await?;
            out.extend(scores.chunks(n + 1).map(|row| row[1..].to_vec()));
        }
        Ok(out)
    }

    /// The item embedding table, row `i + 1` for item `i` (row 0: padding), and its width:
    /// what LLaRA's hybrid prompt puts after each title ([`crate::hybrid::HybridWeights`]).
    pub async fn item_table(&self) -> Result<(Vec<f32>, usize)> {
        let table = self.model.items.weight.val();
        let width = table.dims()[1];
        Ok((Self::read(table).await?, width))
    }

    /// The oracle as safetensors bytes (weights plus its config in the metadata).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let config =
            serde_json::to_string(&self.config).map_err(|e| Error::Oracle(e.to_string()))?;
        let mut store = SafetensorsStore::from_bytes(None).metadata(CONFIG_KEY, config);
        self.model
            .save_into(&mut store)
            .map_err(|e| Error::Oracle(e.to_string()))?;
        store.get_bytes().map_err(|e| Error::Oracle(e.to_string()))
    }

    /// Loads an oracle saved by [`Self::to_safetensors`]; `expected_fingerprint` (when given)
    /// must match the catalogue it was trained on.
    pub fn from_safetensors(
        bytes: &[u8],
        device: &Device,
        expected_fingerprint: Option<u64>,
    ) -> Result<Self> {
        let (_, metadata) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::Oracle(format!("not a safetensors file: {e}")))?;
        let config = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get(CONFIG_KEY))
            .ok_or_else(|| {
                Error::Oracle(format!(
                    "the file has no {CONFIG_KEY} metadata; it is not a recalign SASRec oracle"
                ))
            })?;
        let config: SasRecConfig =
            serde_json::from_str(config).map_err(|e| Error::Oracle(format!("bad config: {e}")))?;
        config.check()?;
        if let Some(expected) = expected_fingerprint
            && expected != config.catalogue_fingerprint
        {
            return Err(Error::Oracle(
                "the oracle was trained on a different catalogue".into(),
            ));
        }
        let device = device.clone().without_autodiff();
        let mut model = SasRec::init(&config, &device);
        let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()));
        let applied = model
            .load_from(&mut store)
            .map_err(|e| Error::Oracle(e.to_string()))?;
        if !applied.errors.is_empty() || !applied.missing.is_empty() {
            return Err(Error::Oracle(format!(
                "weights do not match the config: {} errors, {} missing",
                applied.errors.len(),
                applied.missing.len()
            )));
        }
        Ok(Self {
            model: model.valid(),
            config,
            device,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histories_are_left_padded_and_cut() {
        let h: Vec<ItemId> = (0..12).map(ItemId).collect();
        assert_eq!(encode_history(&h[..2], 4), [0, 0, 1, 2]);
        assert_eq!(encode_history(&h, 4), [9, 10, 11, 12]);
    }

    #[test]
    fn windows_cover_every_transition_once() {
        let seq: Vec<ItemId> = (0..25).map(ItemId).collect();
        let w = windows(&[seq], 10);
        let predicted: usize = w
            .iter()
            .map(|w| w.windows(2).filter(|p| p[0] != 0 && p[1] != 0).count())
            .sum();
        assert_eq!(predicted, 24);
        assert!(w.iter().all(|w| w.len() == 11));
    }
}
