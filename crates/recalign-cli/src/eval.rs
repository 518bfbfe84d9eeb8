//! `recalign eval`: the base model or adapters on a split (ranking, popularity bias, generation),
//! with the random and popularity rankers on the same candidates, intervals and paired tests.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use recalign_core::LanguageModel;
use recalign_core::data::split::Example;
use recalign_core::data::{InteractionLog, ItemId};
use recalign_core::eval::EvalReport;
use recalign_core::prompt::PromptFormat;
use recalign_core::stats::{Interval, Paired};
use recalign_core::train::data as train_data;
use recalign_core::train::with_adapter;

use crate::args::{
    CliResult, DatasetArgs, ModelArgs, PromptArg, SplitArg, bar, load_model, read_adapter,
};

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    dataset: DatasetArgs,
    /// Which split.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    split: SplitArg,
    /// Adapter to evaluate (default: the base model, zero-shot). Repeat it to evaluate several
    /// on the same examples in one pass (`none` is the base model): the frozen layers below
    /// the lowest adapted one run once for all of them. All must rank in one prompt format;
    /// with several, `--json` prints one line per model.
    #[arg(long)]
    adapter: Vec<PathBuf>,
    /// Examples (seeded draw; 0: all).
    #[arg(long, default_value_t = 0)]
    max_examples: usize,
    /// Fix one prompt template (default: vary per example).
    #[arg(long)]
    template: Option<usize>,
    /// Also generate up to this many tokens per example (ValidRatio, HitRatio@1); 0: rank only.
    #[arg(long, default_value_t = 0)]
    generate: usize,
    /// Ranking prompt (default: the one the adapter was trained with; LLaRA's for the base
    /// model). Generation always uses LLaRA's prompt, which lists the candidates.
    #[arg(long, value_enum)]
    prompt: Option<PromptArg>,
    /// Compare against another run's `--json` output on the same examples (paired test).
    #[arg(long)]
    against: Option<PathBuf>,
    /// With several `--adapter`s: compare every other model against the Kth (1-based; e.g.
    /// the SFT adapter) with the paired test.
    #[arg(long, conflicts_with = "against")]
    against_model: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write every example's candidate scores as JSON lines (candidates, target, summed
    /// log-probs, answer lengths, training popularity and, for the compact prompt, each
    /// candidate's log-prob after the header alone): the raw material for trying other
    /// scoring rules offline.
    #[arg(long)]
    scores_out: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(args: EvalArgs) -> CliResult {
    let base = load_model(&args.model)?;
    // Each model with its path (None: the base model) and the format it was trained in.
    let paths: Vec<Option<PathBuf>> = if args.adapter.is_empty() {
        vec![None]
    } else {
        args.adapter
            .iter()
            .map(|p| (p.as_os_str() != "none").then(|| p.clone()))
            .collect()
    };
    let mut models: Vec<(Option<PathBuf>, LanguageModel, PromptFormat)> = Vec::new();
    for path in paths {
        let (lm, trained_with) = match &path {
            Some(p) => {
                let a = read_adapter(p)?;
                (
                    with_adapter(&base, &a).map_err(|e| e.to_string())?,
                    a.prompt,
                )
            }
            None => (base.clone(), PromptFormat::Llara),
        };
        models.push((path, lm, trained_with));
    }
    let formats: Vec<PromptFormat> = models
        .iter()
        .map(|(_, _, f)| args.prompt.map_or(*f, PromptFormat::from))
        .collect();
    let format = formats[0];
    if let Some(i) = formats.iter().position(|&f| f != format) {
        return Err(format!(
            "{} ranks in the {:?} prompt format and {} in {format:?}; evaluate them in separate \
             runs, or fix one with --prompt",
            label(&models[i].0),
            formats[i],
            label(&models[0].0)
        ));
    }
    if let Some(k) = args.against_model
        && !(1..=models.len()).contains(&k)
    {
        return Err(format!(
            "--against-model {k}: there are {} models (--adapter given {} times)",
            models.len(),
            args.adapter.len()
        ));
    }
    if models.len() > 1 && args.scores_out.is_some() {
        return Err("--scores-out takes one model; evaluate the others without it".into());
    }
    let (log, splits) = args.dataset.splits()?;
    let (examples, name, parts) = args.split.examples(&splits)?;
    // A sample no longer lines up with the parts.
    let parts = if args.max_examples == 0 || args.max_examples >= examples.len() {
        parts
    } else {
        Vec::new()
    };
    let examples = train_data::draw(&examples, args.max_examples, args.dataset.seed);
    let against: Option<EvalReport> = match &args.against {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{}: not JSON from `recalign eval --json`: {e}",
                    path.display()
                )
            })?;
            let r: EvalReport = serde_json::from_value(v["report"].clone())
                .map_err(|e| format!("{}: no eval report in it: {e}", path.display()))?;
            if r.hits_at_1.len() != examples.len() {
                return Err(format!(
                    "{} holds {} examples, this run {}: a paired test needs the same examples",
                    path.display(),
                    r.hits_at_1.len(),
                    examples.len()
                ));
            }
            Some(r)
        }
        None => None,
    };
    let progress = bar(examples.len() as u64, "evaluating");
    let started = Instant::now();
    let lms: Vec<&LanguageModel> = models.iter().map(|(_, lm, _)| lm).collect();
    let reports = pollster::block_on(train_data::evaluate_models(
        &lms,
        format,
        &log,
        &examples,
        &splits.popularity,
        args.template,
        args.generate,
        |d, _| progress.set_position(d as u64),
    ))
    .map_err(|e| e.to_string())?;
    progress.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if let (Some(path), Some(report)) = (&args.scores_out, reports.first()) {
        write_scores(
            path,
            lms[0],
            &log,
            &examples,
            report,
            &splits.popularity,
            format,
        )?;
    }
    let against_model = args.against_model.map(|k| (k - 1, label(&models[k - 1].0)));
    for (i, ((path, _, _), report)) in models.iter().zip(&reports).enumerate() {
        let (against, against_path) = match &against_model {
            Some((k, _)) if *k == i => (None, None),
            Some((k, name)) => (Some(&reports[*k]), Some(Path::new(name.as_str()))),
            None => (against.as_ref(), args.against.as_deref()),
        };
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "adapter": path, "split": name, "examples": examples.len(),
                    "parts": parts, "prompt": format, "seconds": secs, "models_in_run": models.len(),
                    "report": report,
                    "hr_at_1": Interval::wilson(&report.hits_at_1),
                    "paired": paired_tests(report, against),
                    "against": against_path,
                })
            );
        } else {
            if models.len() > 1 {
                println!("== {}", label(path));
            }
            println!("prompt format {format:?}");
            print_report(report, examples.len(), secs);
            print_comparisons(report, against, against_path);
        }
    }
    Ok(())
}

