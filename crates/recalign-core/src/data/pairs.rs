//! RosePO's preference pairs (method.md §4): which candidate becomes the rejected answer
//! (random, popular, semantic-similar, self-hard), how strategies are mixed, K negatives for
//! S-DPO, and the per-pair smoothing factor from a preference oracle. Also the TRL-style
//! `prompt`/`chosen`/`rejected` JSONL every training loss reads.

use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::split::Example;
use super::{Catalogue, DataError, DataErrorKind, ItemId};

/// How a rejected candidate is chosen.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectStrategy {
    /// Uniform among the other candidates (the DPO / S-DPO baseline).
    Random,
    /// The most popular other candidate (harmlessness: popularity bias).
    Popular,
    /// The other candidate whose title is most similar to the target's (harmlessness:
    /// semantic hallucination). Similarity: cosine of character-trigram counts.
    SemanticSimilar,
    /// The other candidate the model itself scores highest (helpfulness: its most confident
    /// mistake). Needs the model's candidate scores.
    SelfHard,
}

impl RejectStrategy {
    /// All strategies.
    pub const ALL: [RejectStrategy; 4] = [
        RejectStrategy::Random,
        RejectStrategy::Popular,
        RejectStrategy::SemanticSimilar,
        RejectStrategy::SelfHard,
    ];

    /// The kebab-case name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RejectStrategy::Random => "random",
            RejectStrategy::Popular => "popular",
            RejectStrategy::SemanticSimilar => "semantic-similar",
            RejectStrategy::SelfHard => "self-hard",
        }
    }
}

/// What the strategies may look at for one example.
#[derive(Clone, Copy, Debug)]
pub struct CandidateContext<'a> {
    /// Titles.
    pub catalogue: &'a Catalogue,
    /// Training interactions per item.
    pub popularity: &'a [u32],
    /// The model's score per candidate (same order as `Example::candidates`), for self-hard.
    pub model_scores: Option<&'a [f32]>,
}

/// The example's non-target candidates ordered best-first for `strategy` (ties keep candidate
/// order). Random draws from `rng`. Never contains the target or an item outside the candidates.
pub fn ranked_negatives(
    strategy: RejectStrategy,
    example: &Example,
    ctx: CandidateContext<'_>,
    rng: &mut impl Rng,
) -> Result<Vec<ItemId>, DataError> {
    let others: Vec<(usize, ItemId)> = example
        .candidates
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, c)| c != example.target)
        .collect();
    let by_key = |key: &dyn Fn(usize, ItemId) -> f64| -> Vec<ItemId> {
        let mut keyed: Vec<(f64, usize, ItemId)> = others
            .iter()
            .map(|&(pos, c)| (key(pos, c), pos, c))
            .collect();
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        keyed.into_iter().map(|(_, _, c)| c).collect()
    };
    Ok(match strategy {
        RejectStrategy::Random => {
            let mut items: Vec<ItemId> = others.iter().map(|&(_, c)| c).collect();
            items.shuffle(rng);
            items
        }
        RejectStrategy::Popular => {
            by_key(&|_, c| f64::from(ctx.popularity.get(c.index()).copied().unwrap_or(0)))
        }
        RejectStrategy::SemanticSimilar => {
            let target = trigrams(ctx.catalogue.title(example.target));
            by_key(&|_, c| cosine(&target, &trigrams(ctx.catalogue.title(c))))
        }
        RejectStrategy::SelfHard => {
            let scores = ctx.model_scores.ok_or_else(|| {
                DataError::setting("self-hard needs the model's candidate scores")
            })?;
            if scores.len() != example.candidates.len() {
                return Err(DataError::setting(format!(
                    "self-hard got {} scores for {} candidates",
                    scores.len(),
                    example.candidates.len()
                )));
            }
            by_key(&|pos, _| f64::from(scores[pos]))
        }
    })
}

