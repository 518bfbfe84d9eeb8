//! `recalign data`, `recalign oracle` and `recalign pairs`: the dataset side of the pipeline on
//! the command line (split statistics, SASRec training and evaluation, preference pairs).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use recalign_core::data::formats::{self, Dataset, DatasetFormat};
use recalign_core::data::pairs::{self, Mixture, PairConfig, RejectStrategy, Smoothing};
use recalign_core::data::split::{self, SplitConfig, SplitName, Splits};
use recalign_core::data::stats::{split_stats, text_histogram};
use recalign_core::data::windowed;
use recalign_core::data::{Domain, InteractionLog};
use recalign_core::oracle::sasrec::{
    SasRecConfig, SasRecOracle, SasRecTrainer, SasRecTraining, catalogue_fingerprint,
};
use recalign_core::oracle::{self, OracleReport};
use recalign_core::train::data::{self as train_data, PairScores};
use serde::Serialize;

use crate::{CliResult, ModelArgs, device, load_model};

/// The default dataset `recalign fetch` installs.
pub const DEFAULT_INTERACTIONS: &str = "data/ml-100k/ml-100k.inter";
/// Where `oracle train` saves by default.
pub const DEFAULT_ORACLE: &str = "models/sasrec-ml-100k.safetensors";

#[derive(clap::Args, Clone)]
pub struct DatasetArgs {
    /// Interactions file (`.inter`, `u.data`, CSV/TSV), LLaRA `.jsonl` rows or S-DPO `.json`.
    #[arg(long, default_value = DEFAULT_INTERACTIONS)]
    interactions: PathBuf,
    /// Items file (`.item`, `u.item`, items CSV/TSV) or LLaRA `id2name`; default: next to the
    /// interactions (`X.inter` -> `X.item`, `u.data` -> `u.item`).
    #[arg(long)]
    items: Option<PathBuf>,
    /// File layout (default: guessed from the interactions file name).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Item kind, for the prompt wording.
    #[arg(long, value_enum, default_value_t = DomainArg::Movies)]
    domain: DomainArg,
    /// Split seed (user split and candidate sets).
    #[arg(long, default_value_t = 2024)]
    pub(crate) seed: u64,
    /// Ratings below this are not positives (`--min-rating 0` keeps all).
    #[arg(long, default_value_t = 3.0)]
    min_rating: f32,
    /// Examples per validation/test user: the last N windows (1: the papers' last item).
    #[arg(long, default_value_t = 1)]
    eval_windows: usize,
    /// With pre-windowed rows as --interactions (LLaRA's `train_data.jsonl`): the held-out rows,
    /// evaluated as `--split validation` (LLaRA's `Val_data.jsonl`, read with the same
    /// id2name, or S-DPO's `.json` with its own candidates).
    #[arg(long)]
    held_out: Option<PathBuf>,
}

#[derive(Copy, Clone, ValueEnum)]
pub enum FormatArg {
    Recbole,
    Grouplens,
    Table,
    Llara,
    Sdpo,
}

#[derive(Copy, Clone, ValueEnum)]
pub enum DomainArg {
    Movies,
    Music,
    Games,
    Books,
}

impl DatasetArgs {
    fn domain(&self) -> Domain {
        match self.domain {
            DomainArg::Movies => Domain::Movies,
            DomainArg::Music => Domain::Music,
            DomainArg::Games => Domain::Games,
            DomainArg::Books => Domain::Books,
        }
    }

    fn split_config(&self) -> SplitConfig {
        SplitConfig {
            seed: self.seed,
            min_rating: Some(self.min_rating),
            eval_windows: self.eval_windows,
            ..Default::default()
        }
    }

    fn load(&self) -> CliResult<Dataset> {
        self.load_file(&self.interactions, self.format)
    }

