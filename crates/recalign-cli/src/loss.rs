//! `recalign loss`: the preference losses on numbers from stdin, so anyone can check them against
//! another implementation, and the loss lab's curves as text.

use std::io::Read;

use clap::Subcommand;
use recalign_core::losses::scalar::{self, curve_point, gumbel_noise, optimum};
use recalign_core::losses::{LossBatch, LossState};
use serde_json::json;

use crate::args::{CliResult, LossParams};

#[derive(Subcommand)]
pub enum LossCommand {
    /// Evaluate a loss on a JSON batch read from stdin:
    /// {"policy_chosen": [..], "policy_rejected": [[..], ..], "ref_chosen": [..],
    /// "ref_rejected": [[..], ..], "chosen_len": [..], "rejected_len": [[..], ..], "eps": [..]}.
    /// Prints {"losses": [..], "mean": x}.
    Eval {
        #[command(flatten)]
        params: LossParams,
        /// Seed of beta-DPO's sampling.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also print the gradient with respect to every policy log-prob, the margins, the kept
        /// examples and the beta used.
        #[arg(long)]
        detail: bool,
    },
    /// Print one loss's curve: loss and gradient weight against its margin (JSON lines).
    Curve {
        #[command(flatten)]
        params: LossParams,
        /// Smallest margin.
        #[arg(long, default_value_t = -10.0, allow_negative_numbers = true)]
        from: f64,
        /// Largest margin.
        #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
        to: f64,
        /// Points.
        #[arg(long, default_value_t = 21)]
        points: usize,
        /// S-DPO's number of (equal) negatives.
        #[arg(long, default_value_t = scalar::LAB_NEGATIVES)]
        negatives: usize,
    },
}

pub fn run(what: LossCommand) -> CliResult {
    match what {
        LossCommand::Eval {
            params,
            seed,
            detail,
        } => {
            let config = params.config()?;
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            let batch: LossBatch = serde_json::from_str(&input)
                .map_err(|e| format!("stdin is not a loss batch: {e}"))?;
            let examples = batch.examples(&config).map_err(|e| e.to_string())?;
            let noise = gumbel_noise(seed, examples.len());
            let out = scalar::batch_loss(&config, &examples, &mut LossState::default(), &noise)
                .map_err(|e| e.to_string())?;
            let value = if detail {
                json!({
                    "losses": out.losses, "mean": out.mean, "grads": out.grads,
                    "margins": out.margins, "kept": out.kept, "beta": out.beta,
                    "config": config,
                })
            } else {
                json!({"losses": out.losses, "mean": out.mean})
            };
            println!("{value}");
            Ok(())
        }
        LossCommand::Curve {
            params,
            from,
            to,
            points,
            negatives,
        } => {
            let config = params.config()?;
            if points < 2 || from.partial_cmp(&to) != Some(std::cmp::Ordering::Less) {
                return Err("need --points >= 2 and --from < --to".into());
            }
            let eps = params.eps.unwrap_or(config.eps);
            println!(
                "{}",
                json!({"loss": config.kind.label(), "x": config.kind.margin_label(),
                       "optimum": optimum(&config, eps), "config": config})
            );
            for i in 0..points {
                let x = from + (to - from) * i as f64 / (points - 1) as f64;
                let p = curve_point(&config, x, eps, negatives);
                println!("{}", json!(p));
            }
            Ok(())
        }
    }
}
