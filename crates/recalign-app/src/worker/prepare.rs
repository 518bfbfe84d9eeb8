//! A training request's inputs in the worker: the SFT examples (through the core's
//! `train::prepare`, as the CLI), or the preference pairs with their reference log-probs, the
//! oracle trained first when RosePO needs it, and a fresh hybrid projector.

use recalign_core::data::pairs::{Mixture, PairConfig, RejectStrategy};
use recalign_core::losses::LossKind;
use recalign_core::prompt::PromptFormat;
use recalign_core::train::data::{self as train_data, PairScores};
use recalign_core::train::{
    Adapter, SftPlan, SftRecipe, reference_log_probs, sft_data, with_adapter,
};

use super::data::train_oracle;
use super::persist::Prepared;
use super::session::{Failure, Problem, Shared};
use crate::protocol::{Lane, Response, TrainRequest, TrainStage};

/// Prepares a run's inputs: the prepared examples or pairs, what the run starts from, the
/// inputs used and dropped, and the adapter it starts from (preference runs: the latest SFT).
pub(super) async fn prepare(
    shared: &Shared,
    base: &recalign_core::LanguageModel,
    request: &TrainRequest,
    reply: &dyn Fn(Response),
) -> Result<(Prepared, String, usize, usize, Option<Adapter>), Failure> {
    let progress = |stage: &str, done: usize, total: usize| {
        reply(Response::Progress {
            lane: Lane::Training,
            stage: stage.into(),
            done: done as u64,
            total: Some(total as u64),
        })
    };
    let settings = &request.settings;
    let imported = matches!(
        request.stage,
        TrainStage::Preference {
            imported_pairs: true,
            ..
        }
    );
    // Imported pairs need no dataset.
    let data = if imported {
        None
    } else {
        Some(
            shared
                .borrow()
                .dataset()
                .map_err(|m| ("starting training".to_string(), m))?,
        )
    };
    let examples = data.as_ref().map_or_else(Vec::new, |d| {
        train_data::draw(&d.1.train, request.prompts, settings.seed)
    });
    progress("Tokenising the training prompts", 0, examples.len());
    match &request.stage {
        TrainStage::Sft => {
            let Some(data) = &data else {
                unreachable!("SFT always loads the dataset")
            };
            let fresh = if request.hybrid {
                Some(fresh_hybrid(shared, base, request, reply).await?)
            } else {
                None
            };
            // The CLI's recipe for the chosen prompt: compact documents with one-target
            // examples mixed in (so the adapter still answers LLaRA's prompt with a listed
            // title), or LLaRA's one-target prompts.
            let plan = SftPlan {
                recipe: match request.format {
                    PromptFormat::Llara => SftRecipe::OneTarget,
                    PromptFormat::Compact => SftRecipe::sequence(),
                },
                max_examples: request.prompts,
                template: None,
                hybrid: request.hybrid,
                seed: settings.seed,
            };
            let sft = sft_data(base, &data.0, &data.1, &plan)
                .map(|d| d.examples)
                .map_err(|e| ("preparing SFT".to_string(), e.into()))?;
            let (n, skipped) = (sft.items.len(), sft.too_long);
            Ok((
                Prepared::Sft(sft.items),
                "the base model".into(),
                n,
                skipped,
                fresh,
            ))
        }
        TrainStage::Preference {
            loss,
            strategies,
            negatives,
            ..
        } => {
            let during = format!("preparing {}", loss.kind.label());
            let err = |e: recalign_core::Error| (during.clone(), e.into());
            // Preference training starts from the latest SFT adapter, which is also the frozen
            // reference (method.md §3); without one, from the base model.
            let sft = shared
                .borrow()
                .adapters
                .iter()
                .rev()
                .find(|a| a.stage == Some(TrainStage::Sft))
                .map(|a| (a.name.clone(), a.adapter.clone()));
            if let Some((name, a)) = &sft
                && a.prompt != request.format
            {
                return Err((
                    during,
                    format!(
                        "{name} was trained in the {} prompt and this run would use the {}; \
                         pick the same prompt format for both",
                        format_name(a.prompt),
                        format_name(request.format)
                    )
                    .into(),
                ));
            }
            let (reference, start) = match &sft {
                Some((name, a)) => (with_adapter(base, a).map_err(err)?, name.clone()),
                None => (base.clone(), "the base model".to_string()),
            };
            let pairs = match &data {
                None => {
                    let (name, pairs) =
                        shared.borrow().imported_pairs.clone().ok_or_else(|| {
                            (during.clone(), "load a preference JSONL first".into())
                        })?;
                    if loss.kind == LossKind::Rosepo && pairs.iter().any(|p| p.eps.is_none()) {
                        return Err((
                            during,
                            format!(
                                "RosePO needs each pair's smoothing factor, and {name} has pairs \
                                 without \"eps\" (recalign pairs build --oracle writes it)"
                            )
                            .into(),
                        ));
                    }
                    pairs
                }
                Some(data) => {
                    let (log, splits) = &**data;
                    // Only RosePO reads the oracle's smoothing; without one, the Data card's
                    // oracle training runs first with its defaults (its result shows there).
                    let oracle_scores = if loss.kind == LossKind::Rosepo {
                        let oracle = ensure_oracle(shared, reply).await.map_err(|m| {
                            (
                                during.clone(),
                                format!("training the SASRec oracle for RosePO's smoothing: {m}")
                                    .into(),
                            )
                        })?;
                        Some(oracle.candidate_scores(&examples).await.map_err(err)?)
                    } else {
                        None
                    };
                    let model_scores = if strategies.contains(&RejectStrategy::SelfHard) {
                        Some(
                            train_data::model_scores(
                                &reference,
                                log,
                                &examples,
                                request.format,
                                None,
                                |d, t| progress("Scoring candidates for self-hard negatives", d, t),
                            )
                            .await
                            .map_err(err)?,
                        )
                    } else {
                        None
                    };
                    let config = PairConfig {
                        mixture: Mixture::OnePerStrategy(strategies.clone()),
                        negatives: *negatives,
                        seed: settings.seed,
                        ..PairConfig::default()
                    };
                    train_data::preference_pairs(
                        log,
                        &splits.popularity,
                        &examples,
                        request.format,
                        None,
                        PairScores {
                            model: model_scores.as_deref(),
                            oracle: oracle_scores.as_deref(),
                        },
                        &config,
                    )
                    .map_err(err)?
                }
            };
            let hybrid = sft.as_ref().is_some_and(|(_, a)| a.hybrid.is_some());
            let tokenised =
                train_data::tokenise_pairs(base, &pairs, *negatives, hybrid).map_err(err)?;
            let (n, skipped) = (tokenised.items.len(), tokenised.too_long);
            let cached = if loss.kind.uses_reference() {
                reference_log_probs(&reference, &tokenised.items, |d, t| {
                    progress("Reference log-probs (computed once)", d, t)
                })
                .await
                .map_err(err)?
            } else {
                tokenised
                    .items
                    .iter()
                    .map(|p| vec![0.0; p.answers.len()])
                    .collect()
            };
            Ok((
                Prepared::Preference {
                    pairs: tokenised.items,
                    reference: cached,
                },
                start,
                n,
                skipped,
                sft.map(|(_, a)| a),
            ))
        }
    }
}

