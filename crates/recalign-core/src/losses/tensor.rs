//! The losses on Burn tensors, for training: the same formulas as [`super::scalar`], built from
//! differentiable ops so autodiff gives the policy's gradient. Nothing here reads the device:
//! the running statistics that alpha-DPO and beta-DPO carry come in from the host
//! ([`LossState`]) and go out as a small tensor the training step reads back with its report.

use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Device, Tensor, TensorData};

use super::scalar::ExampleGrad;
use super::{ExampleLogProbs, LossConfig, LossKind, LossState, MIN_BETA, MIN_STD};
use crate::{Error, Result};

/// A batch of summed sequence log-probs on the device: `B` examples, `K` rejected answers each.
#[derive(Clone, Debug)]
pub struct LossInputs {
    /// Policy `logp(y_w|x)`, `[B]` (the tensors whose gradients training needs).
    pub policy_chosen: Tensor<1>,
    /// Policy `logp(y_k|x)`, `[B, K]`.
    pub policy_rejected: Tensor<2>,
    /// Reference `logp(y_w|x)`, `[B]`.
    pub ref_chosen: Tensor<1>,
    /// Reference `logp(y_k|x)`, `[B, K]`.
    pub ref_rejected: Tensor<2>,
    /// Tokens in `y_w`, `[B]`.
    pub chosen_len: Tensor<1>,
    /// Tokens in `y_k`, `[B, K]`.
    pub rejected_len: Tensor<2>,
    /// Smoothing factors (RosePO), `[B, K]`.
    pub eps: Tensor<2>,
    /// beta-DPO's Gumbel noise, `[B]`.
    pub noise: Tensor<1>,
}

impl LossInputs {
    /// Uploads host records (the tests' and `loss eval`'s path; training builds the policy
    /// tensors from the model instead). `noise` may be empty for losses other than beta-DPO.
    pub fn from_examples(
        examples: &[ExampleLogProbs],
        noise: &[f64],
        device: &Device,
    ) -> Result<Self> {
        let n = examples.len();
        let k = examples.first().map_or(0, |e| e.policy_rejected.len());
        if n == 0 || k == 0 || examples.iter().any(|e| e.policy_rejected.len() != k) {
            return Err(Error::Loss(
                "a batch needs examples with the same number (at least one) of rejected answers"
                    .into(),
            ));
        }
        let t1 = |f: &dyn Fn(&ExampleLogProbs) -> f64| {
            let v: Vec<f32> = examples.iter().map(|e| f(e) as f32).collect();
            Tensor::<1>::from_data(TensorData::new(v, [n]), device)
        };
        let t2 = |f: &dyn Fn(&ExampleLogProbs) -> &Vec<f64>| {
            let v: Vec<f32> = examples
                .iter()
                .flat_map(|e| f(e).iter().map(|&x| x as f32))
                .collect();
            Tensor::<2>::from_data(TensorData::new(v, [n, k]), device)
        };
        let noise: Vec<f32> = (0..n)
            .map(|i| noise.get(i).copied().unwrap_or(0.0) as f32)
            .collect();
        Ok(Self {
            policy_chosen: t1(&|e| e.policy_chosen),
            policy_rejected: t2(&|e| &e.policy_rejected),
            ref_chosen: t1(&|e| e.ref_chosen),
            ref_rejected: t2(&|e| &e.ref_rejected),
            chosen_len: t1(&|e| e.chosen_len),
            rejected_len: t2(&|e| &e.rejected_len),
            eps: t2(&|e| &e.eps),
            noise: Tensor::from_data(TensorData::new(noise, [n]), device),
        })
    }
}

/// A loss on the device.
#[derive(Clone, Debug)]
pub struct LossOutput {
    /// The batch objective, `[1]`.
    pub loss: Tensor<1>,
    /// Per-example losses, `[B]` (as [`super::scalar::BatchLoss::losses`]).
    pub per_example: Tensor<1>,
    /// Per-example margins averaged over the rejected answers, `[B]` (detached).
    pub margins: Tensor<1>,
    /// Chosen rewards `r(y_w)`, `[B]` (detached).
    pub chosen_rewards: Tensor<1>,
    /// Rejected rewards averaged over the rejected answers, `[B]` (detached).
    pub rejected_rewards: Tensor<1>,
    /// `[gap mean, gap std, margin mean, margin std, beta used]` after this batch: read it back
    /// with the step's report and fold it in with [`LossState::absorb`].
    pub stats: Tensor<1>,
}

