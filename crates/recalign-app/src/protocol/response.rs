//! What the worker answers: results, progress, failures, and the records they carry.

use recalign_core::data::LoadReport;
use recalign_core::data::split::SplitName;
use recalign_core::data::stats::SplitStats;
use recalign_core::error::DeviceFault;
use recalign_core::eval::{EvalReport, RankMetrics};
use recalign_core::train::StepReport;
use recalign_core::{Generation, Ranking};
use serde::{Deserialize, Serialize};

use super::*;

/// A message from the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// The device chosen, with why when it is not WebGPU.
    Device(DeviceInUse),
    /// Progress of a long step of a request in `lane`.
    Progress {
        /// Whose progress it is.
        lane: Lane,
        /// What is happening.
        stage: String,
        /// Units done (bytes when downloading, users when evaluating).
        done: u64,
        /// Units in all, when known.
        total: Option<u64>,
    },
    /// The model is ready.
    Loaded(ModelInfo),
    /// A dataset is parsed and split.
    DatasetLoaded(DatasetInfo),
    /// The oracle is trained.
    OracleTrained(OracleSummary),
    /// A test user's example, titles only.
    TestUser {
        /// Which test user (after wrapping).
        index: usize,
        /// History titles, oldest first.
        history: Vec<String>,
        /// Candidate titles.
        candidates: Vec<String>,
        /// The title the user actually chose next.
        target: String,
    },
    /// One optimiser step finished.
    TrainStep(StepReport),
    /// A validation check of the running training.
    TrainValidation(ValidationPoint),
    /// Something went wrong beside the running training, which goes on.
    TrainWarning(String),
    /// The running training is held (true) or going again (false).
    TrainPaused(bool),
    /// A training run ended; its adapter is now the one ranking uses.
    Trained(TrainSummary),
    /// An adapter in PEFT's layout, to save.
    AdapterExported {
        /// Adapter name.
        name: String,
        /// `adapter_model.safetensors`.
        safetensors: Vec<u8>,
        /// `adapter_config.json`.
        config: String,
    },
    /// An evaluation finished.
    Evaluated(Box<Evaluation>),
    /// An imported adapter joined the list.
    AdapterAdded {
        /// Its index.
        index: usize,
        /// Its name.
        name: String,
    },
    /// The adapter ranking and generation use.
    AdapterInUse {
        /// Index into the trained adapters, `None` for the base model.
        index: Option<usize>,
    },
    /// RosePO's smoothing factor of every pair the run trains on (one per rejected answer).
    PairEps(Vec<f64>),
    /// A preference JSONL was read.
    PairsLoaded {
        /// File name.
        name: String,
        /// Pairs in it.
        pairs: usize,
        /// Pairs that carry RosePO's smoothing factor.
        smoothed: usize,
        /// Most rejected answers in one pair.
        negatives: usize,
    },
    /// What is stored in this browser (after any change to it).
    Storage(Box<StorageInfo>),
    /// The runs stored in this browser, oldest first (sent once at start and after an import).
    Runs(Vec<RunRecord>),
    /// A run continues from its checkpoint (its steps so far are in the record).
    Resuming(Box<RunRecord>),
    /// The default adapter (`LoadUrl`'s): its index, now in use, or why the base model ranks.
    DefaultAdapter(Result<usize, String>),
    /// Storing something failed; what the session has in memory is unaffected.
    StorageFailed {
        /// What was being stored.
        during: String,
        /// The error, with advice.
        message: String,
    },
    /// A ranking finished.
    Ranked {
        /// The ranking.
        ranking: Ranking,
        /// Wall time in ms.
        ms: f64,
        /// The second model's ranking, when one was asked for.
        comparison: Option<Box<Comparison>>,
        /// The candidates' training popularity, when a dataset is loaded.
        popularity: Option<CandidatePopularity>,
    },
    /// A catalogue search finished.
    Recommended {
        /// The titles and what the search did.
        found: recalign_core::recommend::CatalogueRecommendations,
        /// Each title's training popularity, in the list's order, and the catalogue's largest.
        popularity: CandidatePopularity,
        /// Wall time in ms.
        ms: f64,
    },
    /// A generation finished.
    Generated {
        /// The answer.
        generation: Generation,
        /// Index of the candidate it names, if exactly one.
        named: Option<usize>,
        /// Wall time in ms.
        ms: f64,
    },
    /// A request of `lane` failed; the message says what and, where possible, what to do.
    /// Nothing else is lost: a failed load keeps the previous model, a failed dataset the
    /// previous dataset, a failed run the adapters trained before.
    Failed {
        /// Whose request it was.
        lane: Lane,
        /// What was being done.
        during: String,
        /// The error.
        message: String,
        /// The kind of device failure, when the device failed (the page advises from it).
        fault: Option<DeviceFault>,
    },
}

