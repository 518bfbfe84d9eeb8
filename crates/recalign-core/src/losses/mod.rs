//! Every preference loss of method.md §3, written twice: [`scalar`] in plain `f64` (the loss lab's
//! curves, `recalign loss eval`, and the reference the tests hold the other to) and [`tensor`] on
//! Burn tensors (training, with autodiff). Both read the same [`LossConfig`] and the same
//! per-example summed sequence log-probs, and agree to float precision (tests/losses.rs).
//!
//! Conventions shared by both versions:
//! - rewards `r(y) = logp_policy(y|x) - logp_ref(y|x)`; margin `h_k = r(y_w) - r(y_k)`;
//! - a pairwise loss given K rejected answers averages its pair loss over them, so K = 1 is the
//!   textbook loss and nothing an example carries is silently dropped; S-DPO is the one loss
//!   that treats the K negatives jointly;
//! - quantities computed from the batch that scale the loss (alpha-DPO's margin, beta-DPO's
//!   beta and its sample) are constants for the gradient, as in the papers' code;
//! - the batch objective is the mean of the per-example losses, except for beta-DPO (mean over
//!   the kept sample) and Dr. DPO (`-beta' log mean exp(-l_i / beta')`).

pub mod scalar;
pub mod tensor;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The preference losses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Direct Preference Optimisation.
    Dpo,
    /// Conservative DPO: label smoothing with one eps.
    Cdpo,
    /// Robust DPO: unbiased under label noise eps.
    Rdpo,
    /// Identity Preference Optimisation: squared distance to a target margin.
    Ipo,
    /// Softmax DPO over K negatives.
    Sdpo,
    /// Simple PO: length-normalised, reference-free, with a target margin.
    Simpo,
    /// alpha-DPO: SimPO with an adaptive, reference-aware margin.
    AlphaDpo,
    /// beta-DPO: batch-adaptive beta and margin-based filtering.
    BetaDpo,
    /// Distributionally robust DPO: a soft-min over the batch's pair losses.
    DrDpo,
    /// Odds-ratio PO: SFT loss plus an odds-ratio penalty, reference-free.
    Orpo,
    /// RosePO: cDPO with each pair's own smoothing factor from the oracle.
    Rosepo,
}

impl LossKind {
    /// Every loss, in the order the docs and the page list them.
    pub const ALL: [LossKind; 11] = [
        LossKind::Dpo,
        LossKind::Cdpo,
        LossKind::Rdpo,
        LossKind::Ipo,
        LossKind::Sdpo,
        LossKind::Simpo,
        LossKind::AlphaDpo,
        LossKind::BetaDpo,
        LossKind::DrDpo,
        LossKind::Orpo,
        LossKind::Rosepo,
    ];

    /// The name used on the command line and in files (`dpo`, `alpha-dpo`, ...).
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Dpo => "dpo",
            LossKind::Cdpo => "cdpo",
            LossKind::Rdpo => "rdpo",
            LossKind::Ipo => "ipo",
            LossKind::Sdpo => "sdpo",
            LossKind::Simpo => "simpo",
            LossKind::AlphaDpo => "alpha-dpo",
            LossKind::BetaDpo => "beta-dpo",
            LossKind::DrDpo => "dr-dpo",
            LossKind::Orpo => "orpo",
            LossKind::Rosepo => "rosepo",
        }
    }

    /// The display name (`DPO`, `alpha-DPO`, ...).
    pub fn label(self) -> &'static str {
        match self {
            LossKind::Dpo => "DPO",
            LossKind::Cdpo => "cDPO",
            LossKind::Rdpo => "rDPO",
            LossKind::Ipo => "IPO",
            LossKind::Sdpo => "S-DPO",
            LossKind::Simpo => "SimPO",
            LossKind::AlphaDpo => "alpha-DPO",
            LossKind::BetaDpo => "beta-DPO",
            LossKind::DrDpo => "Dr. DPO",
            LossKind::Orpo => "ORPO",
            LossKind::Rosepo => "RosePO",
        }
    }

    /// Parses [`Self::name`] (case-insensitive; `_` and `-` alike).
    pub fn parse(s: &str) -> Result<Self> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|k| k.name() == wanted || k.name().replace('-', "") == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                Error::Loss(format!(
                    "unknown loss {s:?}; expected one of {}",
                    names.join(", ")
                ))
            })
    }

    /// Whether a batch's loss is the mean of terms each of one pair alone, so that each pair's
    /// gradient can be taken on its own. alpha-DPO, beta-DPO and Dr. DPO read statistics of the
    /// whole batch.
    pub fn separable(self) -> bool {
        !matches!(
            self,
            LossKind::AlphaDpo | LossKind::BetaDpo | LossKind::DrDpo
        )
    }

    /// Whether the loss reads the frozen reference model's log-probs.
    pub fn uses_reference(self) -> bool {
        !matches!(self, LossKind::Simpo | LossKind::Orpo)
    }

    /// Whether the loss reads the answers' token counts.
    pub fn uses_lengths(self) -> bool {
        matches!(self, LossKind::Simpo | LossKind::AlphaDpo | LossKind::Orpo)
    }

    /// What the loss lab's x axis is for this loss.
    pub fn margin_label(self) -> &'static str {
        match self {
            LossKind::Simpo | LossKind::AlphaDpo => {
                "length-normalised log-prob gap mean_logp(y_w) - mean_logp(y_l)"
            }
            LossKind::Orpo => "log odds ratio log odds(y_w) - log odds(y_l)",
            _ => "reward margin h = r(y_w) - r(y_l)",
        }
    }
}

