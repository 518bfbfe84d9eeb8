//! Training as step functions: LoRA SFT on answer tokens and preference optimisation with any
//! loss of [`crate::losses`], both shaped as `step() -> StepReport` so the CLI, the tests and the
//! page's worker drive the same code, on any device.
//!
//! Invariants: one read-back per optimiser step (the report, loss statistics included); the
//! optimiser is applied only after that read-back shows a finite loss, so a NaN stops training
//! with the weights of the last good step; everything random is seeded.

mod adamw;
pub mod data;
pub mod lora;
pub mod prepare;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::data::pairs::PreferencePair;
use crate::lm::{
    FrozenAnswers, LanguageModel, ScoredSequence, frozen_answer_bytes, sequence_log_probs_with,
};
use crate::losses::scalar::gumbel_noise;
use crate::losses::tensor::{LossInputs, batch_loss, read};
use crate::losses::{LossConfig, LossState};
use crate::model::{Llama, LlamaWeights, Slots};
use crate::prompt::PromptFormat;
use crate::{Error, Result};
pub use adamw::{OptimizerState, ParamMoments};
pub use lora::{Adapter, FactorType, LoraSettings, LoraTargets};
pub use prepare::{SftData, SftPlan, SftRecipe, sft_data};

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
    fn validate(&self) -> Result<()> {
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

/// The decoder with adapters, on an autodiff device.
fn trainable(
    base: &LanguageModel,
    lora: &LoraSettings,
    adapter: Option<&Adapter>,
    seed: u64,
    ids: &std::collections::HashMap<String, u64>,
) -> Result<Llama> {
    let device = base.model.device().clone().autodiff();
    let weights = lora::attach(base.model.weights.clone().fork(&device).train(), lora)?;
    let fresh;
    let adapter = match adapter {
        Some(a) => Some(a),
        None => {
            fresh = Adapter::fresh(lora, &base.model.config, seed)?;
            Some(&fresh)
        }
    };
    let weights = match adapter {
        Some(a) if a.settings != *lora => {
            return Err(Error::Adapter(format!(
                "the adapter was trained with {:?}, not {lora:?}",
                a.settings
            )));
        }
        Some(a) => a.apply_with_ids(weights, &device, ids)?,
        None => weights,
    };
    Ok(Llama::new(base.model.config.clone(), weights, &device))
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

/// Parameter ids of the trainable (LoRA) factors, for global-norm clipping.
#[derive(Default)]
struct TrainableIds(Vec<burn::module::ParamId>);

impl ModuleVisitor for TrainableIds {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if D == 2 && param.val().is_require_grad() {
            self.0.push(param.id);
        }
    }
}

fn trainable_ids(policy: &Llama) -> Vec<burn::module::ParamId> {
    let mut ids = TrainableIds::default();
    policy.weights.visit(&mut ids);
    ids.0
}

/// Scales every gradient by `min(1, max_norm / norm)` on the device and returns the pre-clip
/// global norm as a `[1]` tensor (read back with the report).
fn clip_global_norm(
    grads: &mut GradientsParams,
    ids: &[burn::module::ParamId],
    max_norm: f64,
    device: &Device,
) -> Tensor<1> {
    let mut total = Tensor::<1>::zeros([1], device);
    for id in ids {
        if let Some(g) = grads.get::<2>(*id) {
            total = total + g.square().sum();
        }
    }
    let norm = total.sqrt();
    if max_norm > 0.0 {
        let scale = (norm.clone() + 1e-6)
            .recip()
            .mul_scalar(max_norm)
            .clamp_max(1.0);
        for id in ids {
            if let Some(g) = grads.remove::<2>(*id) {
                grads.register(*id, g * scale.clone().unsqueeze::<2>());
            }
        }
    }
    norm
}

/// The optimiser, schedule and data order both trainers share.
struct Loop {
    settings: TrainSettings,
    optim: adamw::AdamW,
    order: Vec<usize>,
    cursor: usize,
    epochs: usize,
    step: usize,
    rng: ChaCha8Rng,
}

impl Loop {
    fn new(settings: TrainSettings, n: usize) -> Result<Self> {
        settings.validate()?;
        if n == 0 {
            return Err(Error::Train("there is nothing to train on".into()));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let optim = adamw::AdamW::new(settings.weight_decay as f32);
        Ok(Self {
            settings,
            optim,
            order,
            cursor: 0,
            epochs: 0,
            step: 0,
            rng,
        })
    }

    /// Puts a fresh loop (same seed) where a checkpoint left it: the data order is replayed
    /// (one shuffle per finished epoch), so a resumed run sees exactly the batches an
    /// uninterrupted one would.
    fn restore(&mut self, step: usize, epochs: usize, cursor: usize) -> Result<()> {
        if cursor > self.order.len() || step > self.settings.steps {
            return Err(Error::Train(
                "the checkpoint does not fit this run's data or settings".into(),
            ));
        }
        for _ in 0..epochs {
            self.order.shuffle(&mut self.rng);
        }
        self.epochs = epochs;
        self.cursor = cursor;
        self.step = step;
        Ok(())
    }

    /// The next micro-batch's example indices (wrapping into a reshuffled epoch).
    fn next_batch(&mut self) -> Vec<usize> {
        let mut batch = Vec::with_capacity(self.settings.batch_size);
        while batch.len() < self.settings.batch_size.min(self.order.len()) {
            if self.cursor == self.order.len() {
                self.cursor = 0;
                self.epochs += 1;
                self.order.shuffle(&mut self.rng);
            }
            batch.push(self.order[self.cursor]);
            self.cursor += 1;
        }
        batch
    }

    fn epoch(&self) -> f64 {
        self.epochs as f64 + self.cursor as f64 / self.order.len() as f64
    }

    fn is_done(&self) -> bool {
        self.step >= self.settings.steps
    }
}

/// Reads `values` once and refuses a non-finite loss (its first value).
async fn read_report(values: Vec<Tensor<1>>, step: usize) -> Result<Vec<f32>> {
    let v = read(Tensor::cat(values, 0)).await?;
    match v.first() {
        Some(l) if l.is_finite() => Ok(v),
        Some(l) => Err(Error::Train(format!(
            "the loss became {l} at step {step}; training stopped before applying that step, so \
             the adapter keeps its last good weights (try a lower learning rate)"
        ))),
        None => Err(Error::Train("empty report".into())),
    }
}

/// One SFT example: the prompt's ids and the target answer's ids (eos included).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SftExample {
    /// ChatML prompt ids.
    pub prompt_ids: Vec<u32>,
    /// Answer ids, ending with eos.
    pub answer_ids: Vec<u32>,
    /// How much each of its answer tokens counts in the step's token-weighted loss (1: as much
    /// as any other). A one-target example has ~6 answer tokens against a document's ~170, so
    /// mixed into documents at weight 1 it is about 2% of the objective ([`data::mix_one_target`]).
    #[serde(default = "unit_weight")]
    pub weight: f32,
    /// Hybrid item slots, positions in [`Self::joined_ids`] (empty for a text-only example),
    /// where a hybrid adapter's projector adds the items' vectors ([`crate::hybrid`]).
    #[serde(default, skip_serializing_if = "Slots::is_empty")]
    pub slots: Slots,
}

fn unit_weight() -> f32 {
    1.0
}

impl SftExample {
    /// Prompt then answer, as one sequence.
    pub fn joined_ids(&self) -> Vec<u32> {
        [self.prompt_ids.as_slice(), &self.answer_ids].concat()
    }

    /// Tokenises `request` (a user turn) and `answer`, checking the pair fits the context.
    pub fn new(lm: &LanguageModel, request: &str, answer: &str) -> Result<Self> {
        let answers = vec![answer.to_string()];
        let prompt_ids = lm.request_prompt_ids(request, &answers)?;
        let answer_ids = lm.candidate_ids(&answers)?.remove(0);
        Ok(Self {
            prompt_ids,
            answer_ids,
            weight: 1.0,
            slots: Slots::default(),
        })
    }
}

/// Supervised fine-tuning of LoRA adapters: cross-entropy on the answer tokens only.
pub struct SftTrainer {
    policy: Llama,
    lora: LoraSettings,
    examples: Vec<SftExample>,
    ids: Vec<burn::module::ParamId>,
    pad: u32,
    run: Loop,
}

impl SftTrainer {
    /// Attaches fresh adapters to a copy of `base` and prepares the run.
    pub fn new(
        base: &LanguageModel,
        lora: LoraSettings,
        settings: TrainSettings,
        examples: Vec<SftExample>,
    ) -> Result<Self> {
        Self::prepare(base, lora, None, settings, examples)
    }

    /// Prepares a run that goes on training `start` (its shape fixes the LoRA settings): a
    /// second phase on other examples, such as LLaRA one-target prompts after sequence SFT.
    pub fn continue_from(
        base: &LanguageModel,
        start: &Adapter,
        settings: TrainSettings,
        examples: Vec<SftExample>,
    ) -> Result<Self> {
        Self::prepare(
            base,
            start.settings.clone(),
            Some(start),
            settings,
            examples,
        )
    }

    fn prepare(
        base: &LanguageModel,
        lora: LoraSettings,
        start: Option<&Adapter>,
        settings: TrainSettings,
        examples: Vec<SftExample>,
    ) -> Result<Self> {
        let policy = trainable(base, &lora, start, settings.seed, &Default::default())?;
        let ids = trainable_ids(&policy);
        Ok(Self {
            run: Loop::new(settings, examples.len())?,
            policy,
            lora,
            examples,
            ids,
            pad: base.tokenizer.eos_id(),
        })
    }

    /// Whether every step has run.
    pub fn is_done(&self) -> bool {
        self.run.is_done()
    }

    /// One optimiser step (all its micro-batches), one read-back.
    pub async fn step(&mut self) -> Result<StepReport> {
        if self.is_done() {
            return Err(Error::Train("the run has finished".into()));
        }
        let started = Instant::now();
        let device = self.policy.device().clone();
        let mut acc = GradientsAccumulator::<LlamaWeights>::new();
        let mut losses = Vec::new();
        let mut tokens = 0;
        let micro: Vec<Vec<usize>> = (0..self.run.settings.accumulation)
            .map(|_| self.run.next_batch())
            .collect();
        // Token-weighted over the whole step (each token counts its example's weight), so
        // accumulation does not change the objective.
        let total_weight: f64 = micro
            .iter()
            .flatten()
            .map(|&i| {
                let ex = &self.examples[i];
                f64::from(ex.weight) * ex.answer_ids.len() as f64
            })
            .sum();
        for batch in micro {
            // The micro-batch's examples in one padded pass.
            let joined: Vec<(Vec<u32>, usize)> = batch
                .iter()
                .map(|&i| {
                    let ex = &self.examples[i];
                    tokens += ex.prompt_ids.len() + ex.answer_ids.len();
                    (ex.joined_ids(), ex.prompt_ids.len())
                })
                .collect();
            let rows: Vec<ScoredSequence<'_>> = joined
                .iter()
                .map(|(ids, from)| ScoredSequence { ids, from: *from })
                .collect();
            let slots: Vec<&Slots> = batch.iter().map(|&i| &self.examples[i].slots).collect();
            let per_row = sequence_log_probs_with(&self.policy, &rows, &slots, self.pad)?;
            let sum = if batch.iter().all(|&i| self.examples[i].weight == 1.0) {
                per_row.sum()
            } else {
                let w: Vec<f32> = batch.iter().map(|&i| self.examples[i].weight).collect();
                let n = w.len();
                (per_row * Tensor::<1>::from_data(TensorData::new(w, [n]), &device)).sum()
            }
            .reshape([1]);
            let loss = sum.neg() / total_weight.max(f64::MIN_POSITIVE);
            let grads = GradientsParams::from_grads(loss.backward(), &self.policy.weights);
            acc.accumulate(&self.policy.weights, grads);
            losses.push(loss.detach());
        }
        let loss = losses
            .into_iter()
            .reduce(|a, b| a + b)
            .unwrap_or_else(|| Tensor::zeros([1], &device));
        let mut grads = acc.grads();
        let norm = clip_global_norm(
            &mut grads,
            &self.ids,
            self.run.settings.max_grad_norm,
            &device,
        );
        let v = read_report(vec![loss, norm], self.run.step + 1).await?;
        let lr = self.run.settings.learning_rate_at(self.run.step);
        self.policy.weights = self.run.optim.step(lr, self.policy.weights.clone(), grads);
        self.run.step += 1;
        let secs = started.elapsed().as_secs_f64();
        Ok(StepReport {
            step: self.run.step,
            steps: self.run.settings.steps,
            epoch: self.run.epoch(),
            loss: v[0],
            learning_rate: lr,
            grad_norm: v[1],
            tokens,
            tokens_per_second: tokens as f64 / secs.max(1e-9),
            ..StepReport::default()
        })
    }

    /// The adapter as trained so far.
    pub async fn adapter(&self) -> Result<Adapter> {
        Adapter::read(&self.policy.weights, &self.lora).await
    }

    /// Everything needed to continue this run exactly (adapter, optimiser state, position).
    pub async fn checkpoint(&self) -> Result<Checkpoint> {
        checkpoint(
            &self.policy,
            &self.lora,
            &self.run,
            None,
            LossState::default(),
        )
        .await
    }

    /// Continues a run from `checkpoint` on the same base model and examples.
    pub fn resume(
        base: &LanguageModel,
        checkpoint: &Checkpoint,
        examples: Vec<SftExample>,
    ) -> Result<Self> {
        let s = &checkpoint.state;
        if s.loss.is_some() {
            return Err(Error::Train(
                "this is a preference checkpoint, not an SFT one".into(),
            ));
        }
        let mut trainer = Self::new(base, s.lora.clone(), s.settings.clone(), examples)?;
        trainer.policy = trainable(
            base,
            &s.lora,
            Some(&checkpoint.adapter),
            s.settings.seed,
            &s.factor_ids,
        )?;
        trainer.ids = trainable_ids(&trainer.policy);
        adamw::check_state(&checkpoint.optimizer, &trainer.policy.weights)?;
        trainer.run.optim.restore(&checkpoint.optimizer);
        trainer.run.restore(s.step, s.epochs, s.cursor)?;
        Ok(trainer)
    }
}

/// Where a run stands, as a checkpoint stores it next to the adapter and optimiser bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimiser steps done.
    pub step: usize,
    /// Finished passes over the data.
    pub epochs: usize,
    /// Position in the current pass.
    pub cursor: usize,
    /// The run's settings.
    pub settings: TrainSettings,
    /// LoRA's shape.
    pub lora: LoraSettings,
    /// The preference loss (`None` for SFT).
    pub loss: Option<LossConfig>,
    /// The loss's running statistics.
    pub loss_state: LossState,
    /// Parameter ids of the LoRA factors, which key the optimiser state.
    pub factor_ids: std::collections::HashMap<String, u64>,
}

