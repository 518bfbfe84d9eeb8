//! `recalign train sft|pref`: the native driver of the core's step functions, with a progress
//! bar, per-step JSON logs, checkpoints and resume.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use recalign_core::data::pairs::read_jsonl;
use recalign_core::prompt::PromptFormat;
use recalign_core::train::data as train_data;
use recalign_core::train::{
    LoraSettings, LoraTargets, PreferenceTrainer, Reference, SftData, SftPlan, SftRecipe,
    SftTrainer, TokenisedPair, TrainSettings, Trainer, sft_data, with_adapter,
};

use crate::args::{CliResult, DatasetArgs, LossParams, ModelArgs, load_model, read_adapter};

mod drive;

use drive::{drive, fresh_hybrid, read_checkpoint};

#[derive(Subcommand)]
pub enum TrainCommand {
    /// LoRA SFT on the training split: the target's title after the prompt, answer tokens only.
    Sft {
        #[command(flatten)]
        dataset: DatasetArgs,
        /// Training examples (with `sequence`: documents) drawn, seeded, from the training split
        /// (0: all).
        #[arg(long, default_value_t = 0)]
        max_examples: usize,
        /// Fix one prompt template (default: vary per example).
        #[arg(long)]
        template: Option<usize>,
        /// What to train on: `sequence`, each training user's positives as compact documents
        /// with the loss on every title after the first few (many targets per pass); or
        /// `one-target`, LLaRA's prompt with the candidate list and one answer per example.
        /// With `sequence`, --max-examples counts documents.
        #[arg(long, value_enum, default_value_t = Recipe::Sequence)]
        recipe: Recipe,
        /// Sequence SFT: titles per document.
        #[arg(long, default_value_t = 30)]
        chunk: usize,
        /// Sequence SFT: leading titles of a document that are context only.
        #[arg(long, default_value_t = 3)]
        context: usize,
        /// Sequence SFT: share of the examples (0 to <1) that are LLaRA one-target examples
        /// drawn from the training split, so the adapter also answers LLaRA's prompt with a
        /// listed title (ValidRatio). Default: the recipe's, 0.2.
        #[arg(long)]
        one_target_share: Option<f64>,
        /// Sequence SFT: how much each answer token of a one-target example counts in the
        /// loss against a document's (at 1 they are ~2% of the answer tokens). Default: the
        /// recipe's, 1.
        #[arg(long)]
        one_target_weight: Option<f32>,
        /// Go on training this adapter (a second phase; its shape overrides the LoRA options,
        /// and the result ranks with its prompt format): e.g. `--recipe one-target` after
        /// sequence SFT, to answer LLaRA's prompt with a listed title.
        #[arg(long)]
        init: Option<PathBuf>,
        /// LLaRA's hybrid item tokens: a slot after every title holding this SASRec oracle's
        /// item vector through a trained projector (`recalign oracle train` makes the file; the
        /// adapter carries the oracle's item table, so it ranks without the oracle file).
        #[arg(long, value_name = "ORACLE")]
        hybrid: Option<PathBuf>,
        #[command(flatten)]
        lora: LoraArgs,
        #[command(flatten)]
        train: TrainArgs,
        /// Where to save the adapter (PEFT-layout safetensors).
        #[arg(long, default_value = "runs/sft.safetensors")]
        out: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Preference optimisation on pairs from `recalign pairs build`, starting from an adapter
    /// (usually the SFT one, which is also the frozen reference).
    Pref {
        /// Pairs (JSONL: prompt, chosen, rejected[, more_rejected, eps]).
        #[arg(long)]
        pairs: PathBuf,
        /// Adapter to start from and to use as the reference (default: fresh adapters, base
        /// model as reference).
        #[arg(long)]
        init: Option<PathBuf>,
        #[command(flatten)]
        loss: LossParams,
        /// Rejected answers per pair (S-DPO's K; 0: all the pairs carry).
        #[arg(long, default_value_t = 1)]
        negatives: usize,
        #[command(flatten)]
        lora: LoraArgs,
        #[command(flatten)]
        train: TrainArgs,
        /// Where to save the adapter.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
    },
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Recipe {
    /// Compact documents of a user's positives, every title after the context a target.
    Sequence,
    /// LLaRA's one-target prompt (history, candidates, answer).
    OneTarget,
}

#[derive(Args)]
pub struct LoraArgs {
    /// LoRA rank (ignored with --init, which fixes the shape).
    #[arg(long = "lora-rank", id = "lora_rank", default_value_t = 8)]
    rank: usize,
    /// LoRA alpha (the update is scaled by alpha / rank).
    #[arg(long = "lora-alpha", id = "lora_alpha", default_value_t = 16.0)]
    alpha: f64,
    /// Adapted layers.
    #[arg(long = "lora-targets", id = "lora_targets", value_enum, default_value_t = TargetsArg::All)]
    targets: TargetsArg,
    /// Adapt only the top N decoder blocks (0: all): backward stops below them (default: 8,
    /// or all of a model with fewer).
    #[arg(long = "lora-layers", id = "lora_layers")]
    top_layers: Option<usize>,
}

#[derive(Copy, Clone, ValueEnum)]
enum TargetsArg {
    /// Attention q and v projections.
    Qv,
    /// Every linear layer.
    All,
}

impl LoraArgs {
    /// The settings for a model with `layers` decoder blocks.
    fn settings(&self, layers: usize) -> LoraSettings {
        LoraSettings {
            rank: self.rank,
            alpha: self.alpha,
            dropout: 0.0,
            targets: match self.targets {
                TargetsArg::Qv => LoraTargets::QueryValue,
                TargetsArg::All => LoraTargets::AllLinear,
            },
            top_layers: self.top_layers.unwrap_or(if layers > 8 { 8 } else { 0 }),
        }
    }
}

#[derive(Args)]
pub struct TrainArgs {
    /// Optimiser steps (default: 200 for `sft`, about 10 minutes of a 2-core CPU; 64 for
    /// `pref`).
    #[arg(long)]
    steps: Option<usize>,
    /// Peak learning rate (AdamW; linear warm-up, cosine decay; default: 1e-3 for `sft`, 2e-4
    /// for `pref`).
    #[arg(long)]
    lr: Option<f64>,
    /// Warm-up steps (default: 10 for `sft`, 4 for `pref`).
    #[arg(long)]
    warmup: Option<usize>,
    /// Examples per micro-batch.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Micro-batches per step.
    #[arg(long, default_value_t = 1)]
    accumulation: usize,
    /// Global gradient-norm clip (0: none).
    #[arg(long, default_value_t = 1.0)]
    clip: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Save a resumable checkpoint (`<out>.ckpt`) every this many steps (0: never).
    #[arg(long, default_value_t = 8)]
    checkpoint_every: usize,
    /// Continue the run saved in this checkpoint (same data and model; settings come from it).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Training seed (LoRA init, data order, beta-DPO's sampling); `--seed` is the split's.
    #[arg(long = "train-seed", id = "train_seed", default_value_t = 2024)]
    seed: u64,
    /// Memory for the frozen-layer cache, MiB (preference training; 0: recompute the frozen
    /// layers at every pass).
    #[arg(long, default_value_t = TrainSettings::default().cache_mib)]
    cache_mib: usize,
}

/// The recipe's settings of a stage where the command line leaves them out (docs/alignment.md).
#[derive(Clone, Copy)]
enum Stage {
    Sft,
    Pref,
}

impl TrainArgs {
    fn settings(&self, stage: Stage) -> TrainSettings {
        let (steps, lr, warmup) = match stage {
            Stage::Sft => (200, 1e-3, 10),
            Stage::Pref => (64, 2e-4, 4),
        };
        TrainSettings {
            learning_rate: self.lr.unwrap_or(lr),
            warmup_steps: self.warmup.unwrap_or(warmup),
            steps: self.steps.unwrap_or(steps),
            batch_size: self.batch,
            accumulation: self.accumulation,
            weight_decay: self.weight_decay,
            max_grad_norm: self.clip,
            seed: self.seed,
            cache_mib: self.cache_mib,
        }
    }
}

pub fn run(command: TrainCommand) -> CliResult {
    match command {
        TrainCommand::Sft {
            dataset,
            max_examples,
            template,
            recipe,
            chunk,
            context,
            one_target_share,
            one_target_weight,
            init,
            hybrid,
            lora,
            train,
            out,
            model,
        } => {
            let lm = load_model(&model)?;
            let start = init.as_deref().map(read_adapter).transpose()?;
            let (log, splits) = dataset.splits()?;
            let start = match (start, hybrid) {
                (Some(_), Some(_)) => {
                    return Err(
                        "--hybrid starts a fresh projector; an --init adapter keeps its \
                         own (or has none): give one of the two"
                            .into(),
                    );
                }
                (None, Some(oracle)) => {
                    let format = match recipe {
                        Recipe::Sequence => PromptFormat::Compact,
                        Recipe::OneTarget => PromptFormat::Llara,
                    };
                    let settings = lora.settings(lm.model.config.n_layers);
                    let seed = train.settings(Stage::Sft).seed;
                    Some(fresh_hybrid(&lm, &log, &oracle, &settings, seed, format)?)
                }
                (start, None) => start,
            };
            let hybrid = start.as_ref().is_some_and(|a| a.hybrid.is_some());
            if recipe == Recipe::OneTarget
                && (one_target_share.is_some() || one_target_weight.is_some())
            {
                return Err(
                    "--one-target-share and --one-target-weight mix one-target examples \
                            into --recipe sequence; --recipe one-target is all one-target already"
                        .into(),
                );
            }
            let plan = SftPlan {
                recipe: match recipe {
                    Recipe::OneTarget => SftRecipe::OneTarget,
                    Recipe::Sequence => SftRecipe::Sequence {
                        config: train_data::SequenceConfig {
                            chunk,
                            context,
                            hybrid,
                        },
                        one_target: (
                            one_target_share.unwrap_or(train_data::ONE_TARGET_SHARE),
                            one_target_weight.unwrap_or(train_data::ONE_TARGET_WEIGHT),
                        ),
                    },
                },
                max_examples,
                template,
                hybrid,
                seed: dataset.seed,
            };
            let SftData {
                examples: sft,
                mixed_in,
                format: prompt,
            } = sft_data(&lm, &log, &splits, &plan).map_err(|e| e.to_string())?;
            if mixed_in > 0 {
                eprintln!(
                    "{} documents and {mixed_in} LLaRA one-target examples",
                    sft.items.len() - mixed_in
                );
            }
            if sft.too_long > 0 {
                eprintln!("skipped {} prompts longer than the context", sft.too_long);
            }
            let sft = sft.items;
            let targets: usize = sft.iter().map(|e| e.answer_ids.len()).sum();
            eprintln!(
                "SFT on {} examples ({targets} answer tokens; prompt format {prompt:?})",
                sft.len()
            );
            let trainer = match &train.resume {
                Some(path) => {
                    let c = read_checkpoint(path)?;
                    SftTrainer::resume(&lm, &c, sft)
                }
                None => match &start {
                    Some(a) => SftTrainer::continue_from(&lm, a, train.settings(Stage::Sft), sft),
                    None => SftTrainer::new(
                        &lm,
                        lora.settings(lm.model.config.n_layers),
                        train.settings(Stage::Sft),
                        sft,
                    ),
                },
            }
            .map_err(|e| e.to_string())?;
            // A continued adapter keeps ranking the way its first phase trained it.
            let prompt = start.as_ref().map_or(prompt, |a| a.prompt);
            drive(
                Trainer::Sft(Box::new(trainer)),
                (&train, Stage::Sft),
                &out,
                prompt,
            )
        }
        TrainCommand::Pref {
            pairs,
            init,
            loss,
            negatives,
            lora,
            train,
            out,
            model,
        } => {
            let base = load_model(&model)?;
            let bytes = std::fs::read(&pairs)
                .map_err(|e| format!("cannot read {}: {e}", pairs.display()))?;
            let pairs_data = read_jsonl(&bytes).map_err(|e| format!("{}: {e}", pairs.display()))?;
            let format = pairs_data.first().map_or(PromptFormat::Llara, |p| p.format);
            if let Some(i) = pairs_data.iter().position(|p| p.format != format) {
                return Err(format!(
                    "{}: pair {} is in the {:?} prompt format, the first in {format:?}; one run \
                     trains on one format",
                    pairs.display(),
                    i + 1,
                    pairs_data[i].format
                ));
            }
            let config = loss.config()?;
            let start = init.as_deref().map(read_adapter).transpose()?;
            let lora = start.as_ref().map_or_else(
                || lora.settings(base.model.config.n_layers),
                |a| a.settings.clone(),
            );
            // A hybrid adapter trains on and is referenced with its item slots.
            let hybrid = start.as_ref().is_some_and(|a| a.hybrid.is_some());
            let reference = match &start {
                Some(a) => with_adapter(&base, a).map_err(|e| e.to_string())?,
                None => base.clone(),
            };
            let tokenised: Vec<TokenisedPair> = pairs_data
                .iter()
                .map(|p| TokenisedPair::new_with(&base, p, negatives, hybrid))
                .collect::<recalign_core::Result<_>>()
                .map_err(|e| e.to_string())?;
            // The run scores each pair with the reference when it first draws it, through the
            // frozen layers' states it shares with the policy's pass: pairs it never draws
            // cost nothing.
            eprintln!(
                "{} on {} pairs (K = {}); reference log-probs from {} as pairs are drawn",
                config.kind.label(),
                tokenised.len(),
                tokenised.first().map_or(0, TokenisedPair::negatives),
                if start.is_some() {
                    "the starting adapter"
                } else {
                    "the base model"
                }
            );
            let reference = Reference::Model(Box::new(reference));
            let trainer = match &train.resume {
                Some(path) => {
                    let c = read_checkpoint(path)?;
                    PreferenceTrainer::resume(&base, &c, tokenised, reference)
                }
                None => PreferenceTrainer::new(
                    &base,
                    lora,
                    start.as_ref(),
                    train.settings(Stage::Pref),
                    config,
                    tokenised,
                    reference,
                ),
            }
            .map_err(|e| e.to_string())?;
            // The adapter ranks with the prompt format its pairs were written in.
            drive(
                Trainer::Preference(Box::new(trainer)),
                (&train, Stage::Pref),
                &out,
                format,
            )
        }
    }
}