/// Lower-cased character trigrams of a title padded with spaces, with counts.
fn trigrams(title: &str) -> HashMap<[char; 3], f64> {
    let chars: Vec<char> = format!("  {} ", title.to_lowercase()).chars().collect();
    let mut out = HashMap::new();
    for w in chars.windows(3) {
        *out.entry([w[0], w[1], w[2]]).or_insert(0.0) += 1.0;
    }
    out
}

fn cosine(a: &HashMap<[char; 3], f64>, b: &HashMap<[char; 3], f64>) -> f64 {
    let dot: f64 = a.iter().filter_map(|(k, x)| b.get(k).map(|y| x * y)).sum();
    let norm = |m: &HashMap<[char; 3], f64>| m.values().map(|v| v * v).sum::<f64>().sqrt();
    let d = norm(a) * norm(b);
    if d == 0.0 { 0.0 } else { dot / d }
}

/// Title similarity used by [`RejectStrategy::SemanticSimilar`], in [0, 1].
pub fn title_similarity(a: &str, b: &str) -> f64 {
    cosine(&trigrams(a), &trigrams(b))
}

/// Maps an oracle's scores to RosePO's smoothing factor.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Smoothing {
    /// Divides the score gap (higher = softer).
    pub temperature: f64,
    /// Upper bound, strictly below 0.5 (at 0.5 the pair carries no preference).
    pub eps_max: f64,
}

impl Default for Smoothing {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            eps_max: 0.4,
        }
    }
}

impl Smoothing {
    /// Checks the bounds.
    pub fn check(&self) -> Result<(), DataError> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(DataError::setting("smoothing temperature must be positive"));
        }
        if !(0.0..0.5).contains(&self.eps_max) {
            return Err(DataError::setting("eps_max must be in [0, 0.5)"));
        }
        Ok(())
    }

    /// `eps = min(eps_max, sigmoid((s_rejected - s_chosen) / T))`: the oracle's probability
    /// that the "rejected" item is in fact preferred, capped. Monotone non-decreasing in
    /// `s_rejected - s_chosen`; non-finite scores give `eps_max` (maximal doubt).
    pub fn factor(&self, score_chosen: f64, score_rejected: f64) -> f64 {
        let z = (score_rejected - score_chosen) / self.temperature;
        if z.is_nan() {
            return self.eps_max;
        }
        let p = 1.0 / (1.0 + (-z).exp());
        p.min(self.eps_max)
    }
}

/// How rejected items are drawn for each prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mixture {
    /// One pair (with K negatives) per listed strategy per prompt.
    OnePerStrategy(Vec<RejectStrategy>),
    /// One pair per prompt; each of its K negatives comes from a strategy drawn with these weights.
    Sampled(Vec<(RejectStrategy, f64)>),
}

/// Settings for [`build_pairs`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairConfig {
    /// Strategy mixture.
    pub mixture: Mixture,
    /// Rejected items per pair (1 for DPO, K for S-DPO).
    pub negatives: usize,
    /// Seeds random choices (combined with the example's user and target).
    pub seed: u64,
    /// Oracle score to smoothing factor mapping.
    pub smoothing: Smoothing,
}

impl Default for PairConfig {
    fn default() -> Self {
        Self {
            mixture: Mixture::OnePerStrategy(vec![RejectStrategy::Random]),
            negatives: 1,
            seed: 2024,
            smoothing: Smoothing::default(),
        }
    }
}

/// One preference example, in TRL's standard layout plus recalign's extras.
///
/// `prompt` is the user-turn text (without the chat template, which the trainer adds), `chosen`
/// and `rejected` are bare titles (the trainer appends end-of-sequence).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    /// The request.
    pub prompt: String,
    /// The preferred answer.
    pub chosen: String,
    /// The (first) dispreferred answer.
    pub rejected: String,
    /// Further dispreferred answers (S-DPO's K negatives).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_rejected: Vec<String>,
    /// RosePO smoothing factor of (chosen, rejected), when an oracle scored the pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    /// Smoothing factors of `more_rejected`, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_eps: Vec<f64>,
    /// Strategy of each rejected answer (`rejected` first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strategies: Vec<RejectStrategy>,
    /// All candidate titles shown in the prompt (for evaluation and the page).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
    /// How `prompt` is written: a LLaRA request (a ChatML user turn; files without the field),
    /// or a compact document whose answers are title lines.
    #[serde(default, skip_serializing_if = "crate::prompt::PromptFormat::is_llara")]
    pub format: crate::prompt::PromptFormat,
    /// The history's catalogue items (0-based ids), in the prompt's order: what a hybrid
    /// adapter's item slots read ([`crate::hybrid`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history_items: Vec<u32>,
    /// The candidates' catalogue items, in `candidates`' order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidate_items: Vec<u32>,
}