/// A resumable snapshot of a training run.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Position and settings.
    pub state: CheckpointState,
    /// The adapter at that step.
    pub adapter: Adapter,
    /// AdamW's moments.
    pub optimizer: OptimizerState,
}

const CHECKPOINT_STATE_KEY: &str = "recalign.checkpoint";
/// AdamW's moments are stored as `recalign.adamw.{param id}.first` / `.second`, their step
/// counts as JSON metadata under [`OPTIMIZER_TIMES_KEY`].
const OPTIMIZER_PREFIX: &str = "recalign.adamw.";
const OPTIMIZER_TIMES_KEY: &str = "recalign.adamw.time";

impl Checkpoint {
    /// One file: the adapter's tensors in PEFT's layout, AdamW's moments as f32 tensors, and the
    /// position as JSON metadata.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let err = |e: safetensors::SafeTensorError| Error::Train(e.to_string());
        let json = |e: serde_json::Error| Error::Train(e.to_string());
        let adapter = self.adapter.to_safetensors()?;
        let st = safetensors::SafeTensors::deserialize(&adapter).map_err(err)?;
        let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
            st.tensors().into_iter().collect();
        let mut times = BTreeMap::new();
        let mut moments = Vec::new();
        for (id, p) in &self.optimizer.params {
            times.insert(*id, p.time);
            for (leaf, values) in [("first", &p.first), ("second", &p.second)] {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                moments.push((
                    format!("{OPTIMIZER_PREFIX}{id}.{leaf}"),
                    values.len(),
                    bytes,
                ));
            }
        }
        for (name, n, bytes) in &moments {
            views.push((
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![*n], bytes)
                    .map_err(err)?,
            ));
        }
        let mut meta = std::collections::HashMap::new();
        let (_, header) = safetensors::SafeTensors::read_metadata(&adapter).map_err(err)?;
        if let Some(m) = header.metadata() {
            meta.extend(m.clone());
        }
        meta.insert(
            CHECKPOINT_STATE_KEY.to_string(),
            serde_json::to_string(&self.state).map_err(json)?,
        );
        meta.insert(
            OPTIMIZER_TIMES_KEY.to_string(),
            serde_json::to_string(&times).map_err(json)?,
        );
        safetensors::serialize(views, Some(meta)).map_err(err)
    }

    /// Reads [`Self::to_bytes`]' output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |why: String| Error::Train(format!("checkpoint: {why}"));
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let state: CheckpointState = meta
            .get(CHECKPOINT_STATE_KEY)
            .ok_or_else(|| bad("no training state: this is not a recalign checkpoint".into()))
            .and_then(|s| serde_json::from_str(s).map_err(|e| bad(e.to_string())))?;
        let times: BTreeMap<u64, usize> = meta
            .get(OPTIMIZER_TIMES_KEY)
            .ok_or_else(|| bad("no optimiser state".into()))
            .and_then(|s| serde_json::from_str(s).map_err(|e| bad(e.to_string())))?;
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        let moment = |id: u64, leaf: &str| -> Result<Vec<f32>> {
            let name = format!("{OPTIMIZER_PREFIX}{id}.{leaf}");
            let t = st
                .tensor(&name)
                .map_err(|_| bad(format!("{name} is missing")))?;
            if t.dtype() != safetensors::Dtype::F32 {
                return Err(bad(format!("{name} is {:?}, not F32", t.dtype())));
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let mut optimizer = OptimizerState::default();
        for (&id, &time) in &times {
            let (first, second) = (moment(id, "first")?, moment(id, "second")?);
            if first.len() != second.len() {
                return Err(bad(format!("parameter {id}'s moments differ in size")));
            }
            optimizer.params.insert(
                id,
                ParamMoments {
                    time,
                    first,
                    second,
                },
            );
        }
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
            .tensors()
            .into_iter()
            .filter(|(n, _)| !n.starts_with(OPTIMIZER_PREFIX))
            .collect();
        let mut meta = std::collections::HashMap::new();
        meta.insert(
            "recalign.lora".to_string(),
            serde_json::to_string(&state.lora).map_err(|e| bad(e.to_string()))?,
        );
        let adapter_bytes =
            safetensors::serialize(views, Some(meta)).map_err(|e| bad(e.to_string()))?;
        let adapter = Adapter::from_safetensors(&adapter_bytes, None)?;
        Ok(Self {
            state,
            adapter,
            optimizer,
        })
    }
}

