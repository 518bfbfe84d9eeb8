//! Turns a split's examples into training inputs (SFT examples, preference pairs) the same way
//! for the CLI and the page's worker, so a run in the browser and one on the command line see
//! the same prompts for the same seed.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::InteractionLog;
use crate::data::pairs::{self, ExampleScores, PairConfig, PreferencePair};
use crate::data::split::Example;
use crate::lm::{LanguageModel, ScoreOptions};
use crate::model::Slots;
use crate::prompt::{self, PromptFormat, PromptStyle};
use crate::train::{SftExample, TokenisedPair};
use crate::{Error, Result};

mod sequence;

pub use sequence::{
    ONE_TARGET_SHARE, ONE_TARGET_WEIGHT, SequenceConfig, mix_one_target, sequence_examples,
};

/// Up to `max` examples (all when 0 or fewer exist), drawn with a seeded shuffle.
pub fn draw(examples: &[Example], max: usize, seed: u64) -> Vec<Example> {
    let mut out = examples.to_vec();
    if max > 0 && out.len() > max {
        out.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        out.truncate(max);
    }
    out
}

/// The user-turn text of an example: a template chosen per example (or fixed) in the log's
/// domain, listing the history and the candidates.
pub fn request_text(log: &InteractionLog, template: Option<usize>, e: &Example) -> String {
    let t = template_of(log, template, e);
    prompt::request(
        log.domain,
        t,
        &log.catalogue.titles(&e.history),
        &log.catalogue.titles(&e.candidates),
    )
}

/// The LLaRA template an example is written in: `template`, or one chosen per example.
fn template_of(log: &InteractionLog, template: Option<usize>, e: &Example) -> usize {
    let style = PromptStyle {
        domain: log.domain,
        template,
    };
    prompt::template_for(style, e.user, e.target.0)
}

/// What was kept of a draw once tokenised.
#[derive(Clone, Debug)]
pub struct Tokenised<T> {
    /// Inputs whose prompt and answers fit the model's context.
    pub items: Vec<T>,
    /// Inputs dropped because they did not fit.
    pub too_long: usize,
}

/// Keeps `Ok` values and counts prompts too long for the context; any other error stops.
fn keep_fitting<T>(results: impl IntoIterator<Item = Result<T>>) -> Result<Tokenised<T>> {
    let mut out = Tokenised {
        items: Vec::new(),
        too_long: 0,
    };
    for r in results {
        match r {
            Ok(t) => out.items.push(t),
            Err(Error::PromptTooLong { .. }) => out.too_long += 1,
            Err(e) => return Err(e),
        }
    }
    if out.items.is_empty() {
        return Err(Error::Train(format!(
            "none of the {} prompts fits the model's context",
            out.too_long
        )));
    }
    Ok(out)
}

/// SFT examples (answer: the target's title) of `examples`, skipping prompts too long for `lm`.
pub fn sft_examples(
    lm: &LanguageModel,
    log: &InteractionLog,
    examples: &[Example],
    template: Option<usize>,
) -> Result<Tokenised<SftExample>> {
    sft_examples_with(lm, log, examples, template, false)
}

/// [`sft_examples`], with a hybrid item slot after each listed title when `hybrid`
/// ([`crate::hybrid::llara_prompt`]).
pub fn sft_examples_with(
    lm: &LanguageModel,
    log: &InteractionLog,
    examples: &[Example],
    template: Option<usize>,
    hybrid: bool,
) -> Result<Tokenised<SftExample>> {
    keep_fitting(examples.iter().map(|e| {
        if !hybrid {
            return SftExample::new(
                lm,
                &request_text(log, template, e),
                log.catalogue.title(e.target),
            );
        }
        let t = template_of(log, template, e);
        let (prompt_ids, slots) =
            crate::hybrid::llara_prompt(lm, log, t, &e.history, &e.candidates)?;
        let answer_ids = lm
            .candidate_ids(&[log.catalogue.title(e.target).to_string()])?
            .remove(0);
        lm.check_fits(prompt_ids.len(), answer_ids.len())?;
        Ok(SftExample {
            prompt_ids,
            answer_ids,
            weight: 1.0,
            slots,
        })
    }))
}

/// Whether `lm` reads hybrid prompts (a hybrid adapter's projector is installed).
pub fn is_hybrid(lm: &LanguageModel) -> bool {
    lm.model.weights.projector.is_some()
}

