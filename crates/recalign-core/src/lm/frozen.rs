//! Answers after a shared prompt (candidate scoring, preference pairs), with the prompt and the
//! answers run once through the layers no adapter touches and kept, so every later pass
//! (training steps, the reference, evaluation) runs only the adapted layers.

use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{Error, Result};
use burn::tensor::activation::log_softmax;

use crate::model::{KvCache, Llama, Packed, SlotTensors, Slots};

/// [`answer_log_probs`] cut at layer `split`: the residual stream entering that layer, for the
/// prompt and for the answer rows, with the rows' targets and mask. When every layer below
/// `split` is frozen ([`Llama::first_adapted_layer`]), these tensors depend on the tokens alone,
/// so a trainer computes them once per pair and each later pass (every epoch's policy pass)
/// runs only the adapted layers above: with LoRA on the top 8 of 30 layers a step's forward is
/// about a quarter of a full one. They are detached from any autodiff graph.
#[derive(Clone, Debug)]
pub struct FrozenAnswers {
    split: usize,
    /// The prompt minus its last token, `[1, p - 1, hidden]`; `None` for a one-token prompt.
    prefix: Option<Tensor<3>>,
    /// A hybrid prompt's slots among the prefix's positions, and a slot on the prompt's last
    /// token (the first position of every answer row), for the projector above `split`.
    prefix_slots: Option<SlotTensors>,
    row_slots: Option<SlotTensors>,
    /// The answer rows (prompt's last token, then the answer), packed end to end:
    /// `[1, total, hidden]`, with their layout.
    rows: Tensor<3>,
    packed: Packed,
    /// Each row token's target, `[total, 1]`.
    targets: Tensor<2, Int>,
    /// `[n, total]`: 1 where a token belongs to that answer, to sum each answer's log-probs.
    member: Tensor<2>,
}

impl FrozenAnswers {
    /// Runs the embedding and layers `0..split` for `prompt_ids` and `answers` (as
    /// [`answer_log_probs`] lays them out).
    pub fn new(
        model: &Llama,
        split: usize,
        prompt_ids: &[u32],
        answers: &[Vec<u32>],
    ) -> Result<Self> {
        Self::with_slots(model, split, prompt_ids, &Slots::default(), answers)
    }

    /// [`Self::new`] for a hybrid prompt whose `slots` are positions in `prompt_ids`. The
    /// projector must sit at or above `split` (it does when `split` is the lowest adapted
    /// layer), so the states kept here are the tokens' alone.
    pub fn with_slots(
        model: &Llama,
        split: usize,
        prompt_ids: &[u32],
        slots: &Slots,
        answers: &[Vec<u32>],
    ) -> Result<Self> {
        if let Some(p) = &model.weights.projector
            && !slots.is_empty()
            && p.layer < split
        {
            return Err(Error::Model(format!(
                "the projector feeds layer {}, below the cached layers 0..{split}",
                p.layer
            )));
        }
        let longest = answers.iter().map(Vec::len).max().unwrap_or(0);
        let (last, prefix_ids) = prompt_ids.split_last().ok_or(Error::PromptTooLong {
            tokens: 0,
            needed: longest,
            context: model.config.context_length,
        })?;
        if longest == 0 {
            return Err(Error::EmptyCandidates);
        }
        let mut cache = KvCache::default();
        let prefix = if prefix_ids.is_empty() {
            None
        } else {
            let ids = prefix_ids.iter().map(|&t| t as i64).collect();
            let x = model.embed(model.tokens(ids, 1, prefix_ids.len()));
            Some(model.forward_layers(x, 0..split, &mut cache)?.detach())
        };
        let n = answers.len();
        // Row i is the prompt's last token then answer i but its last token; position j of it
        // predicts answer token j.
        let lens: Vec<usize> = answers.iter().map(Vec::len).collect();
        let total: usize = lens.iter().sum();
        let mut inputs = Vec::with_capacity(total);
        let mut targets = Vec::with_capacity(total);
        let mut member = vec![0f32; n * total];
        for (i, a) in answers.iter().enumerate() {
            for (j, &target) in a.iter().enumerate() {
                member[i * total + inputs.len()] = 1.0;
                inputs.push(if j == 0 { *last } else { a[j - 1] } as i64);
                targets.push(i64::from(target));
            }
        }
        let device = model.device();
        let packed = Packed::new(cache.len(), &lens, device);
        let x = model.embed(model.tokens(inputs, 1, total));
        let rows = model
            .forward_layers_packed(x, 0..split, &mut cache, None, &packed)?
            .detach();
        let p = prompt_ids.len();
        let mut before = Slots::default();
        let mut last_row = None;
        for (&at, &item) in slots.positions.iter().zip(&slots.rows) {
            match (at as usize).cmp(&(p - 1)) {
                std::cmp::Ordering::Less => {
                    before.positions.push(at);
                    before.rows.push(item);
                }
                std::cmp::Ordering::Equal => last_row = Some(item),
                std::cmp::Ordering::Greater => {
                    return Err(Error::Model(format!(
                        "a hybrid slot at position {at} lies past the {p} prompt tokens"
                    )));
                }
            }
        }
        let prefix_slots = before.tensors(p - 1, device)?;
        // The prompt's last token opens every answer row: one placement per row start.
        let row_slots = match last_row {
            Some(item) => Slots {
                positions: lens
                    .iter()
                    .scan(0, |first, &len| {
                        let at = *first as u32;
                        *first += len;
                        Some(at)
                    })
                    .collect(),
                rows: vec![item; n],
            }
            .tensors(total, device)?,
            None => None,
        };
        Ok(Self {
            split,
            prefix,
            prefix_slots,
            row_slots,
            rows,
            packed,
            targets: Tensor::from_data(TensorData::new(targets, [total, 1]), device),
            member: Tensor::from_data(TensorData::new(member, [n, total]), device),
        })
    }

