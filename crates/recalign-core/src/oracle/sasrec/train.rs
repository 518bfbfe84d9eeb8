//! Training SASRec as a step function (so the page's worker can yield between steps): Adam on
//! the next-item cross-entropy over the training windows, with a progress report per step.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::ItemId;
use crate::{Error, Result};

use super::*;

/// What one training step did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OracleStep {
    /// 0-based epoch of this step.
    pub epoch: usize,
    /// Step within the epoch (1-based).
    pub step: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// Mean cross-entropy of the batch.
    pub loss: f32,
    /// True after the last step of the last epoch.
    pub done: bool,
}

/// SASRec training as a step function.
pub struct SasRecTrainer {
    model: SasRec,
    optim: ModuleOptimizer,
    config: SasRecConfig,
    training: SasRecTraining,
    windows: Vec<Vec<i64>>,
    order: Vec<usize>,
    cursor: usize,
    epoch: usize,
    rng: ChaCha8Rng,
    device: Device,
}

impl SasRecTrainer {
    /// Prepares training on `sequences` (each user's positives, oldest first) on `device`
    /// (autodiff is enabled on it here).
    pub fn new(
        config: SasRecConfig,
        training: SasRecTraining,
        sequences: &[Vec<ItemId>],
        device: &Device,
    ) -> Result<Self> {
        config.check()?;
        if training.epochs == 0
            || training.batch_size == 0
            || training.learning_rate.is_nan()
            || training.learning_rate <= 0.0
        {
            return Err(Error::Oracle(
                "epochs, batch size and learning rate must be positive".into(),
            ));
        }
        if let Some(bad) = sequences
            .iter()
            .flatten()
            .find(|i| i.index() >= config.n_items)
        {
            return Err(Error::Oracle(format!(
                "item {} is outside the catalogue of {}",
                bad.0, config.n_items
            )));
        }
        let windows = windows(sequences, config.max_len);
        if windows.is_empty() {
            return Err(Error::Oracle("no training sequence has two items".into()));
        }
        let device = device.clone().autodiff();
        device.seed(training.seed);
        let model = SasRec::init(&config, &device);
        let mut rng = ChaCha8Rng::seed_from_u64(training.seed);
        let mut order: Vec<usize> = (0..windows.len()).collect();
        order.shuffle(&mut rng);
        Ok(Self {
            model,
            optim: AdamConfig::new().init(),
            config,
            training,
            windows,
            order,
            cursor: 0,
            epoch: 0,
            rng,
            device,
        })
    }

    /// Steps in one epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.windows.len().div_ceil(self.training.batch_size)
    }

    /// Steps in the whole run.
    pub fn total_steps(&self) -> usize {
        self.steps_per_epoch() * self.training.epochs
    }

    /// True once every epoch has run.
    pub fn is_done(&self) -> bool {
        self.epoch >= self.training.epochs
    }

    /// One optimisation step on the next batch; reads the loss back once.
    pub async fn step(&mut self) -> Result<OracleStep> {
        if self.is_done() {
            return Err(Error::Oracle("training has finished".into()));
        }
        let len = self.config.max_len;
        let end = (self.cursor + self.training.batch_size).min(self.order.len());
        let batch = &self.order[self.cursor..end];
        let b = batch.len();
        let mut inputs = Vec::with_capacity(b * len);
        let mut targets = Vec::with_capacity(b * len);
        let mut mask = Vec::with_capacity(b * len);
        for &w in batch {
            let w = &self.windows[w];
            inputs.extend_from_slice(&w[..len]);
            targets.extend_from_slice(&w[1..]);
            mask.extend(
                w[..len]
                    .iter()
                    .zip(&w[1..])
                    .map(|(&i, &t)| f32::from(u8::from(i != 0 && t != 0))),
            );
        }
        let counted: f32 = mask.iter().sum();
        let device = &self.device;
        let inputs = Tensor::<2, Int>::from_data(TensorData::new(inputs, [b, len]), device);
        let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [b * len, 1]), device);
        let mask = Tensor::<1>::from_data(TensorData::new(mask, [b * len]), device);

        let h = self.model.hidden_states(inputs);
        let hidden = self.config.hidden;
        let logits = h
            .reshape([b * len, hidden])
            .matmul(self.model.items.weight.val().transpose());
        let picked = log_softmax(logits, 1).gather(1, targets).reshape([b * len]);
        let loss = (picked * mask).sum().neg() / counted.max(1.0) as f64;

        let value = loss
            .clone()
            .into_data_async()
            .await
            .map_err(Error::execution)?;
        let value = value
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| Error::device(format!("{e:?}")))?;
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self
            .optim
            .step(self.training.learning_rate, self.model.clone(), grads);

        let step = self.cursor / self.training.batch_size + 1;
        let epoch = self.epoch;
        self.cursor = end;
        if self.cursor >= self.order.len() {
            self.cursor = 0;
            self.epoch += 1;
            self.order.shuffle(&mut self.rng);
        }
        Ok(OracleStep {
            epoch,
            step,
            steps_per_epoch: self.steps_per_epoch(),
            loss: value.first().copied().unwrap_or(f32::NAN),
            done: self.is_done(),
        })
    }

    /// The model as it is now, for scoring (training can continue).
    pub fn oracle(&self) -> SasRecOracle {
        let device = self.device.clone().without_autodiff();
        SasRecOracle {
            model: self.model.valid(),
            config: self.config.clone(),
            device,
        }
    }
}