impl LossState {
    /// Takes the running statistics a [`LossOutput::stats`] read-back carries.
    pub fn absorb(&mut self, kind: LossKind, stats: &[f32]) {
        if stats.len() < 4 {
            return;
        }
        match kind {
            LossKind::AlphaDpo => {
                self.gap.mean = f64::from(stats[0]);
                self.gap.std = f64::from(stats[1]);
                self.gap.batches += 1;
            }
            LossKind::BetaDpo => {
                self.margin.mean = f64::from(stats[2]);
                self.margin.std = f64::from(stats[3]);
                self.margin.batches += 1;
            }
            _ => {}
        }
    }
}

fn softplus<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    log_sigmoid(x.neg()).neg()
}

/// Population mean and standard deviation of a detached tensor, as `[1]` tensors.
fn mean_std<const D: usize>(x: Tensor<D>) -> (Tensor<1>, Tensor<1>) {
    let x = x.detach().flatten::<1>(0, D - 1);
    let mean = x.clone().mean();
    let std = (x - mean.clone()).square().mean().sqrt();
    (mean, std)
}

/// The batch objective of `config`'s loss, differentiable with respect to the policy inputs.
pub fn batch_loss(
    config: &LossConfig,
    inputs: &LossInputs,
    state: &LossState,
) -> Result<LossOutput> {
    config.validate()?;
    let [n, k] = inputs.policy_rejected.dims();
    let device = inputs.policy_chosen.device();
    let (nf, kf) = (n as f64, k as f64);
    let beta = config.beta;
    let col = |t: &Tensor<1>| t.clone().unsqueeze_dim::<2>(1);
    let scalar = |v: f64| Tensor::<1>::from_data(TensorData::new(vec![v as f32], [1]), &device);
    let fold = |prev: &super::RunningStats, batch: Tensor<1>, which: f64| -> Tensor<1> {
        if prev.batches == 0 {
            batch
        } else {
            batch * (1.0 - config.momentum) + scalar(config.momentum * which)
        }
    };

    let chosen_reward = inputs.policy_chosen.clone() - inputs.ref_chosen.clone();
    let rejected_reward = inputs.policy_rejected.clone() - inputs.ref_rejected.clone();
    let h = col(&chosen_reward) - rejected_reward.clone();
    let per_k_mean = |t: Tensor<2>| t.sum_dim(1).reshape([n]) / kf;

    let mut margins = per_k_mean(h.clone());
    let mut stats = vec![
        scalar(state.gap.mean),
        scalar(state.gap.std),
        scalar(state.margin.mean),
        scalar(state.margin.std),
        scalar(beta),
    ];
    let mut weights: Option<Tensor<1>> = None;

    let per_example = match config.kind {
        LossKind::Sdpo => {
            // log(1 + sum_k exp(-beta h_k)): log-sum-exp over [0, -beta h_1..K].
            let z = Tensor::cat(vec![Tensor::zeros([n, 1], &device), h.clone() * (-beta)], 1);
            let max = z.clone().detach().max_dim(1);
            ((z - max.clone()).exp().sum_dim(1).log() + max).reshape([n])
        }
        LossKind::Simpo | LossKind::AlphaDpo => {
            let d = col(&(inputs.policy_chosen.clone() / inputs.chosen_len.clone()))
                - inputs.policy_rejected.clone() / inputs.rejected_len.clone();
            margins = per_k_mean(d.clone()).detach();
            let shift = if config.kind == LossKind::AlphaDpo {
                let d_ref = col(&(inputs.ref_chosen.clone() / inputs.chosen_len.clone()))
                    - inputs.ref_rejected.clone() / inputs.rejected_len.clone();
                let g = (d.clone() - d_ref).detach();
                let (m, s) = mean_std(g.clone());
                let mu = fold(&state.gap, m, state.gap.mean);
                let s = fold(&state.gap, s, state.gap.std);
                stats[0] = mu.clone();
                stats[1] = s.clone();
                let s = s.clamp_min(MIN_STD);
                ((g - mu.unsqueeze_dim::<2>(1)) / s.unsqueeze_dim::<2>(1)) * config.alpha
                    + config.gamma / beta
            } else {
                Tensor::zeros([n, k], &device) + config.gamma / beta
            };
            per_k_mean(softplus((d - shift.detach()) * (-beta)))
        }
        LossKind::Orpo => {
            let log_odds = |m: Tensor<2>| {
                let m = m.clamp_max(-1e-7);
                m.clone() - m.exp().neg().log1p()
            };
            let mw = col(&(inputs.policy_chosen.clone() / inputs.chosen_len.clone()));
            let mk = inputs.policy_rejected.clone() / inputs.rejected_len.clone();
            let delta = log_odds(mw.clone()) - log_odds(mk);
            margins = per_k_mean(delta.clone()).detach();
            mw.reshape([n]).neg() + per_k_mean(softplus(delta.neg())) * config.lambda
        }
        LossKind::BetaDpo => {
            let hbar = margins.clone().detach();
            let (m, s) = mean_std(hbar.clone());
            let m0 = fold(&state.margin, m, state.margin.mean);
            let s = fold(&state.margin, s, state.margin.std);
            stats[2] = m0.clone();
            stats[3] = s.clone();
            let z = (hbar.clone() - m0.clone()) / s.clamp_min(MIN_STD);
            let keys = z.square() * (-0.5) + inputs.noise.clone();
            // rank_i = #{j : key_j > key_i, or equal with j < i}; keep the `kept` best.
            let row = keys.clone().unsqueeze_dim::<2>(0).expand([n, n]);
            let column = keys.unsqueeze_dim::<2>(1).expand([n, n]);
            let lower: Vec<f32> = (0..n)
                .flat_map(|i| (0..n).map(move |j| f32::from(u8::from(j < i))))
                .collect();
            let lower = Tensor::<2>::from_data(TensorData::new(lower, [n, n]), &device);
            let beats =
                row.clone().greater(column.clone()).float() + row.equal(column).float() * lower;
            let n_kept = config.kept(n);
            let kept = beats
                .sum_dim(1)
                .reshape([n])
                .lower_elem(n_kept as f64 - 0.5)
                .float();
            let mean_kept = (kept.clone() * hbar).sum() / n_kept as f64;
            let beta_b = ((mean_kept - m0) * config.beta_scale + 1.0) * beta;
            let beta_b = beta_b.clamp_min(MIN_BETA).detach();
            stats[4] = beta_b.clone();
            weights = Some(kept / n_kept as f64);
            per_k_mean(softplus(h.clone() * beta_b.unsqueeze_dim::<2>(1).neg()))
        }
        LossKind::Cdpo | LossKind::Rosepo => {
            let eps = if config.kind == LossKind::Cdpo {
                Tensor::zeros([n, k], &device) + config.eps
            } else {
                inputs.eps.clone()
            };
            let bh = h.clone() * beta;
            per_k_mean((eps.clone().neg() + 1.0) * softplus(bh.clone().neg()) + eps * softplus(bh))
        }
        LossKind::Rdpo => {
            let e = config.eps;
            let bh = h.clone() * beta;
            per_k_mean(
                (softplus(bh.clone().neg()) * (1.0 - e) - softplus(bh) * e) / (1.0 - 2.0 * e),
            )
        }
        LossKind::Ipo => per_k_mean((h.clone() - 1.0 / (2.0 * config.tau)).square()),
        LossKind::Dpo | LossKind::DrDpo => per_k_mean(softplus(h.clone() * (-beta))),
    };

    let loss = match (config.kind, weights) {
        (LossKind::DrDpo, _) => {
            let bp = config.beta_prime;
            let z = per_example.clone() / (-bp);
            let max = z.clone().detach().max();
            ((z - max.clone()).exp().sum().log() + max - nf.ln()) * (-bp)
        }
        (_, Some(w)) => (per_example.clone() * w).sum(),
        (_, None) => per_example.clone().mean(),
    };

    Ok(LossOutput {
        loss,
        per_example,
        margins: margins.detach(),
        chosen_rewards: chosen_reward.detach(),
        rejected_rewards: per_k_mean(rejected_reward).detach(),
        stats: Tensor::cat(stats, 0),
    })
}