/// Per-example inputs to [`build_pairs`] besides the example itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExampleScores<'a> {
    /// The LLM's score per candidate (self-hard).
    pub model: Option<&'a [f32]>,
    /// The oracle's score per candidate (smoothing).
    pub oracle: Option<&'a [f32]>,
}

/// Builds the pairs of one example. `prompt` is its request text.
pub fn pairs_for_example(
    example: &Example,
    prompt: &str,
    catalogue: &Catalogue,
    popularity: &[u32],
    scores: ExampleScores<'_>,
    config: &PairConfig,
) -> Result<Vec<PreferencePair>, DataError> {
    if config.negatives == 0 {
        return Err(DataError::setting("negatives must be at least 1"));
    }
    config.smoothing.check()?;
    let ctx = CandidateContext {
        catalogue,
        popularity,
        model_scores: scores.model,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(
        config.seed ^ (u64::from(example.user) << 32 | u64::from(example.target.0)),
    );
    let groups: Vec<Vec<(ItemId, RejectStrategy)>> = match &config.mixture {
        Mixture::OnePerStrategy(list) => {
            let mut groups = Vec::new();
            for &s in list {
                let ranked = ranked_negatives(s, example, ctx, &mut rng)?;
                groups.push(
                    ranked
                        .into_iter()
                        .take(config.negatives)
                        .map(|c| (c, s))
                        .collect(),
                );
            }
            groups
        }
        Mixture::Sampled(weights) => {
            let total: f64 = weights.iter().map(|w| w.1.max(0.0)).sum();
            if total.is_nan() || total <= 0.0 {
                return Err(DataError::setting(
                    "mixture weights must have a positive sum",
                ));
            }
            let mut rankings: HashMap<RejectStrategy, Vec<ItemId>> = HashMap::new();
            let mut picked: Vec<(ItemId, RejectStrategy)> = Vec::new();
            for _ in 0..config.negatives {
                let mut x = rng.random::<f64>() * total;
                let mut strategy = weights[weights.len() - 1].0;
                for &(s, w) in weights {
                    if x < w.max(0.0) {
                        strategy = s;
                        break;
                    }
                    x -= w.max(0.0);
                }
                if let std::collections::hash_map::Entry::Vacant(slot) = rankings.entry(strategy) {
                    slot.insert(ranked_negatives(strategy, example, ctx, &mut rng)?);
                }
                let next = rankings[&strategy]
                    .iter()
                    .copied()
                    .find(|c| !picked.iter().any(|p| p.0 == *c));
                if let Some(c) = next {
                    picked.push((c, strategy));
                }
            }
            vec![picked]
        }
    };
    let position = |item: ItemId| example.candidates.iter().position(|&c| c == item);
    let eps = |item: ItemId| -> Option<f64> {
        let oracle = scores.oracle?;
        let w = oracle.get(position(example.target)?)?;
        let l = oracle.get(position(item)?)?;
        Some(config.smoothing.factor(f64::from(*w), f64::from(*l)))
    };
    let candidates = catalogue.titles(&example.candidates);
    Ok(groups
        .into_iter()
        .filter_map(|group| {
            let (&(first, _), rest) = group.split_first()?;
            Some(PreferencePair {
                prompt: prompt.to_string(),
                chosen: catalogue.title(example.target).to_string(),
                rejected: catalogue.title(first).to_string(),
                more_rejected: rest
                    .iter()
                    .map(|&(c, _)| catalogue.title(c).to_string())
                    .collect(),
                eps: eps(first),
                more_eps: rest.iter().filter_map(|&(c, _)| eps(c)).collect(),
                strategies: group.iter().map(|&(_, s)| s).collect(),
                candidates: candidates.clone(),
                // The caller sets the format it wrote `prompt` in.
                format: Default::default(),
                history_items: example.history.iter().map(|i| i.0).collect(),
                candidate_items: example.candidates.iter().map(|i| i.0).collect(),
            })
        })
        .collect())
}

/// Writes pairs as JSON Lines.
pub fn write_jsonl(pairs: &[PreferencePair]) -> String {
    let mut out = String::new();
    for p in pairs {
        // Serialising these plain structs cannot fail (string keys, finite or null numbers).
        out.push_str(&serde_json::to_string(p).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Reads TRL-style preference JSONL (`prompt`, `chosen`, `rejected` strings; recalign's extra
/// fields optional). Blank lines are skipped; anything else malformed is an error with its line.
pub fn read_jsonl(bytes: &[u8]) -> Result<Vec<PreferencePair>, DataError> {
    let file = "preference pairs";
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        DataError::at(file, line, DataErrorKind::InvalidUtf8)
    })?;
    let mut pairs = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let pair: PreferencePair = serde_json::from_str(line)
            .map_err(|e| DataError::at(file, i + 1, DataErrorKind::Json(e.to_string())))?;
        if pair.eps.is_some_and(|e| !(0.0..0.5).contains(&e)) {
            return Err(DataError::at(
                file,
                i + 1,
                DataErrorKind::Json("eps must be in [0, 0.5)".into()),
            ));
        }
        pairs.push(pair);
    }
    if pairs.is_empty() {
        return Err(DataError::file(file, DataErrorKind::Empty));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Catalogue, Vec<u32>, Example) {
        let mut c = Catalogue::new();
        let titles = ["Star Wars", "Star Trek", "Heat", "Casino", "Fargo", "Babe"];
        for (i, t) in titles.iter().enumerate() {
            c.insert(&i.to_string(), t);
        }
        let popularity = vec![50, 10, 80, 30, 20, 5];
        let e = Example {
            user: 1,
            history: vec![ItemId(5)],
            target: ItemId(0),
            candidates: vec![ItemId(3), ItemId(0), ItemId(1), ItemId(2), ItemId(4)],
        };
        (c, popularity, e)
    }

    #[test]
    fn popular_picks_the_most_popular_non_target() {
        let (c, pop, e) = setup();
        let ctx = CandidateContext {
            catalogue: &c,
            popularity: &pop,
            model_scores: None,
        };
        let r = ranked_negatives(
            RejectStrategy::Popular,
            &e,
            ctx,
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap();
        assert_eq!(r, [ItemId(2), ItemId(3), ItemId(4), ItemId(1)]);
    }

    #[test]
    fn semantic_similar_picks_the_closest_title() {
        let (c, pop, e) = setup();
        let ctx = CandidateContext {
            catalogue: &c,
            popularity: &pop,
            model_scores: None,
        };
        let r = ranked_negatives(
            RejectStrategy::SemanticSimilar,
            &e,
            ctx,
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap();
        assert_eq!(r[0], ItemId(1), "Star Trek is closest to Star Wars");
        assert!(
            title_similarity("Star Wars", "Star Trek") > title_similarity("Star Wars", "Fargo")
        );
    }

    #[test]
    fn self_hard_picks_the_models_best_mistake_and_needs_scores() {
        let (c, pop, e) = setup();
        // candidate order: Casino, Star Wars (target), Star Trek, Heat, Fargo
        let scores = [-3.0, -0.5, -4.0, -1.0, -2.0];
        let ctx = CandidateContext {
            catalogue: &c,
            popularity: &pop,
            model_scores: Some(&scores),
        };
        let r = ranked_negatives(
            RejectStrategy::SelfHard,
            &e,
            ctx,
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap();
        assert_eq!(r[0], ItemId(2));
        let ctx = CandidateContext {
            model_scores: None,
            ..ctx
        };
        assert!(
            ranked_negatives(
                RejectStrategy::SelfHard,
                &e,
                ctx,
                &mut ChaCha8Rng::seed_from_u64(0)
            )
            .is_err()
        );
    }

    #[test]
    fn no_strategy_returns_the_target_or_a_non_candidate() {
        let (c, pop, e) = setup();
        let scores = [0.0, 9.0, 1.0, 2.0, 3.0];
        let ctx = CandidateContext {
            catalogue: &c,
            popularity: &pop,
            model_scores: Some(&scores),
        };
        for s in RejectStrategy::ALL {
            for seed in 0..20 {
                let r = ranked_negatives(s, &e, ctx, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
                assert_eq!(r.len(), 4);
                assert!(
                    r.iter().all(|x| *x != e.target && e.candidates.contains(x)),
                    "{s:?}"
                );
            }
        }
    }

    #[test]
    fn smoothing_is_monotone_and_capped() {
        let s = Smoothing {
            temperature: 0.5,
            eps_max: 0.45,
        };
        let mut last = 0.0;
        for k in -400..=400 {
            let gap = f64::from(k) / 20.0;
            let eps = s.factor(0.0, gap);
            assert!(eps >= last && eps <= 0.45 && eps < 0.5);
            last = eps;
        }
        assert!(
            s.factor(10.0, 0.0) < 1e-6,
            "a confident pair behaves like DPO"
        );
        assert_eq!(s.factor(0.0, 100.0), 0.45);
        assert_eq!(s.factor(f64::NAN, 0.0), 0.45);
        assert!(
            Smoothing {
                temperature: 1.0,
                eps_max: 0.5
            }
            .check()
            .is_err()
        );
        assert!(
            Smoothing {
                temperature: 0.0,
                eps_max: 0.1
            }
            .check()
            .is_err()
        );
    }

    #[test]
    fn pairs_carry_eps_and_k_negatives_and_round_trip() {
        let (c, pop, e) = setup();
        let oracle = [0.0, 2.0, 1.5, -1.0, 0.5];
        let config = PairConfig {
            mixture: Mixture::OnePerStrategy(vec![RejectStrategy::Popular, RejectStrategy::Random]),
            negatives: 3,
            ..Default::default()
        };
        let scores = ExampleScores {
            model: None,
            oracle: Some(&oracle),
        };
        let pairs = pairs_for_example(&e, "p", &c, &pop, scores, &config).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].rejected, "Heat");
        assert_eq!(pairs[0].more_rejected, ["Casino", "Fargo"]);
        assert_eq!(pairs[0].more_eps.len(), 2);
        let heat_eps = Smoothing::default().factor(2.0, -1.0);
        assert_eq!(pairs[0].eps, Some(heat_eps));
        let back = read_jsonl(write_jsonl(&pairs).as_bytes()).unwrap();
        assert_eq!(back, pairs);
    }

    #[test]
    fn sampled_mixture_uses_distinct_negatives() {
        let (c, pop, e) = setup();
        let config = PairConfig {
            mixture: Mixture::Sampled(vec![
                (RejectStrategy::Popular, 1.0),
                (RejectStrategy::SemanticSimilar, 1.0),
            ]),
            negatives: 4,
            ..Default::default()
        };
        let pairs =
            pairs_for_example(&e, "p", &c, &pop, ExampleScores::default(), &config).unwrap();
        let mut all = vec![pairs[0].rejected.clone()];
        all.extend(pairs[0].more_rejected.clone());
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 4);
    }

    #[test]
    fn trl_import_reports_bad_lines() {
        let ok = br#"{"prompt": "p", "chosen": "a", "rejected": "b"}"#;
        assert_eq!(read_jsonl(ok).unwrap()[0].rejected, "b");
        let bad = b"{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}\n{\"prompt\": 1}\n";
        assert_eq!(read_jsonl(bad).unwrap_err().line, Some(2));
        assert!(read_jsonl(b"").is_err());
        assert!(read_jsonl(b"\xff\n").is_err());
    }
}