/// The compact ranking prompt of `e` for `lm`: with a slot after each history title when
/// `hybrid` ([`crate::hybrid::compact_ids`]), as [`compact_rank_ids`] otherwise.
pub fn rank_ids(
    lm: &LanguageModel,
    log: &InteractionLog,
    e: &Example,
    hybrid: bool,
) -> Result<crate::eval::RankPrompt> {
    // The hybrid document is the text-only one token for token (its slots are the newlines),
    // so one builder serves both and a text-only prompt just drops the slots.
    let tok = &lm.tokenizer;
    let (ids, slots) = crate::hybrid::compact_ids(tok, log.domain, &e.history, |i| {
        log.catalogue.title(i).to_string()
    })?;
    let answers = log
        .catalogue
        .titles(&e.candidates)
        .iter()
        .map(|t| prompt::compact_line_ids(tok, t))
        .collect::<Result<Vec<_>>>()?;
    lm.check_fits(ids.len(), answers.iter().map(Vec::len).max().unwrap_or(0))?;
    Ok((ids, answers, if hybrid { slots } else { Slots::default() }))
}

/// The compact ranking prompt of `e` (its history as a document, one title per line) and each
/// candidate's answer (the title's line), checked to fit `lm`'s context.
pub fn compact_rank_ids(
    lm: &LanguageModel,
    log: &InteractionLog,
    e: &Example,
) -> Result<(Vec<u32>, Vec<Vec<u32>>)> {
    let (ids, answers, _) = rank_ids(lm, log, e, false)?;
    Ok((ids, answers))
}

/// Evaluates `lm` on `examples` ranking in `format` (the adapter's own: [`crate::train::Adapter`]
/// records it), generation always with LLaRA's prompt (ValidRatio needs the candidate list),
/// the random and popularity rankers alongside. The CLI's `eval` and the page's Evaluate card
/// are this one call.
#[allow(clippy::too_many_arguments)]
pub async fn evaluate(
    lm: &LanguageModel,
    format: PromptFormat,
    log: &InteractionLog,
    examples: &[Example],
    popularity: &[u32],
    template: Option<usize>,
    max_new_tokens: usize,
    progress: impl FnMut(usize, usize),
) -> Result<crate::eval::EvalReport> {
    let mut reports = evaluate_models(
        &[lm],
        format,
        log,
        examples,
        popularity,
        template,
        max_new_tokens,
        progress,
    )
    .await?;
    reports
        .pop()
        .ok_or_else(|| Error::Train("no model to evaluate".into()))
}

/// [`evaluate`] for several adapters of one base model (and the base model itself) on the same
/// examples, in one format: one report each, in order, the frozen layers below the lowest
/// adapted one run once per example ([`crate::eval::evaluate_many`]).
#[allow(clippy::too_many_arguments)]
pub async fn evaluate_models(
    lms: &[&LanguageModel],
    format: PromptFormat,
    log: &InteractionLog,
    examples: &[Example],
    popularity: &[u32],
    template: Option<usize>,
    max_new_tokens: usize,
    progress: impl FnMut(usize, usize),
) -> Result<Vec<crate::eval::EvalReport>> {
    let lm = *lms
        .first()
        .ok_or_else(|| Error::Train("no model to evaluate".into()))?;
    let hybrid = is_hybrid(lm);
    if lms.iter().any(|m| is_hybrid(m) != hybrid) {
        return Err(Error::Train(
            "hybrid and text-only adapters read different prompts (item slots or none): \
             evaluate them in separate runs"
                .into(),
        ));
    }
    if hybrid {
        for m in lms {
            crate::hybrid::check_catalogue(m, log)?;
        }
    }
    let llara = |e: &Example| {
        if hybrid {
            let t = template_of(log, template, e);
            crate::hybrid::llara_prompt(lm, log, t, &e.history, &e.candidates)
        } else {
            Ok((
                lm.request_prompt_ids(
                    &request_text(log, template, e),
                    &log.catalogue.titles(&e.candidates),
                )?,
                Slots::default(),
            ))
        }
    };
    let rank = |e: &Example| match format {
        PromptFormat::Llara => {
            let (ids, slots) = llara(e)?;
            let answers = lm.candidate_ids(&log.catalogue.titles(&e.candidates))?;
            lm.check_fits(ids.len(), answers.iter().map(Vec::len).max().unwrap_or(0))?;
            Ok((ids, answers, slots))
        }
        PromptFormat::Compact => rank_ids(lm, log, e, hybrid),
    };
    let prompts = crate::eval::Prompts {
        rank: &rank,
        generate: &llara,
    };
    crate::eval::evaluate_many(
        lms,
        examples,
        &log.catalogue,
        popularity,
        &prompts,
        max_new_tokens,
        progress,
    )
    .await
}

