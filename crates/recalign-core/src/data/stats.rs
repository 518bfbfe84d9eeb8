//! What a split contains, as numbers a person can check: counts per split, history lengths and
//! how concentrated popularity is (`recalign data stats`, and the page's data panel).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::InteractionLog;
use super::split::Splits;

/// Summary of a log and its split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitStats {
    /// Users in the log.
    pub users: usize,
    /// Users in train, validation, test.
    pub users_per_split: [usize; 3],
    /// Users dropped for too few positives.
    pub short_users: usize,
    /// Items in the catalogue.
    pub items: usize,
    /// Items with at least one training interaction.
    pub items_in_train: usize,
    /// Interactions kept by the parser.
    pub interactions: usize,
    /// Of those, positives (after the rating filter).
    pub positives: usize,
    /// Repeated (user, item) positives dropped.
    pub repeats: usize,
    /// Examples in train, validation, test.
    pub examples: [usize; 3],
    /// `(history length, examples)` over all splits, ascending.
    pub history_lengths: Vec<(usize, usize)>,
    /// Popularity (training interactions per item).
    pub popularity: PopularityStats,
}

/// How skewed training popularity is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PopularityStats {
    /// Most interactions of one item.
    pub max: u32,
    /// Median over catalogue items (0 for items never seen in training).
    pub median: u32,
    /// Mean over catalogue items.
    pub mean: f64,
    /// Share of training interactions on the 10% most popular items.
    pub top_decile_share: f64,
    /// Gini index of interaction counts over items (0 = uniform, 1 = one item has everything).
    pub gini: f64,
}

/// Computes the summary.
pub fn split_stats(log: &InteractionLog, splits: &Splits) -> SplitStats {
    let mut lengths = std::collections::BTreeMap::new();
    for e in splits
        .train
        .iter()
        .chain(&splits.validation)
        .chain(&splits.test)
    {
        *lengths.entry(e.history.len()).or_insert(0usize) += 1;
    }
    SplitStats {
        users: log.users.len(),
        users_per_split: [
            splits.users[0].len(),
            splits.users[1].len(),
            splits.users[2].len(),
        ],
        short_users: splits.short_users,
        items: log.catalogue.len(),
        items_in_train: splits.popularity.iter().filter(|&&c| c > 0).count(),
        interactions: log.interactions.len(),
        positives: splits.positives,
        repeats: splits.repeats,
        examples: [
            splits.train.len(),
            splits.validation.len(),
            splits.test.len(),
        ],
        history_lengths: lengths.into_iter().collect(),
        popularity: popularity_stats(&splits.popularity),
    }
}

/// Popularity summary of per-item counts.
pub fn popularity_stats(counts: &[u32]) -> PopularityStats {
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let total: u64 = sorted.iter().map(|&c| u64::from(c)).sum();
    let top = n.div_ceil(10);
    let top_sum: u64 = sorted.iter().rev().take(top).map(|&c| u64::from(c)).sum();
    PopularityStats {
        max: sorted.last().copied().unwrap_or(0),
        median: sorted.get(n / 2).copied().unwrap_or(0),
        mean: if n == 0 { 0.0 } else { total as f64 / n as f64 },
        top_decile_share: if total == 0 {
            0.0
        } else {
            top_sum as f64 / total as f64
        },
        gini: gini(&sorted),
    }
}

/// Gini index of non-negative values given in ascending order (RecBole's GiniIndex formula).
pub fn gini(ascending: &[u32]) -> f64 {
    let n = ascending.len() as f64;
    let total: f64 = ascending.iter().map(|&c| f64::from(c)).sum();
    if ascending.is_empty() || total == 0.0 {
        return 0.0;
    }
    let weighted: f64 = ascending
        .iter()
        .enumerate()
        .map(|(i, &c)| (2.0 * (i as f64 + 1.0) - n - 1.0) * f64::from(c))
        .sum();
    weighted / (n * total)
}

/// A fixed-width text histogram of `values` over `bins` equal bins of `[lo, hi]`.
pub fn text_histogram(values: &[f64], bins: usize, lo: f64, hi: f64) -> String {
    let bins = bins.max(1);
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for &v in values.iter().filter(|v| v.is_finite()) {
        let b = if width > 0.0 {
            ((v - lo) / width).floor()
        } else {
            0.0
        };
        counts[(b.max(0.0) as usize).min(bins - 1)] += 1;
    }
    let most = counts.iter().copied().max().unwrap_or(0).max(1);
    let mut out = String::new();
    for (i, &c) in counts.iter().enumerate() {
        let a = lo + width * i as f64;
        let bar = "#".repeat((c * 40).div_ceil(most).min(40) * usize::from(c > 0));
        let _ = writeln!(out, "[{a:>6.3}, {:>6.3}) {c:>7} {bar}", a + width);
    }
    out
}

impl SplitStats {
    /// The human-readable report `recalign data stats` prints.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let [tr, va, te] = self.users_per_split;
        let [etr, eva, ete] = self.examples;
        let _ = writeln!(
            s,
            "users        {:>7} (train {tr}, validation {va}, test {te}; {} with too few positives dropped)",
            self.users, self.short_users
        );
        let _ = writeln!(
            s,
            "items        {:>7} ({} seen in training)",
            self.items, self.items_in_train
        );
        let _ = writeln!(
            s,
            "interactions {:>7} ({} positive, {} repeated pairs dropped)",
            self.interactions, self.positives, self.repeats
        );
        let _ = writeln!(
            s,
            "examples     {:>7} (train {etr}, validation {eva}, test {ete})",
            etr + eva + ete
        );
        let _ = writeln!(s, "history length -> examples:");
        let most = self
            .history_lengths
            .iter()
            .map(|&(_, c)| c)
            .max()
            .unwrap_or(1)
            .max(1);
        for &(len, count) in &self.history_lengths {
            let _ = writeln!(
                s,
                "  {len:>3} {count:>7} {}",
                "#".repeat((count * 40).div_ceil(most))
            );
        }
        let p = &self.popularity;
        let _ = writeln!(
            s,
            "popularity (training interactions per item): max {}, median {}, mean {:.1}, top 10% of items hold {:.1}%, Gini {:.3}",
            p.max,
            p.median,
            p.mean,
            100.0 * p.top_decile_share,
            p.gini
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_bounds() {
        assert_eq!(gini(&[5, 5, 5, 5]), 0.0);
        assert!((gini(&[0, 0, 0, 12]) - 0.75).abs() < 1e-12);
        assert_eq!(gini(&[]), 0.0);
    }

    #[test]
    fn histogram_counts_every_finite_value() {
        let h = text_histogram(&[0.0, 0.1, 0.49, 0.5, f64::NAN], 5, 0.0, 0.5);
        let total: usize = h
            .lines()
            .map(|l| {
                l.split(')')
                    .nth(1)
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            })
            .sum();
        assert_eq!(total, 4);
    }
}
