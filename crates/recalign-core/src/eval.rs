//! Evaluation (method.md §2): reading a generated answer against the candidate set (valid iff
//! exactly one candidate title occurs in it), ranking metrics, popularity bias and coverage, and
//! the driver that evaluates a model on a split.

mod metrics;

pub use metrics::{
    BiasMetrics, CUTOFFS, HEAD_SHARE, RankMetrics, RankMetricsBuilder, bias_metrics,
    expected_hit_at_1, head_floor, popularity_by_rank,
};

/// The candidate a generated `answer` names, if exactly one does.
///
/// Matching is a case-insensitive substring test; a title that is a substring of another matched
/// title counts only if the longer one is absent (so "Babe" inside "Babe: Pig in the City" does
/// not make the answer ambiguous). Only the answer's first line counts, as in LLaRA's evaluation
/// (`generate.strip().split("\n")[0]`): a model that names a title and then goes on to list
/// more has still answered with that title.
pub fn named_candidate(answer: &str, candidates: &[String]) -> Option<usize> {
    let answer = answer.trim().lines().next().unwrap_or("").to_lowercase();
    let lower: Vec<String> = candidates.iter().map(|c| c.trim().to_lowercase()).collect();
    let present: Vec<usize> = (0..lower.len())
        .filter(|&i| !lower[i].is_empty() && answer.contains(&lower[i]))
        .collect();
    let maximal: Vec<usize> = present
        .iter()
        .copied()
        .filter(|&i| {
            !present
                .iter()
                .any(|&j| j != i && lower[j].len() > lower[i].len() && lower[j].contains(&lower[i]))
        })
        .collect();
    match maximal.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exactly_one_title_is_valid() {
        let cands = c(&["Heat", "Casino", "Babe"]);
        assert_eq!(named_candidate("I'd pick casino.", &cands), Some(1));
        assert_eq!(named_candidate("Heat or Casino", &cands), None);
        assert_eq!(named_candidate("Jumanji", &cands), None);
    }

    #[test]
    fn only_the_first_line_is_read() {
        let cands = c(&["Heat", "Casino", "Babe"]);
        assert_eq!(named_candidate("\n Casino\nHeat\nBabe", &cands), Some(1));
        assert_eq!(named_candidate("Jumanji\nCasino", &cands), None);
    }

    #[test]
    fn a_title_inside_a_longer_matched_title_does_not_count() {
        let cands = c(&["Babe", "Babe: Pig in the City", "Heat"]);
        assert_eq!(named_candidate("Babe: Pig in the City", &cands), Some(1));
        assert_eq!(named_candidate("Babe", &cands), Some(0));
    }
}

/// Generation metrics (method.md §2): an answer is valid iff it names exactly one candidate.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenerationMetrics {
    /// Examples generated for.
    pub examples: usize,
    /// Share of answers naming exactly one candidate.
    pub valid_ratio: f64,
    /// Share of all answers that name the target (HitRatio@1 over the total).
    pub hit_ratio_at_1: f64,
    /// The generated answers in example order, so an invalid one can be read.
    #[serde(default)]
    pub answers: Vec<String>,
}

/// Everything `recalign eval` reports for one model on one split.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalReport {
    /// Ranking of the candidates by summed answer log-prob.
    pub ranking: RankMetrics,
    /// Bias of the top-1 pick.
    pub bias_at_1: BiasMetrics,
    /// Bias of the top-5 list.
    pub bias_at_5: BiasMetrics,
    /// Greedy generation, when asked for.
    pub generation: Option<GenerationMetrics>,
    /// Mean training popularity of the item ranked at each position (1st, 2nd, ...): a curve
    /// that falls steeply shows a model that ranks by popularity.
    #[serde(default)]
    pub popularity_by_rank: Vec<f64>,
    /// Each example's expected hit at 1 (for intervals and paired tests, `crate::stats`).
    #[serde(default)]
    pub hits_at_1: Vec<f64>,
    /// HR@1 over the examples whose target is a long-tail item (NaN-free: 0 when none).
    #[serde(default)]
    pub tail_hr_at_1: f64,
    /// The random and popularity rankers on the same candidates: every accuracy and bias figure
    /// is read against them (a random ranker already has AvgPop@1 near the candidates' mean).
    #[serde(default)]
    pub baselines: Option<Baselines>,
    /// Each example's candidate scores, in candidate order (for diagnostics such as
    /// `recalign eval --scores-out`; not serialised, the report stays small).
    #[serde(skip)]
    pub scores: Vec<Vec<f32>>,
}

