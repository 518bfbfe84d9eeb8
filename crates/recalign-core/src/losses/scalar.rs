//! The losses in plain `f64`: per-example values with their exact gradients, and the loss lab's
//! curves (loss and gradient weight against the margin, the optimum where one exists). This is
//! the reference the tensor version is tested against and what `recalign loss eval` prints.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{ExampleLogProbs, LossConfig, LossKind, LossState, MIN_BETA, MIN_STD};
use crate::{Error, Result};

/// `ln(1 + e^x)` without overflow.
pub fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln sigma(x) = -softplus(-x)`.
pub fn log_sigmoid(x: f64) -> f64 {
    -softplus(-x)
}

fn log_sum_exp(xs: &[f64]) -> f64 {
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + xs.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

fn softmax(xs: &[f64]) -> Vec<f64> {
    let lse = log_sum_exp(xs);
    xs.iter().map(|x| (x - lse).exp()).collect()
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// `ln(p / (1 - p))` of `p = e^m` (m < 0).
fn log_odds(m: f64) -> f64 {
    m - (-m.exp_m1()).ln()
}

/// The gradient of a batch objective with respect to one example's policy log-probs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExampleGrad {
    /// d objective / d policy `logp(y_w|x)`.
    pub chosen: f64,
    /// d objective / d policy `logp(y_k|x)`, one per rejected answer.
    pub rejected: Vec<f64>,
}

/// A batch's losses as `recalign loss eval` prints them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchLoss {
    /// Each example's loss (for Dr. DPO the DPO loss `l_i` it soft-mins over; for beta-DPO the
    /// loss at the adapted beta, kept or not).
    pub losses: Vec<f64>,
    /// The batch objective that training minimises.
    pub mean: f64,
    /// Its gradient with respect to the policy log-probs.
    pub grads: Vec<ExampleGrad>,
    /// Each example's margin, averaged over its rejected answers (SimPO, alpha-DPO: the
    /// length-normalised gap; ORPO: the log odds ratio).
    pub margins: Vec<f64>,
    /// Which examples count in the objective (all but beta-DPO's filtered ones).
    pub kept: Vec<bool>,
    /// The beta used (beta-DPO's adapted beta; the configured beta otherwise).
    pub beta: f64,
}

/// Standard Gumbel noise for beta-DPO's sampling without replacement, seeded so the scalar and
/// tensor versions (and a resumed run) draw the same sample.
pub fn gumbel_noise(seed: u64, n: usize) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            -(-u.ln()).ln()
        })
        .collect()
}

/// Indices beta-DPO keeps: the `kept` largest `keys`, the lower index first on ties.
pub fn top_keys(keys: &[f64], kept: usize) -> Vec<bool> {
    (0..keys.len())
        .map(|i| {
            let beats = (0..keys.len())
                .filter(|&j| keys[j] > keys[i] || (keys[j] == keys[i] && j < i))
                .count();
            beats < kept
        })
        .collect()
}

/// The loss of one pair and its derivative with respect to the loss's own argument `x` (the
/// margin `h` for the DPO family, the length-normalised gap for SimPO/alpha-DPO, the log odds
/// ratio for ORPO). `beta` and `eps` are passed because beta-DPO and RosePO vary them.
fn pair(config: &LossConfig, beta: f64, eps: f64, x: f64, shift: f64) -> (f64, f64) {
    match config.kind {
        LossKind::Cdpo | LossKind::Rosepo => {
            // cDPO's eps is the configured one; RosePO's is the pair's own.
            let eps = if config.kind == LossKind::Cdpo {
                config.eps
            } else {
                eps
            };
            (
                (1.0 - eps) * softplus(-beta * x) + eps * softplus(beta * x),
                beta * (sigmoid(beta * x) - (1.0 - eps)),
            )
        }
        LossKind::Rdpo => {
            let e = config.eps;
            (
                ((1.0 - e) * softplus(-beta * x) - e * softplus(beta * x)) / (1.0 - 2.0 * e),
                -beta * ((1.0 - e) * sigmoid(-beta * x) + e * sigmoid(beta * x)) / (1.0 - 2.0 * e),
            )
        }
        LossKind::Ipo => {
            let target = 1.0 / (2.0 * config.tau);
            ((x - target).powi(2), 2.0 * (x - target))
        }
        LossKind::Simpo | LossKind::AlphaDpo => {
            // `shift` is the target margin: gamma / beta for SimPO, alpha-DPO's adaptive m.
            let z = beta * (x - shift);
            (softplus(-z), -beta * sigmoid(-z))
        }
        LossKind::Orpo => (config.lambda * softplus(-x), -config.lambda * sigmoid(-x)),
        // DPO, beta-DPO, Dr. DPO's inner loss, and S-DPO with one negative.
        _ => (softplus(-beta * x), -beta * sigmoid(-beta * x)),
    }
}

/// The batch objective of `config`'s loss on `examples`, its per-example parts and its exact
/// gradient. Updates `state` (alpha-DPO, beta-DPO); `noise` is beta-DPO's Gumbel noise, one
/// value per example (ignored by the other losses).
pub fn batch_loss(
    config: &LossConfig,
    examples: &[ExampleLogProbs],
    state: &mut LossState,
    noise: &[f64],
) -> Result<BatchLoss> {
    config.validate()?;
    let n = examples.len();
    if n == 0 {
        return Err(Error::Loss("the batch is empty".into()));
    }
    let k = examples[0].policy_rejected.len();
    if k == 0 || examples.iter().any(|e| e.policy_rejected.len() != k) {
        return Err(Error::Loss(
            "every example needs the same number (at least one) of rejected answers".into(),
        ));
    }
    let kf = k as f64;
    let nf = n as f64;
    let beta = config.beta;
    // h[i][k]: reward margins. d[i][k]: length-normalised policy gaps.
    let h: Vec<Vec<f64>> = examples
        .iter()
        .map(|e| {
            (0..k)
                .map(|j| {
                    (e.policy_chosen - e.ref_chosen) - (e.policy_rejected[j] - e.ref_rejected[j])
                })
                .collect()
        })
        .collect();
    let gap = |e: &ExampleLogProbs, j: usize, policy: bool| {
        if policy {
            e.policy_chosen / e.chosen_len - e.policy_rejected[j] / e.rejected_len[j]
        } else {
            e.ref_chosen / e.chosen_len - e.ref_rejected[j] / e.rejected_len[j]
        }
    };

    let mut losses = vec![0.0; n];
    // dl_i / d x_ik for the loss's own argument x.
    let mut dx = vec![vec![0.0; k]; n];
    let mut margins = vec![0.0; n];
    let mut kept = vec![true; n];
    let mut beta_used = beta;
    // Weight of each example's loss in the objective.
    let mut weight = vec![1.0 / nf; n];

    match config.kind {
        LossKind::Sdpo => {
            for i in 0..n {
                let mut z = vec![0.0];
                z.extend(h[i].iter().map(|&hk| -beta * hk));
                losses[i] = log_sum_exp(&z);
                let p = softmax(&z);
                for j in 0..k {
                    dx[i][j] = -beta * p[j + 1];
                }
                margins[i] = h[i].iter().sum::<f64>() / kf;
            }
        }
        LossKind::Simpo | LossKind::AlphaDpo => {
            let d: Vec<Vec<f64>> = examples
                .iter()
                .map(|e| (0..k).map(|j| gap(e, j, true)).collect())
                .collect();
            let shift: Vec<Vec<f64>> = if config.kind == LossKind::AlphaDpo {
                let g: Vec<f64> = examples
                    .iter()
                    .zip(&d)
                    .flat_map(|(e, di)| (0..k).map(move |j| di[j] - gap(e, j, false)))
                    .collect();
                let (m, s) = mean_std(&g);
                state.gap.update(m, s, config.momentum);
                let (mu, s) = (state.gap.mean, state.gap.std.max(MIN_STD));
                g.chunks(k)
                    .map(|gi| {
                        gi.iter()
                            .map(|gv| config.alpha * (gv - mu) / s + config.gamma / beta)
                            .collect()
                    })
                    .collect()
            } else {
                vec![vec![config.gamma / beta; k]; n]
            };
            for i in 0..n {
                for j in 0..k {
                    let (l, g) = pair(config, beta, 0.0, d[i][j], shift[i][j]);
                    losses[i] += l / kf;
                    dx[i][j] = g / kf;
                }
                margins[i] = d[i].iter().sum::<f64>() / kf;
            }
        }
        LossKind::Orpo => {
            for (i, e) in examples.iter().enumerate() {
                let mw = e.policy_chosen / e.chosen_len;
                losses[i] = -mw;
                for (j, dxj) in dx[i].iter_mut().enumerate() {
                    let delta = log_odds(mw) - log_odds(e.policy_rejected[j] / e.rejected_len[j]);
                    let (l, g) = pair(config, beta, 0.0, delta, 0.0);
                    losses[i] += l / kf;
                    *dxj = g / kf;
                    margins[i] += delta / kf;
                }
            }
        }
        LossKind::BetaDpo => {
            let hbar: Vec<f64> = h.iter().map(|hi| hi.iter().sum::<f64>() / kf).collect();
            let (m, s) = mean_std(&hbar);
            state.margin.update(m, s, config.momentum);
            let (m0, s) = (state.margin.mean, state.margin.std.max(MIN_STD));
            if noise.len() != n {
                return Err(Error::Loss(format!(
                    "beta-DPO needs one noise value per example ({n}), got {}",
                    noise.len()
                )));
            }
            let keys: Vec<f64> = hbar
                .iter()
                .zip(noise)
                .map(|(hv, g)| -0.5 * ((hv - m0) / s).powi(2) + g)
                .collect();
            let n_kept = config.kept(n);
            kept = top_keys(&keys, n_kept);
            let mean_kept = hbar
                .iter()
                .zip(&kept)
                .filter(|(_, k)| **k)
                .map(|(hv, _)| hv)
                .sum::<f64>()
                / n_kept as f64;
            beta_used = (beta * (1.0 + config.beta_scale * (mean_kept - m0))).max(MIN_BETA);
            for i in 0..n {
                for j in 0..k {
                    let (l, g) = pair(config, beta_used, 0.0, h[i][j], 0.0);
                    losses[i] += l / kf;
                    dx[i][j] = g / kf;
                }
                margins[i] = hbar[i];
                weight[i] = if kept[i] { 1.0 / n_kept as f64 } else { 0.0 };
            }
        }
        _ => {
            for (i, e) in examples.iter().enumerate() {
                for j in 0..k {
                    let (l, g) = pair(config, beta, e.eps[j], h[i][j], 0.0);
                    losses[i] += l / kf;
                    dx[i][j] = g / kf;
                }
                margins[i] = h[i].iter().sum::<f64>() / kf;
            }
        }
    }

    let mean = if config.kind == LossKind::DrDpo {
        let bp = config.beta_prime;
        let z: Vec<f64> = losses.iter().map(|l| -l / bp).collect();
        weight = softmax(&z);
        -bp * (log_sum_exp(&z) - nf.ln())
    } else {
        losses.iter().zip(&weight).map(|(l, w)| l * w).sum()
    };

    let grads = examples
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let w = weight[i];
            match config.kind {
                LossKind::Simpo | LossKind::AlphaDpo => ExampleGrad {
                    chosen: w * dx[i].iter().sum::<f64>() / e.chosen_len,
                    rejected: (0..k).map(|j| -w * dx[i][j] / e.rejected_len[j]).collect(),
                },
                LossKind::Orpo => {
                    let mw = e.policy_chosen / e.chosen_len;
                    let dlo_w = 1.0 / (-mw.exp_m1());
                    ExampleGrad {
                        chosen: w * (-1.0 + dx[i].iter().sum::<f64>() * dlo_w) / e.chosen_len,
                        rejected: (0..k)
                            .map(|j| {
                                let mk = e.policy_rejected[j] / e.rejected_len[j];
                                -w * dx[i][j] / (-mk.exp_m1()) / e.rejected_len[j]
                            })
                            .collect(),
                    }
                }
                _ => ExampleGrad {
                    chosen: w * dx[i].iter().sum::<f64>(),
                    rejected: (0..k).map(|j| -w * dx[i][j]).collect(),
                },
            }
        })
        .collect();

    Ok(BatchLoss {
        losses,
        mean,
        grads,
        margins,
        kept,
        beta: beta_used,
    })
}

/// One point of a loss lab curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// The loss's argument ([`LossKind::margin_label`]).
    pub x: f64,
    /// The loss of one pair at `x`.
    pub loss: f64,
    /// The gradient weight `-dL/dx`: how hard training pushes the margin up at `x` (negative
    /// past an optimum, where it pulls back).
    pub weight: f64,
}

/// Number of negatives the loss lab assumes for S-DPO's curve (all at the same margin).
pub const LAB_NEGATIVES: usize = 3;

/// The loss of one pair (or one example with `negatives` equal negatives, for S-DPO) as a
/// function of its margin, with everything else fixed by `config`:
/// - cDPO uses `config.eps`; RosePO uses `eps` (the pair's own factor);
/// - beta-DPO is drawn at its base beta (the adapted beta moves the curve like a beta slider);
/// - alpha-DPO's margin is `gamma / beta + alpha * config.lab_gap`;
/// - Dr. DPO is the batch objective seen from one pair whose `lab_batch - 1` companions sit at
///   margin 0, scaled so that `beta' -> infinity` gives DPO's curve: `n L - (n - 1) ln 2`.
pub fn curve_point(config: &LossConfig, x: f64, eps: f64, negatives: usize) -> CurvePoint {
    let beta = config.beta;
    let (loss, d) = match config.kind {
        LossKind::Sdpo => {
            let kf = negatives.max(1) as f64;
            let e = kf * (-beta * x).exp();
            let loss = log_sum_exp(&[0.0, kf.ln() - beta * x]);
            (
                loss,
                if e.is_finite() {
                    -beta * e / (1.0 + e)
                } else {
                    -beta
                },
            )
        }
        LossKind::Simpo => pair(config, beta, 0.0, x, config.gamma / beta),
        LossKind::AlphaDpo => pair(
            config,
            beta,
            0.0,
            x,
            config.gamma / beta + config.alpha * config.lab_gap,
        ),
        LossKind::DrDpo => {
            let n = config.lab_batch.max(1) as f64;
            let bp = config.beta_prime;
            let (l, dl) = pair(config, beta, 0.0, x, 0.0);
            let l0 = std::f64::consts::LN_2;
            let z = [-l / bp, (n - 1.0).max(f64::MIN_POSITIVE).ln() - l0 / bp];
            let z = if n > 1.0 { &z[..] } else { &z[..1] };
            let big_l = -bp * (log_sum_exp(z) - n.ln());
            let w = softmax(z)[0];
            (n * big_l - (n - 1.0) * l0, n * w * dl)
        }
        _ => pair(config, beta, eps, x, 0.0),
    };
    CurvePoint {
        x,
        loss,
        weight: -d,
    }
}