async fn checkpoint(
    policy: &Llama,
    lora: &LoraSettings,
    run: &Loop,
    loss: Option<LossConfig>,
    loss_state: LossState,
) -> Result<Checkpoint> {
    let adapter = Adapter::read(&policy.weights, lora).await?;
    let optimizer = run.optim.state().await?;
    Ok(Checkpoint {
        state: CheckpointState {
            step: run.step,
            epochs: run.epochs,
            cursor: run.cursor,
            settings: run.settings.clone(),
            lora: lora.clone(),
            loss,
            loss_state,
            factor_ids: lora::factor_ids(&policy.weights),
        },
        adapter,
        optimizer,
    })
}

/// A preference pair, tokenised once: the prompt is shared by the chosen and all rejected answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenisedPair {
    /// ChatML prompt ids.
    pub prompt_ids: Vec<u32>,
    /// `[chosen, rejected_1, .., rejected_K]` ids, each ending with eos.
    pub answers: Vec<Vec<u32>>,
    /// Smoothing factor per rejected answer (RosePO).
    pub eps: Vec<f64>,
    /// Hybrid item slots in the prompt (empty for a text-only pair).
    pub slots: Slots,
}

impl TokenisedPair {
    /// Tokenises `pair`, keeping its first `negatives` rejected answers (all when 0), and checks
    /// the prompt plus the longest answer fits the context.
    pub fn new(lm: &LanguageModel, pair: &PreferencePair, negatives: usize) -> Result<Self> {
        Self::new_with(lm, pair, negatives, false)
    }