    fn load_file(&self, file: &Path, format: Option<FormatArg>) -> CliResult<Dataset> {
        let format = match format {
            Some(FormatArg::Recbole) => DatasetFormat::Recbole,
            Some(FormatArg::Grouplens) => DatasetFormat::Grouplens,
            Some(FormatArg::Table) => DatasetFormat::Table,
            Some(FormatArg::Llara) => DatasetFormat::Llara,
            Some(FormatArg::Sdpo) => DatasetFormat::Sdpo,
            None => DatasetFormat::guess(&file.to_string_lossy()),
        };
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| {
                let hint = if p == Path::new(DEFAULT_INTERACTIONS) {
                    " (run `recalign fetch` first)"
                } else {
                    ""
                };
                format!("cannot read {}: {e}{hint}", p.display())
            })
        };
        let main = read(file)?;
        let items = if format.needs_items() {
            let path = match &self.items {
                Some(p) => p.clone(),
                None => sibling_items(file).ok_or_else(|| {
                    "this format needs --items (the items table or id2name file)".to_string()
                })?,
            };
            Some(read(&path)?)
        } else {
            None
        };
        formats::load(format, &main, items.as_deref(), self.domain())
            .map_err(|e| format!("{}: {e}", file.display()))
    }

    /// The dataset's split: a log's seeded user split, or pre-windowed rows as they are (the
    /// training rows, and the --held-out rows as validation).
    pub(crate) fn splits(&self) -> CliResult<(InteractionLog, Splits)> {
        let held = self
            .held_out
            .as_deref()
            .map(|p| self.load_file(p, None))
            .transpose()?;
        windowed::split_dataset(self.load()?, held, &self.split_config()).map_err(|e| e.to_string())
    }
}

fn sibling_items(interactions: &Path) -> Option<PathBuf> {
    let name = interactions.file_name()?.to_string_lossy();
    if name == "u.data" {
        return Some(interactions.with_file_name("u.item"));
    }
    if name.ends_with(".inter") {
        return Some(interactions.with_extension("item"));
    }
    if name.ends_with(".jsonl") {
        // LLaRA's layout: the rows next to their id2name.
        return ["id2name.txt", "id2name.tsv"]
            .iter()
            .map(|n| interactions.with_file_name(n))
            .find(|p| p.exists());
    }
    None
}

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

fn to_json<T: Serialize>(value: &T) -> CliResult<String> {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

pub fn data(command: DataCommand) -> CliResult {
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

pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

pub fn oracle(command: OracleCommand) -> CliResult {
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

/// The SASRec oracle saved at `path`, checked against `log`'s catalogue.
pub fn read_oracle(
    path: &std::path::Path,
    log: &recalign_core::data::InteractionLog,
    device: &burn::tensor::Device,
) -> Result<SasRecOracle, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read oracle {}: {e} (train one with `recalign oracle train`)",
            path.display()
        )
    })?;
    SasRecOracle::from_safetensors(&bytes, device, Some(catalogue_fingerprint(&log.catalogue)))
        .map_err(|e| format!("{}: {e}", path.display()))
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

#[derive(Copy, Clone, ValueEnum, PartialEq)]
pub enum StrategyArg {
    Random,
    Popular,
    SemanticSimilar,
    SelfHard,
}