impl std::fmt::Display for LossKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A loss and its hyper-parameters. Each loss reads only the fields it needs; [`Self::new`]
/// fills method.md's defaults for the chosen loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossConfig {
    /// Which loss.
    pub kind: LossKind,
    /// Inverse temperature on the margin (every loss but IPO and ORPO).
    pub beta: f64,
    /// Label noise / smoothing (cDPO, rDPO; RosePO's eps comes per example).
    pub eps: f64,
    /// IPO's regularisation: the target margin is `1 / (2 tau)`.
    pub tau: f64,
    /// Target reward margin of SimPO and alpha-DPO (the `gamma` in `beta * D - gamma`).
    pub gamma: f64,
    /// alpha-DPO's weight on the standardised reference-aware gap.
    pub alpha: f64,
    /// Dr. DPO's temperature beta'.
    pub beta_prime: f64,
    /// ORPO's weight on the odds-ratio term.
    pub lambda: f64,
    /// beta-DPO's kept fraction of the batch.
    pub rho: f64,
    /// beta-DPO's sensitivity of beta to the batch's mean margin.
    pub beta_scale: f64,
    /// Momentum of the running statistics (alpha-DPO, beta-DPO).
    pub momentum: f64,
    /// Batch size the loss lab assumes for Dr. DPO's curve (the other pairs sit at margin 0).
    pub lab_batch: usize,
    /// alpha-DPO's standardised gap `(g - mu) / s` the loss lab assumes for its curve.
    pub lab_gap: f64,
}

impl LossConfig {
    /// method.md's defaults for `kind`.
    pub fn new(kind: LossKind) -> Self {
        let beta = match kind {
            LossKind::Sdpo | LossKind::Rosepo => 1.0,
            LossKind::Simpo => 2.0,
            LossKind::AlphaDpo => 2.5,
            _ => 0.1,
        };
        let gamma = match kind {
            LossKind::Simpo => 0.5 * beta,
            LossKind::AlphaDpo => 0.6 * beta,
            _ => 0.0,
        };
        Self {
            kind,
            beta,
            eps: 0.1,
            tau: 0.1,
            gamma,
            alpha: 0.2,
            beta_prime: 1.0,
            lambda: 0.1,
            rho: 0.8,
            beta_scale: 0.6,
            momentum: 0.9,
            lab_batch: 8,
            lab_gap: 0.0,
        }
    }

    /// Refuses values outside each parameter's domain, naming the parameter.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, v: f64, why: &str| {
            Err(Error::Loss(format!(
                "{what} = {v} is invalid for {}: {why}",
                self.kind.label()
            )))
        };
        let finite = [
            ("beta", self.beta),
            ("eps", self.eps),
            ("tau", self.tau),
            ("gamma", self.gamma),
            ("alpha", self.alpha),
            ("beta-prime", self.beta_prime),
            ("lambda", self.lambda),
            ("rho", self.rho),
            ("beta-scale", self.beta_scale),
            ("momentum", self.momentum),
            ("lab-gap", self.lab_gap),
        ];
        if let Some((what, v)) = finite.iter().find(|(_, v)| !v.is_finite()) {
            return bad(what, *v, "not a finite number");
        }
        let k = self.kind;
        if !matches!(k, LossKind::Ipo | LossKind::Orpo) && self.beta <= 0.0 {
            return bad("beta", self.beta, "must be positive");
        }
        if matches!(k, LossKind::Cdpo | LossKind::Rdpo) && !(0.0..0.5).contains(&self.eps) {
            return bad("eps", self.eps, "must be in [0, 0.5)");
        }
        if k == LossKind::Ipo && self.tau <= 0.0 {
            return bad("tau", self.tau, "must be positive");
        }
        if k == LossKind::DrDpo && self.beta_prime <= 0.0 {
            return bad("beta-prime", self.beta_prime, "must be positive");
        }
        if k == LossKind::BetaDpo && !(self.rho > 0.0 && self.rho <= 1.0) {
            return bad("rho", self.rho, "must be in (0, 1]");
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("momentum", self.momentum, "must be in [0, 1)");
        }
        if k == LossKind::Orpo && self.lambda < 0.0 {
            return bad("lambda", self.lambda, "must not be negative");
        }
        Ok(())
    }

    /// Examples beta-DPO keeps out of a batch of `n`: `ceil(rho * n)`, at least one.
    pub fn kept(&self, n: usize) -> usize {
        ((self.rho * n as f64).ceil() as usize).clamp(1, n.max(1))
    }
}

