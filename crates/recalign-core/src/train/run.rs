//! The one training loop both stages run: the adapted model being trained, its trainable
//! factors, AdamW, the warm-up + cosine schedule, global-norm clipping, the seeded data order,
//! checkpoints and resume. A stage is an objective over it ([`super::SftTrainer`]'s
//! cross-entropy, [`super::PreferenceTrainer`]'s preference loss): it draws micro-batches from
//! [`Run::next_batch`], accumulates its gradients, and hands them with its report's tensors to
//! [`Run::apply`], which reads the step back once and applies the optimiser only after a finite
//! loss.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use web_time::Instant;

use super::adamw;
use super::checkpoint::{Checkpoint, CheckpointState};
use super::lora::{self, Adapter, LoraSettings};
use super::{StepReport, TrainSettings};
use crate::lm::LanguageModel;
use crate::losses::tensor::read;
use crate::losses::{LossConfig, LossState};
use crate::model::Llama;
use crate::{Error, Result};

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

/// The loop both trainers share: the policy (the base model with its adapters, on an autodiff
/// device), the optimiser, schedule and data order.
pub(crate) struct Run {
    /// The model being trained.
    pub(crate) policy: Llama,
    /// Its adapters' shape.
    pub(crate) lora: LoraSettings,
    /// The trainable factors, for clipping.
    ids: Vec<burn::module::ParamId>,
    /// The padding id of batched passes (end-of-sequence).
    pub(crate) pad: u32,
    pub(crate) settings: TrainSettings,
    optim: adamw::AdamW,
    order: Vec<usize>,
    cursor: usize,
    epochs: usize,
    /// Optimiser steps done.
    pub(crate) step: usize,
    rng: ChaCha8Rng,
}

/// What [`Run::apply`] read back and used.
pub(crate) struct Applied {
    /// The report's values as the trainer stacked them (its loss first).
    pub(crate) values: Vec<f32>,
    /// The global gradient norm before clipping.
    pub(crate) grad_norm: f32,
    /// The learning rate of the step.
    pub(crate) learning_rate: f64,
}

impl Run {
    /// A run over `n` examples whose policy is `base` with `start`'s adapters (fresh ones with
    /// `lora`'s shape when `None`).
    pub(crate) fn new(
        base: &LanguageModel,
        lora: LoraSettings,
        start: Option<&Adapter>,
        settings: TrainSettings,
        n: usize,
    ) -> Result<Self> {
        let policy = trainable(base, &lora, start, settings.seed, &Default::default())?;
        settings.validate()?;
        if n == 0 {
            return Err(Error::Train("there is nothing to train on".into()));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let optim = adamw::AdamW::new(settings.weight_decay as f32);
        Ok(Self {
            ids: trainable_ids(&policy),
            policy,
            lora,
            pad: base.tokenizer.eos_id(),
            settings,
            optim,
            order,
            cursor: 0,
            epochs: 0,
            step: 0,
            rng,
        })
    }

    /// Puts a fresh run (same base, data and settings) where `checkpoint` left it: its adapter
    /// (with the factors' parameter ids, so the optimiser's moments find them), the optimiser
    /// state, and the data order replayed (one shuffle per finished epoch), so a resumed run sees
    /// exactly the batches an uninterrupted one would.
    pub(crate) fn resume(&mut self, base: &LanguageModel, checkpoint: &Checkpoint) -> Result<()> {
        let s = &checkpoint.state;
        self.policy = trainable(
            base,
            &s.lora,
            Some(&checkpoint.adapter),
            s.settings.seed,
            &s.factor_ids,
        )?;
        self.ids = trainable_ids(&self.policy);
        adamw::check_state(&checkpoint.optimizer, &self.policy.weights)?;
        self.optim.restore(&checkpoint.optimizer);
        if s.cursor > self.order.len() || s.step > self.settings.steps {
            return Err(Error::Train(
                "the checkpoint does not fit this run's data or settings".into(),
            ));
        }
        for _ in 0..s.epochs {
            self.order.shuffle(&mut self.rng);
        }
        self.epochs = s.epochs;
        self.cursor = s.cursor;
        self.step = s.step;
        Ok(())
    }

    /// Whether every step has run.
    pub(crate) fn is_done(&self) -> bool {
        self.step >= self.settings.steps
    }

    /// The start of a step: refused once the run has finished.
    pub(crate) fn begin(&self) -> Result<Instant> {
        if self.is_done() {
            return Err(Error::Train("the run has finished".into()));
        }
        Ok(Instant::now())
    }

    /// The next micro-batch's example indices (wrapping into a reshuffled epoch).
    pub(crate) fn next_batch(&mut self) -> Vec<usize> {
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

    /// Clips the step's accumulated `grads`, reads `values` (the loss first) and the norm back
    /// in one transfer, and, when the loss is finite, applies AdamW at the schedule's rate.
    pub(crate) async fn apply(
        &mut self,
        mut grads: GradientsParams,
        mut values: Vec<Tensor<1>>,
    ) -> Result<Applied> {
        let device = self.policy.device().clone();
        let norm = clip_global_norm(&mut grads, &self.ids, self.settings.max_grad_norm, &device);
        values.push(norm);
        let mut values = read_report(values, self.step + 1).await?;
        let grad_norm = values.pop().unwrap_or(f32::NAN);
        let learning_rate = self.settings.learning_rate_at(self.step);
        self.policy.weights = self
            .optim
            .step(learning_rate, self.policy.weights.clone(), grads);
        self.step += 1;
        Ok(Applied {
            values,
            grad_norm,
            learning_rate,
        })
    }

    /// The report of the step just applied: position, rate, norm and throughput (the
    /// trainer adds its own figures).
    pub(crate) fn report(&self, applied: &Applied, tokens: usize, started: Instant) -> StepReport {
        let secs = started.elapsed().as_secs_f64();
        StepReport {
            step: self.step,
            steps: self.settings.steps,
            epoch: self.epochs as f64 + self.cursor as f64 / self.order.len() as f64,
            loss: applied.values.first().copied().unwrap_or(f32::NAN),
            learning_rate: applied.learning_rate,
            grad_norm: applied.grad_norm,
            tokens,
            tokens_per_second: tokens as f64 / secs.max(1e-9),
            ..StepReport::default()
        }
    }

    /// The adapter as trained so far.
    pub(crate) async fn adapter(&self) -> Result<Adapter> {
        Adapter::read(&self.policy.weights, &self.lora).await
    }

    /// Everything needed to continue this run exactly; `loss` and `loss_state` are a
    /// preference run's (`None` for SFT).
    pub(crate) async fn checkpoint(
        &self,
        loss: Option<LossConfig>,
        loss_state: LossState,
    ) -> Result<Checkpoint> {
        let adapter = self.adapter().await?;
        let optimizer = self.optim.state().await?;
        Ok(Checkpoint {
            state: CheckpointState {
                step: self.step,
                epochs: self.epochs,
                cursor: self.cursor,
                settings: self.settings.clone(),
                lora: self.lora.clone(),
                loss,
                loss_state,
                factor_ids: lora::factor_ids(&self.policy.weights),
            },
            adapter,
            optimizer,
        })
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
