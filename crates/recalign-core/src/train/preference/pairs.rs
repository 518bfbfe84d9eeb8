//! Preference pairs tokenised once (the prompt shared by the chosen and every rejected answer),
//! and the reference's log-probabilities of them, precomputed or from a reference model.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::data::pairs::PreferencePair;
use crate::lm::{FrozenAnswers, LanguageModel};
use crate::losses::tensor::read;
use crate::model::Slots;
use crate::prompt::PromptFormat;
use crate::{Error, Result};

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

    /// [`Self::new`], with a hybrid item slot after each listed title when `hybrid` (for an
    /// adapter with a projector): the history's in a compact pair, the history's and the
    /// candidates' in a LLaRA one, as evaluation reads them; only pairs that carry their items
    /// (`PreferencePair::history_items`, `candidate_items`, which `pairs build` writes).
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
        if pair.history_items.is_empty()
            || (pair.format == PromptFormat::Llara && pair.candidate_items.is_empty())
        {
            return Err(Error::Train(
                "the pair has no history_items (or, in LLaRA's prompt, candidate_items), which \
                 a hybrid adapter's slots need: build the pairs again with this version's \
                 `recalign pairs build`"
                    .into(),
            ));
        }
        let items = |ids: &[u32]| -> Vec<crate::data::ItemId> {
            ids.iter().map(|&i| crate::data::ItemId(i)).collect()
        };
        let history = items(&pair.history_items);
        let (prompt_ids, slots) = match pair.format {
            PromptFormat::Compact => {
                crate::hybrid::compact_prompt_ids(&lm.tokenizer, &pair.prompt, &history)?
            }
            PromptFormat::Llara => crate::hybrid::llara_request_ids(
                &lm.tokenizer,
                &pair.prompt,
                &history,
                &items(&pair.candidate_items),
            )?,
        };
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
