//! What the page asks of the worker, and the lane each request runs in.

use recalign_core::data::pairs::RejectStrategy;
use recalign_core::data::split::SplitName;
use recalign_core::losses::LossConfig;
use recalign_core::prompt::PromptFormat;
use recalign_core::train::{LoraSettings, TrainSettings};
use serde::{Deserialize, Serialize};

use super::*;

/// A request to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Parse a dataset and split it (method.md §1, default settings).
    LoadDataset(DataSource),
    /// Train the SASRec oracle on the CPU device and evaluate it on the validation users.
    TrainOracle {
        /// Passes over the training windows.
        epochs: usize,
        /// Adam's learning rate.
        learning_rate: f64,
    },
    /// Send back one test user's history and candidates (index wraps around).
    TestUser {
        /// Which test user.
        index: usize,
    },
    /// Choose the device and load the model at `url` (same origin).
    LoadUrl {
        /// URL of a GGUF file.
        url: String,
        /// Which device to use.
        device: DevicePreference,
        /// An adapter to rank with once the model is loaded (the shipped default adapter, or
        /// `?adapter=`); listed first, not stored, and skipped with a notice when missing.
        adapter: Option<String>,
    },
    /// Load a GGUF the user picked.
    LoadBytes {
        /// File name, for display.
        name: String,
        /// File contents.
        bytes: Vec<u8>,
    },
    /// Rank candidates for a history.
    Rank {
        /// History titles, oldest first.
        history: Vec<String>,
        /// Candidate titles.
        candidates: Vec<String>,
        /// Length-normalise scores.
        length_normalised: bool,
        /// Also rank with this model, for a side-by-side comparison.
        compare_with: Option<ModelChoice>,
    },
    /// The top titles of the loaded dataset's whole catalogue for a history
    /// (`recalign_core::recommend`).
    Recommend {
        /// History titles, oldest first.
        history: Vec<String>,
        /// How many titles.
        top: usize,
    },
    /// Train LoRA adapters on the loaded dataset's training split (method.md §2-3).
    Train(Box<TrainRequest>),
    /// Stop the running training after its current step; what it trained so far is kept.
    CancelTraining,
    /// Hold (true) or continue (false) the running training between steps.
    PauseTraining(bool),
    /// Send back adapter `index` in PEFT's layout (for the user to download).
    ExportAdapter {
        /// Index into the session's adapters.
        index: usize,
    },
    /// Add an adapter the user picked (PEFT's `adapter_model.safetensors`, or recalign's own
    /// file) and rank with it.
    ImportAdapter {
        /// File name, for display.
        name: String,
        /// The safetensors bytes.
        bytes: Vec<u8>,
        /// `adapter_config.json`, when picked along.
        config: Option<Vec<u8>>,
    },
    /// Evaluate the model in use (base or adapter) on a split: ranking metrics next to
    /// popularity bias and, with generation, hallucination (method.md §4).
    Evaluate {
        /// Validation or test.
        split: SplitName,
        /// Users drawn (seeded; 0: all).
        users: usize,
        /// Also generate up to this many tokens per user (0: rank only).
        generate: usize,
    },
    /// Rank and generate with this trained adapter (`None`: the base model).
    UseAdapter {
        /// Index into the adapters trained in this session.
        index: Option<usize>,
    },
    /// Continue the training run a reload interrupted, from its last checkpoint.
    ResumeTraining,
    /// Forget the interrupted run's checkpoint (its finished steps stay in the run list).
    DiscardCheckpoint,
    /// Load a model stored in this browser (`models/<name>`).
    LoadStored {
        /// File name.
        name: String,
    },
    /// Read a preference JSONL (TRL's `prompt`, `chosen`, `rejected`; recalign's extra fields
    /// optional) to train on instead of pairs sampled from the dataset.
    LoadPairs {
        /// File name, for display.
        name: String,
        /// The JSONL bytes.
        bytes: Vec<u8>,
    },
    /// Report what is stored (sent at start; the worker also restores the runs).
    StorageStatus,
    /// Remove everything stored (models, adapters, runs, checkpoint); the session keeps what it
    /// has in memory.
    ClearStorage,
    /// Add runs exported from this page (a JSON list of runs) to the stored ones.
    ImportRuns {
        /// File name, for messages.
        name: String,
        /// The JSON bytes.
        bytes: Vec<u8>,
    },
    /// Generate an answer to the recommendation prompt.
    Generate {
        /// History titles, oldest first.
        history: Vec<String>,
        /// Candidate titles.
        candidates: Vec<String>,
        /// Most new tokens.
        max_new_tokens: usize,
    },
}

impl Request {
    /// The lane the request belongs to.
    pub fn lane(&self) -> Lane {
        match self {
            Self::LoadUrl { .. }
            | Self::LoadBytes { .. }
            | Self::LoadStored { .. }
            | Self::Rank { .. }
            | Self::Recommend { .. }
            | Self::Generate { .. } => Lane::Model,
            Self::UseAdapter { .. } | Self::ExportAdapter { .. } | Self::ImportAdapter { .. } => {
                Lane::Adapters
            }
            Self::LoadDataset(_) | Self::TrainOracle { .. } | Self::TestUser { .. } => Lane::Data,
            Self::Train(_)
            | Self::ResumeTraining
            | Self::CancelTraining
            | Self::PauseTraining(_)
            | Self::LoadPairs { .. } => Lane::Training,
            Self::Evaluate { .. } => Lane::Evaluation,
            Self::StorageStatus
            | Self::ClearStorage
            | Self::ImportRuns { .. }
            | Self::DiscardCheckpoint => Lane::Storage,
        }
    }