/// The session's SASRec oracle, trained first with the Data card's defaults when there is none.
async fn ensure_oracle(
    shared: &Shared,
    reply: &dyn Fn(Response),
) -> Result<recalign_core::oracle::sasrec::SasRecOracle, Problem> {
    if shared.borrow().oracle.is_none() {
        let d = recalign_core::oracle::sasrec::SasRecTraining::default();
        train_oracle(shared, d.epochs, d.learning_rate, reply).await?;
    }
    shared
        .borrow()
        .oracle
        .clone()
        .ok_or_else(|| "the SASRec oracle is missing after its training".into())
}

/// A fresh adapter of the request's shape with LLaRA's projector over the oracle's item table,
/// fed at the lowest adapted layer (the CLI's `train sft --hybrid`). Without an oracle, the
/// Data card's oracle training runs first with its defaults (its result shows there).
async fn fresh_hybrid(
    shared: &Shared,
    base: &recalign_core::LanguageModel,
    request: &TrainRequest,
    reply: &dyn Fn(Response),
) -> Result<Adapter, Failure> {
    let fail = |m: Problem| ("preparing hybrid SFT".to_string(), m);
    let oracle = ensure_oracle(shared, reply)
        .await
        .map_err(|m| fail(format!("training the SASRec oracle for the item tokens: {m}").into()))?;
    let (items, d_item) = oracle.item_table().await.map_err(|e| fail(e.into()))?;
    let c = &base.model.config;
    let layer = request
        .lora
        .layer_range(c.n_layers)
        .map_err(|e| fail(e.into()))?
        .start;
    let seed = request.settings.seed;
    let mut adapter = Adapter::fresh(&request.lora, c, seed).map_err(|e| fail(e.into()))?;
    let catalogue =
        recalign_core::hybrid::ItemCatalogue::of(&shared.borrow().dataset().map_err(fail)?.0);
    adapter.hybrid = Some(
        recalign_core::hybrid::HybridWeights::fresh(items, d_item, c.hidden_size, layer, seed)
            .and_then(|h| h.with_catalogue(catalogue))
            .map_err(|e| fail(e.into()))?,
    );
    adapter.prompt = request.format;
    Ok(adapter)
}

fn format_name(format: PromptFormat) -> &'static str {
    match format {
        PromptFormat::Llara => "LLaRA",
        PromptFormat::Compact => "compact",
    }
}
