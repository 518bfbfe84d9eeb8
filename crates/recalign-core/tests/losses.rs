//! The losses' two versions against each other and against the identities method.md states:
//! tensor and `f64` agree on value and gradient, autodiff's gradient equals the closed form, and
//! the special cases collapse (cDPO at eps 0 and S-DPO at K = 1 are DPO, RosePO at a constant
//! eps is cDPO, the cDPO/RosePO optimum sits at `ln((1-eps)/eps)/beta`).

use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recalign_core::losses::scalar::{self, curve_point, gumbel_noise, optimum};
use recalign_core::losses::tensor::policy_gradients;
use recalign_core::losses::{ExampleLogProbs, LossBatch, LossConfig, LossKind, LossState};

fn device() -> Device {
    Device::flex().autodiff()
}

fn batch(seed: u64, n: usize, k: usize) -> Vec<ExampleLogProbs> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let lens: Vec<f64> = (0..k)
                .map(|_| f64::from(rng.random_range(1..12u8)))
                .collect();
            ExampleLogProbs {
                policy_chosen: rng.random_range(-30.0..-0.5),
                policy_rejected: (0..k).map(|_| rng.random_range(-30.0..-0.5)).collect(),
                ref_chosen: rng.random_range(-30.0..-0.5),
                ref_rejected: (0..k).map(|_| rng.random_range(-30.0..-0.5)).collect(),
                chosen_len: f64::from(rng.random_range(1..12u8)),
                rejected_len: lens,
                eps: (0..k).map(|_| rng.random_range(0.0..0.45)).collect(),
            }
        })
        .collect()
}

fn close(a: f64, b: f64, what: &str) {
    let tol = 2e-4 * (1.0 + a.abs().max(b.abs()));
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b}");
}

/// Scalar and tensor versions on the same batch: objective, and the gradient with respect to
/// every policy log-prob (autodiff on the tensor side, closed form on the scalar side).
fn agree(config: &LossConfig, examples: &[ExampleLogProbs], seed: u64) {
    let noise = gumbel_noise(seed, examples.len());
    let mut state = LossState::default();
    let s = scalar::batch_loss(config, examples, &mut state, &noise).expect("scalar loss");
    let (t, grads) = pollster::block_on(policy_gradients(
        config,
        examples,
        &noise,
        &LossState::default(),
        &device(),
    ))
    .expect("tensor loss");
    let name = config.kind.label();
    close(s.mean, f64::from(t), &format!("{name} objective"));
    for (i, (gs, gt)) in s.grads.iter().zip(&grads).enumerate() {
        close(gs.chosen, gt.chosen, &format!("{name} d/d chosen[{i}]"));
        for (j, (a, b)) in gs.rejected.iter().zip(&gt.rejected).enumerate() {
            close(*a, *b, &format!("{name} d/d rejected[{i}][{j}]"));
        }
    }
}

#[test]
fn tensor_and_scalar_versions_agree_on_value_and_gradient() {
    for kind in LossKind::ALL {
        let config = LossConfig::new(kind);
        for (seed, k) in [(1, 1), (2, 3)] {
            agree(&config, &batch(seed, 6, k), seed);
        }
    }
}

#[test]
fn agreement_holds_at_large_margins_and_other_parameters() {
    for kind in LossKind::ALL {
        let mut config = LossConfig::new(kind);
        config.beta = 3.0;
        config.eps = 0.3;
        config.tau = 0.05;
        config.beta_prime = 0.3;
        config.rho = 0.5;
        let mut examples = batch(9, 8, 2);
        // Margins of a few hundred nats: softplus and the softmaxes must not overflow.
        examples[0].policy_chosen = -0.6;
        examples[0].policy_rejected = vec![-200.0, -150.0];
        examples[1].policy_chosen = -250.0;
        agree(&config, &examples, 9);
    }
}

#[test]
fn the_gradient_weight_is_minus_the_derivative_of_the_curve() {
    for kind in LossKind::ALL {
        let config = LossConfig::new(kind);
        for x in [-20.0, -3.0, -0.5, 0.0, 0.7, 4.0, 25.0] {
            let h = 1e-4;
            let up = curve_point(&config, x + h, 0.2, 3).loss;
            let down = curve_point(&config, x - h, 0.2, 3).loss;
            let numeric = -(up - down) / (2.0 * h);
            let p = curve_point(&config, x, 0.2, 3);
            assert!(
                (numeric - p.weight).abs() < 1e-5 * (1.0 + p.weight.abs()),
                "{kind} at {x}: weight {} but finite difference {numeric}",
                p.weight
            );
            assert!(p.loss.is_finite());
        }
    }
}