impl StrategyArg {
    fn strategy(self) -> RejectStrategy {
        match self {
            StrategyArg::Random => RejectStrategy::Random,
            StrategyArg::Popular => RejectStrategy::Popular,
            StrategyArg::SemanticSimilar => RejectStrategy::SemanticSimilar,
            StrategyArg::SelfHard => RejectStrategy::SelfHard,
        }
    }
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process")]
pub enum PairsCommand {
    /// Build preference pairs (JSONL: prompt, chosen, rejected[, more_rejected], eps).
    Build {
        #[command(flatten)]
        dataset: DatasetArgs,
        /// Which split's examples.
        #[arg(long, value_enum, default_value_t = SplitArg::Train)]
        split: SplitArg,
        /// Use at most this many examples (a seeded sample); 0 = all.
        #[arg(long, default_value_t = 0)]
        max_examples: usize,
        /// Seed of the example sample and the negatives (default: the split's `--seed`), so
        /// training seeds can draw different pairs from one split.
        #[arg(long = "train-seed", id = "pair_seed")]
        pair_seed: Option<u64>,
        /// Strategies; with --weights they are mixed, otherwise one pair per strategy per prompt.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [StrategyArg::Random])]
        strategies: Vec<StrategyArg>,
        /// Mixture weights, one per strategy (e.g. `--weights 0.5,0.25,0.25`).
        #[arg(long, value_delimiter = ',')]
        weights: Vec<f64>,
        /// Rejected answers per pair (S-DPO's K).
        #[arg(long, default_value_t = 1)]
        negatives: usize,
        /// SASRec oracle for the smoothing factor (skipped with --no-smoothing).
        #[arg(long, default_value = DEFAULT_ORACLE)]
        oracle: PathBuf,
        /// Build pairs without eps.
        #[arg(long)]
        no_smoothing: bool,
        /// Smoothing temperature T.
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        /// Smoothing cap (< 0.5).
        #[arg(long, default_value_t = 0.4)]
        eps_max: f64,
        /// Prompt format of the pairs: `compact` for adapters trained with `--recipe
        /// sequence` (the history as a document, answers as title lines).
        #[arg(long, value_enum, default_value_t = crate::args::PromptArg::Llara)]
        prompt: crate::args::PromptArg,
        /// Fix one prompt template (default: vary per example).
        #[arg(long)]
        template: Option<usize>,
        /// Output JSONL.
        #[arg(long)]
        out: PathBuf,
        /// Adapter whose ranking defines self-hard negatives (method.md: the SFT model's);
        /// default: the base model.
        #[arg(long)]
        adapter: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Check a TRL-style preference JSONL file and summarise it.
    Check {
        /// The file.
        file: PathBuf,
    },
}

#[derive(Copy, Clone, ValueEnum)]
pub enum SplitArg {
    Train,
    Validation,
    Test,
    /// Validation then test users: every example no training run sees (for a final figure
    /// with twice the examples; tune on validation alone).
    HeldOut,
}

impl SplitArg {
    /// The split's examples, its name for reports, and its parts in order (name, examples):
    /// one for a single split, validation then test for `held-out`. An empty split is an
    /// error (pre-windowed rows have no test split, and validation only with --held-out).
    pub fn examples(
        self,
        splits: &Splits,
    ) -> CliResult<(Vec<split::Example>, &'static str, Vec<Part>)> {
        let got = self.examples_or_none(splits);
        if got.0.is_empty() {
            return Err(format!(
                "the {} split has no examples (with pre-windowed rows the training file is \
                 `--split train`, the --held-out file `--split validation`, and there is no test \
                 split)",
                got.1
            ));
        }
        Ok(got)
    }