/// Floor of a running standard deviation, so a batch whose margins are all equal (every batch
/// at initialisation, where LoRA's zero B makes every margin exactly 0) standardises to 0
/// instead of 0/0.
pub const MIN_STD: f64 = 1e-6;

/// Floor of beta-DPO's adapted beta (method.md).
pub const MIN_BETA: f64 = 1e-3;

/// Running mean and standard deviation (alpha-DPO's gap, beta-DPO's margins): the first batch
/// sets them, later batches move them by `1 - momentum`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunningStats {
    /// Running mean.
    pub mean: f64,
    /// Running standard deviation.
    pub std: f64,
    /// Batches seen.
    pub batches: u64,
}

impl RunningStats {
    /// Folds one batch's mean and (population) standard deviation in.
    pub fn update(&mut self, batch_mean: f64, batch_std: f64, momentum: f64) {
        if self.batches == 0 {
            self.mean = batch_mean;
            self.std = batch_std;
        } else {
            self.mean = momentum * self.mean + (1.0 - momentum) * batch_mean;
            self.std = momentum * self.std + (1.0 - momentum) * batch_std;
        }
        self.batches += 1;
    }
}

/// What a loss carries from batch to batch (alpha-DPO's and beta-DPO's running statistics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LossState {
    /// alpha-DPO: statistics of the reference-aware gap `g`.
    pub gap: RunningStats,
    /// beta-DPO: statistics of the margins.
    pub margin: RunningStats,
}

/// One example's summed sequence log-probs, as `recalign loss eval` reads them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExampleLogProbs {
    /// Policy `logp(y_w | x)`.
    pub policy_chosen: f64,
    /// Policy `logp(y_k | x)` of each rejected answer.
    pub policy_rejected: Vec<f64>,
    /// Reference `logp(y_w | x)` (0 for reference-free losses).
    pub ref_chosen: f64,
    /// Reference `logp(y_k | x)`.
    pub ref_rejected: Vec<f64>,
    /// Tokens in `y_w`.
    pub chosen_len: f64,
    /// Tokens in each `y_k`.
    pub rejected_len: Vec<f64>,
    /// RosePO's smoothing factor of each rejected answer.
    pub eps: Vec<f64>,
}

/// A batch in the layout of `recalign loss eval`'s JSON: one entry per example, one inner list of
/// K rejected answers per example. Reference values, lengths and eps may be omitted where the
/// loss does not read them; `eps` may give one number per example or one per rejected answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LossBatch {
    /// Policy log-probs of the chosen answers.
    pub policy_chosen: Vec<f64>,
    /// Policy log-probs of the rejected answers.
    pub policy_rejected: Vec<Vec<f64>>,
    /// Reference log-probs of the chosen answers.
    #[serde(default)]
    pub ref_chosen: Vec<f64>,
    /// Reference log-probs of the rejected answers.
    #[serde(default)]
    pub ref_rejected: Vec<Vec<f64>>,
    /// Token counts of the chosen answers.
    #[serde(default)]
    pub chosen_len: Vec<f64>,
    /// Token counts of the rejected answers.
    #[serde(default)]
    pub rejected_len: Vec<Vec<f64>>,
    /// RosePO's smoothing factors.
    #[serde(default)]
    pub eps: Vec<EpsEntry>,
}

/// One example's eps: shared by its rejected answers or one each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EpsEntry {
    /// The same eps for every rejected answer.
    Shared(f64),
    /// One eps per rejected answer.
    PerRejected(Vec<f64>),
}

