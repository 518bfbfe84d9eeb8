//! Supervised fine-tuning: the answer tokens' cross-entropy (token-weighted over the step) as
//! the objective of the shared [`Run`].

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::run::Run;
use super::{Adapter, Checkpoint, LoraSettings, StepReport, TrainSettings};
use crate::lm::{LanguageModel, ScoredSequence, sequence_log_probs_with};
use crate::losses::LossState;
use crate::model::{LlamaWeights, Slots};
use crate::{Error, Result};

/// One SFT example: the prompt's ids and the target answer's ids (eos included).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SftExample {
    /// ChatML prompt ids.
    pub prompt_ids: Vec<u32>,
    /// Answer ids, ending with eos.
    pub answer_ids: Vec<u32>,
    /// How much each of its answer tokens counts in the step's token-weighted loss (1: as much
    /// as any other). A one-target example has ~6 answer tokens against a document's ~170, so
    /// mixed into documents at weight 1 it is about 2% of the objective ([`crate::train::data::mix_one_target`]).
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

/// Tokens (padded) in one SFT forward and backward pass. Autodiff keeps every pass's activations
/// until its backward, about 1.7 MiB per token for this model, so a micro-batch of four
/// 225-token prompts in one pass peaked at 2.2 GiB; in passes of at most this many tokens it
/// peaks at 1.4 GiB and runs as fast (docs/benchmarks.md). The objective is a sum over
/// examples, so splitting a micro-batch does not change it.
const PASS_TOKENS: usize = 512;

/// `batch` cut, in order, into passes whose padded size (examples x longest) stays within
/// [`PASS_TOKENS`]; an example longer than that has a pass of its own.
fn passes(batch: &[usize], len: impl Fn(usize) -> usize) -> Vec<&[usize]> {
    let mut out = Vec::new();
    let (mut start, mut longest) = (0, 0);
    for (j, &i) in batch.iter().enumerate() {
        let l = len(i);
        if j > start && (j - start + 1) * longest.max(l) > PASS_TOKENS {
            out.push(&batch[start..j]);
            (start, longest) = (j, 0);
        }
        longest = longest.max(l);
    }
    if start < batch.len() {
        out.push(&batch[start..]);
    }
    out
}

impl SftExample {
    /// Prompt and answer tokens.
    pub fn tokens(&self) -> usize {
        self.prompt_ids.len() + self.answer_ids.len()
    }

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
    run: Run,
    examples: Vec<SftExample>,
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
        Ok(Self {
            run: Run::new(base, lora, start, settings, examples.len())?,
            examples,
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
        let policy = &self.run.policy;
        for batch in micro {
            for pass in passes(&batch, |i| self.examples[i].tokens()) {
                // The pass's examples in one padded forward and backward.
                let joined: Vec<(Vec<u32>, usize)> = pass
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
                let slots: Vec<&Slots> = pass.iter().map(|&i| &self.examples[i].slots).collect();
                let per_row = sequence_log_probs_with(policy, &rows, &slots, self.run.pad)?;
                let sum = if pass.iter().all(|&i| self.examples[i].weight == 1.0) {
                    per_row.sum()
                } else {
                    let w: Vec<f32> = pass.iter().map(|&i| self.examples[i].weight).collect();
                    let n = w.len();
                    (per_row * Tensor::<1>::from_data(TensorData::new(w, [n]), &device)).sum()
                }
                .reshape([1]);
                let loss = sum.neg() / total_weight.max(f64::MIN_POSITIVE);
                let grads = GradientsParams::from_grads(loss.backward(), &policy.weights);
                acc.accumulate(&policy.weights, grads);
                losses.push(loss.detach());
            }
        }
        let loss = losses
            .into_iter()
            .reduce(|a, b| a + b)
            .unwrap_or_else(|| Tensor::zeros([1], &device));
        let applied = self.run.apply(acc.grads(), vec![loss]).await?;
        Ok(self.run.report(&applied, tokens, started))
    }

    /// The adapter as trained so far.
    pub async fn adapter(&self) -> Result<Adapter> {
        self.run.adapter().await
    }

    /// Everything needed to continue this run exactly (adapter, optimiser state, position).
    pub async fn checkpoint(&self) -> Result<Checkpoint> {
        self.run.checkpoint(None, LossState::default()).await
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
        trainer.run.resume(base, checkpoint)?;
        Ok(trainer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_stay_within_the_token_budget_in_order() {
        let lens = [225, 225, 225, 225];
        let batch = [0, 1, 2, 3];
        assert_eq!(passes(&batch, |i| lens[i]), vec![&[0, 1][..], &[2, 3][..]]);
        // Padded to the longest: 100 and 300 fit (2 x 300 > 512 does not).
        let lens = [100, 300, 100, 100, 100];
        let batch = [0, 1, 2, 3, 4];
        assert_eq!(
            passes(&batch, |i| lens[i]),
            vec![&[0][..], &[1][..], &[2, 3, 4][..]]
        );
        // Longer than the budget: alone; never an empty pass.
        let lens = [900, 10];
        assert_eq!(passes(&[0, 1], |i| lens[i]), vec![&[0][..], &[1][..]]);
        assert!(passes(&[], |_| 1).is_empty());
        let batch: Vec<usize> = (0..9).collect();
        let all: Vec<usize> = passes(&batch, |_| 60).concat();
        assert_eq!(all, batch);
    }
}