    fn examples_or_none(self, splits: &Splits) -> (Vec<split::Example>, &'static str, Vec<Part>) {
        let one = |name: SplitName| {
            let e = splits.get(name).to_vec();
            let parts = vec![Part {
                split: name.name(),
                examples: e.len(),
            }];
            (e, name.name(), parts)
        };
        match self {
            Self::Train => one(SplitName::Train),
            Self::Validation => one(SplitName::Validation),
            Self::Test => one(SplitName::Test),
            Self::HeldOut => {
                let (v, t) = (
                    splits.get(SplitName::Validation),
                    splits.get(SplitName::Test),
                );
                let parts = vec![
                    Part {
                        split: SplitName::Validation.name(),
                        examples: v.len(),
                    },
                    Part {
                        split: SplitName::Test.name(),
                        examples: t.len(),
                    },
                ];
                ([v, t].concat(), "held-out", parts)
            }
        }
    }
}

/// A run of consecutive examples from one split, so per-example results of `held-out` can be
/// cut back into validation and test.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Part {
    pub split: &'static str,
    pub examples: usize,
}

pub fn pairs(command: PairsCommand) -> CliResult {
    match command {
        PairsCommand::Check { file } => {
            let bytes =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let pairs =
                pairs::read_jsonl(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
            summarise(&pairs);
            Ok(())
        }
        PairsCommand::Build {
            dataset,
            split,
            max_examples,
            pair_seed,
            strategies,
            weights,
            negatives,
            oracle,
            no_smoothing,
            temperature,
            eps_max,
            template,
            prompt,
            out,
            adapter,
            model,
        } => {
            let format = recalign_core::prompt::PromptFormat::from(prompt);
            let (log, splits) = dataset.splits()?;
            let (examples, _, _) = split.examples(&splits)?;
            let pair_seed = pair_seed.unwrap_or(dataset.seed);
            let examples = train_data::draw(&examples, max_examples, pair_seed);
            let mixture = if weights.is_empty() {
                Mixture::OnePerStrategy(strategies.iter().map(|s| s.strategy()).collect())
            } else if weights.len() == strategies.len() {
                Mixture::Sampled(
                    strategies
                        .iter()
                        .map(|s| s.strategy())
                        .zip(weights)
                        .collect(),
                )
            } else {
                return Err(format!(
                    "{} weights for {} strategies",
                    weights.len(),
                    strategies.len()
                ));
            };
            let config = PairConfig {
                mixture,
                negatives,
                seed: pair_seed,
                smoothing: Smoothing {
                    temperature,
                    eps_max,
                },
            };
            config.smoothing.check().map_err(|e| e.to_string())?;
            let oracle_scores = if no_smoothing {
                None
            } else {
                let device = device(model.device)?;
                let bytes = std::fs::read(&oracle).map_err(|e| {
                    format!("cannot read oracle {}: {e} (run `recalign oracle train`, or pass --no-smoothing)", oracle.display())
                })?;
                let sasrec = SasRecOracle::from_safetensors(
                    &bytes,
                    &device,
                    Some(catalogue_fingerprint(&log.catalogue)),
                )
                .map_err(|e| e.to_string())?;
                Some(
                    pollster::block_on(sasrec.candidate_scores(&examples))
                        .map_err(|e| e.to_string())?,
                )
            };
            let model_scores = if strategies.contains(&StrategyArg::SelfHard) {
                let mut lm = load_model(&model)?;
                if let Some(path) = &adapter {
                    lm = recalign_core::train::with_adapter(&lm, &crate::args::read_adapter(path)?)
                        .map_err(|e| e.to_string())?;
                }
                let progress = bar(examples.len() as u64, "LLM scoring");
                let scores = pollster::block_on(train_data::model_scores(
                    &lm,
                    &log,
                    &examples,
                    format,
                    template,
                    |d, _| progress.set_position(d as u64),
                ))
                .map_err(|e| e.to_string())?;
                progress.finish_and_clear();
                Some(scores)
            } else {
                None
            };
            let all = train_data::preference_pairs(
                &log,
                &splits.popularity,
                &examples,
                format,
                template,
                PairScores {
                    model: model_scores.as_deref(),
                    oracle: oracle_scores.as_deref(),
                },
                &config,
            )
            .map_err(|e| e.to_string())?;
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            std::fs::write(&out, pairs::write_jsonl(&all))
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            eprintln!(
                "wrote {} pairs from {} examples to {}",
                all.len(),
                examples.len(),
                out.display()
            );
            summarise(&all);
            Ok(())
        }
    }
}

fn summarise(pairs: &[recalign_core::data::pairs::PreferencePair]) {
    // (count, eps sum, eps count) per strategy of each rejected answer.
    let mut by_strategy = std::collections::BTreeMap::<&str, (usize, f64, usize)>::new();
    for p in pairs {
        let eps: Vec<Option<f64>> = std::iter::once(p.eps)
            .chain(p.more_eps.iter().map(|&e| Some(e)))
            .collect();
        for (k, s) in p.strategies.iter().enumerate() {
            let entry = by_strategy.entry(s.name()).or_default();
            entry.0 += 1;
            if let Some(Some(e)) = eps.get(k) {
                entry.1 += e;
                entry.2 += 1;
            }
        }
    }
    println!("pairs: {}", pairs.len());
    for (s, (n, sum, with_eps)) in &by_strategy {
        let mean = if *with_eps > 0 {
            format!(", mean eps {:.3}", sum / *with_eps as f64)
        } else {
            String::new()
        };
        println!("  rejected by {s:<17} {n}{mean}");
    }
    let eps: Vec<f64> = pairs
        .iter()
        .flat_map(|p| p.eps.iter().chain(&p.more_eps).copied())
        .collect();
    if !eps.is_empty() {
        let mean = eps.iter().sum::<f64>() / eps.len() as f64;
        println!(
            "smoothing factor eps over {} (chosen, rejected) pairs, mean {mean:.4}:",
            eps.len()
        );
        print!("{}", text_histogram(&eps, 10, 0.0, 0.5));
    }
}
