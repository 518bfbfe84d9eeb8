//! Intervals and paired tests for evaluation figures. With 95 test users one hit moves HR@1 by
//! 0.0105, so a figure without its interval, or a comparison without a paired test on the same
//! examples, cannot tell an effect from noise.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A mean and its 95% interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The mean.
    pub mean: f64,
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

/// 1.96: the normal distribution's two-sided 95% quantile.
const Z95: f64 = 1.959_963_984_540_054;

impl Interval {
    /// The mean of per-example values `xs` (hits, reciprocal ranks, paired differences) with the
    /// normal-approximation interval `mean ± 1.96 s / sqrt(n)`. For 0/1 values near 0 or 1 and
    /// small n, [`Interval::wilson`] is the better choice.
    pub fn of_mean(xs: &[f64]) -> Self {
        let n = xs.len();
        if n == 0 {
            return Self::default();
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let half = Z95 * (var / n as f64).sqrt();
        Self {
            mean,
            low: mean - half,
            high: mean + half,
        }
    }

    /// Wilson's score interval for a proportion of per-example values in [0, 1] (fractional hits
    /// from ties count by their value): stays inside [0, 1] and is honest at HR@1 ~ 0.05.
    pub fn wilson(xs: &[f64]) -> Self {
        let n = xs.len() as f64;
        if n == 0.0 {
            return Self::default();
        }
        let p = xs.iter().sum::<f64>() / n;
        let z2 = Z95 * Z95;
        let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
        let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
        Self {
            mean: p,
            low: (centre - half).max(0.0),
            high: (centre + half).min(1.0),
        }
    }
}

/// A paired comparison of two scorers on the same examples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// Mean of `a - b` with its interval.
    pub difference: Interval,
    /// Two-sided p-value of "no difference" (sign-flip permutation test).
    pub p_value: f64,
}

/// Resamples of the permutation test: the p-value's Monte Carlo error is below 0.002 at 0.05.
const RESAMPLES: usize = 20_000;

impl Paired {
    /// Compares per-example values `a` and `b` (same examples, same order): the mean difference
    /// with its interval, and the p-value of a sign-flip permutation test, which assumes only
    /// that under no difference each example's `a - b` is as likely negated (exact up to the
    /// seeded Monte Carlo error; no normality). `None` when the lengths differ.
    pub fn of(a: &[f64], b: &[f64]) -> Option<Self> {
        if a.len() != b.len() {
            return None;
        }
        let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        let observed = d.iter().sum::<f64>().abs();
        let mut rng = ChaCha8Rng::seed_from_u64(0x5157);
        let mut extreme = 0usize;
        for _ in 0..RESAMPLES {
            let s: f64 = d
                .iter()
                .map(|&x| if rng.random::<bool>() { x } else { -x })
                .sum();
            // A small tolerance so ties with the observed sum count as extreme.
            if s.abs() >= observed - 1e-9 {
                extreme += 1;
            }
        }
        Some(Self {
            difference: Interval::of_mean(&d),
            p_value: (extreme + 1) as f64 / (RESAMPLES + 1) as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proportion_gets_a_wilson_interval() {
        let xs: Vec<f64> = (0..100).map(|i| f64::from(u8::from(i < 20))).collect();
        let w = Interval::wilson(&xs);
        assert!((w.mean - 0.2).abs() < 1e-12);
        // Wilson's interval for 20/100: [0.1333, 0.2888].
        assert!(
            (w.low - 0.1333).abs() < 1e-3 && (w.high - 0.2888).abs() < 1e-3,
            "{w:?}"
        );
    }

    #[test]
    fn identical_scorers_do_not_differ_and_a_clear_gap_does() {
        let a: Vec<f64> = (0..200).map(|i| f64::from(u8::from(i % 3 == 0))).collect();
        let same = Paired::of(&a, &a).unwrap();
        assert_eq!(same.difference.mean, 0.0);
        assert!(same.p_value > 0.99);
        let b: Vec<f64> = (0..200).map(|i| f64::from(u8::from(i % 10 == 0))).collect();
        let gap = Paired::of(&a, &b).unwrap();
        assert!(gap.difference.low > 0.0 && gap.p_value < 0.001, "{gap:?}");
        assert!(Paired::of(&a, &b[1..]).is_none());
    }
}
