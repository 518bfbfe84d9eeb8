//! The metrics of a ranking: tie-aware HR@K, NDCG@K and MRR, and RecBole's popularity-bias
//! measures (AveragePopularity, TailPercentage, ItemCoverage, GiniIndex) of the top-K lists.

/// The cut-offs ranking metrics are reported at.
pub const CUTOFFS: [usize; 4] = [1, 3, 5, 10];

/// Candidate-ranking metrics (method.md §2): HR@K, NDCG@K at [`CUTOFFS`] and MRR, averaged over
/// examples. Ties are resolved in expectation over a uniformly random order, so a constant
/// scorer gets exactly the random baseline (HR@1 = 1/n) and no scorer gains from ties.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RankMetrics {
    /// Examples averaged over.
    pub examples: usize,
    /// Hit ratio at each cut-off.
    pub hr: [f64; 4],
    /// NDCG at each cut-off.
    pub ndcg: [f64; 4],
    /// Mean reciprocal rank.
    pub mrr: f64,
}

impl RankMetrics {
    /// HR@k, if `k` is one of [`CUTOFFS`].
    pub fn hr_at(&self, k: usize) -> Option<f64> {
        CUTOFFS.iter().position(|&c| c == k).map(|i| self.hr[i])
    }

    /// NDCG@k, if `k` is one of [`CUTOFFS`].
    pub fn ndcg_at(&self, k: usize) -> Option<f64> {
        CUTOFFS.iter().position(|&c| c == k).map(|i| self.ndcg[i])
    }
}

/// Accumulates [`RankMetrics`] one example at a time.
#[derive(Clone, Debug, Default)]
pub struct RankMetricsBuilder {
    sum: RankMetrics,
}

impl RankMetricsBuilder {
    /// Adds one example: `scores` of every ranked item and the index of the target among them.
    /// Entries equal to `f32::NEG_INFINITY` (excluded items) are never ranked above the target.
    /// Returns the example's expected hit at 1 (the per-example value for paired tests).
    pub fn add(&mut self, scores: &[f32], target: usize) -> f64 {
        let Some(&t) = scores.get(target) else {
            return 0.0;
        };
        let (mut greater, mut ties) = (0usize, 0usize);
        for (i, &s) in scores.iter().enumerate() {
            if i == target || s == f32::NEG_INFINITY {
                continue;
            }
            // A NaN score is treated as worst, so a broken scorer cannot look good.
            if s > t || t.is_nan() && !s.is_nan() {
                greater += 1;
            } else if s == t {
                ties += 1;
            }
        }
        let spread = (ties + 1) as f64;
        let m = &mut self.sum;
        m.examples += 1;
        for r in greater + 1..=greater + ties + 1 {
            let gain = 1.0 / ((r + 1) as f64).log2();
            for (i, &k) in CUTOFFS.iter().enumerate() {
                if r <= k {
                    m.hr[i] += 1.0 / spread;
                    m.ndcg[i] += gain / spread;
                }
            }
            m.mrr += 1.0 / r as f64 / spread;
        }
        if greater == 0 { 1.0 / spread } else { 0.0 }
    }

    /// The averages.
    pub fn finish(&self) -> RankMetrics {
        let n = self.sum.examples.max(1) as f64;
        RankMetrics {
            examples: self.sum.examples,
            hr: self.sum.hr.map(|x| x / n),
            ndcg: self.sum.ndcg.map(|x| x / n),
            mrr: self.sum.mrr / n,
        }
    }
}

#[cfg(test)]
mod metric_tests {
    use super::*;

