//! Using the model: ranking 20 candidates (optionally against a second model), recommending
//! from the whole catalogue, and generating an answer. Each reports the candidates' training
//! popularity when a dataset is loaded, so the page can show popularity bias in one ranking.

use recalign_core::data::InteractionLog;
use recalign_core::data::split::Splits;
use recalign_core::eval::named_candidate;
use recalign_core::prompt::{PromptFormat, recommendation_prompt};
use recalign_core::recommend::SearchOptions;
use recalign_core::{LanguageModel, Ranking, ScoreOptions};

use super::browser::now_ms;
use super::session::{Problem, Shared};
use crate::protocol::{CandidatePopularity, Comparison, ModelChoice, Response};

/// Ranks `candidates` for `history` with the model in use and, when asked, with a second model.
pub async fn rank(
    shared: &Shared,
    history: &[String],
    candidates: &[String],
    length_normalised: bool,
    compare_with: Option<ModelChoice>,
    reply: &dyn Fn(Response),
) -> Result<(), Problem> {
    let (lm, format) = {
        let s = shared.borrow();
        (s.model()?, s.prompt_format(None))
    };
    let options = ScoreOptions { length_normalised };
    let t = now_ms();
    let ranking = rank_with(shared, &lm, format, history, candidates, options).await?;
    let ms = now_ms() - t;
    let comparison = match compare_with {
        None => None,
        Some(choice) => {
            let ((name, other), format) = {
                let s = shared.borrow();
                (s.chosen_model(choice)?, s.prompt_format(Some(choice)))
            };
            let ranking = rank_with(shared, &other, format, history, candidates, options)
                .await
                .map_err(|e| format!("with {name}: {e}"))?;
            Some(Box::new(Comparison {
                model: name,
                ranking,
            }))
        }
    };
    let popularity = candidate_popularity(shared, &ranking);
    reply(Response::Ranked {
        ranking,
        ms,
        comparison,
        popularity,
    });
    Ok(())
}

/// The `top` titles of the loaded dataset's catalogue for `history`, with the model in use.
pub async fn recommend(
    shared: &Shared,
    history: &[String],
    top: usize,
    reply: &dyn Fn(Response),
) -> Result<(), Problem> {
    let (lm, data) = {
        let s = shared.borrow();
        let lm = s.model()?;
        let data = s.dataset().map_err(|_| {
            "load a dataset in the Data card first: its catalogue is what is searched".to_string()
        })?;
        (lm, data)
    };
    let t = now_ms();
    let found = recalign_core::recommend::recommend_in(
        &lm,
        &data.0,
        history,
        SearchOptions {
            top,
            ..Default::default()
        },
    )
    .await
    .map_err(Problem::from)?;
    let ms = now_ms() - t;
    let popularity = title_popularity(
        &data,
        found.recommendations.iter().map(|r| r.title.as_str()),
    );
    reply(Response::Recommended {
        found,
        popularity,
        ms,
    });
    Ok(())
}

/// Generates an answer to LLaRA's prompt and names the candidate it picks, if exactly one.
pub async fn generate(
    shared: &Shared,
    history: &[String],
    candidates: &[String],
    max_new_tokens: usize,
    reply: &dyn Fn(Response),
) -> Result<(), Problem> {
    let lm = shared.borrow().model()?;
    let t = now_ms();
    let prompt = lm
        .tokenizer
        .encode(&recommendation_prompt(history, candidates))
        .map_err(Problem::from)?;
    let generation = lm
        .generate(&prompt, max_new_tokens)
        .await
        .map_err(Problem::from)?;
    let named = named_candidate(&generation.text, candidates);
    reply(Response::Generated {
        generation,
        named,
        ms: now_ms() - t,
    });
    Ok(())
}

/// Ranks with `lm` in `format`; a hybrid model (its adapter carries LLaRA's projector) gives
/// each title found in its catalogue (the adapter's own, else the loaded dataset's) its item
/// slot and reads other titles as text ([`recalign_core::hybrid::rank`]).
pub async fn rank_with(
    shared: &Shared,
    lm: &LanguageModel,
    format: PromptFormat,
    history: &[String],
    candidates: &[String],
    options: ScoreOptions,
) -> Result<Ranking, Problem> {
    if recalign_core::train::data::is_hybrid(lm) {
        let catalogue = match recalign_core::hybrid::model_catalogue(lm) {
            Some(c) => c,
            None => std::sync::Arc::new(recalign_core::hybrid::ItemCatalogue::of(
                &shared
                    .borrow()
                    .dataset()
                    .map_err(|_| {
                        "this adapter reads each title's catalogue item (hybrid item tokens) and \
                         does not carry its catalogue: load its dataset in the Data card first"
                            .to_string()
                    })?
                    .0,
            )),
        };
        return recalign_core::hybrid::rank(lm, &catalogue, format, history, candidates, options)
            .await
            .map_err(Problem::from);
    }
    let domain = shared.borrow().domain();
    lm.rank_as(format, domain, history, candidates, options)
        .await
        .map_err(Problem::from)
}

/// Each ranked title's training count in the loaded dataset; `None` with no dataset.
fn candidate_popularity(shared: &Shared, ranking: &Ranking) -> Option<CandidatePopularity> {
    let data = shared.borrow().dataset().ok()?;
    Some(title_popularity(
        &data,
        ranking.ranked.iter().map(|c| c.candidate.title.as_str()),
    ))
}

/// The training popularity of `titles` in a loaded dataset.
fn title_popularity<'a>(
    data: &(InteractionLog, Splits),
    titles: impl Iterator<Item = &'a str>,
) -> CandidatePopularity {
    let (log, splits) = data;
    let by_title: std::collections::HashMap<&str, u32> = log
        .catalogue
        .items()
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let count = splits.popularity.get(i).copied().unwrap_or(0);
            (item.title.trim(), count)
        })
        .collect();
    CandidatePopularity {
        counts: titles.map(|t| by_title.get(t.trim()).copied()).collect(),
        max: splits.popularity.iter().copied().max().unwrap_or(0),
        head_floor: recalign_core::eval::head_floor(&splits.popularity),
    }
}