    /// The summed answer log-probs, running layers `split..` of `model` (whose layers below
    /// `split` must be the ones these states were computed with).
    pub fn log_probs(&self, model: &Llama) -> Result<Tensor<1>> {
        let layers = self.split..model.config.n_layers;
        let mut cache = KvCache::default();
        if let Some(prefix) = &self.prefix {
            model.forward_layers_with(
                prefix.clone(),
                layers.clone(),
                &mut cache,
                self.prefix_slots.as_ref(),
            )?;
        }
        let hidden = model.final_norm(model.forward_layers_packed(
            self.rows.clone(),
            layers,
            &mut cache,
            self.row_slots.as_ref(),
            &self.packed,
        )?);
        let [_, total, d] = hidden.dims();
        let logits = model.logits(hidden.reshape([total, d]));
        let token_lp = log_softmax(logits, 1).gather(1, self.targets.clone());
        let n = self.member.dims()[0];
        Ok(self.member.clone().matmul(token_lp).reshape([n]))
    }

    /// Bytes these states take (f32), the figure [`frozen_answer_bytes`] predicts.
    pub fn bytes(&self) -> u64 {
        let size = |t: &Tensor<3>| t.dims().iter().product::<usize>() as u64 * 4;
        self.prefix.as_ref().map_or(0, size) + size(&self.rows)
    }
}

/// Bytes [`FrozenAnswers`] of one prompt and its answers will take, known before any work, so a
/// cache that would not fit is refused up front.
pub fn frozen_answer_bytes(prompt_len: usize, answers: &[Vec<u32>], hidden: usize) -> u64 {
    let rows = prompt_len.saturating_sub(1) + answers.iter().map(Vec::len).sum::<usize>();
    rows as u64 * hidden as u64 * 4
}

/// Summed log-probs `[answers.len()]` of each answer (token ids, eos included) as a continuation
/// of `prompt_ids`, left on the device: differentiable when the model's device tracks gradients,
/// which is how training computes a pair's policy log-probs with the prompt run once.
///
/// The prompt minus its last token fills a key/value cache; then all answers go through one pass,
/// packed end to end ([`Packed`]), each row the prompt's last token then the answer, so that
/// position `j` of a row predicts answer token `j`. The caller checks that everything fits the
/// context.
pub fn answer_log_probs(
    model: &Llama,
    prompt_ids: &[u32],
    answers: &[Vec<u32>],
) -> Result<Tensor<1>> {
    FrozenAnswers::new(model, 0, prompt_ids, answers)?.log_probs(model)
}