    /// [`Self::new`], with a hybrid item slot after each history title when `hybrid` (for an
    /// adapter with a projector): compact pairs only, and only those that carry their items
    /// (`PreferencePair::history_items`, which `pairs build` writes).
    pub fn new_with(
        lm: &LanguageModel,
        pair: &PreferencePair,
        negatives: usize,
        hybrid: bool,
    ) -> Result<Self> {
        let mut plain = Self::tokenise(lm, pair, negatives)?;
        if !hybrid {
            return Ok(plain);
        }
        if pair.format != PromptFormat::Compact {
            return Err(Error::Train(
                "hybrid preference training reads compact pairs (`pairs build --prompt compact`)"
                    .into(),
            ));
        }
        if pair.history_items.is_empty() {
            return Err(Error::Train(
                "the pair has no history_items, which a hybrid adapter's slots need: build the \
                 pairs again with this version's `recalign pairs build`"
                    .into(),
            ));
        }
        let items: Vec<crate::data::ItemId> = pair
            .history_items
            .iter()
            .map(|&i| crate::data::ItemId(i))
            .collect();
        let (prompt_ids, slots) =
            crate::hybrid::compact_prompt_ids(&lm.tokenizer, &pair.prompt, &items)?;
        lm.check_fits(
            prompt_ids.len(),
            plain.answers.iter().map(Vec::len).max().unwrap_or(0),
        )?;
        plain.prompt_ids = prompt_ids;
        plain.slots = slots;
        Ok(plain)
    }