#[test]
fn cdpo_at_eps_zero_is_dpo() {
    let examples = batch(3, 7, 1);
    let mut dpo = LossConfig::new(LossKind::Dpo);
    dpo.beta = 0.7;
    let mut cdpo = LossConfig::new(LossKind::Cdpo);
    cdpo.beta = 0.7;
    cdpo.eps = 0.0;
    let a = scalar::batch_loss(&dpo, &examples, &mut LossState::default(), &[]).unwrap();
    let b = scalar::batch_loss(&cdpo, &examples, &mut LossState::default(), &[]).unwrap();
    close(a.mean, b.mean, "objective");
    assert_eq!(a.losses.len(), b.losses.len());
    for (x, y) in a.losses.iter().zip(&b.losses) {
        close(*x, *y, "per-example");
    }
    agree(&cdpo, &examples, 3);
}

#[test]
fn sdpo_with_one_negative_is_dpo() {
    let examples = batch(4, 7, 1);
    let mut dpo = LossConfig::new(LossKind::Dpo);
    dpo.beta = 1.0;
    let sdpo = LossConfig::new(LossKind::Sdpo);
    assert_eq!(sdpo.beta, 1.0);
    let a = scalar::batch_loss(&dpo, &examples, &mut LossState::default(), &[]).unwrap();
    let b = scalar::batch_loss(&sdpo, &examples, &mut LossState::default(), &[]).unwrap();
    for (x, y) in a.losses.iter().zip(&b.losses) {
        close(*x, *y, "S-DPO K=1 vs DPO");
    }
    for (x, y) in a.grads.iter().zip(&b.grads) {
        close(x.chosen, y.chosen, "gradient");
    }
}

#[test]
fn rosepo_with_a_constant_eps_is_cdpo() {
    let mut examples = batch(5, 7, 2);
    for e in &mut examples {
        e.eps = vec![0.15; 2];
    }
    let mut cdpo = LossConfig::new(LossKind::Cdpo);
    cdpo.eps = 0.15;
    cdpo.beta = 1.0;
    let rosepo = LossConfig::new(LossKind::Rosepo);
    let a = scalar::batch_loss(&cdpo, &examples, &mut LossState::default(), &[]).unwrap();
    let b = scalar::batch_loss(&rosepo, &examples, &mut LossState::default(), &[]).unwrap();
    close(a.mean, b.mean, "objective");
    for (x, y) in a.grads.iter().zip(&b.grads) {
        close(x.chosen, y.chosen, "gradient");
    }
}

#[test]
fn cdpo_and_rosepo_optimum_is_where_the_weight_changes_sign() {
    for (kind, eps, beta) in [
        (LossKind::Cdpo, 0.1, 0.1),
        (LossKind::Cdpo, 0.3, 2.0),
        (LossKind::Rosepo, 0.05, 1.0),
        (LossKind::Rosepo, 0.4, 1.0),
    ] {
        let mut config = LossConfig::new(kind);
        config.eps = eps;
        config.beta = beta;
        let star = optimum(&config, eps).expect("finite optimum");
        close(star, ((1.0 - eps) / eps).ln() / beta, "closed form");
        let at = curve_point(&config, star, eps, 1);
        assert!(
            at.weight.abs() < 1e-9,
            "{kind}: weight {} at optimum",
            at.weight
        );
        assert!(curve_point(&config, star - 0.5, eps, 1).weight > 0.0);
        assert!(curve_point(&config, star + 0.5, eps, 1).weight < 0.0);
        assert!(curve_point(&config, star + 0.5, eps, 1).loss > at.loss);
        assert!(curve_point(&config, star - 0.5, eps, 1).loss > at.loss);
    }
    // DPO's weight decays to zero, rDPO's never does; IPO's optimum is 1/(2 tau).
    let dpo = LossConfig::new(LossKind::Dpo);
    assert!(curve_point(&dpo, 400.0, 0.0, 1).weight < 1e-12);
    assert_eq!(optimum(&dpo, 0.1), None);
    let rdpo = LossConfig::new(LossKind::Rdpo);
    assert!(curve_point(&rdpo, 400.0, 0.0, 1).weight > 0.009);
    let ipo = LossConfig::new(LossKind::Ipo);
    assert_eq!(optimum(&ipo, 0.0), Some(5.0));
}

