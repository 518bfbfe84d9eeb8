//! Preference optimisation: any loss of [`crate::losses`] on tokenised pairs against a frozen
//! reference, as the objective of the shared [`Run`]; the frozen layers' states are cached per
//! pair so later passes run only the adapted ones.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Tensor, TensorData};

use super::run::Run;
use super::{Adapter, Checkpoint, LoraSettings, StepReport, TrainSettings};
use crate::lm::{FrozenAnswers, LanguageModel, frozen_answer_bytes};
use crate::losses::scalar::gumbel_noise;
use crate::losses::tensor::{LossInputs, batch_loss, read};
use crate::losses::{LossConfig, LossState};
use crate::model::{Llama, LlamaWeights};
use crate::{Error, Result};

mod pairs;

pub use pairs::{Reference, TokenisedPair, reference_log_probs};

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
    run: Run,
    pairs: Vec<TokenisedPair>,
    /// Each pair's reference log-probs, once known.
    reference: Vec<Option<Vec<f32>>>,
    /// The model that fills the missing ones ([`Reference::Model`]), on the policy's device.
    reference_model: Option<Llama>,
    loss: LossConfig,
    /// Running statistics of alpha-DPO and beta-DPO.
    pub loss_state: LossState,
    /// Each pair's states below the policy's first adapted layer, filled on first use (empty
    /// when the cache is off or every layer is adapted).
    frozen: Vec<Option<FrozenAnswers>>,
    /// That layer (fixed for the run: training moves factors, never which layers have them).
    first_adapted: usize,
    /// Whether each pair's gradient is taken on its own (a separable loss: only one pair's
    /// activations are alive at a time) rather than the micro-batch's in one graph.
    per_pair: bool,
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
        let run = Run::new(base, lora, start, settings, pairs.len())?;
        let frozen = frozen_slots(&run.policy, &run.settings, &pairs)?;
        let first_adapted = run.policy.first_adapted_layer();
        let per_pair = loss.kind.separable();
        Ok(Self {
            run,
            pairs,
            reference,
            reference_model,
            loss,
            loss_state: LossState::default(),
            frozen,
            first_adapted,
            per_pair,
        })
    }

    /// Whether every step has run.
    pub fn is_done(&self) -> bool {
        self.run.is_done()
    }

    /// One optimiser step (all its micro-batches), one read-back.
    pub async fn step(&mut self) -> Result<StepReport> {
        let started = self.run.begin()?;
        let device = self.run.policy.device().clone();
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
            let seed = self.run.settings.seed
                ^ ((self.run.step * accumulation + micro) as u64).wrapping_mul(0x9E37_79B9);
            let noise: Vec<f32> = gumbel_noise(seed, b)
                .into_iter()
                .map(|g| g as f32)
                .collect();
            // A separable loss takes each pair's gradient on its own, so only one pair's
            // activations are alive at a time (a batch of 4 pairs peaks at the memory of one);
            // the others need the whole batch in one graph.
            let group = if self.per_pair { 1 } else { b };
            for (g, members) in batch.chunks(group).enumerate() {
                let n = members.len();
                let mut rows = Vec::with_capacity(n);
                let (mut ref_c, mut ref_r, mut len_c, mut len_r, mut eps) =
                    (vec![], vec![], vec![], vec![], vec![]);
                for &i in members {
                    rows.push(self.policy_log_probs(i)?);
                    let p = &self.pairs[i];
                    tokens += p.prompt_ids.len() + p.answers.iter().map(Vec::len).sum::<usize>();
                    let reference = self.reference[i].as_deref().ok_or_else(|| {
                        Error::Train(format!("pair {i} has no reference log-probs"))
                    })?;
                    ref_c.push(reference[0]);
                    ref_r.extend_from_slice(&reference[1..]);
                    len_c.push(p.answers[0].len() as f32);
                    len_r.extend(p.answers[1..].iter().map(|a| a.len() as f32));
                    eps.extend(p.eps.iter().map(|&e| e as f32));
                }
                let lp = Tensor::stack::<2>(rows, 0);
                let t1 = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [n]), &device);
                let t2 = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [n, k]), &device);
                let inputs = LossInputs {
                    policy_chosen: lp.clone().narrow(1, 0, 1).reshape([n]),
                    policy_rejected: lp.narrow(1, 1, k),
                    ref_chosen: t1(ref_c),
                    ref_rejected: t2(ref_r),
                    chosen_len: t1(len_c),
                    rejected_len: t2(len_r),
                    eps: t2(eps),
                    noise: t1(noise[g * group..g * group + n].to_vec()),
                };
                let out = batch_loss(&self.loss, &inputs, &self.loss_state)?;
                // The group's share of the micro-batch's mean.
                let loss = out.loss.clone() * (n as f64 / b as f64);
                let weights = &self.run.policy.weights;
                let grads = GradientsParams::from_grads(
                    (loss.clone() / accumulation as f64).backward(),
                    weights,
                );
                acc.accumulate(weights, grads);
                let accuracy = out.margins.clone().greater_elem(0.0).float().sum();
                margins.push(out.margins.clone().detach());
                report.push(Tensor::cat(
                    vec![
                        loss.detach(),
                        out.margins.sum(),
                        out.chosen_rewards.sum(),
                        out.rejected_rewards.sum(),
                        accuracy,
                        out.stats,
                    ],
                    0,
                ));
            }
        }
        // Per group: [loss share, margin, chosen, rejected, correct (sums), 5 loss statistics].
        // Losses and sums add up over the step; the statistics are the last group's (for the
        // losses that keep statistics, the last micro-batch's), so alpha-DPO's and beta-DPO's
        // running statistics move once per optimiser step.
        let groups = report.len();
        let stacked = Tensor::stack::<2>(report, 0);
        let sums = stacked.clone().sum_dim(0).reshape([10]);
        let last = stacked.narrow(0, groups - 1, 1).reshape([10]);
        let applied = self
            .run
            .apply(
                acc.grads(),
                vec![
                    sums.clone().narrow(0, 0, 1) / accumulation as f64,
                    sums.narrow(0, 1, 4),
                    last.narrow(0, 5, 5),
                    // Read in the same transfer: every example's margin.
                    Tensor::cat(margins, 0),
                ],
            )
            .await?;
        let v = &applied.values;
        self.loss_state.absorb(self.loss.kind, &v[5..10]);
        let n = n_examples as f32;
        Ok(StepReport {
            margin: v[1] / n,
            chosen_reward: v[2] / n,
            rejected_reward: v[3] / n,
            accuracy: v[4] / n,
            beta: v[9],
            margins: v[10..].to_vec(),
            ..self.run.report(&applied, tokens, started)
        })
    }

    /// The adapter as trained so far.
    pub async fn adapter(&self) -> Result<Adapter> {
        self.run.adapter().await
    }

    /// Pair `i`'s states below the policy's first adapted layer, computed on first use; `None`
    /// when the cache is off or no layer is frozen.
    fn frozen_states(&mut self, i: usize) -> Result<Option<&FrozenAnswers>> {
        if let Some(slot @ None) = self.frozen.get_mut(i) {
            let p = &self.pairs[i];
            *slot = Some(FrozenAnswers::with_slots(
                &self.run.policy,
                self.first_adapted,
                &p.prompt_ids,
                &p.slots,
                &p.answers,
            )?);
        }
        Ok(self.frozen.get(i).and_then(Option::as_ref))
    }

    /// The policy's log-probs of pair `i`'s answers (chosen first), in a graph for backward; the
    /// frozen layers' states come from the cache when it holds them.
    fn policy_log_probs(&mut self, i: usize) -> Result<Tensor<1>> {
        self.frozen_states(i)?;
        let policy = &self.run.policy;
        match self.frozen.get(i).and_then(Option::as_ref) {
            Some(frozen) => frozen.log_probs(policy),
            None => {
                let p = &self.pairs[i];
                FrozenAnswers::with_slots(policy, 0, &p.prompt_ids, &p.slots, &p.answers)?
                    .log_probs(policy)
            }
        }
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
                        FrozenAnswers::with_slots(&model, 0, &p.prompt_ids, &p.slots, &p.answers)?
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
        self.run
            .checkpoint(Some(self.loss.clone()), self.loss_state)
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
        trainer.run.resume(base, checkpoint)?;
        trainer.loss_state = s.loss_state;
        Ok(trainer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::pairs::PreferencePair;
    use crate::losses::LossKind;
    use burn::tensor::Device;

    /// Each pair's gradient on its own sums to the batch's: the same loss, margins and
    /// gradient norm as one graph over the micro-batch, and the same second step.
    #[test]
    fn a_separable_loss_per_pair_matches_the_whole_batch_graph() {
        let lm =
            LanguageModel::from_gguf_bytes(&crate::fixtures::tiny_model_gguf(7), &Device::flex())
                .unwrap();
        let t = ["Alien", "Heat", "Fargo", "Casino"];
        let pairs: Vec<TokenisedPair> = (0..4)
            .map(|i| {
                let pair = PreferencePair {
                    prompt: format!("user {i} liked {}; pick one of {}", t[i], t.join(", ")),
                    chosen: t[(i + 1) % 4].into(),
                    rejected: t[(i + 2) % 4].into(),
                    more_rejected: vec![t[(i + 3) % 4].into()],
                    ..PreferencePair::default()
                };
                TokenisedPair::new(&lm, &pair, 2).unwrap()
            })
            .collect();
        let reference = pollster::block_on(reference_log_probs(&lm, &pairs, |_, _| {})).unwrap();
        for kind in [LossKind::Dpo, LossKind::Sdpo] {
            let run = |per_pair: bool| {
                let mut trainer = PreferenceTrainer::new(
                    &lm,
                    LoraSettings {
                        rank: 4,
                        alpha: 8.0,
                        ..LoraSettings::default()
                    },
                    None,
                    TrainSettings {
                        learning_rate: 1e-2,
                        warmup_steps: 0,
                        steps: 2,
                        batch_size: 4,
                        accumulation: 1,
                        ..TrainSettings::default()
                    },
                    LossConfig::new(kind),
                    pairs.clone(),
                    reference.clone(),
                )
                .unwrap();
                trainer.per_pair = per_pair;
                (0..2)
                    .map(|_| pollster::block_on(trainer.step()).unwrap())
                    .collect::<Vec<_>>()
            };
            let (apart, together) = (run(true), run(false));
            for (a, b) in apart.iter().zip(&together) {
                // Summed in another order: a few f32 roundings apart. The loss and the norm are
                // compared relatively; a margin is a difference of log-probs of about -20, whose
                // f32 spacing is 2e-6, so it is compared on that scale.
                let close = |x: f32, y: f32| (x - y).abs() <= 1e-4 * x.abs().max(y.abs());
                assert!(
                    close(a.loss, b.loss),
                    "{kind}: loss {} vs {}",
                    a.loss,
                    b.loss
                );
                assert!(
                    close(a.grad_norm, b.grad_norm),
                    "{kind}: gradient norm {} vs {}",
                    a.grad_norm,
                    b.grad_norm
                );
                assert!(
                    (a.margin - b.margin).abs() <= 1e-4,
                    "{kind}: margin {} vs {}",
                    a.margin,
                    b.margin
                );
                assert_eq!(a.margins.len(), 4);
            }
            assert!(
                apart[1].loss < apart[0].loss,
                "{kind}: the loss did not move"
            );
        }
    }
}