    fn tokenise(lm: &LanguageModel, pair: &PreferencePair, negatives: usize) -> Result<Self> {
        let mut texts = vec![pair.chosen.clone(), pair.rejected.clone()];
        texts.extend(pair.more_rejected.iter().cloned());
        let mut eps = vec![pair.eps.unwrap_or(0.0)];
        eps.extend(pair.more_eps.iter().copied());
        eps.resize(texts.len() - 1, pair.eps.unwrap_or(0.0));
        if negatives > 0 {
            texts.truncate(negatives + 1);
            eps.truncate(negatives);
        }
        let (prompt_ids, answers) = match pair.format {
            PromptFormat::Llara => (
                lm.request_prompt_ids(&pair.prompt, &texts)?,
                lm.candidate_ids(&texts)?,
            ),
            PromptFormat::Compact => {
                let prompt_ids = lm.tokenizer.encode(&pair.prompt)?;
                let answers = texts
                    .iter()
                    .map(|t| crate::prompt::compact_line_ids(&lm.tokenizer, t))
                    .collect::<Result<Vec<_>>>()?;
                lm.check_fits(
                    prompt_ids.len(),
                    answers.iter().map(Vec::len).max().unwrap_or(0),
                )?;
                (prompt_ids, answers)
            }
        };
        Ok(Self {
            prompt_ids,
            answers,
            eps,
            slots: Slots::default(),
        })
    }

    /// Rejected answers.
    pub fn negatives(&self) -> usize {
        self.answers.len() - 1
    }
}

/// Reference log-probs of every pair, `[chosen, rejected_1..K]`, from the frozen reference model,
/// computed once before training (one read-back per `chunk` pairs).
pub async fn reference_log_probs(
    reference: &LanguageModel,
    pairs: &[TokenisedPair],
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(pairs.len());
    let pad = reference.tokenizer.eos_id();
    for (i, chunk) in pairs.chunks(8).enumerate() {
        let mut parts = Vec::with_capacity(chunk.len());
        for p in chunk {
            parts.push(
                FrozenAnswers::with_slots(
                    &reference.model,
                    0,
                    &p.prompt_ids,
                    &p.slots,
                    &p.answers,
                    pad,
                )?
                .log_probs(&reference.model)?,
            );
        }
        let values = read(Tensor::cat(parts, 0)).await?;
        let mut at = 0;
        for p in chunk {
            out.push(values[at..at + p.answers.len()].to_vec());
            at += p.answers.len();
        }
        progress((i * 8 + chunk.len()).min(pairs.len()), pairs.len());
    }
    Ok(out)
}