/// A reference ranker's figures on the same examples and candidates.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BaselineReport {
    /// Ranking metrics.
    pub ranking: RankMetrics,
    /// AveragePopularity@1 (in expectation over ties).
    pub average_popularity_at_1: f64,
    /// TailPercentage@1 (in expectation over ties).
    pub tail_at_1: f64,
    /// HR@1 on long-tail targets.
    pub tail_hr_at_1: f64,
    /// Each example's expected hit at 1.
    pub hits_at_1: Vec<f64>,
}

/// The baselines every model is read against.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Baselines {
    /// Uniformly random order: HR@1 = 1/n exactly; bias = the candidates' own.
    pub random: BaselineReport,
    /// Training popularity (interactions per item), the strongest non-personal ranker.
    pub popularity: BaselineReport,
}

/// Accumulates a [`BaselineReport`].
#[derive(Default)]
struct BaselineBuilder {
    ranking: RankMetricsBuilder,
    pop: f64,
    tail: f64,
    tail_hits: f64,
    hits: Vec<f64>,
}

impl BaselineBuilder {
    /// `scores` of the candidates, whose popularities are `pops`, tail flags `tails`.
    fn add(&mut self, scores: &[f32], target: usize, pops: &[u32], tails: &[bool]) {
        let hit = self.ranking.add(scores, target);
        self.hits.push(hit);
        if tails.get(target).copied().unwrap_or(false) {
            self.tail_hits += hit;
        }
        // Top-1 in expectation: every candidate tied at the best score equally likely.
        let best = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let tied: Vec<usize> = (0..scores.len()).filter(|&i| scores[i] == best).collect();
        let w = 1.0 / tied.len().max(1) as f64;
        self.pop += tied.iter().map(|&i| f64::from(pops[i]) * w).sum::<f64>();
        self.tail += tied.iter().filter(|&&i| tails[i]).count() as f64 * w;
    }

    fn finish(self, tail_targets: usize) -> BaselineReport {
        let n = self.hits.len().max(1) as f64;
        BaselineReport {
            ranking: self.ranking.finish(),
            average_popularity_at_1: self.pop / n,
            tail_at_1: self.tail / n,
            tail_hr_at_1: self.tail_hits / tail_targets.max(1) as f64,
            hits_at_1: self.hits,
        }
    }
}

/// A ranking prompt's ids and each candidate's answer ids, in candidate order, and the prompt's
/// hybrid item slots (empty for a text-only prompt).
pub type RankPrompt = (Vec<u32>, Vec<Vec<u32>>, crate::model::Slots);

/// A generation prompt's ids and its hybrid item slots.
pub type GeneratePrompt = (Vec<u32>, crate::model::Slots);

/// How [`evaluate_with`] prompts the model for one example.
pub struct Prompts<'a> {
    /// The ranking prompt and answers.
    pub rank: &'a dyn Fn(&crate::data::split::Example) -> crate::Result<RankPrompt>,
    /// The generation prompt (LLaRA's, with the candidate list), when generating.
    pub generate: &'a dyn Fn(&crate::data::split::Example) -> crate::Result<GeneratePrompt>,
}

/// Evaluates `lm` on `examples` with the LLaRA prompt `request` gives (a user-turn text):
/// ranks each example's candidates (and, with `max_new_tokens > 0`, generates an answer),
/// calling `progress(done, total)` after each.
pub async fn evaluate(
    lm: &crate::LanguageModel,
    examples: &[crate::data::split::Example],
    catalogue: &crate::data::Catalogue,
    popularity: &[u32],
    request: &dyn Fn(&crate::data::split::Example) -> String,
    max_new_tokens: usize,
    progress: impl FnMut(usize, usize),
) -> crate::Result<EvalReport> {
    let rank = |e: &crate::data::split::Example| {
        let titles = catalogue.titles(&e.candidates);
        Ok((
            lm.request_prompt_ids(&request(e), &titles)?,
            lm.candidate_ids(&titles)?,
            crate::model::Slots::default(),
        ))
    };
    let generate = |e: &crate::data::split::Example| {
        Ok((
            lm.request_prompt_ids(&request(e), &catalogue.titles(&e.candidates))?,
            crate::model::Slots::default(),
        ))
    };
    let prompts = Prompts {
        rank: &rank,
        generate: &generate,
    };
    evaluate_with(
        lm,
        examples,
        catalogue,
        popularity,
        &prompts,
        max_new_tokens,
        progress,
    )
    .await
}

/// [`evaluate`] with any prompt format: `prompts` gives each example's ranking prompt and
/// answers (scored as continuations, the prompt run once) and its generation prompt. The
/// random and popularity rankers are evaluated on the same candidates alongside.
pub async fn evaluate_with(
    lm: &crate::LanguageModel,
    examples: &[crate::data::split::Example],
    catalogue: &crate::data::Catalogue,
    popularity: &[u32],
    prompts: &Prompts<'_>,
    max_new_tokens: usize,
    progress: impl FnMut(usize, usize),
) -> crate::Result<EvalReport> {
    let mut reports = evaluate_many(
        &[lm],
        examples,
        catalogue,
        popularity,
        prompts,
        max_new_tokens,
        progress,
    )
    .await?;
    reports
        .pop()
        .ok_or_else(|| crate::Error::Train("no model to evaluate".into()))
}

