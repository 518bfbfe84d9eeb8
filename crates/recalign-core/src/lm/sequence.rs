//! Log-probabilities of whole sequences in one padded batch, with autodiff when the model has
//! it, logits computed only where a token is scored: SFT's loss and the separate-sequence
//! reference.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::model::{KvCache, Llama, Slots};

/// One sequence for [`sequence_log_probs`]: its token ids and the first position whose token
/// is scored (the tokens before it are context only).
#[derive(Clone, Copy, Debug)]
pub struct ScoredSequence<'a> {
    /// Token ids.
    pub ids: &'a [u32],
    /// Index of the first scored token (at least 1: the first token has no context).
    pub from: usize,
}

/// Summed log-probs `[rows.len()]` of `ids[from..]` of each row given the tokens before it, all
/// rows in one padded pass from an empty cache (several prompts per pass: the batch dimension
/// is what keeps the CPU's matmuls busy). Left on the device and differentiable when the model
/// tracks gradients: SFT's loss, one-target or a whole sequence of titles.
///
/// The output head (`hidden x vocabulary`, the largest matmul of a short row) runs only at the
/// scored positions: they are gathered first, so a 224-token prompt with a 6-token answer pays
/// for 6 rows of logits, not 224.
pub fn sequence_log_probs(
    model: &Llama,
    rows: &[ScoredSequence<'_>],
    pad: u32,
) -> Result<Tensor<1>> {
    sequence_log_probs_with(model, rows, &[], pad)
}

/// [`sequence_log_probs`] for hybrid rows: `slots[i]` (positions in row `i`'s ids; none for a
/// missing entry) receive their items' projected vectors. The tokens at the slots are scored
/// like any other (a compact document's slots are its newlines; the LLaRA prompt's
/// placeholders lie in the unscored prompt).
pub fn sequence_log_probs_with(
    model: &Llama,
    rows: &[ScoredSequence<'_>],
    slots: &[&Slots],
    pad: u32,
) -> Result<Tensor<1>> {
    let context = model.config.context_length;
    let longest = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
    if rows.is_empty() {
        return Err(Error::EmptyCandidates);
    }
    for r in rows {
        if r.from == 0 || r.from >= r.ids.len() {
            return Err(Error::Train(format!(
                "a sequence of {} tokens cannot be scored from position {}",
                r.ids.len(),
                r.from
            )));
        }
        if r.ids.len() > context {
            return Err(Error::PromptTooLong {
                tokens: r.from,
                needed: r.ids.len() - r.from,
                context,
            });
        }
    }
    let (n, len) = (rows.len(), longest - 1);
    let mut inputs = Vec::with_capacity(n * len);
    let (mut at, mut targets, mut owner) = (Vec::new(), Vec::new(), Vec::new());
    let no_slots = Slots::default();
    let slots_of = |i: usize| slots.get(i).copied().unwrap_or(&no_slots);
    for (i, r) in rows.iter().enumerate() {
        for j in 0..len {
            inputs.push(r.ids.get(j).map_or(pad, |&t| t) as i64);
            // Position j predicts token j + 1.
            if j + 1 >= r.from && j + 1 < r.ids.len() {
                at.push((i * len + j) as i64);
                targets.push(r.ids[j + 1] as i64);
                owner.push(i);
            }
        }
    }
    let device = model.device();
    let m = at.len();
    // One placement matrix over the whole batch: row i's slot at position p is row i * len + p.
    let mut batch_slots = Slots::default();
    for i in 0..n {
        let s = slots_of(i);
        for (&p, &item) in s.positions.iter().zip(&s.rows) {
            if (p as usize) < len {
                batch_slots.positions.push((i * len) as u32 + p);
                batch_slots.rows.push(item);
            }
        }
    }
    let slot_tensors = batch_slots.tensors(n * len, device)?;
    let x = model.embed(model.tokens(inputs, n, len));
    let layers = 0..model.config.n_layers;
    let hidden = model.final_norm(model.forward_layers_with(
        x,
        layers,
        &mut KvCache::single_pass(),
        slot_tensors.as_ref(),
    )?);
    let d = model.config.hidden_size;
    let at = Tensor::<1, Int>::from_data(TensorData::new(at, [m]), device);
    let picked = hidden.reshape([n * len, d]).select(0, at);
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [m, 1]), device);
    let token_lp = log_softmax(model.logits(picked), 1).gather(1, targets);
    // Per-row sums as one small matmul: [n, m] membership x [m, 1] log-probs.
    let mut member = vec![0f32; n * m];
    for (k, &i) in owner.iter().enumerate() {
        member[i * m + k] = 1.0;
    }
    let member = Tensor::<2>::from_data(TensorData::new(member, [n, m]), device);
    Ok(member.matmul(token_lp).reshape([n]))
}