/// Where a preference run's reference log-probs come from.
pub enum Reference {
    /// Computed before the run, one row per pair ([`reference_log_probs`]).
    Precomputed(Vec<Vec<f32>>),
    /// This model's, computed the first time the run draws a pair. When its layers below the
    /// policy's first adapted one are the base model's (the SFT adapter as reference for a run
    /// that starts from it, or the base model itself), the reference pass shares the pair's
    /// frozen-layer states with the policy's pass, so it costs only the layers above; and pairs
    /// the run never draws cost nothing. The model must be on the policy's base weights.
    Model(Box<LanguageModel>),
}

impl From<Vec<Vec<f32>>> for Reference {
    fn from(values: Vec<Vec<f32>>) -> Self {
        Self::Precomputed(values)
    }
}

/// The frozen-layer cache's empty slots, one per pair, after checking that it fits
/// `settings.cache_mib`; no slots when the cache is off or no layer is frozen.
fn frozen_slots(
    policy: &Llama,
    settings: &TrainSettings,
    pairs: &[TokenisedPair],
) -> Result<Vec<Option<FrozenAnswers>>> {
    if settings.cache_mib == 0 || policy.first_adapted_layer() == 0 {
        return Ok(Vec::new());
    }
    let hidden = policy.config.hidden_size;
    let bytes: u64 = pairs
        .iter()
        .map(|p| frozen_answer_bytes(p.prompt_ids.len(), &p.answers, hidden))
        .sum();
    let limit = settings.cache_mib as u64 * (1 << 20);
    if bytes > limit {
        return Err(Error::Train(format!(
            "the frozen-layer cache of {} pairs needs {} MiB, more than its limit of {} MiB: \
             raise the limit (`--cache-mib`), use fewer pairs, or set it to 0 to recompute the \
             frozen layers at every pass",
            pairs.len(),
            bytes.div_ceil(1 << 20),
            settings.cache_mib
        )));
    }
    Ok(vec![None; pairs.len()])
}

/// Preference optimisation of LoRA adapters against a frozen reference.
pub struct PreferenceTrainer {
    policy: Llama,
    lora: LoraSettings,
    pairs: Vec<TokenisedPair>,
    /// Each pair's reference log-probs, once known.
    reference: Vec<Option<Vec<f32>>>,
    /// The model that fills the missing ones ([`Reference::Model`]), on the policy's device.
    reference_model: Option<Llama>,
    loss: LossConfig,
    /// Running statistics of alpha-DPO and beta-DPO.
    pub loss_state: LossState,
    ids: Vec<burn::module::ParamId>,
    pad: u32,
    run: Loop,
    /// Each pair's states below the policy's first adapted layer, filled on first use (empty
    /// when the cache is off or every layer is adapted).
    frozen: Vec<Option<FrozenAnswers>>,
    /// That layer (fixed for the run: training moves factors, never which layers have them).
    first_adapted: usize,
}

impl PreferenceTrainer {
    /// Prepares a run whose policy starts from `start` (the SFT adapter, or fresh adapters when
    /// `None`) on `base`; `reference` gives the reference log-probs of `pairs`: computed ones
    /// (ignored entries for reference-free losses may be zeros) or the reference model, which
    /// the run then scores each pair with when it first draws it.
    pub fn new(
        base: &LanguageModel,
        lora: LoraSettings,
        start: Option<&Adapter>,
        settings: TrainSettings,
        loss: LossConfig,
        pairs: Vec<TokenisedPair>,
        reference: impl Into<Reference>,
    ) -> Result<Self> {
        loss.validate()?;
        let k = pairs.first().map_or(0, TokenisedPair::negatives);
        if k == 0 || pairs.iter().any(|p| p.negatives() != k) {
            return Err(Error::Train(
                "every pair needs the same number (at least one) of rejected answers".into(),
            ));
        }
        let (reference, reference_model) = match reference.into() {
            Reference::Precomputed(values) => {
                if values.len() != pairs.len()
                    || values
                        .iter()
                        .zip(&pairs)
                        .any(|(r, p)| r.len() != p.answers.len())
                {
                    return Err(Error::Train(
                        "the reference log-probs do not match the pairs".into(),
                    ));
                }
                (values.into_iter().map(Some).collect(), None)
            }
            Reference::Model(model) => {
                if model.model.config != base.model.config {
                    return Err(Error::Train(
                        "the reference model is not the base model's shape".into(),
                    ));
                }
                let device = base.model.device().clone().autodiff();
                let model = *model;
                let weights = model.model.weights.fork(&device).no_grad();
                (
                    vec![None; pairs.len()],
                    Some(Llama::new(model.model.config, weights, &device)),
                )
            }
        };
        if loss.kind == crate::losses::LossKind::Rosepo
            && pairs.iter().all(|p| p.eps.iter().all(|e| *e == 0.0))
        {
            return Err(Error::Train(
                "RosePO needs smoothing factors: build the pairs with an oracle (`recalign pairs \
                 build --oracle ...`)"
                    .into(),
            ));
        }
        if let Some(e) = pairs
            .iter()
            .flat_map(|p| &p.eps)
            .find(|e| !(0.0..0.5).contains(*e))
        {
            return Err(Error::Train(format!(
                "a pair has eps {e}, outside [0, 0.5)"
            )));
        }
        let policy = trainable(base, &lora, start, settings.seed, &Default::default())?;
        let ids = trainable_ids(&policy);
        let frozen = frozen_slots(&policy, &settings, &pairs)?;
        let first_adapted = policy.first_adapted_layer();
        Ok(Self {
            run: Loop::new(settings, pairs.len())?,
            policy,
            lora,
            pairs,
            reference,
            reference_model,
            loss,
            loss_state: LossState::default(),
            ids,
            pad: base.tokenizer.eos_id(),
            frozen,
            first_adapted,
        })
    }

