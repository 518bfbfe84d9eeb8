//! Training as step functions: LoRA SFT on answer tokens and preference optimisation with any
//! loss of [`crate::losses`], both shaped as `step() -> StepReport` so the CLI, the tests and the
//! page's worker drive the same code, on any device.
//!
//! Invariants: one read-back per optimiser step (the report, loss statistics included); the
//! optimiser is applied only after that read-back shows a finite loss, so a NaN stops training
//! with the weights of the last good step; everything random is seeded.

mod adamw;
mod checkpoint;
pub mod data;
pub mod lora;
mod preference;
pub mod prepare;
mod run;
mod sft;

use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::lm::LanguageModel;
use crate::model::Llama;
use crate::{Error, Result};
pub use adamw::{OptimizerState, ParamMoments};
pub use checkpoint::{Checkpoint, CheckpointState};
pub use lora::{Adapter, FactorType, LoraSettings, LoraTargets};
pub use preference::{PreferenceTrainer, Reference, TokenisedPair, reference_log_probs};
pub use prepare::{SftData, SftPlan, SftRecipe, sft_data};
pub use sft::{SftExample, SftTrainer};

/// Optimiser, schedule and batching.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Steps of linear warm-up from 0.
    pub warmup_steps: usize,
    /// Optimiser steps in the run (the cosine decays to 0 at the end).
    pub steps: usize,
    /// Examples (pairs) per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    pub accumulation: usize,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm clip (0: none).
    pub max_grad_norm: f64,
    /// Seed of LoRA's init, the data order and beta-DPO's sampling.
    pub seed: u64,
    /// Memory for the frozen-layer cache, MiB (0: no cache). Preference training keeps each
    /// pair's residual stream below the first adapted layer ([`crate::lm::FrozenAnswers`])
    /// after its first pass, so later passes run only the adapted layers; a run whose cache
    /// would need more is refused before it starts.
    #[serde(default = "default_cache_mib")]
    pub cache_mib: usize,
}

fn default_cache_mib() -> usize {
    2048
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            learning_rate: 2e-4,
            warmup_steps: 2,
            steps: 32,
            batch_size: 4,
            accumulation: 1,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            seed: 2024,
            cache_mib: default_cache_mib(),
        }
    }
}

impl TrainSettings {
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |why: &str| Err(Error::Train(why.to_string()));
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("the learning rate must be a positive number");
        }
        if self.steps == 0 || self.batch_size == 0 || self.accumulation == 0 {
            return bad("steps, batch size and accumulation must be at least 1");
        }
        if !(self.weight_decay >= 0.0 && self.max_grad_norm >= 0.0) {
            return bad("weight decay and the gradient clip must not be negative");
        }
        Ok(())
    }

    /// Learning rate at optimiser step `step` (0-based): linear warm-up, then cosine to 0.
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.learning_rate * (step + 1) as f64 / (self.warmup_steps + 1) as f64;
        }
        let decay = self.steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / decay).min(1.0);
        self.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// What one optimiser step did, as the charts and logs show it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// 1-based optimiser step.
    pub step: usize,
    /// Steps in the run.
    pub steps: usize,
    /// Passes over the data so far (fractional).
    pub epoch: f64,
    /// The loss (SFT: mean NLL per answer token).
    pub loss: f32,
    /// Mean reward margin (preference steps).
    pub margin: f32,
    /// Mean chosen reward.
    pub chosen_reward: f32,
    /// Mean rejected reward.
    pub rejected_reward: f32,
    /// Fraction of examples whose margin is positive.
    pub accuracy: f32,
    /// Learning rate used.
    pub learning_rate: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Tokens through the model this step.
    pub tokens: usize,
    /// Throughput of this step.
    pub tokens_per_second: f64,
    /// beta used (beta-DPO adapts it).
    pub beta: f32,
    /// Every example's reward margin in this step (preference steps; the loss lab plots them
    /// on the loss curve). Always serialised: the page's worker messages use bincode, which
    /// cannot skip fields.
    #[serde(default)]
    pub margins: Vec<f32>,
}

/// A language model whose weights include `adapter` (for scoring and generation; no autodiff).
pub fn with_adapter(base: &LanguageModel, adapter: &Adapter) -> Result<LanguageModel> {
    let device = base.model.device().clone();
    let weights = lora::attach(base.model.weights.clone(), &adapter.settings)?;
    let weights = adapter.apply(weights, &device)?.valid();
    Ok(LanguageModel {
        model: Llama::new(base.model.config.clone(), weights, &device),
        tokenizer: base.tokenizer.clone(),
    })
}

/// Either trainer, so one loop (the CLI's, the page worker's) drives both stages.
pub enum Trainer {
    /// Supervised fine-tuning.
    Sft(Box<SftTrainer>),
    /// Preference optimisation.
    Preference(Box<PreferenceTrainer>),
}

impl Trainer {
    /// Whether every step has run.
    pub fn is_done(&self) -> bool {
        match self {
            Self::Sft(t) => t.is_done(),
            Self::Preference(t) => t.is_done(),
        }
    }

    /// One optimiser step.
    pub async fn step(&mut self) -> Result<StepReport> {
        match self {
            Self::Sft(t) => t.step().await,
            Self::Preference(t) => t.step().await,
        }
    }

    /// Everything needed to continue the run exactly.
    pub async fn checkpoint(&self) -> Result<Checkpoint> {
        match self {
            Self::Sft(t) => t.checkpoint().await,
            Self::Preference(t) => t.checkpoint().await,
        }
    }

    /// The adapter as trained so far.
    pub async fn adapter(&self) -> Result<Adapter> {
        match self {
            Self::Sft(t) => t.adapter().await,
            Self::Preference(t) => t.adapter().await,
        }
    }
}
