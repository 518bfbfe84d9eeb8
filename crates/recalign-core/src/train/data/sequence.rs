//! Sequence SFT's inputs: each training user's positives as compact documents (every title
//! after the context a target), with LLaRA one-target examples mixed in.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::InteractionLog;
use crate::data::split::Example;
use crate::lm::LanguageModel;
use crate::model::Slots;
use crate::prompt::{self};
use crate::train::SftExample;
use crate::{Error, Result};

use super::*;

/// How sequence SFT cuts a training user's positives into documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SequenceConfig {
    /// Titles per document, at most.
    pub chunk: usize,
    /// Leading titles of a document that are context only (not scored). Consecutive documents
    /// of a user overlap by this many, so every title after a user's first `context` is
    /// scored exactly once.
    pub context: usize,
    /// A hybrid item slot after each title's line ([`crate::hybrid::compact_ids`]), for an
    /// adapter with a projector.
    #[serde(default)]
    pub hybrid: bool,
}

impl Default for SequenceConfig {
    fn default() -> Self {
        Self {
            chunk: 30,
            context: 3,
            hybrid: false,
        }
    }
}

/// Sequence SFT examples: each training user's chronological positives as compact documents
/// (see [`SequenceConfig`]), the loss on every title line after the context, so one forward
/// pass trains on up to `chunk - context` targets instead of one. Up to `max` documents (all
/// when 0), drawn with a seeded shuffle.
pub fn sequence_examples(
    lm: &LanguageModel,
    log: &InteractionLog,
    sequences: &[Vec<crate::data::ItemId>],
    config: SequenceConfig,
    max: usize,
    seed: u64,
) -> Result<Tokenised<SftExample>> {
    if config.context == 0 || config.chunk <= config.context {
        return Err(Error::Train(format!(
            "sequence documents need 1 <= context ({}) < chunk ({})",
            config.context, config.chunk
        )));
    }
    let tok = &lm.tokenizer;
    let step = config.chunk - config.context;
    let mut windows = Vec::new();
    for seq in sequences {
        let mut start = 0;
        while start + config.context < seq.len() {
            let end = (start + config.chunk).min(seq.len());
            windows.push(&seq[start..end]);
            start += step;
        }
    }
    if max > 0 && windows.len() > max {
        windows.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        windows.truncate(max);
    }
    keep_fitting(windows.into_iter().map(|w| {
        if config.hybrid {
            // The document with its slots, cut after the context's last slot.
            let (ids, slots) = crate::hybrid::compact_ids(tok, log.domain, w, |i| {
                log.catalogue.title(i).to_string()
            })?;
            let cut = slots.positions[config.context - 1] as usize + 1;
            let (prompt_ids, answer_ids) = (ids[..cut].to_vec(), ids[cut..].to_vec());
            lm.check_fits(prompt_ids.len(), answer_ids.len())?;
            return Ok(SftExample {
                prompt_ids,
                answer_ids,
                weight: 1.0,
                slots,
            });
        }
        let titles = log.catalogue.titles(w);
        let prompt_ids = prompt::compact_ids(tok, log.domain, &titles[..config.context])?;
        let mut answer_ids = Vec::new();
        for t in &titles[config.context..] {
            answer_ids.extend(prompt::compact_line_ids(tok, t)?);
        }
        lm.check_fits(prompt_ids.len(), answer_ids.len())?;
        Ok(SftExample {
            prompt_ids,
            answer_ids,
            weight: 1.0,
            slots: Slots::default(),
        })
    }))
}

/// The recipe's share of LLaRA one-target examples in sequence SFT ([`mix_one_target`]): on
/// ML-100K (900 steps, seed 2024) it took ValidRatio with LLaRA's prompt from 0.11 to 0.79 at
/// the same ranking HR@1 (docs/alignment.md, run C).
pub const ONE_TARGET_SHARE: f64 = 0.2;

/// The recipe's loss weight of a one-target example's answer tokens against a document's
/// ([`mix_one_target`]; 1: every answer token counts the same).
pub const ONE_TARGET_WEIGHT: f32 = 1.0;

/// Sequence SFT documents with LLaRA one-target examples mixed in, so that `share` of the
/// result (0 <= share < 1, the first of `(share, weight)`) are one-target examples drawn (seeded) from `examples`. Documents
/// alone teach the compact ranking prompt but not the LLaRA prompt's task of answering with one
/// listed title, which generation (ValidRatio) needs; each one-target example costs a whole
/// prompt for one target, hence a share rather than all of them. Each of their answer tokens
/// counts `weight` times in the loss: at 1 they are about 2% of the answer tokens.
pub fn mix_one_target(
    lm: &LanguageModel,
    log: &InteractionLog,
    documents: Tokenised<SftExample>,
    examples: &[Example],
    (share, weight): (f64, f32),
    template: Option<usize>,
    seed: u64,
) -> Result<Tokenised<SftExample>> {
    if !(0.0..1.0).contains(&share) {
        return Err(Error::Train(format!(
            "the one-target share must be in [0, 1), not {share}"
        )));
    }
    if !(weight.is_finite() && weight > 0.0) {
        return Err(Error::Train(format!(
            "the one-target weight must be a positive number, not {weight}"
        )));
    }
    let wanted = (documents.items.len() as f64 * share / (1.0 - share)).round() as usize;
    if wanted == 0 {
        return Ok(documents);
    }
    if examples.is_empty() {
        return Err(Error::Train(
            "no one-target examples to mix in: the training split has none".into(),
        ));
    }
    // Fewer examples than wanted: all of them, once (the share is then lower; the caller
    // reports the counts).
    let drawn = draw(examples, wanted, seed ^ 0x6f6e_6574);
    // Hybrid documents get hybrid one-target prompts: one run, one kind of prompt.
    let hybrid = documents.items.iter().any(|d| !d.slots.is_empty());
    let one_target = sft_examples_with(lm, log, &drawn, template, hybrid)?;
    let mut out = documents;
    out.items.extend(
        one_target
            .items
            .into_iter()
            .map(|e| SftExample { weight, ..e }),
    );
    out.too_long += one_target.too_long;
    Ok(out)
}