    /// Whether the request loads the model, uses it, or neither. The worker orders requests
    /// with it: a ranking asked for while the default adapter was still loading used to run on
    /// the base model and then be cleared by the adapter's arrival, so the page showed nothing.
    pub fn model_access(&self) -> ModelAccess {
        match self {
            Self::LoadUrl { .. } | Self::LoadBytes { .. } | Self::LoadStored { .. } => {
                ModelAccess::Load
            }
            Self::Rank { .. }
            | Self::Recommend { .. }
            | Self::Generate { .. }
            | Self::Train(_)
            | Self::ResumeTraining
            | Self::Evaluate { .. }
            | Self::UseAdapter { .. }
            | Self::ExportAdapter { .. }
            | Self::ImportAdapter { .. }
            | Self::LoadPairs { .. } => ModelAccess::Use,
            Self::LoadDataset(_)
            | Self::TrainOracle { .. }
            | Self::TestUser { .. }
            | Self::CancelTraining
            | Self::PauseTraining(_)
            | Self::DiscardCheckpoint
            | Self::StorageStatus
            | Self::ClearStorage
            | Self::ImportRuns { .. } => ModelAccess::Independent,
        }
    }
}

/// How a request meets a model load (see [`Request::model_access`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelAccess {
    /// It loads a model (and, for the page's first load, the default adapter): it runs alone.
    Load,
    /// It uses the model in use: it waits while a load runs, so it never starts on a model
    /// that is about to change.
    Use,
    /// It does not touch the model (data, storage, training controls): it goes ahead.
    Independent,
}

/// The base model or one of the session's adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelChoice {
    /// The model without adapters.
    Base,
    /// Adapter `index` in the session's list.
    Adapter(usize),
}

/// Which stage a training run is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TrainStage {
    /// Supervised fine-tuning on the target's title.
    Sft,
    /// Preference optimisation, starting from (and referenced to) the latest SFT adapter when
    /// there is one, otherwise the base model.
    Preference {
        /// The loss and its hyper-parameters.
        loss: LossConfig,
        /// How rejected answers are drawn (one pair per strategy per prompt).
        strategies: Vec<RejectStrategy>,
        /// Rejected answers per pair (K; S-DPO uses more than one).
        negatives: usize,
        /// Train on the pairs of the loaded preference JSONL instead of sampling them from the
        /// dataset.
        #[serde(default)]
        imported_pairs: bool,
    },
}

impl TrainStage {
    /// Short name, as the page and the adapter list show it.
    pub fn label(&self) -> String {
        match self {
            Self::Sft => "SFT".into(),
            Self::Preference { loss, .. } => loss.kind.label().into(),
        }
    }
}

/// A training run the page asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRequest {
    /// SFT or a preference loss.
    pub stage: TrainStage,
    /// Training prompts drawn (seeded) from the training split.
    pub prompts: usize,
    /// Adapter shape.
    pub lora: LoraSettings,
    /// Optimiser, schedule, batching and seed.
    pub settings: TrainSettings,
    /// Store a checkpoint every this many steps (0: never), so a reload can resume the run.
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Rank the candidates of `validate_users` validation users (seeded) before the first step
    /// and every this many steps (0: never), for the live HR@1 and AveragePopularity@1 chart.
    #[serde(default)]
    pub validate_every: usize,
    /// Validation users per check.
    #[serde(default)]
    pub validate_users: usize,
    /// The prompt the run trains (and validates) in, which its adapter then ranks with.
    /// Compact SFT is the sequence recipe (every title of a training user's history is a
    /// target); LLaRA's is one target per prompt, as in the papers.
    #[serde(default)]
    pub format: PromptFormat,
    /// LLaRA's hybrid item tokens (SFT): each title's SASRec vector, from the oracle trained
    /// in the Data card, added through a projector the run trains with the adapter.
    #[serde(default)]
    pub hybrid: bool,
}

/// Where a dataset comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DataSource {
    /// Files on the page's own origin (the default ML-100K that `./x build` copies).
    Urls {
        /// Interactions (`.inter`, `u.data`, CSV/TSV).
        interactions: String,
        /// Items (`.item`, `u.item`, CSV/TSV).
        items: String,
    },
    /// Files the user picked; the layout is guessed from the interactions file name.
    Files {
        /// Interactions file name.
        name: String,
        /// Interactions bytes.
        interactions: Vec<u8>,
        /// Items bytes, when the layout has an items file.
        items: Option<Vec<u8>>,
        /// With pre-windowed training rows (LLaRA): the held-out rows (LLaRA's
        /// `Val_data.jsonl` or S-DPO's `.json`) as the validation examples, with the file name.
        held_out: Option<(String, Vec<u8>)>,
        /// What the items are, for the prompt wording.
        domain: recalign_core::data::Domain,
    },
}
