//! Reading a generated answer against the candidate set (method.md section 2): an answer is valid
//! iff exactly one candidate title occurs in it.

/// The candidate a generated `answer` names, if exactly one does.
///
/// Matching is a case-insensitive substring test; a title that is a substring of another matched
/// title counts only if the longer one is absent (so "Babe" inside "Babe: Pig in the City" does
/// not make the answer ambiguous).
pub fn named_candidate(answer: &str, candidates: &[String]) -> Option<usize> {
    let answer = answer.to_lowercase();
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
    fn a_title_inside_a_longer_matched_title_does_not_count() {
        let cands = c(&["Babe", "Babe: Pig in the City", "Heat"]);
        assert_eq!(named_candidate("Babe: Pig in the City", &cands), Some(1));
        assert_eq!(named_candidate("Babe", &cands), Some(0));
    }
}

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
    pub fn add(&mut self, scores: &[f32], target: usize) {
        let Some(&t) = scores.get(target) else { return };
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