/// The model's score of every candidate of every example (self-hard negatives), with a
/// progress callback `(done, total)`.
pub async fn model_scores(
    lm: &LanguageModel,
    log: &InteractionLog,
    examples: &[Example],
    format: PromptFormat,
    template: Option<usize>,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(examples.len());
    for (i, e) in examples.iter().enumerate() {
        let titles = log.catalogue.titles(&e.candidates);
        let scores = match format {
            PromptFormat::Llara if is_hybrid(lm) => {
                let t = template_of(log, template, e);
                let (ids, slots) =
                    crate::hybrid::llara_prompt(lm, log, t, &e.history, &e.candidates)?;
                let answers = lm.candidate_ids(&titles)?;
                lm.score_hybrid_with(&[], &ids, &slots, &answers)
                    .await?
                    .remove(0)
            }
            PromptFormat::Llara => {
                let ids = lm.request_prompt_ids(&request_text(log, template, e), &titles)?;
                lm.score_candidates(&ids, &titles, ScoreOptions::default())
                    .await?
                    .iter()
                    .map(|s| s.score)
                    .collect()
            }
            PromptFormat::Compact => {
                let (ids, answers, slots) = rank_ids(lm, log, e, is_hybrid(lm))?;
                lm.score_hybrid_with(&[], &ids, &slots, &answers)
                    .await?
                    .remove(0)
            }
        };
        out.push(scores);
        progress(i + 1, examples.len());
    }
    Ok(out)
}

/// Per-example scores for [`preference_pairs`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PairScores<'a> {
    /// The model's candidate scores, one row per example (self-hard).
    pub model: Option<&'a [Vec<f32>]>,
    /// The oracle's candidate scores, one row per example (RosePO's smoothing).
    pub oracle: Option<&'a [Vec<f32>]>,
}

/// Preference pairs of `examples` under `config` (method.md §2).
#[allow(clippy::too_many_arguments)]
pub fn preference_pairs(
    log: &InteractionLog,
    popularity: &[u32],
    examples: &[Example],
    format: PromptFormat,
    template: Option<usize>,
    scores: PairScores<'_>,
    config: &PairConfig,
) -> Result<Vec<PreferencePair>> {
    let mut all = Vec::new();
    for (i, e) in examples.iter().enumerate() {
        let prompt = match format {
            PromptFormat::Llara => request_text(log, template, e),
            PromptFormat::Compact => {
                prompt::compact_text(log.domain, &log.catalogue.titles(&e.history))
            }
        };
        let start = all.len();
        all.extend(pairs::pairs_for_example(
            e,
            &prompt,
            &log.catalogue,
            popularity,
            ExampleScores {
                model: scores.model.and_then(|s| s.get(i)).map(Vec::as_slice),
                oracle: scores.oracle.and_then(|s| s.get(i)).map(Vec::as_slice),
            },
            config,
        )?);
        for p in &mut all[start..] {
            p.format = format;
        }
    }
    Ok(all)
}

/// Tokenises `pairs` keeping `negatives` rejected answers each, skipping those too long for `lm`;
/// with the history's item slots when `hybrid` (a run from a hybrid adapter).
pub fn tokenise_pairs(
    lm: &LanguageModel,
    pairs: &[PreferencePair],
    negatives: usize,
    hybrid: bool,
) -> Result<Tokenised<TokenisedPair>> {
    keep_fitting(
        pairs
            .iter()
            .map(|p| TokenisedPair::new_with(lm, p, negatives, hybrid)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ItemId;

    fn example(user: u32) -> Example {
        Example {
            user,
            history: vec![ItemId(1)],
            target: ItemId(2),
            candidates: vec![ItemId(2), ItemId(3)],
        }
    }

    #[test]
    fn draw_is_seeded_and_bounded() {
        let all: Vec<Example> = (0..50).map(example).collect();
        assert_eq!(draw(&all, 0, 1), all, "0 keeps everything, in order");
        assert_eq!(draw(&all, 80, 1), all, "asking for more keeps everything");
        let a = draw(&all, 10, 7);
        assert_eq!(a.len(), 10);
        assert_eq!(a, draw(&all, 10, 7), "same seed, same draw");
        assert_ne!(a, draw(&all, 10, 8), "another seed, another draw");
    }

    #[test]
    fn too_long_prompts_are_counted_other_errors_stop() {
        let too_long = || Error::PromptTooLong {
            tokens: 2000,
            needed: 5,
            context: 1024,
        };
        let kept = keep_fitting([Ok(1), Err(too_long()), Ok(3)]).expect("two fit");
        assert_eq!((kept.items, kept.too_long), (vec![1, 3], 1));
        let none = keep_fitting::<u8>([Err(too_long()), Err(too_long())]);
        assert!(matches!(none, Err(Error::Train(m)) if m.contains("none of the 2 prompts")));
        let other = keep_fitting([Ok(1), Err(Error::Train("broken".into()))]);
        assert!(matches!(other, Err(Error::Train(m)) if m == "broken"));
    }
}
