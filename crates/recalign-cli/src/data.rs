//! `recalign data`: a dataset's split statistics and its split files.

use std::path::PathBuf;

use clap::Subcommand;
use recalign_core::data::formats::Dataset;
use recalign_core::data::split::{self, SplitName};
use recalign_core::data::stats::{split_stats, text_histogram};
use serde::Serialize;

use crate::args::{CliResult, DatasetArgs, to_json};

#[derive(Subcommand)]
pub enum DataCommand {
    /// Print users, items, examples per split, history lengths and popularity.
    Stats {
        #[command(flatten)]
        dataset: DatasetArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the split as JSON Lines (train/validation/test.jsonl) with ids and titles.
    Split {
        #[command(flatten)]
        dataset: DatasetArgs,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Serialize)]
struct ExampleRow<'a> {
    user: &'a str,
    history: Vec<String>,
    target: String,
    candidates: Vec<String>,
    history_ids: Vec<u32>,
    target_id: u32,
    candidate_ids: Vec<u32>,
}

pub fn run(command: DataCommand) -> CliResult {
    match command {
        DataCommand::Stats { dataset, json } => match dataset.load()? {
            Dataset::Log(log) => {
                let splits =
                    split::split(&log, &dataset.split_config()).map_err(|e| e.to_string())?;
                let stats = split_stats(&log, &splits);
                if json {
                    println!(
                        "{}",
                        to_json(&serde_json::json!({ "stats": stats, "skipped": log.report }))?
                    );
                } else {
                    print!("{}", stats.render());
                    let r = &log.report;
                    println!(
                        "parser: {} rows, skipped {} duplicate rows, {} unknown items, {} untitled items",
                        r.rows, r.duplicate_rows, r.unknown_items, r.untitled_items
                    );
                }
                Ok(())
            }
            Dataset::Examples(set) => {
                let lengths: Vec<f64> = set
                    .examples
                    .iter()
                    .map(|e| e.history.len() as f64)
                    .collect();
                let with_candidates = set
                    .examples
                    .iter()
                    .filter(|e| !e.candidates.is_empty())
                    .count();
                if json {
                    println!(
                        "{}",
                        to_json(&serde_json::json!({
                        "examples": set.examples.len(), "items": set.catalogue.len(),
                        "with_candidates": with_candidates, "skipped": set.report }))?
                    );
                } else {
                    println!(
                        "examples {} ({} with candidate lists), items {}",
                        set.examples.len(),
                        with_candidates,
                        set.catalogue.len()
                    );
                    println!(
                        "history length:\n{}",
                        text_histogram(&lengths, 10, 0.0, 10.0)
                    );
                }
                Ok(())
            }
        },
        DataCommand::Split { dataset, out } => {
            let (log, splits) = dataset.splits()?;
            std::fs::create_dir_all(&out)
                .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            for name in [SplitName::Train, SplitName::Validation, SplitName::Test] {
                let mut text = String::new();
                for e in splits.get(name) {
                    let row = ExampleRow {
                        user: log.users.get(e.user as usize).map_or("", String::as_str),
                        history: log.catalogue.titles(&e.history),
                        target: log.catalogue.title(e.target).to_string(),
                        candidates: log.catalogue.titles(&e.candidates),
                        history_ids: e.history.iter().map(|i| i.0).collect(),
                        target_id: e.target.0,
                        candidate_ids: e.candidates.iter().map(|i| i.0).collect(),
                    };
                    text.push_str(&serde_json::to_string(&row).map_err(|e| e.to_string())?);
                    text.push('\n');
                }
                let path = out.join(format!("{}.jsonl", name.name()));
                std::fs::write(&path, text)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                eprintln!(
                    "wrote {} ({} examples)",
                    path.display(),
                    splits.get(name).len()
                );
            }
            Ok(())
        }
    }
}