/// How a report names its model.
fn label(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map_or_else(|| "the base model".to_string(), |p| p.display().to_string())
}

fn write_scores(
    path: &Path,
    lm: &LanguageModel,
    log: &InteractionLog,
    examples: &[Example],
    report: &EvalReport,
    popularity: &[u32],
    format: PromptFormat,
) -> CliResult {
    use std::collections::HashMap;
    let tok = &lm.tokenizer;
    let line = |i: ItemId| -> Result<Vec<u32>, String> {
        recalign_core::prompt::compact_line_ids(tok, log.catalogue.title(i))
            .map_err(|e| e.to_string())
    };
    // Each distinct candidate's log-prob after the header alone, batched, once per item.
    let mut prior: HashMap<ItemId, f32> = HashMap::new();
    if format == PromptFormat::Compact {
        let header =
            recalign_core::prompt::compact_ids(tok, log.domain, &[]).map_err(|e| e.to_string())?;
        let mut items: Vec<ItemId> = examples.iter().flat_map(|e| e.candidates.clone()).collect();
        items.sort_unstable();
        items.dedup();
        for chunk in items.chunks(64) {
            let answers = chunk
                .iter()
                .map(|&i| line(i))
                .collect::<Result<Vec<_>, _>>()?;
            let values = pollster::block_on(lm.score_answer_ids(&header, &answers))
                .map_err(|e| e.to_string())?;
            prior.extend(chunk.iter().copied().zip(values));
        }
    }
    let mut out = String::new();
    for (e, scores) in examples.iter().zip(&report.scores) {
        let lengths = e
            .candidates
            .iter()
            .map(|&i| line(i).map(|l| l.len()))
            .collect::<Result<Vec<_>, _>>()?;
        let row = serde_json::json!({
            "candidates": e.candidates.iter().map(|i| i.index()).collect::<Vec<_>>(),
            "target": e.candidates.iter().position(|&c| c == e.target),
            "scores": scores,
            "lengths": lengths,
            "popularity": e.candidates.iter()
                .map(|i| popularity.get(i.index()).copied().unwrap_or(0)).collect::<Vec<_>>(),
            "prior": e.candidates.iter().map(|i| prior.get(i).copied()).collect::<Vec<_>>(),
        });
        out.push_str(&row.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// HR@1 against the popularity ranker and, when given, another run, on the same examples.
fn paired_tests(r: &EvalReport, against: Option<&EvalReport>) -> serde_json::Value {
    let pop = r
        .baselines
        .as_ref()
        .and_then(|b| Paired::of(&r.hits_at_1, &b.popularity.hits_at_1));
    let other = against.and_then(|a| Paired::of(&r.hits_at_1, &a.hits_at_1));
    serde_json::json!({"vs_popularity": pop, "vs_against": other})
}

fn print_comparisons(r: &EvalReport, against: Option<&EvalReport>, path: Option<&Path>) {
    let show = |i: Interval| format!("{:.4} [{:.4}, {:.4}]", i.mean, i.low, i.high);
    println!(
        "HR@1 {} (95% Wilson); on tail targets {:.4}",
        show(Interval::wilson(&r.hits_at_1)),
        r.tail_hr_at_1
    );
    if let Some(b) = &r.baselines {
        for (name, x) in [("random", &b.random), ("popularity", &b.popularity)] {
            println!(
                "  {name:<10} HR@1 {}  AvgPop@1 {:.1}  Tail@1 {:.4}  tail-target HR@1 {:.4}",
                show(Interval::wilson(&x.hits_at_1)),
                x.average_popularity_at_1,
                x.tail_at_1,
                x.tail_hr_at_1
            );
        }
    }
    let paired = |label: &str, p: Option<Paired>| {
        if let Some(p) = p {
            println!(
                "  HR@1 minus {label}: {} (paired; sign-flip p = {:.4})",
                show(p.difference),
                p.p_value
            );
        }
    };
    if let Some(b) = &r.baselines {
        paired(
            "popularity",
            Paired::of(&r.hits_at_1, &b.popularity.hits_at_1),
        );
    }
    if let (Some(a), Some(path)) = (against, path) {
        paired(
            &path.display().to_string(),
            Paired::of(&r.hits_at_1, &a.hits_at_1),
        );
    }
}

fn print_report(r: &EvalReport, n: usize, secs: f64) {
    let m = &r.ranking;
    println!("{n} examples, {secs:.1} s");
    println!(
        "HR@1 {:.4}  HR@3 {:.4}  HR@5 {:.4}  HR@10 {:.4}  NDCG@5 {:.4}  NDCG@10 {:.4}  MRR {:.4}",
        m.hr[0], m.hr[1], m.hr[2], m.hr[3], m.ndcg[2], m.ndcg[3], m.mrr
    );
    for b in [&r.bias_at_1, &r.bias_at_5] {
        println!(
            "@{}: AveragePopularity {:.1}  TailPercentage {:.4}  ItemCoverage {:.4}  GiniIndex {:.4}",
            b.k, b.average_popularity, b.tail_percentage, b.item_coverage, b.gini_index
        );
    }
    if let Some(g) = &r.generation {
        println!(
            "generation: ValidRatio {:.4}  HitRatio@1 {:.4}",
            g.valid_ratio, g.hit_ratio_at_1
        );
    }
}