pub use crate::lm::read_f32 as read;

/// Autodiff's gradient of the objective with respect to the policy inputs (tests and the loss
/// lab's "gradient of the real batch"). `device` must be an autodiff device.
pub async fn policy_gradients(
    config: &LossConfig,
    examples: &[ExampleLogProbs],
    noise: &[f64],
    state: &LossState,
    device: &Device,
) -> Result<(f32, Vec<ExampleGrad>)> {
    let mut inputs = LossInputs::from_examples(examples, noise, device)?;
    inputs.policy_chosen = inputs.policy_chosen.require_grad();
    inputs.policy_rejected = inputs.policy_rejected.require_grad();
    let out = batch_loss(config, &inputs, state)?;
    let value = read(out.loss.clone()).await?;
    let grads = out.loss.backward();
    let missing = || Error::Loss("the loss does not depend on the policy".into());
    let gc = inputs.policy_chosen.grad(&grads).ok_or_else(missing)?;
    let gr = inputs.policy_rejected.grad(&grads).ok_or_else(missing)?;
    let k = examples[0].policy_rejected.len();
    let gc = read(gc).await?;
    let gr = read(gr.flatten::<1>(0, 1)).await?;
    let grads = gc
        .iter()
        .zip(gr.chunks(k))
        .map(|(&c, r)| ExampleGrad {
            chosen: f64::from(c),
            rejected: r.iter().map(|&x| f64::from(x)).collect(),
        })
        .collect();
    Ok((value.first().copied().unwrap_or(f32::NAN), grads))
}