/// One model's tallies in [`evaluate_many`].
#[derive(Default)]
struct Tally {
    ranking: RankMetricsBuilder,
    top: Vec<Vec<crate::data::ItemId>>,
    hits: Vec<f64>,
    scores: Vec<Vec<f32>>,
    tail_hits: f64,
    valid: usize,
    generated_hits: usize,
    answers: Vec<String>,
}

/// [`evaluate_with`] for several models on the same examples and prompts, one report each in
/// the order of `lms`. The models must be one base model with different adapters (or none):
/// the layers below the lowest adapted one then run once per example for all of them
/// ([`crate::LanguageModel::score_answer_ids_with`]). Prompts are built with the first model's
/// tokenizer, which they all share.
pub async fn evaluate_many(
    lms: &[&crate::LanguageModel],
    examples: &[crate::data::split::Example],
    catalogue: &crate::data::Catalogue,
    popularity: &[u32],
    prompts: &Prompts<'_>,
    max_new_tokens: usize,
    mut progress: impl FnMut(usize, usize),
) -> crate::Result<Vec<EvalReport>> {
    let Some((first, others)) = lms.split_first() else {
        return Err(crate::Error::Train("no model to evaluate".into()));
    };
    let mut tallies: Vec<Tally> = lms.iter().map(|_| Tally::default()).collect();
    let (mut random, mut by_popularity) = (BaselineBuilder::default(), BaselineBuilder::default());
    let floor = head_floor(popularity);
    let pop = |i: crate::data::ItemId| popularity.get(i.index()).copied().unwrap_or(0);
    let mut tail_targets = 0usize;
    for (n, e) in examples.iter().enumerate() {
        let titles = catalogue.titles(&e.candidates);
        let target = e
            .candidates
            .iter()
            .position(|&c| c == e.target)
            .ok_or_else(|| {
                crate::Error::Train(format!("example {n} has no target among its candidates"))
            })?;
        let (ids, answers, slots) = (prompts.rank)(e)?;
        let per_model = first
            .score_hybrid_with(others, &ids, &slots, &answers)
            .await?;
        let pops: Vec<u32> = e.candidates.iter().map(|&c| pop(c)).collect();
        let tails: Vec<bool> = pops.iter().map(|&p| p < floor).collect();
        let tail_target = tails[target];
        tail_targets += usize::from(tail_target);
        random.add(&vec![0.0; answers.len()], target, &pops, &tails);
        let pop_scores: Vec<f32> = pops.iter().map(|&p| p as f32).collect();
        by_popularity.add(&pop_scores, target, &pops, &tails);
        let generate_ids = if max_new_tokens > 0 {
            Some((prompts.generate)(e)?)
        } else {
            None
        };
        for ((t, values), lm) in tallies.iter_mut().zip(per_model).zip(lms) {
            let hit = t.ranking.add(&values, target);
            t.hits.push(hit);
            if tail_target {
                t.tail_hits += hit;
            }
            let mut order: Vec<usize> = (0..values.len()).collect();
            order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
            t.top.push(order.iter().map(|&i| e.candidates[i]).collect());
            t.scores.push(values);
            if let Some((ids, slots)) = &generate_ids {
                let g = lm.generate_with(ids, slots, max_new_tokens).await?;
                if let Some(i) = named_candidate(&g.text, &titles) {
                    t.valid += 1;
                    t.generated_hits += usize::from(i == target);
                }
                t.answers.push(g.text);
            }
        }
        progress(n + 1, examples.len());
    }
    let total = examples.len().max(1) as f64;
    let baselines = Baselines {
        random: random.finish(tail_targets),
        popularity: by_popularity.finish(tail_targets),
    };
    Ok(tallies
        .into_iter()
        .map(|t| EvalReport {
            ranking: t.ranking.finish(),
            bias_at_1: bias_metrics(&t.top, popularity, 1),
            bias_at_5: bias_metrics(&t.top, popularity, 5),
            popularity_by_rank: popularity_by_rank(&t.top, popularity),
            generation: (max_new_tokens > 0).then(|| GenerationMetrics {
                examples: examples.len(),
                valid_ratio: t.valid as f64 / total,
                hit_ratio_at_1: t.generated_hits as f64 / total,
                answers: t.answers,
            }),
            hits_at_1: t.hits,
            tail_hr_at_1: t.tail_hits / tail_targets.max(1) as f64,
            baselines: Some(baselines.clone()),
            scores: t.scores,
        })
        .collect())
}
