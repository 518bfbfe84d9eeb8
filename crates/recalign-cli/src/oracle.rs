//! `recalign oracle`: SASRec, the preference oracle, trained and evaluated against the popularity
//! and random rankers.

use std::path::PathBuf;
use std::time::Instant;

use clap::Subcommand;
use recalign_core::data::split::{SplitName, Splits};
use recalign_core::oracle::sasrec::{
    SasRecConfig, SasRecOracle, SasRecTrainer, SasRecTraining, catalogue_fingerprint,
};
use recalign_core::oracle::{self, OracleReport};

use crate::args::{CliResult, DEFAULT_ORACLE, DatasetArgs, ModelArgs, bar, device, to_json};

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process")]
pub enum OracleCommand {
    /// Train SASRec on the training split, save it, and compare it with popularity and random.
    Train {
        #[command(flatten)]
        dataset: DatasetArgs,
        /// Passes over the training windows.
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        /// Windows per step.
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
        /// Adam learning rate.
        #[arg(long, default_value_t = 3e-3)]
        learning_rate: f64,
        /// Where to save (safetensors).
        #[arg(long, default_value = DEFAULT_ORACLE)]
        out: PathBuf,
        /// Print the evaluation as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Evaluate a saved oracle against popularity and random.
    Eval {
        #[command(flatten)]
        dataset: DatasetArgs,
        /// The saved oracle.
        #[arg(long, default_value = DEFAULT_ORACLE)]
        oracle: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        model: ModelArgs,
    },
}

pub fn run(command: OracleCommand) -> CliResult {
    match command {
        OracleCommand::Train {
            dataset,
            epochs,
            batch_size,
            learning_rate,
            out,
            json,
            model,
        } => {
            let (log, splits) = dataset.splits()?;
            let device = device(model.device)?;
            let config =
                SasRecConfig::new(log.catalogue.len(), catalogue_fingerprint(&log.catalogue));
            let training = SasRecTraining {
                epochs,
                batch_size,
                learning_rate,
                seed: dataset.seed,
            };
            let mut trainer =
                SasRecTrainer::new(config, training, &splits.train_sequences, &device)
                    .map_err(|e| e.to_string())?;
            let progress = bar(trainer.total_steps() as u64, "SASRec");
            let start = Instant::now();
            let mut epoch_loss = (0.0f64, 0usize);
            let mut losses = Vec::new();
            loop {
                let step = pollster::block_on(trainer.step()).map_err(|e| e.to_string())?;
                epoch_loss = (epoch_loss.0 + f64::from(step.loss), epoch_loss.1 + 1);
                progress.inc(1);
                if step.step == step.steps_per_epoch {
                    let mean = epoch_loss.0 / epoch_loss.1 as f64;
                    progress.set_message(format!("loss {mean:.3}"));
                    losses.push(mean);
                    epoch_loss = (0.0, 0);
                }
                if step.done {
                    break;
                }
            }
            progress.finish_and_clear();
            let seconds = start.elapsed().as_secs_f64();
            let oracle = trainer.oracle();
            let bytes = oracle.to_safetensors().map_err(|e| e.to_string())?;
            if let Some(dir) = out.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            std::fs::write(&out, &bytes)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            eprintln!(
                "trained {} epochs ({} steps) in {seconds:.1} s; epoch losses {:.3} -> {:.3}; saved {} ({} KiB)",
                epochs,
                trainer.total_steps(),
                losses.first().unwrap_or(&f64::NAN),
                losses.last().unwrap_or(&f64::NAN),
                out.display(),
                bytes.len() / 1024
            );
            report(&splits, &oracle, json, Some(seconds))
        }
        OracleCommand::Eval {
            dataset,
            oracle,
            json,
            model,
        } => {
            let (log, splits) = dataset.splits()?;
            let device = device(model.device)?;
            let bytes = std::fs::read(&oracle).map_err(|e| {
                format!(
                    "cannot read {}: {e} (train one with `recalign oracle train`)",
                    oracle.display()
                )
            })?;
            let oracle = SasRecOracle::from_safetensors(
                &bytes,
                &device,
                Some(catalogue_fingerprint(&log.catalogue)),
            )
            .map_err(|e| e.to_string())?;
            report(&splits, &oracle, json, None)
        }
    }
}

fn report(
    splits: &Splits,
    sasrec: &SasRecOracle,
    json: bool,
    train_seconds: Option<f64>,
) -> CliResult {
    let mut tables = Vec::new();
    for name in [SplitName::Validation, SplitName::Test] {
        let examples = splits.get(name);
        // The papers' files hold out one split only: no table of zeros for the other.
        if examples.is_empty() {
            continue;
        }
        let sas =
            pollster::block_on(sasrec.candidate_scores(examples)).map_err(|e| e.to_string())?;
        let sas_all =
            pollster::block_on(sasrec.catalogue_scores(examples)).map_err(|e| e.to_string())?;
        let rows = vec![
            OracleReport {
                scorer: "sasrec".into(),
                candidates: oracle::candidate_metrics(examples, &sas),
                catalogue: Some(oracle::catalogue_metrics(examples, &sas_all)),
            },
            OracleReport {
                scorer: "popularity".into(),
                candidates: oracle::candidate_metrics(
                    examples,
                    &oracle::popularity_scores(examples, &splits.popularity),
                ),
                catalogue: Some(oracle::catalogue_metrics(
                    examples,
                    &oracle::popularity_catalogue_scores(examples, &splits.popularity),
                )),
            },
            OracleReport {
                scorer: "random".into(),
                candidates: oracle::candidate_metrics(examples, &oracle::constant_scores(examples)),
                catalogue: None,
            },
        ];
        tables.push((name.name(), examples.len(), rows));
    }
    if json {
        let value = serde_json::json!({
            "train_seconds": train_seconds,
            "splits": tables.iter().map(|(n, count, rows)| serde_json::json!({"split": n, "examples": count, "scorers": rows})).collect::<Vec<_>>(),
        });
        println!("{}", to_json(&value)?);
        return Ok(());
    }
    for (name, count, rows) in &tables {
        println!(
            "{name} ({count} users); 20-candidate metrics, then full-catalogue (history excluded)"
        );
        println!(
            "{:<11} {:>6} {:>6} {:>7} {:>6}   {:>7} {:>8}",
            "scorer", "HR@1", "HR@5", "NDCG@5", "MRR", "HR@10*", "NDCG@10*"
        );
        for r in rows {
            let c = &r.candidates;
            let (h10, n10) = r
                .catalogue
                .as_ref()
                .map_or(("-".to_string(), "-".to_string()), |m| {
                    (format!("{:.4}", m.hr[3]), format!("{:.4}", m.ndcg[3]))
                });
            println!(
                "{:<11} {:>6.4} {:>6.4} {:>7.4} {:>6.4}   {:>7} {:>8}",
                r.scorer, c.hr[0], c.hr[2], c.ndcg[2], c.mrr, h10, n10
            );
        }
        println!();
    }
    Ok(())
}
