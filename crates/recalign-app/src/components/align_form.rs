//! The Align card's form: the stage, loss, LoRA and schedule settings a user picks, kept in the
//! URL hash, and the training request they make (the Quick align presets included).

use recalign_core::data::pairs::RejectStrategy;
use recalign_core::losses::{LossConfig, LossKind};
use recalign_core::prompt::PromptFormat;
use recalign_core::train::{LoraSettings, LoraTargets, TrainSettings};

use crate::hash;
use crate::protocol::{TrainRequest, TrainStage};

/// The training form. Defaults suit a short demo of the real model on a laptop: batch 1 keeps a
/// SmolLM2 step well inside wasm32's 4 GiB (batch 4 peaks at 5.6 GiB natively), and
/// accumulation 2 still averages two prompts per step.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct AlignForm {
    pub(super) preference: bool,
    pub(super) loss: LossKind,
    pub(super) beta: f64,
    pub(super) negatives: usize,
    pub(super) strategies: Vec<RejectStrategy>,
    pub(super) prompts: usize,
    pub(super) steps: usize,
    pub(super) batch: usize,
    pub(super) accumulation: usize,
    pub(super) learning_rate: f64,
    pub(super) rank: usize,
    pub(super) targets: LoraTargets,
    pub(super) seed: u64,
    pub(super) checkpoint_every: usize,
    pub(super) imported_pairs: bool,
    pub(super) validate_every: usize,
    pub(super) validate_users: usize,
    /// Compact prompt (sequence SFT) instead of LLaRA's.
    pub(super) compact: bool,
    /// LoRA on the top N layers only (0: every layer).
    pub(super) top_layers: usize,
    /// SFT with LLaRA's hybrid item tokens (the oracle's item vectors through a projector).
    pub(super) hybrid: bool,
}

impl Default for AlignForm {
    fn default() -> Self {
        Self {
            preference: false,
            loss: LossKind::Dpo,
            beta: LossConfig::new(LossKind::Dpo).beta,
            negatives: 1,
            strategies: vec![RejectStrategy::Random],
            prompts: 16,
            steps: 8,
            batch: 1,
            accumulation: 2,
            learning_rate: 5e-4,
            rank: 8,
            targets: LoraTargets::QueryValue,
            seed: 2024,
            checkpoint_every: 1,
            imported_pairs: false,
            validate_every: 4,
            validate_users: 4,
            compact: false,
            top_layers: 0,
            hybrid: false,
        }
    }
}

impl AlignForm {
    /// The defaults, overridden by whatever the URL hash holds (`a.` keys).
    pub(super) fn from_hash() -> Self {
        let d = Self::default();
        let loss = hash::get("a.loss")
            .and_then(|v| LossKind::parse(&v).ok())
            .unwrap_or(d.loss);
        let strategies: Vec<RejectStrategy> = hash::get("a.strategies")
            .map(|v| {
                v.split(',')
                    .filter_map(|n| {
                        RejectStrategy::ALL
                            .into_iter()
                            .find(|s| strategy_id(*s) == n)
                    })
                    .collect()
            })
            .filter(|v: &Vec<_>| !v.is_empty())
            .unwrap_or(d.strategies);
        Self {
            preference: hash::get("a.stage").map_or(d.preference, |v| v == "preference"),
            loss,
            beta: hash::parse("a.beta").unwrap_or_else(|| LossConfig::new(loss).beta),
            negatives: hash::parse("a.k").unwrap_or(d.negatives),
            strategies,
            prompts: hash::parse("a.prompts").unwrap_or(d.prompts),
            steps: hash::parse("a.steps").unwrap_or(d.steps),
            batch: hash::parse("a.batch").unwrap_or(d.batch),
            accumulation: hash::parse("a.accumulation").unwrap_or(d.accumulation),
            learning_rate: hash::parse("a.lr").unwrap_or(d.learning_rate),
            rank: hash::parse("a.rank").unwrap_or(d.rank),
            targets: match hash::get("a.targets").as_deref() {
                Some("all") => LoraTargets::AllLinear,
                Some("qv") => LoraTargets::QueryValue,
                _ => d.targets,
            },
            seed: hash::parse("a.seed").unwrap_or(d.seed),
            checkpoint_every: hash::parse("a.checkpoint").unwrap_or(d.checkpoint_every),
            imported_pairs: hash::get("a.pairs").is_some_and(|v| v == "file"),
            validate_every: hash::parse("a.validate").unwrap_or(d.validate_every),
            validate_users: hash::parse("a.vusers").unwrap_or(d.validate_users),
            compact: hash::get("a.prompt").map_or(d.compact, |v| v == "compact"),
            top_layers: hash::parse("a.top").unwrap_or(d.top_layers),
            hybrid: hash::get("a.hybrid").is_some_and(|v| v == "1"),
        }
    }