impl Response {
    /// Whether this ends a model-lane request (a load, ranking, recommendation or generation):
    /// its result or its failure. The page is busy while one of those is in flight.
    pub fn ends_model_request(&self) -> bool {
        matches!(
            self,
            Self::Loaded(_)
                | Self::Ranked { .. }
                | Self::Recommended { .. }
                | Self::Generated { .. }
                | Self::Failed {
                    lane: Lane::Model,
                    ..
                }
        )
    }
}

/// The same candidates ranked by a second model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// "base model" or the adapter's name.
    pub model: String,
    /// Its ranking.
    pub ranking: Ranking,
}

/// How popular each ranked candidate was in the loaded dataset's training split: what lets a
/// reader see popularity bias in one ranking (RosePO's concern) without an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidatePopularity {
    /// Training interactions of each candidate in the ranking's order (best first); `None`
    /// for a title outside the catalogue.
    pub counts: Vec<Option<u32>>,
    /// The most popular item's count: the bars' full width.
    pub max: u32,
    /// An item below this count is in the long tail (the 80% least popular; as Tail@1).
    pub head_floor: u32,
}

/// The adapter being trained, ranked on validation users at one step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValidationPoint {
    /// Optimiser steps done (0: before training).
    pub step: usize,
    /// HR@1 on the 20 candidates.
    pub hr_at_1: f64,
    /// AveragePopularity@1: mean training popularity of the top pick.
    pub average_popularity: f64,
}

/// A training run as this browser keeps it: what was asked, every step, how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unique within this browser (milliseconds since 1970 at the start).
    pub id: u64,
    /// "SFT", "DPO", ...
    pub label: String,
    /// The model file it trained on.
    pub model: String,
    /// The request.
    pub request: TrainRequest,
    /// Every step's report, in order.
    pub steps: Vec<StepReport>,
    /// Validation checks, in order.
    #[serde(default)]
    pub validation: Vec<ValidationPoint>,
    /// How it ended; `None` while running or when a reload interrupted it.
    pub summary: Option<TrainSummary>,
}

/// A run a reload interrupted, which can continue from its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeOffer {
    /// The run so far.
    pub run: RunRecord,
    /// Steps the checkpoint holds.
    pub step: usize,
}

/// What this browser stores for the page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageInfo {
    /// Whether storage works here at all (with why not).
    pub unavailable: Option<String>,
    /// Bytes this origin uses and may use, as the browser estimates them.
    pub usage: Option<(u64, u64)>,
    /// Stored models (file name, bytes).
    pub models: Vec<(String, u64)>,
    /// Stored adapters.
    pub adapters: usize,
    /// Stored runs.
    pub runs: usize,
    /// An interrupted run that can resume.
    pub resume: Option<ResumeOffer>,
}

/// A finished (or cancelled) training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Index of its adapter in the session's list.
    pub index: usize,
    /// Adapter name, e.g. "DPO #2".
    pub name: String,
    /// Steps run.
    pub steps: usize,
    /// Steps asked for.
    pub planned: usize,
    /// Wall time of the steps in seconds.
    pub seconds: f64,
    /// Training inputs (SFT examples or preference pairs) used.
    pub inputs: usize,
    /// Inputs dropped because their prompt did not fit the context.
    pub too_long: usize,
    /// What the run started from.
    pub start: String,
    /// Whether the user stopped it early.
    pub cancelled: bool,
}

/// One model's metrics on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The model: "base model" or an adapter's name.
    pub model: String,
    /// Which split.
    pub split: SplitName,
    /// The metrics.
    pub report: EvalReport,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// A loaded dataset, for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Interactions file name.
    pub name: String,
    /// Split statistics.
    pub stats: SplitStats,
    /// Rows the parser skipped, by rule.
    pub report: LoadReport,
    /// Every catalogue title (the Recommend card's search builds a history from them).
    pub titles: Vec<String>,
}

/// What SASRec training produced, measured on the validation users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OracleSummary {
    /// Epochs trained.
    pub epochs: usize,
    /// Training wall time in seconds.
    pub seconds: f64,
    /// Mean loss of each epoch.
    pub losses: Vec<f64>,
    /// Validation users evaluated.
    pub users: usize,
    /// SASRec, popularity and random on the 20-candidate protocol.
    pub sasrec: RankMetrics,
    /// Popularity baseline.
    pub popularity: RankMetrics,
    /// Random baseline (exact expectation).
    pub random: RankMetrics,
}

/// Facts about the loaded model, for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// File name.
    pub name: String,
    /// File size in bytes.
    pub bytes: u64,
    /// Decoder layers.
    pub layers: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Context length.
    pub context: usize,
    /// Time from bytes in memory to a ready model, in ms.
    pub prepare_ms: f64,
}