#[test]
fn beta_dpo_keeps_rho_of_the_batch_and_carries_its_statistics() {
    let config = LossConfig::new(LossKind::BetaDpo);
    let examples = batch(6, 10, 1);
    let noise = gumbel_noise(6, 10);
    let mut state = LossState::default();
    let first = scalar::batch_loss(&config, &examples, &mut state, &noise).unwrap();
    assert_eq!(first.kept.iter().filter(|k| **k).count(), 8);
    assert_eq!(state.margin.batches, 1);
    let m = first.margins.iter().sum::<f64>() / 10.0;
    close(state.margin.mean, m, "first batch sets the mean");
    // The adapted beta moves with the kept margins, never below its floor.
    assert!(first.beta > 0.0);
    let again = scalar::batch_loss(&config, &examples, &mut state, &noise).unwrap();
    assert_eq!(state.margin.batches, 2);
    close(state.margin.mean, m, "momentum keeps an equal batch's mean");
    assert_eq!(first.kept, again.kept);
    // The tensor version reports the same statistics and beta.
    let device = device();
    let inputs =
        recalign_core::losses::tensor::LossInputs::from_examples(&examples, &noise, &device)
            .unwrap();
    let out =
        recalign_core::losses::tensor::batch_loss(&config, &inputs, &LossState::default()).unwrap();
    let stats = pollster::block_on(recalign_core::losses::tensor::read(out.stats)).unwrap();
    close(f64::from(stats[2]), m, "tensor running mean");
    close(f64::from(stats[4]), first.beta, "tensor beta");
}

#[test]
fn dr_dpo_tends_to_dpo_as_beta_prime_grows_and_down_weights_high_losses() {
    let examples = batch(8, 6, 1);
    let dpo = LossConfig::new(LossKind::Dpo);
    let mut dr = LossConfig::new(LossKind::DrDpo);
    dr.beta_prime = 1e6;
    let a = scalar::batch_loss(&dpo, &examples, &mut LossState::default(), &[]).unwrap();
    let b = scalar::batch_loss(&dr, &examples, &mut LossState::default(), &[]).unwrap();
    close(a.mean, b.mean, "beta' -> infinity");
    let w = scalar::dr_dpo_pair_weights(0.5, &[0.1, 0.7, 3.0]);
    close(w.iter().sum(), 1.0, "weights sum to one");
    assert!(w[0] > w[1] && w[1] > w[2]);
    let s = scalar::sdpo_negative_weights(1.0, &[2.0, -1.0, 0.5]);
    assert!(
        s[1] > s[2] && s[2] > s[0],
        "the hardest negative gets most: {s:?}"
    );
}

#[test]
fn loss_batch_json_is_checked_with_clear_errors() {
    let parse = |json: &str, kind: LossKind| {
        let batch: LossBatch = serde_json::from_str(json).expect("json");
        batch.examples(&LossConfig::new(kind))
    };
    let ok = r#"{"policy_chosen": [-3.0], "policy_rejected": [[-5.0, -6.0]],
                 "ref_chosen": [-4.0], "ref_rejected": [[-5.5, -5.0]], "eps": [0.2]}"#;
    let ex = parse(ok, LossKind::Rosepo).expect("valid batch");
    assert_eq!(ex[0].eps, [0.2, 0.2]);
    for (json, kind, needle) in [
        (
            r#"{"policy_chosen": [], "policy_rejected": []}"#,
            LossKind::Dpo,
            "empty",
        ),
        (
            r#"{"policy_chosen": [-1.0], "policy_rejected": [[-2.0]]}"#,
            LossKind::Dpo,
            "ref_chosen",
        ),
        (
            r#"{"policy_chosen": [-1.0, -2.0], "policy_rejected": [[-2.0], [-1.0, -3.0]],
                "ref_chosen": [0, 0], "ref_rejected": [[0], [0, 0]]}"#,
            LossKind::Sdpo,
            "same K",
        ),
        (
            r#"{"policy_chosen": [-1.0], "policy_rejected": [[-2.0]],
                "ref_chosen": [-1.0], "ref_rejected": [[-1.0]]}"#,
            LossKind::Rosepo,
            "eps",
        ),
        (
            r#"{"policy_chosen": [0.5], "policy_rejected": [[-2.0]],
                "chosen_len": [2], "rejected_len": [[3]]}"#,
            LossKind::Orpo,
            "below 0",
        ),
        (
            r#"{"policy_chosen": [-1.0], "policy_rejected": [[-2.0]],
                "ref_chosen": [-1.0], "ref_rejected": [[-1.0]], "eps": [0.7]}"#,
            LossKind::Rosepo,
            "[0, 0.5)",
        ),
    ] {
        let err = parse(json, kind).expect_err(json).to_string();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    }
    let mut bad = LossConfig::new(LossKind::Cdpo);
    bad.eps = 0.5;
    assert!(bad.validate().unwrap_err().to_string().contains("eps"));
    assert!(LossKind::parse("Alpha_DPO").is_ok());
    assert!(
        LossKind::parse("ppo")
            .unwrap_err()
            .to_string()
            .contains("rosepo")
    );
}
