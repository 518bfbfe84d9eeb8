//! Answers after a shared prompt (candidate scoring, preference pairs), with the prompt and the
//! answers run once through the layers no adapter touches and kept, so every later pass
//! (training steps, the reference, evaluation) runs only the adapted layers.

use burn::tensor::{Tensor, TensorData};

use crate::error::{Error, Result};
use burn::tensor::activation::log_softmax;

use crate::model::{Group, KvCache, Llama, Packed, Slots};

/// [`answer_log_probs`] cut at layer `split`: the residual stream entering that layer, for the
/// prompt and for the answer rows, with the rows' targets and mask. When every layer below
/// `split` is frozen ([`Llama::first_adapted_layer`]), these tensors depend on the tokens alone,
/// so a trainer computes them once per pair and each later pass (every epoch's policy pass)
/// runs only the adapted layers above: with LoRA on the top 8 of 30 layers a step's forward is
/// about a quarter of a full one. They are detached from any autodiff graph.
#[derive(Clone, Debug)]
pub struct FrozenAnswers {
    split: usize,
    /// The residual stream entering layer `split`, `[1, tokens, hidden]`: the prompt minus its
    /// last token, then the answer rows (the prompt's last token, then the answer) packed end
    /// to end, all one pass ([`Packed::groups`]).
    states: Tensor<3>,
    /// Where the answer rows start (the prompt's length minus one).
    rows_at: usize,
    /// Each answer's length (its row's).
    lens: Vec<usize>,
    /// Each row token's target.
    targets: Vec<i64>,
    /// A hybrid prompt's slots among the pass's positions (a slot on the prompt's last token is
    /// on the first position of every answer row), for the projector above `split`.
    slots: Slots,
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
        let rows_at = prefix_ids.len();
        // Row i is the prompt's last token then answer i but its last token; position j of it
        // predicts answer token j.
        let lens: Vec<usize> = answers.iter().map(Vec::len).collect();
        let total: usize = lens.iter().sum();
        let mut inputs: Vec<i64> = prefix_ids.iter().map(|&t| i64::from(t)).collect();
        inputs.reserve(total);
        let mut targets = Vec::with_capacity(total);
        for a in answers {
            for (j, &target) in a.iter().enumerate() {
                inputs.push(i64::from(if j == 0 { *last } else { a[j - 1] }));
                targets.push(i64::from(target));
            }
        }
        let packed = Packed::groups(
            &[Group {
                prompt: rows_at,
                answers: &lens,
            }],
            model.device(),
        );
        let x = model.embed(model.tokens(inputs, 1, rows_at + total));
        let states = model
            .forward_layers_packed(x, 0..split, &mut KvCache::default(), None, &packed)?
            .detach();
        // The prompt's last token opens every answer row: a slot there is one slot per row.
        let p = prompt_ids.len();
        let mut placed = Slots::default();
        for (&at, &item) in slots.positions.iter().zip(&slots.rows) {
            match (at as usize).cmp(&(p - 1)) {
                std::cmp::Ordering::Less => {
                    placed.positions.push(at);
                    placed.rows.push(item);
                }
                std::cmp::Ordering::Equal => {
                    let mut start = rows_at;
                    for len in &lens {
                        placed.positions.push(start as u32);
                        placed.rows.push(item);
                        start += len;
                    }
                }
                std::cmp::Ordering::Greater => {
                    return Err(Error::Model(format!(
                        "a hybrid slot at position {at} lies past the {p} prompt tokens"
                    )));
                }
            }
        }
        Ok(Self {
            split,
            states,
            rows_at,
            lens,
            targets,
            slots: placed,
        })
    }

    /// The summed answer log-probs, running layers `split..` of `model` (whose layers below
    /// `split` must be the ones these states were computed with), prompt and answers in one
    /// pass: autodiff keeps two passes' graphs apart, and in training one pass of a pair's ~230
    /// tokens ran 13% faster than the prompt's pass then its answers' (docs/benchmarks.md).
    pub fn log_probs(&self, model: &Llama) -> Result<Tensor<1>> {
        let device = model.device();
        // Built per pass, not kept: the mask is [tokens x tokens] (~220 KB for a pair), which a
        // cache of thousands of pairs would hold for a host-side fill that costs well under 1%
        // of the pass.
        let packed = Packed::groups(
            &[Group {
                prompt: self.rows_at,
                answers: &self.lens,
            }],
            device,
        );
        let hidden = model.forward_layers_packed(
            self.states.clone(),
            self.split..model.config.n_layers,
            &mut KvCache::default(),
            self.slots.tensors(self.states.dims()[1], device)?.as_ref(),
            &packed,
        )?;
        let [_, _, d] = hidden.dims();
        // Only the answer rows predict anything.
        let total = self.targets.len();
        let rows = model.final_norm(hidden.narrow(1, self.rows_at, total));
        let logits = model.logits(rows.reshape([total, d]));
        let targets = TensorData::new(self.targets.clone(), [total, 1]);
        let token_lp = log_softmax(logits, 1).gather(1, Tensor::from_data(targets, device));
        // `[n, total]`: 1 where a token belongs to that answer, to sum each answer's log-probs.
        let n = self.lens.len();
        let mut member = vec![0f32; n * total];
        let mut first = 0;
        for (i, &len) in self.lens.iter().enumerate() {
            member[i * total + first..][..len].fill(1.0);
            first += len;
        }
        let member = Tensor::<2>::from_data(TensorData::new(member, [n, total]), device);
        Ok(member.matmul(token_lp).reshape([n]))
    }

    /// Bytes these states take (f32), the figure [`frozen_answer_bytes`] predicts.
    pub fn bytes(&self) -> u64 {
        self.states.dims().iter().product::<usize>() as u64 * 4
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
/// One pass: the prompt minus its last token, then every answer's row packed end to end after it
/// ([`Packed::groups`]), each row the prompt's last token then the answer, so that position `j`
/// of a row predicts answer token `j`; each row sees the prompt and itself, never another row.
/// The caller checks that everything fits the context.
pub fn answer_log_probs(
    model: &Llama,
    prompt_ids: &[u32],
    answers: &[Vec<u32>],
) -> Result<Tensor<1>> {
    FrozenAnswers::new(model, 0, prompt_ids, answers)?.log_probs(model)
}