impl LossBatch {
    /// Checks the shapes against what `config`'s loss reads and returns one record per example.
    pub fn examples(&self, config: &LossConfig) -> Result<Vec<ExampleLogProbs>> {
        let n = self.policy_chosen.len();
        let kind = config.kind;
        let bad = |why: String| Err(Error::Loss(why));
        if n == 0 {
            return bad("the batch is empty: policy_chosen has no entries".into());
        }
        if self.policy_rejected.len() != n {
            return bad(format!(
                "policy_rejected has {} entries but policy_chosen has {n}",
                self.policy_rejected.len()
            ));
        }
        let k = self.policy_rejected[0].len();
        if k == 0 {
            return bad("example 0 has no rejected answer".into());
        }
        if let Some(i) = self.policy_rejected.iter().position(|r| r.len() != k) {
            return bad(format!(
                "example {i} has {} rejected answers but example 0 has {k}; every example needs \
                 the same K",
                self.policy_rejected[i].len()
            ));
        }
        let needs_ref = kind.uses_reference();
        let check_1 = |name: &str, v: &Vec<f64>, needed: bool| -> Result<()> {
            if (needed || !v.is_empty()) && v.len() != n {
                return Err(Error::Loss(format!(
                    "{name} has {} entries but the batch has {n} examples{}",
                    v.len(),
                    if needed {
                        format!(" ({} needs it)", kind.label())
                    } else {
                        String::new()
                    }
                )));
            }
            Ok(())
        };
        let check_k = |name: &str, v: &Vec<Vec<f64>>, needed: bool| -> Result<()> {
            if (needed || !v.is_empty()) && (v.len() != n || v.iter().any(|r| r.len() != k)) {
                return Err(Error::Loss(format!(
                    "{name} must be {n} lists of {k} values{}",
                    if needed {
                        format!(" ({} needs it)", kind.label())
                    } else {
                        String::new()
                    }
                )));
            }
            Ok(())
        };
        check_1("ref_chosen", &self.ref_chosen, needs_ref)?;
        check_k("ref_rejected", &self.ref_rejected, needs_ref)?;
        check_1("chosen_len", &self.chosen_len, kind.uses_lengths())?;
        check_k("rejected_len", &self.rejected_len, kind.uses_lengths())?;
        let needs_eps = kind == LossKind::Rosepo;
        if (needs_eps || !self.eps.is_empty()) && self.eps.len() != n {
            return bad(format!(
                "eps has {} entries but the batch has {n} examples{}",
                self.eps.len(),
                if needs_eps { " (RosePO needs it)" } else { "" }
            ));
        }
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let eps = match self.eps.get(i) {
                None => vec![config.eps; k],
                Some(EpsEntry::Shared(e)) => vec![*e; k],
                Some(EpsEntry::PerRejected(v)) if v.len() == k => v.clone(),
                Some(EpsEntry::PerRejected(v)) => {
                    return bad(format!(
                        "eps of example {i} has {} values but the example has {k} rejected \
                         answers",
                        v.len()
                    ));
                }
            };
            let ex = ExampleLogProbs {
                policy_chosen: self.policy_chosen[i],
                policy_rejected: self.policy_rejected[i].clone(),
                ref_chosen: self.ref_chosen.get(i).copied().unwrap_or(0.0),
                ref_rejected: self
                    .ref_rejected
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| vec![0.0; k]),
                chosen_len: self.chosen_len.get(i).copied().unwrap_or(1.0),
                rejected_len: self
                    .rejected_len
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| vec![1.0; k]),
                eps,
            };
            check_example(i, &ex, kind)?;
            out.push(ex);
        }
        Ok(out)
    }
}

fn check_example(i: usize, ex: &ExampleLogProbs, kind: LossKind) -> Result<()> {
    let values = std::iter::once(ex.policy_chosen)
        .chain(ex.policy_rejected.iter().copied())
        .chain(std::iter::once(ex.ref_chosen))
        .chain(ex.ref_rejected.iter().copied());
    if values.clone().any(|v| !v.is_finite()) {
        return Err(Error::Loss(format!(
            "example {i} has a log-prob that is not a finite number"
        )));
    }
    let lens = std::iter::once(ex.chosen_len).chain(ex.rejected_len.iter().copied());
    if lens.clone().any(|l| !(l.is_finite() && l >= 1.0)) {
        return Err(Error::Loss(format!(
            "example {i} has a token count below 1"
        )));
    }
    if kind == LossKind::Orpo
        && std::iter::once(ex.policy_chosen)
            .chain(ex.policy_rejected.iter().copied())
            .any(|v| v >= 0.0)
    {
        return Err(Error::Loss(format!(
            "example {i}: ORPO needs log-probs below 0 (odds of a certain answer are infinite)"
        )));
    }
    if let Some(e) = ex.eps.iter().find(|e| !(0.0..0.5).contains(*e)) {
        return Err(Error::Loss(format!(
            "example {i} has eps {e}; smoothing factors must be in [0, 0.5)"
        )));
    }
    Ok(())
}
