//! An SFT run's inputs from a split, prepared once for the CLI's `train sft` and the page's
//! Align card: which recipe, how many examples, which seed. The two front ends used to repeat
//! this (draw, tokenise, mix one-target examples in), and a change to one reached the other only
//! by hand.

use crate::Result;
use crate::data::InteractionLog;
use crate::data::split::Splits;
use crate::lm::LanguageModel;
use crate::prompt::PromptFormat;
use crate::train::SftExample;
use crate::train::data::{self, SequenceConfig, Tokenised};

/// What an SFT run trains on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SftRecipe {
    /// LLaRA's one-target prompts: the history, the candidate list, the target's title as the
    /// answer (the papers' recipe, kept for comparison with them).
    OneTarget,
    /// Compact documents of each training user's positives, every title after the context a
    /// target ([`data::sequence_examples`]), with LLaRA one-target examples mixed in
    /// ([`data::mix_one_target`]: `one_target` is their share and loss weight) so the adapter
    /// still answers LLaRA's prompt with a listed title.
    Sequence {
        /// Document length and context (`hybrid` is the plan's).
        config: SequenceConfig,
        /// The one-target examples' share and weight.
        one_target: (f64, f32),
    },
}

impl SftRecipe {
    /// The recipe's sequence form with the project's defaults (documents of 30 titles, 3 of
    /// context, a fifth one-target examples at weight 1).
    pub fn sequence() -> Self {
        SftRecipe::Sequence {
            config: SequenceConfig::default(),
            one_target: (data::ONE_TARGET_SHARE, data::ONE_TARGET_WEIGHT),
        }
    }

    /// The prompt format an adapter trained this way ranks with.
    pub fn format(&self) -> PromptFormat {
        match self {
            SftRecipe::OneTarget => PromptFormat::Llara,
            SftRecipe::Sequence { .. } => PromptFormat::Compact,
        }
    }
}

/// An SFT run's draw: the recipe and how much of the training split it reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SftPlan {
    /// What the examples are.
    pub recipe: SftRecipe,
    /// At most this many training windows (one-target) or documents (sequence); 0: all.
    pub max_examples: usize,
    /// One LLaRA request template for every one-target prompt (`None`: one per example).
    pub template: Option<usize>,
    /// A hybrid item slot after each title (the run trains a projector).
    pub hybrid: bool,
    /// The seed of the draw and of the mix.
    pub seed: u64,
}

/// A prepared SFT run's examples.
#[derive(Clone, Debug)]
pub struct SftData {
    /// The tokenised examples, and how many did not fit the context.
    pub examples: Tokenised<SftExample>,
    /// How many of them are one-target examples mixed into documents (0 for the one-target
    /// recipe, whose examples are all of that kind).
    pub mixed_in: usize,
    /// The prompt format the run's adapter ranks with.
    pub format: PromptFormat,
}

/// The examples `plan` trains on, from `splits`' training part, tokenised for `lm`.
pub fn sft_data(
    lm: &LanguageModel,
    log: &InteractionLog,
    splits: &Splits,
    plan: &SftPlan,
) -> Result<SftData> {
    let format = plan.recipe.format();
    match plan.recipe {
        SftRecipe::OneTarget => {
            let drawn = data::draw(&splits.train, plan.max_examples, plan.seed);
            let examples = data::sft_examples_with(lm, log, &drawn, plan.template, plan.hybrid)?;
            Ok(SftData {
                examples,
                mixed_in: 0,
                format,
            })
        }
        SftRecipe::Sequence { config, one_target } => {
            let config = SequenceConfig {
                hybrid: plan.hybrid,
                ..config
            };
            let documents = data::sequence_examples(
                lm,
                log,
                &splits.train_sequences,
                config,
                plan.max_examples,
                plan.seed,
            )?;
            let n = documents.items.len();
            let examples = data::mix_one_target(
                lm,
                log,
                documents,
                &splits.train,
                one_target,
                plan.template,
                plan.seed,
            )?;
            Ok(SftData {
                mixed_in: examples.items.len() - n,
                examples,
                format,
            })
        }
    }
}
