//! `recalign recommend`: the top titles of a dataset's whole catalogue for a history, found by
//! the trie search of `recalign_core::recommend`, with each title's training popularity so a
//! popularity-biased list shows as one. With `--split`, the same for every example of a split:
//! how often the user's real next title is in the list, next to the popularity ranker's list.

use std::path::PathBuf;

use recalign_core::prompt::split_titles;
use recalign_core::recommend::{SearchOptions, recommend_in};

use crate::args::{CliResult, DatasetArgs, ModelArgs, load_model};

#[derive(clap::Args)]
pub struct RecommendArgs {
    /// History titles, oldest first, separated by ';' (those of the catalogue are left out of
    /// the recommendations).
    #[arg(long, required_unless_present = "split", conflicts_with = "split")]
    history: Option<String>,
    /// Instead of one history, every example of this split (its history, its real next title):
    /// how often that title is in the top list, against the most popular titles not in the
    /// history (HR@top with 95% intervals and the paired test).
    #[arg(long, value_enum)]
    split: Option<crate::args::SplitArg>,
    /// With --split: at most this many examples (a seeded sample); 0 = all.
    #[arg(long, default_value_t = 0)]
    max_examples: usize,
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
    let options = SearchOptions {
        top: args.top,
        beam: args.beam,
    };
    let history = match (&args.history, args.split) {
        (Some(h), _) => split_titles(h),
        (None, Some(split)) => {
            return on_split(&lm, &log, &splits, split, &args, options);
        }
        (None, None) => return Err("give --history or --split".into()),
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

/// Every example of `split`: the model's top list from the whole catalogue against the most
/// popular titles outside the history, each scored by whether the real next title is in it.
fn on_split(
    lm: &recalign_core::LanguageModel,
    log: &recalign_core::data::InteractionLog,
    splits: &recalign_core::data::split::Splits,
    split: crate::args::SplitArg,
    args: &RecommendArgs,
    options: SearchOptions,
) -> CliResult {
    use recalign_core::stats::{Interval, Paired};
    let (examples, name, _) = split.examples(splits)?;
    let examples =
        recalign_core::train::data::draw(&examples, args.max_examples, args.dataset.seed);
    // Items by training popularity, most first (ties by id, so the list is fixed).
    let mut by_popularity: Vec<usize> = (0..splits.popularity.len()).collect();
    by_popularity.sort_by(|&a, &b| {
        splits.popularity[b]
            .cmp(&splits.popularity[a])
            .then(a.cmp(&b))
    });
    let progress = crate::args::bar(examples.len() as u64, "recommending");
    let (mut model_hits, mut popular_hits, mut seconds) = (Vec::new(), Vec::new(), Vec::new());
    let mut exact = 0usize;
    for e in &examples {
        let history = log.catalogue.titles(&e.history);
        let started = std::time::Instant::now();
        let found = pollster::block_on(recommend_in(lm, log, &history, options))
            .map_err(|e| e.to_string())?;
        seconds.push(started.elapsed().as_secs_f64());
        exact += usize::from(found.exact);
        let target = log.catalogue.title(e.target).trim().to_lowercase();
        let hit = found
            .recommendations
            .iter()
            .any(|r| r.title.trim().to_lowercase() == target);
        model_hits.push(f64::from(u8::from(hit)));
        let popular = by_popularity
            .iter()
            .filter(|&&i| !e.history.iter().any(|h| h.index() == i))
            .take(options.top)
            .any(|&i| i == e.target.index());
        popular_hits.push(f64::from(u8::from(popular)));
        progress.inc(1);
    }
    progress.finish_and_clear();
    let n = examples.len();
    let model = Interval::wilson(&model_hits);
    let popular = Interval::wilson(&popular_hits);
    let paired =
        Paired::of(&model_hits, &popular_hits).ok_or("the two scorers saw different examples")?;
    // A list of `top` titles drawn at random from those outside a history of h titles.
    let catalogue = log.catalogue.items().len() as f64;
    let random = examples
        .iter()
        .map(|e| (options.top as f64 / (catalogue - e.history.len() as f64)).min(1.0))
        .sum::<f64>()
        / n.max(1) as f64;
    let mean_s = seconds.iter().sum::<f64>() / n.max(1) as f64;
    let report = serde_json::json!({
        "split": name,
        "examples": n,
        "top": options.top,
        "beam": options.beam,
        "adapter": args.adapter,
        "hr_at_top": model,
        "popularity_hr_at_top": popular,
        "random_hr_at_top": random,
        "vs_popularity": paired,
        "exact_searches": exact,
        "seconds_per_request": mean_s,
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        let top = options.top;
        println!(
            "{name}, {n} examples: the real next title in the top {top} of the whole catalogue"
        );
        println!(
            "  model       HR@{top} {:.3} [{:.3}, {:.3}]",
            model.mean, model.low, model.high
        );
        println!(
            "  popularity  HR@{top} {:.3} [{:.3}, {:.3}]",
            popular.mean, popular.low, popular.high
        );
        println!("  random      HR@{top} {random:.3}");
        println!(
            "  model - popularity {:+.3} [{:+.3}, {:+.3}], p = {:.3} (paired sign-flip test)",
            paired.difference.mean, paired.difference.low, paired.difference.high, paired.p_value
        );
        println!("  {mean_s:.1} s per request (search only); {exact} of {n} searches exact");
    }
    Ok(())
}