    /// Quick align: the native recipe (sequence SFT in the compact prompt, LoRA r 8 on every
    /// linear layer of the top 8 blocks, batch 4) cut to 48 steps on 192 training histories,
    /// so the CPU device in one wasm thread finishes in minutes; validation before, midway and
    /// at the end shows where HR@1 went. Its learning rate is the short runs' (docs/alignment.md,
    /// the SFT learning-rate sweep at 200 steps), not the long recipe's 1e-3.
    pub(super) fn quick(layers: usize) -> Self {
        Self {
            preference: false,
            prompts: 192,
            steps: 48,
            batch: 4,
            accumulation: 1,
            learning_rate: 5e-3,
            rank: 8,
            targets: LoraTargets::AllLinear,
            checkpoint_every: 8,
            validate_every: 24,
            validate_users: 24,
            compact: true,
            // A smaller model (the tests' tiny one) is adapted in every layer.
            top_layers: 8.min(layers),
            ..Self::default()
        }
    }

    /// The walk-through's preference step: RosePO from the quick SFT adapter, on pairs whose
    /// rejected answer is the model's own top mistake (helpfulness) or a popular title
    /// (harmlessness), smoothed by the SASRec oracle; 24 steps of 4 at the gentle rate that kept
    /// SFT's accuracy natively (docs/alignment.md, "A gentler preference stage").
    pub(super) fn quick_rosepo(layers: usize) -> Self {
        Self {
            preference: true,
            loss: LossKind::Rosepo,
            beta: 1.0,
            strategies: vec![RejectStrategy::SelfHard, RejectStrategy::Popular],
            prompts: 96,
            steps: 24,
            learning_rate: 5e-5,
            validate_every: 24,
            ..Self::quick(layers)
        }
    }

    /// The form as hash pairs.
    pub(super) fn to_hash(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "a.stage",
                if self.preference { "preference" } else { "sft" }.into(),
            ),
            ("a.loss", self.loss.name().into()),
            ("a.beta", self.beta.to_string()),
            ("a.k", self.negatives.to_string()),
            (
                "a.strategies",
                self.strategies
                    .iter()
                    .map(|s| strategy_id(*s))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("a.prompts", self.prompts.to_string()),
            ("a.steps", self.steps.to_string()),
            ("a.batch", self.batch.to_string()),
            ("a.accumulation", self.accumulation.to_string()),
            ("a.lr", self.learning_rate.to_string()),
            ("a.rank", self.rank.to_string()),
            (
                "a.targets",
                match self.targets {
                    LoraTargets::AllLinear => "all",
                    LoraTargets::QueryValue => "qv",
                }
                .into(),
            ),
            ("a.seed", self.seed.to_string()),
            (
                "a.prompt",
                if self.compact { "compact" } else { "llara" }.into(),
            ),
            ("a.top", self.top_layers.to_string()),
            ("a.hybrid", u8::from(self.hybrid).to_string()),
            ("a.checkpoint", self.checkpoint_every.to_string()),
            (
                "a.pairs",
                if self.imported_pairs {
                    "file"
                } else {
                    "sample"
                }
                .into(),
            ),
        ]
    }

    pub(super) fn request(&self) -> TrainRequest {
        let stage = if self.preference {
            let mut loss = LossConfig::new(self.loss);
            loss.beta = self.beta;
            TrainStage::Preference {
                loss,
                strategies: self.strategies.clone(),
                negatives: self.negatives,
                imported_pairs: self.imported_pairs,
            }
        } else {
            TrainStage::Sft
        };
        TrainRequest {
            stage,
            prompts: self.prompts,
            lora: LoraSettings {
                rank: self.rank,
                alpha: 2.0 * self.rank as f64,
                targets: self.targets,
                top_layers: self.top_layers,
                ..LoraSettings::default()
            },
            settings: TrainSettings {
                learning_rate: self.learning_rate,
                warmup_steps: (self.steps / 10).max(1).min(self.steps.saturating_sub(1)),
                steps: self.steps,
                batch_size: self.batch,
                accumulation: self.accumulation,
                seed: self.seed,
                ..TrainSettings::default()
            },
            checkpoint_every: self.checkpoint_every,
            validate_every: self.validate_every,
            validate_users: self.validate_users,
            format: if self.compact {
                PromptFormat::Compact
            } else {
                PromptFormat::Llara
            },
            hybrid: self.hybrid && !self.preference,
        }
    }
}

/// Quick align's SFT run, for a model of `layers` blocks (the walk-through's third step).
pub fn quick_sft_request(layers: usize) -> TrainRequest {
    AlignForm::quick(layers).request()
}

/// The walk-through's RosePO run after [`quick_sft_request`].
pub fn quick_rosepo_request(layers: usize) -> TrainRequest {
    AlignForm::quick_rosepo(layers).request()
}

pub(super) fn strategy_label(s: RejectStrategy) -> &'static str {
    match s {
        RejectStrategy::Random => "random",
        RejectStrategy::Popular => "popular (harmlessness: popularity bias)",
        RejectStrategy::SemanticSimilar => "similar title (harmlessness: hallucination)",
        RejectStrategy::SelfHard => "self-hard (helpfulness: the model's top mistake)",
    }
}

pub(super) fn strategy_id(s: RejectStrategy) -> &'static str {
    match s {
        RejectStrategy::Random => "random",
        RejectStrategy::Popular => "popular",
        RejectStrategy::SemanticSimilar => "semantic-similar",
        RejectStrategy::SelfHard => "self-hard",
    }
}
