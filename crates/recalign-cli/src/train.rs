//! `recalign train sft|pref`, `recalign eval` and `recalign adapter export|import`: the native
//! drivers of the core's step functions, with progress bars, per-step JSON logs and tables.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};
use recalign_core::LanguageModel;
use recalign_core::data::pairs::read_jsonl;
use recalign_core::data::split::{Example, SplitName};
use recalign_core::data::{InteractionLog, ItemId};
use recalign_core::eval::EvalReport;
use recalign_core::prompt::PromptFormat;
use recalign_core::stats::{Interval, Paired};
use recalign_core::train::data as train_data;
use recalign_core::train::{
    Adapter, Checkpoint, FactorType, LoraSettings, LoraTargets, PreferenceTrainer, Reference,
    SftTrainer, TokenisedPair, TrainSettings, Trainer, with_adapter,
};

use crate::args::{PromptArg, read_adapter};
use crate::data::{DatasetArgs, SplitArg, bar};
use crate::loss::LossParams;
use crate::{CliResult, ModelArgs, load_model};

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

#[derive(Subcommand)]
pub enum AdapterCommand {
    /// Write PEFT's two files (adapter_model.safetensors, adapter_config.json) to a directory.
    Export {
        /// The adapter.
        adapter: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Rewrite an adapter with its factors in f16 (half the size; what ships as
    /// models/default-adapter.safetensors).
    F16 {
        /// The adapter.
        adapter: PathBuf,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Also store a hybrid adapter's projector and item table as int8 with a scale per
        /// row (a quarter of their f32 bytes; only recalign reads them, PEFT never did).
        #[arg(long)]
        int8_hybrid: bool,
    },
    /// Read a PEFT adapter directory into one recalign adapter file.
    Import {
        /// Directory with adapter_model.safetensors and adapter_config.json.
        dir: PathBuf,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
}

fn write_file(path: &Path, bytes: &[u8]) -> CliResult {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn checkpoint_path(out: &Path) -> PathBuf {
    out.with_extension("ckpt")
}

/// Writes via a temporary file and a rename, so a kill mid-write never leaves a torn checkpoint.
fn save_checkpoint(run: &Trainer, out: &Path) -> CliResult<PathBuf> {
    let path = checkpoint_path(out);
    let bytes = pollster::block_on(run.checkpoint())
        .and_then(|c| c.to_bytes())
        .map_err(|e| e.to_string())?;
    let tmp = path.with_extension("ckpt.tmp");
    write_file(&tmp, &bytes)?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| format!("cannot move {} into place: {e}", tmp.display()))?;
    Ok(path)
}

pub fn read_checkpoint(path: &Path) -> CliResult<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Checkpoint::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs the remaining steps, printing a line per step, appending JSON lines to
/// `<out>.steps.jsonl`, checkpointing every `every` steps, and saving the adapter at the end.
/// A failing step (a NaN loss) leaves a checkpoint of the last good step behind.
fn drive(
    mut run: Trainer,
    (train, stage): (&TrainArgs, Stage),
    out: &Path,
    prompt: PromptFormat,
) -> CliResult {
    let (steps, every) = (train.settings(stage).steps, train.checkpoint_every);
    let started = Instant::now();
    let log_path = out.with_extension("steps.jsonl");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open({
            if train.resume.is_none() {
                write_file(&log_path, b"")?;
            }
            &log_path
        })
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let progress = bar(steps as u64, "training");
    let mut done = 0;
    while !run.is_done() {
        let r = match pollster::block_on(run.step()) {
            Ok(r) => r,
            Err(e) => {
                progress.finish_and_clear();
                let kept = save_checkpoint(&run, out)
                    .map(|p| format!("; the last good step is saved in {}", p.display()))
                    .unwrap_or_default();
                return Err(format!("{e}{kept}"));
            }
        };
        done += 1;
        progress.set_position(r.step as u64);
        progress.println(format!(
            "step {:>4}/{}  loss {:>8.4}  margin {:>8.4}  acc {:>4.2}  lr {:.2e}  |g| {:>7.3}  {:>6.0} tok/s",
            r.step, r.steps, r.loss, r.margin, r.accuracy, r.learning_rate, r.grad_norm,
            r.tokens_per_second
        ));
        use std::io::Write;
        writeln!(
            log,
            "{}",
            serde_json::to_string(&r).map_err(|e| e.to_string())?
        )
        .map_err(|e| format!("cannot write {}: {e}", log_path.display()))?;
        if every > 0 && r.step % every == 0 && !run.is_done() {
            save_checkpoint(&run, out)?;
        }
    }
    progress.finish_and_clear();
    let mut adapter = pollster::block_on(run.adapter()).map_err(|e| e.to_string())?;
    adapter.prompt = prompt;
    write_file(out, &adapter.to_safetensors().map_err(|e| e.to_string())?)?;
    save_checkpoint(&run, out)?;
    eprintln!(
        "{done} steps in {:.1} s; adapter in {}, step log in {}",
        started.elapsed().as_secs_f64(),
        out.display(),
        log_path.display()
    );
    Ok(())
}

/// A fresh adapter with LLaRA's projector over `oracle`'s item table, fed at the lowest adapted
/// layer; the LoRA factors are drawn as a fresh run would draw them with `seed`.
fn fresh_hybrid(
    lm: &recalign_core::LanguageModel,
    log: &recalign_core::data::InteractionLog,
    oracle: &std::path::Path,
    settings: &LoraSettings,
    seed: u64,
    prompt: PromptFormat,
) -> Result<Adapter, String> {
    let oracle = crate::data::read_oracle(oracle, log, lm.model.device())?;
    let (items, d_item) = pollster::block_on(oracle.item_table()).map_err(|e| e.to_string())?;
    let c = &lm.model.config;
    let layer = settings
        .layer_range(c.n_layers)
        .map_err(|e| e.to_string())?
        .start;
    let mut adapter = Adapter::fresh(settings, c, seed).map_err(|e| e.to_string())?;
    adapter.hybrid = Some(
        recalign_core::hybrid::HybridWeights::fresh(items, d_item, c.hidden_size, layer, seed)
            .and_then(|h| h.with_catalogue(recalign_core::hybrid::ItemCatalogue::of(log)))
            .map_err(|e| e.to_string())?,
    );
    adapter.prompt = prompt;
    eprintln!("hybrid: item vectors of {d_item} from the oracle, projected into layer {layer}");
    Ok(adapter)
}

pub fn train(command: TrainCommand) -> CliResult {
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
                    return Err("--hybrid starts a fresh projector; an --init adapter keeps its                                 own (or has none): give one of the two"
                        .into());
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
            let (sft, prompt) = match recipe {
                Recipe::OneTarget => {
                    if one_target_share.is_some() || one_target_weight.is_some() {
                        return Err(
                            "--one-target-share and --one-target-weight mix one-target examples \
                             into --recipe sequence; --recipe one-target is all one-target already"
                                .into(),
                        );
                    }
                    let examples =
                        train_data::draw(splits.get(SplitName::Train), max_examples, dataset.seed);
                    let sft = train_data::sft_examples_with(&lm, &log, &examples, template, hybrid);
                    (sft, PromptFormat::Llara)
                }
                Recipe::Sequence => {
                    let config = train_data::SequenceConfig {
                        chunk,
                        context,
                        hybrid,
                    };
                    let sft = train_data::sequence_examples(
                        &lm,
                        &log,
                        &splits.train_sequences,
                        config,
                        max_examples,
                        dataset.seed,
                    )
                    .and_then(|docs| {
                        let n = docs.items.len();
                        let mixed = train_data::mix_one_target(
                            &lm,
                            &log,
                            docs,
                            splits.get(SplitName::Train),
                            (
                                one_target_share.unwrap_or(train_data::ONE_TARGET_SHARE),
                                one_target_weight.unwrap_or(train_data::ONE_TARGET_WEIGHT),
                            ),
                            template,
                            dataset.seed,
                        )?;
                        if mixed.items.len() > n {
                            eprintln!(
                                "{n} documents and {} LLaRA one-target examples",
                                mixed.items.len() - n
                            );
                        }
                        Ok(mixed)
                    });
                    (sft, PromptFormat::Compact)
                }
            };
            let sft = sft.map_err(|e| e.to_string())?;
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
                    eprintln!(
                        "resuming from step {} of {}",
                        c.state.step, c.state.settings.steps
                    );
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
                    eprintln!(
                        "resuming from step {} of {}",
                        c.state.step, c.state.settings.steps
                    );
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

pub fn eval(args: EvalArgs) -> CliResult {
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

pub fn adapter(command: AdapterCommand) -> CliResult {
    match command {
        AdapterCommand::Export { adapter, out } => {
            let mut a = read_adapter(&adapter)?;
            if a.hybrid.is_some() {
                // PEFT has no place for LLaRA's projector: its file keeps the LoRA factors, and
                // the whole adapter goes next to it as recalign reads it.
                let whole = out.join("recalign_adapter.safetensors");
                write_file(&whole, &a.to_safetensors().map_err(|e| e.to_string())?)?;
                a.hybrid = None;
                eprintln!(
                    "the adapter has LLaRA's projector (hybrid item slots), which PEFT cannot                      hold: adapter_model.safetensors has the LoRA factors only, {} the whole                      adapter",
                    whole.display()
                );
            }
            write_file(
                &out.join("adapter_model.safetensors"),
                &a.to_safetensors().map_err(|e| e.to_string())?,
            )?;
            let config =
                serde_json::to_string_pretty(&a.peft_config()).map_err(|e| e.to_string())?;
            write_file(&out.join("adapter_config.json"), config.as_bytes())?;
            eprintln!("wrote {} (PEFT layout)", out.display());
            Ok(())
        }
        AdapterCommand::F16 {
            adapter,
            out,
            int8_hybrid,
        } => {
            let a = read_adapter(&adapter)?;
            if int8_hybrid && a.hybrid.is_none() {
                return Err(format!(
                    "{} has no hybrid projector for --int8-hybrid to store",
                    adapter.display()
                ));
            }
            let dtype = if int8_hybrid {
                FactorType::F16Int8Hybrid
            } else {
                FactorType::F16
            };
            let bytes = a.to_safetensors_as(dtype).map_err(|e| e.to_string())?;
            write_file(&out, &bytes)?;
            eprintln!(
                "wrote {} ({} bytes, f16 factors{})",
                out.display(),
                bytes.len(),
                if int8_hybrid {
                    ", int8 projector and item table"
                } else {
                    ""
                }
            );
            Ok(())
        }
        AdapterCommand::Import { dir, out } => {
            let bytes = std::fs::read(dir.join("adapter_model.safetensors")).map_err(|e| {
                format!(
                    "cannot read {}/adapter_model.safetensors: {e}",
                    dir.display()
                )
            })?;
            let config = std::fs::read(dir.join("adapter_config.json"))
                .map_err(|e| format!("cannot read {}/adapter_config.json: {e}", dir.display()))?;
            let config: serde_json::Value = serde_json::from_slice(&config)
                .map_err(|e| format!("{}/adapter_config.json: {e}", dir.display()))?;
            let a = Adapter::from_safetensors(&bytes, Some(&config)).map_err(|e| e.to_string())?;
            write_file(&out, &a.to_safetensors().map_err(|e| e.to_string())?)?;
            eprintln!(
                "imported {} adapted layers to {}",
                a.layers.len(),
                out.display()
            );
            Ok(())
        }
    }
}