/// Where the loss of one pair is smallest, if that is a finite margin: `ln((1-eps)/eps)/beta` for
/// cDPO (and RosePO at the pair's `eps`), `1/(2 tau)` for IPO; `None` for losses that keep
/// rewarding a larger margin.
pub fn optimum(config: &LossConfig, eps: f64) -> Option<f64> {
    let e = match config.kind {
        LossKind::Cdpo => config.eps,
        LossKind::Rosepo => eps,
        LossKind::Ipo => return Some(1.0 / (2.0 * config.tau)),
        _ => return None,
    };
    (e > 0.0 && e < 0.5).then(|| ((1.0 - e) / e).ln() / config.beta)
}

/// S-DPO's share of the gradient each negative receives: softmax of `-beta h_k` over the
/// negatives (the hardest negative, with the smallest margin, gets most).
pub fn sdpo_negative_weights(beta: f64, margins: &[f64]) -> Vec<f64> {
    let z: Vec<f64> = margins.iter().map(|h| -beta * h).collect();
    softmax(&z)
}

/// Dr. DPO's weight of each pair in its batch, `softmax(-l_i / beta')` (sums to 1; a pair with a
/// high loss, likely mislabelled, is down-weighted).
pub fn dr_dpo_pair_weights(beta_prime: f64, losses: &[f64]) -> Vec<f64> {
    let z: Vec<f64> = losses.iter().map(|l| -l / beta_prime).collect();
    softmax(&z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softplus_is_stable_in_both_tails() {
        assert_eq!(softplus(1000.0), 1000.0);
        assert!(softplus(-1000.0) >= 0.0 && softplus(-1000.0) < 1e-300);
        assert!((softplus(0.0) - std::f64::consts::LN_2).abs() < 1e-15);
        assert!((sigmoid(-800.0)).abs() < 1e-300 && (sigmoid(800.0) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn top_keys_keeps_the_largest_and_breaks_ties_by_index() {
        assert_eq!(
            top_keys(&[0.5, 2.0, 0.5, -1.0], 2),
            [true, true, false, false]
        );
        assert_eq!(top_keys(&[1.0, 1.0, 1.0], 1), [true, false, false]);
    }

    #[test]
    fn gumbel_noise_is_seeded_and_finite() {
        let a = gumbel_noise(7, 64);
        assert_eq!(a, gumbel_noise(7, 64));
        assert_ne!(a, gumbel_noise(8, 64));
        assert!(a.iter().all(|g| g.is_finite()));
    }
}