    /// Whether every step has run.
    pub fn is_done(&self) -> bool {
        self.run.is_done()
    }

    /// One optimiser step (all its micro-batches), one read-back.
    pub async fn step(&mut self) -> Result<StepReport> {
        if self.is_done() {
            return Err(Error::Train("the run has finished".into()));
        }
        let started = Instant::now();
        let device = self.policy.device().clone();
        let k = self.pairs[0].negatives();
        let accumulation = self.run.settings.accumulation;
        let mut acc = GradientsAccumulator::<LlamaWeights>::new();
        let mut report = Vec::new();
        let mut margins = Vec::new();
        let mut tokens = 0;
        let mut n_examples = 0;
        for micro in 0..accumulation {
            let batch = self.run.next_batch();
            let b = batch.len();
            n_examples += b;
            self.fill_reference(&batch).await?;
            let mut rows = Vec::with_capacity(b);
            let (mut ref_c, mut ref_r, mut len_c, mut len_r, mut eps) =
                (vec![], vec![], vec![], vec![], vec![]);
            for &i in &batch {
                self.frozen_states(i)?;
                let pass = match self.frozen.get(i).and_then(Option::as_ref) {
                    Some(frozen) => frozen.log_probs(&self.policy)?,
                    None => {
                        let p = &self.pairs[i];
                        FrozenAnswers::with_slots(
                            &self.policy,
                            0,
                            &p.prompt_ids,
                            &p.slots,
                            &p.answers,
                            self.pad,
                        )?
                        .log_probs(&self.policy)?
                    }
                };
                rows.push(pass);
                let p = &self.pairs[i];
                tokens += p.prompt_ids.len() + p.answers.iter().map(Vec::len).sum::<usize>();
                let reference = self.reference[i]
                    .as_deref()
                    .ok_or_else(|| Error::Train(format!("pair {i} has no reference log-probs")))?;
                ref_c.push(reference[0]);
                ref_r.extend_from_slice(&reference[1..]);
                len_c.push(p.answers[0].len() as f32);
                len_r.extend(p.answers[1..].iter().map(|a| a.len() as f32));
                eps.extend(p.eps.iter().map(|&e| e as f32));
            }
            let lp = Tensor::stack::<2>(rows, 0);
            let t1 = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [b]), &device);
            let t2 = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [b, k]), &device);
            let seed = self.run.settings.seed
                ^ ((self.run.step * accumulation + micro) as u64).wrapping_mul(0x9E37_79B9);
            let noise: Vec<f32> = gumbel_noise(seed, b)
                .into_iter()
                .map(|g| g as f32)
                .collect();
            let inputs = LossInputs {
                policy_chosen: lp.clone().narrow(1, 0, 1).reshape([b]),
                policy_rejected: lp.narrow(1, 1, k),
                ref_chosen: t1(ref_c),
                ref_rejected: t2(ref_r),
                chosen_len: t1(len_c),
                rejected_len: t2(len_r),
                eps: t2(eps),
                noise: t1(noise),
            };
            let out = batch_loss(&self.loss, &inputs, &self.loss_state)?;
            let scaled = out.loss.clone() / accumulation as f64;
            let grads = GradientsParams::from_grads(scaled.backward(), &self.policy.weights);
            acc.accumulate(&self.policy.weights, grads);
            let accuracy = out.margins.clone().greater_elem(0.0).float().sum();
            margins.push(out.margins.clone().detach());
            report.push(Tensor::cat(
                vec![
                    out.loss.detach(),
                    out.margins.sum(),
                    out.chosen_rewards.sum(),
                    out.rejected_rewards.sum(),
                    accuracy,
                    out.stats,
                ],
                0,
            ));
        }
        let mut grads = acc.grads();
        let norm = clip_global_norm(
            &mut grads,
            &self.ids,
            self.run.settings.max_grad_norm,
            &device,
        );
        // Per micro-batch: [loss, margin, chosen, rejected, correct (sums), 5 loss statistics].
        // Losses and sums add up over the step; the statistics are the last micro-batch's, so
        // alpha-DPO's and beta-DPO's running statistics move once per optimiser step.
        let stacked = Tensor::stack::<2>(report, 0);
        let sums = stacked.clone().sum_dim(0).reshape([10]);
        let last = stacked.narrow(0, accumulation - 1, 1).reshape([10]);
        let v = read_report(
            vec![
                sums.clone().narrow(0, 0, 1) / accumulation as f64,
                sums.narrow(0, 1, 4),
                last.narrow(0, 5, 5),
                norm,
                // Read in the same transfer: every example's margin.
                Tensor::cat(margins, 0),
            ],
            self.run.step + 1,
        )
        .await?;
        self.loss_state.absorb(self.loss.kind, &v[5..10]);
        let lr = self.run.settings.learning_rate_at(self.run.step);
        self.policy.weights = self.run.optim.step(lr, self.policy.weights.clone(), grads);
        self.run.step += 1;
        let n = n_examples as f32;
        let secs = started.elapsed().as_secs_f64();
        Ok(StepReport {
            step: self.run.step,
            steps: self.run.settings.steps,
            epoch: self.run.epoch(),
            loss: v[0],
            margin: v[1] / n,
            chosen_reward: v[2] / n,
            rejected_reward: v[3] / n,
            accuracy: v[4] / n,
            learning_rate: lr,
            grad_norm: v[10],
            tokens,
            tokens_per_second: tokens as f64 / secs.max(1e-9),
            beta: v[9],
            margins: v[11..].to_vec(),
        })
    }

    /// The adapter as trained so far.
    pub async fn adapter(&self) -> Result<Adapter> {
        Adapter::read(&self.policy.weights, &self.lora).await
    }

    /// Pair `i`'s states below the policy's first adapted layer, computed on first use; `None`
    /// when the cache is off or no layer is frozen.
    fn frozen_states(&mut self, i: usize) -> Result<Option<&FrozenAnswers>> {
        if let Some(slot @ None) = self.frozen.get_mut(i) {
            let p = &self.pairs[i];
            *slot = Some(FrozenAnswers::with_slots(
                &self.policy,
                self.first_adapted,
                &p.prompt_ids,
                &p.slots,
                &p.answers,
                self.pad,
            )?);
        }
        Ok(self.frozen.get(i).and_then(Option::as_ref))
    }

    /// Scores the pairs of `batch` that have no reference log-probs yet with the reference
    /// model, in one read-back; through the frozen-layer states when the reference's layers
    /// below the split are the base model's.
    async fn fill_reference(&mut self, batch: &[usize]) -> Result<()> {
        let mut missing: Vec<usize> = batch
            .iter()
            .copied()
            .filter(|&i| self.reference[i].is_none())
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let Some(model) = self.reference_model.take() else {
            return Err(Error::Train("a pair has no reference log-probs".into()));
        };
        let shares = model.first_adapted_layer() >= self.first_adapted;
        let mut parts = Vec::with_capacity(missing.len());
        let mut scored = || -> Result<()> {
            for &i in &missing {
                let frozen = if shares { self.frozen_states(i)? } else { None };
                parts.push(match frozen {
                    Some(f) => f.log_probs(&model)?.detach(),
                    None => {
                        let p = &self.pairs[i];
                        FrozenAnswers::with_slots(
                            &model,
                            0,
                            &p.prompt_ids,
                            &p.slots,
                            &p.answers,
                            self.pad,
                        )?
                        .log_probs(&model)?
                        .detach()
                    }
                });
            }
            Ok(())
        };
        let result = scored();
        self.reference_model = Some(model);
        result?;
        let values = read(Tensor::cat(parts, 0)).await?;
        let mut at = 0;
        for i in missing {
            let n = self.pairs[i].answers.len();
            self.reference[i] = Some(values[at..at + n].to_vec());
            at += n;
        }
        Ok(())
    }

    /// Everything needed to continue this run exactly.
    pub async fn checkpoint(&self) -> Result<Checkpoint> {
        checkpoint(
            &self.policy,
            &self.lora,
            &self.run,
            Some(self.loss.clone()),
            self.loss_state,
        )
        .await
    }

    /// Continues a run from `checkpoint` on the same base model, pairs and reference log-probs.
    pub fn resume(
        base: &LanguageModel,
        checkpoint: &Checkpoint,
        pairs: Vec<TokenisedPair>,
        reference: impl Into<Reference>,
    ) -> Result<Self> {
        let s = &checkpoint.state;
        let loss = s.loss.clone().ok_or_else(|| {
            Error::Train("this is an SFT checkpoint, not a preference one".into())
        })?;
        let mut trainer = Self::new(
            base,
            s.lora.clone(),
            Some(&checkpoint.adapter),
            s.settings.clone(),
            loss,
            pairs,
            reference,
        )?;
        trainer.policy = trainable(
            base,
            &s.lora,
            Some(&checkpoint.adapter),
            s.settings.seed,
            &s.factor_ids,
        )?;
        trainer.ids = trainable_ids(&trainer.policy);
        adamw::check_state(&checkpoint.optimizer, &trainer.policy.weights)?;
        trainer.run.optim.restore(&checkpoint.optimizer);
        trainer.run.restore(s.step, s.epochs, s.cursor)?;
        trainer.loss_state = s.loss_state;
        Ok(trainer)
    }
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
