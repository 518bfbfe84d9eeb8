//! `recalign pairs`: preference pairs for the DPO family (rejected-item strategies, RosePO's
//! smoothing from the oracle), built from a split or checked from a TRL-style file.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use recalign_core::data::pairs::{self, Mixture, PairConfig, RejectStrategy, Smoothing};
use recalign_core::data::stats::text_histogram;
use recalign_core::oracle::sasrec::{SasRecOracle, catalogue_fingerprint};
use recalign_core::train::data::{self as train_data, PairScores};

use crate::args::{
    CliResult, DEFAULT_ORACLE, DatasetArgs, ModelArgs, SplitArg, bar, device, load_model,
};

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

pub fn run(command: PairsCommand) -> CliResult {
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
