//! Conventional recommenders used as RosePO's preference oracle (method.md §4) and as
//! baselines: SASRec ([`sasrec`]) and popularity. Both score an example's candidates; the
//! smoothing factor of a pair is read off those scores.

pub mod sasrec;

use serde::{Deserialize, Serialize};

use crate::data::ItemId;
use crate::data::split::Example;
use crate::eval::{RankMetrics, RankMetricsBuilder};

/// Candidate scores of the popularity baseline: each candidate's training interaction count.
pub fn popularity_scores(examples: &[Example], popularity: &[u32]) -> Vec<Vec<f32>> {
    examples
        .iter()
        .map(|e| {
            e.candidates
                .iter()
                .map(|c| popularity.get(c.index()).copied().unwrap_or(0) as f32)
                .collect()
        })
        .collect()
}

/// Candidate scores of the random baseline: all equal, so tie-aware metrics give exactly the
/// expected value of a uniformly random ranking.
pub fn constant_scores(examples: &[Example]) -> Vec<Vec<f32>> {
    examples
        .iter()
        .map(|e| vec![0.0; e.candidates.len()])
        .collect()
}

/// Ranking metrics of per-candidate `scores` (same order as each example's candidates).
pub fn candidate_metrics(examples: &[Example], scores: &[Vec<f32>]) -> RankMetrics {
    let mut b = RankMetricsBuilder::default();
    for (e, s) in examples.iter().zip(scores) {
        if let Some(t) = e.candidates.iter().position(|&c| c == e.target) {
            b.add(s, t);
        }
    }
    b.finish()
}

/// Full-catalogue metrics from per-item `scores` (one row of `n_items` per example); the
/// example's history items are excluded from the ranking, as a recommender would never
/// re-recommend them.
pub fn catalogue_metrics(examples: &[Example], scores: &[Vec<f32>]) -> RankMetrics {
    let mut b = RankMetricsBuilder::default();
    for (e, row) in examples.iter().zip(scores) {
        let mut row = row.clone();
        for h in &e.history {
            if let Some(s) = row.get_mut(h.index()) {
                *s = f32::NEG_INFINITY;
            }
        }
        b.add(&row, e.target.index());
    }
    b.finish()
}

/// Per-item popularity scores over the whole catalogue, one row per example.
pub fn popularity_catalogue_scores(examples: &[Example], popularity: &[u32]) -> Vec<Vec<f32>> {
    let row: Vec<f32> = popularity.iter().map(|&c| c as f32).collect();
    examples.iter().map(|_| row.clone()).collect()
}

/// One line of an oracle comparison table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OracleReport {
    /// Scorer name.
    pub scorer: String,
    /// 20-candidate metrics.
    pub candidates: RankMetrics,
    /// Full-catalogue metrics (history excluded), when the scorer can rank every item.
    pub catalogue: Option<RankMetrics>,
}

/// Items ids as SASRec inputs: item `i` becomes `i + 1`, 0 is padding.
pub(crate) fn token(item: ItemId) -> i64 {
    i64::from(item.0) + 1
}