    #[test]
    fn perfect_and_constant_scorers() {
        let mut b = RankMetricsBuilder::default();
        b.add(&[0.0, 5.0, 1.0], 1);
        let m = b.finish();
        assert_eq!((m.hr[0], m.ndcg[0], m.mrr), (1.0, 1.0, 1.0));
        let mut b = RankMetricsBuilder::default();
        b.add(&[0.0; 20], 3);
        let m = b.finish();
        assert!((m.hr_at(1).unwrap() - 0.05).abs() < 1e-12);
        assert!((m.hr_at(10).unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn rank_three_and_excluded_items() {
        let mut b = RankMetricsBuilder::default();
        b.add(&[3.0, 2.0, 1.0, f32::NEG_INFINITY, 9.0], 2);
        let m = b.finish();
        // 3.0, 2.0 and 9.0 beat the target: rank 4; the excluded item does not count.
        assert_eq!(m.hr_at(3), Some(0.0));
        assert_eq!(m.hr_at(5), Some(1.0));
        assert!((m.ndcg_at(5).unwrap() - 1.0 / 5f64.log2()).abs() < 1e-12);
        assert!((m.mrr - 0.25).abs() < 1e-12);
    }
}

/// Popularity bias and coverage of the top-`k` lists (RecBole's definitions), from each
/// example's candidates ordered by the model.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BiasMetrics {
    /// The cut-off.
    pub k: usize,
    /// AveragePopularity@K: mean over examples of the mean training interaction count of the
    /// top-K items.
    pub average_popularity: f64,
    /// TailPercentage@K: mean over examples of the share of top-K items in the long tail (the
    /// items outside the most popular 20% of the catalogue by training interactions).
    pub tail_percentage: f64,
    /// ItemCoverage@K: distinct items in any top-K list over the catalogue size.
    pub item_coverage: f64,
    /// GiniIndex@K: Gini coefficient of how often each catalogue item appears in the top-K lists
    /// (0: every item equally often; 1: one item always).
    pub gini_index: f64,
}

/// Share of the catalogue RecBole-style "head" items make up; the rest is the tail.
pub const HEAD_SHARE: f64 = 0.2;

/// Mean popularity of the item at each rank position over the ranked lists `top` (a position
/// averages the lists long enough to have it).
pub fn popularity_by_rank(top: &[Vec<crate::data::ItemId>], popularity: &[u32]) -> Vec<f64> {
    let depth = top.iter().map(Vec::len).max().unwrap_or(0);
    (0..depth)
        .map(|r| {
            let at: Vec<f64> = top
                .iter()
                .filter_map(|list| list.get(r))
                .map(|i| f64::from(popularity.get(i.index()).copied().unwrap_or(0)))
                .collect();
            at.iter().sum::<f64>() / at.len().max(1) as f64
        })
        .collect()
}

/// The smallest training count of a head item: an item is in the long tail iff its count is
/// below this (RecBole's definition, the head being the most popular [`HEAD_SHARE`]).
pub fn head_floor(popularity: &[u32]) -> u32 {
    let n_items = popularity.len().max(1);
    let mut sorted: Vec<u32> = popularity.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let head = ((n_items as f64 * HEAD_SHARE).ceil() as usize).clamp(1, n_items);
    sorted.get(head - 1).copied().unwrap_or(0)
}

/// The target's expected hit at rank 1 under `scores`, ties resolved over a random order (as
/// [`RankMetricsBuilder`] counts it): 1/(ties + 1) when nothing scores above it, else 0.
pub fn expected_hit_at_1(scores: &[f32], target: usize) -> f64 {
    RankMetricsBuilder::default().add(scores, target)
}

/// [`BiasMetrics`] of `top` (each example's recommended items, best first) against training
/// `popularity` (interactions per catalogue item).
pub fn bias_metrics(top: &[Vec<crate::data::ItemId>], popularity: &[u32], k: usize) -> BiasMetrics {
    let n_items = popularity.len().max(1);
    let head_floor = head_floor(popularity);
    let pop = |i: crate::data::ItemId| popularity.get(i.index()).copied().unwrap_or(0);
    let mut counts = vec![0u64; n_items];
    let (mut avg_pop, mut tail, mut lists) = (0.0, 0.0, 0usize);
    for list in top {
        let list = &list[..list.len().min(k)];
        if list.is_empty() {
            continue;
        }
        lists += 1;
        avg_pop += list.iter().map(|&i| f64::from(pop(i))).sum::<f64>() / list.len() as f64;
        tail += list.iter().filter(|&&i| pop(i) < head_floor).count() as f64 / list.len() as f64;
        for &i in list {
            if let Some(c) = counts.get_mut(i.index()) {
                *c += 1;
            }
        }
    }
    let lists_f = lists.max(1) as f64;
    let covered = counts.iter().filter(|&&c| c > 0).count();
    let mut ascending: Vec<u32> = counts
        .iter()
        .map(|&c| c.min(u64::from(u32::MAX)) as u32)
        .collect();
    ascending.sort_unstable();
    BiasMetrics {
        k,
        average_popularity: avg_pop / lists_f,
        tail_percentage: tail / lists_f,
        item_coverage: covered as f64 / n_items as f64,
        gini_index: crate::data::stats::gini(&ascending),
    }
}

#[cfg(test)]
mod bias_tests {
    use super::*;
    use crate::data::ItemId;

    #[test]
    fn bias_metrics_follow_recbole_definitions() {
        // 5 items; the head (top 20% = 1 item) is item 0.
        let popularity = [50, 10, 5, 1, 0];
        let top = vec![vec![ItemId(0), ItemId(1)], vec![ItemId(0), ItemId(3)]];
        let m = bias_metrics(&top, &popularity, 2);
        assert!((m.average_popularity - (30.0 + 25.5) / 2.0).abs() < 1e-12);
        assert!((m.tail_percentage - 0.5).abs() < 1e-12);
        assert!((m.item_coverage - 3.0 / 5.0).abs() < 1e-12);
        let at1 = bias_metrics(&top, &popularity, 1);
        assert_eq!(at1.tail_percentage, 0.0);
        assert!((at1.item_coverage - 0.2).abs() < 1e-12);
        assert!(
            at1.gini_index > m.gini_index,
            "one item always picked is less equal"
        );
    }

    #[test]
    fn popularity_by_rank_averages_each_position() {
        let popularity = [50, 10, 5, 1, 0];
        let top = vec![vec![ItemId(0), ItemId(1)], vec![ItemId(2), ItemId(3)]];
        assert_eq!(popularity_by_rank(&top, &popularity), vec![27.5, 5.5]);
        assert!(popularity_by_rank(&[], &popularity).is_empty());
    }
}
