//! `recalign recommend`: the top titles of a dataset's whole catalogue for a history, found by
//! the trie search of `recalign_core::recommend`, with each title's training popularity so a
//! popularity-biased list shows as one.

use std::path::PathBuf;

use recalign_core::prompt::split_titles;
use recalign_core::recommend::{SearchOptions, recommend_in};

use crate::args::{CliResult, DatasetArgs, ModelArgs, load_model};

#[derive(clap::Args)]
pub struct RecommendArgs {
    /// History titles, oldest first, separated by ';' (those of the catalogue are left out of
    /// the recommendations).
    #[arg(long)]
    history: String,
    /// How many titles.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Prefixes kept per token of the search: wider is slower and more often exact.
    #[arg(long, default_value_t = 32)]
    beam: usize,
    /// Recommend with this adapter (the compact prompt is used whatever it was trained in).
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// The catalogue to recommend from (default: ML-100K's).
    #[command(flatten)]
    dataset: DatasetArgs,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(args: RecommendArgs) -> CliResult {
    let mut lm = load_model(&args.model)?;
    if let Some(path) = &args.adapter {
        let a = crate::args::read_adapter(path)?;
        lm = recalign_core::train::with_adapter(&lm, &a).map_err(|e| e.to_string())?;
    }
    let (log, splits) = args.dataset.splits()?;
    // A hybrid adapter reads history titles with the item vectors of its own catalogue, which
    // must then be this dataset's.
    recalign_core::hybrid::check_catalogue(&lm, &log).map_err(|e| e.to_string())?;
    let history = split_titles(&args.history);
    let options = SearchOptions {
        top: args.top,
        beam: args.beam,
    };
    let started = std::time::Instant::now();
    let found = pollster::block_on(recommend_in(&lm, &log, &history, options))
        .map_err(|e| e.to_string())?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let count: std::collections::HashMap<&str, u32> = log
        .catalogue
        .items()
        .iter()
        .zip(&splits.popularity)
        .map(|(i, &n)| (i.title.trim(), n))
        .collect();
    let popularity = |t: &str| count.get(t).copied().unwrap_or(0);
    if args.json {
        let mut value = serde_json::to_value(&found).map_err(|e| e.to_string())?;
        for (r, v) in found.recommendations.iter().zip(
            value["recommendations"]
                .as_array_mut()
                .into_iter()
                .flatten(),
        ) {
            v["training_popularity"] = popularity(&r.title).into();
        }
        value["ms"] = ms.into();
        println!(
            "{}",
            serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?
        );
    } else {
        println!("{:>4}  {:>9}  {:>10}  title", "rank", "log p", "popularity");
        for r in &found.recommendations {
            println!(
                "{:>4}  {:>9.3}  {:>10}  {}",
                r.rank,
                r.log_prob,
                popularity(&r.title),
                r.title
            );
        }
        eprintln!(
            "{} of {} titles in {:.1} s ({} token positions run; {})",
            found.recommendations.len(),
            found.titles,
            ms / 1e3,
            found.tokens_run,
            if found.exact {
                "exact: no title that could have entered the list was cut"
            } else {
                "approximate: the beam cut prefixes that might have entered; a wider --beam is closer"
            }
        );
    }
    Ok(())
}
