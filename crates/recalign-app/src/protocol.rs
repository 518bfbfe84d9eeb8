//! Messages between the page and the model worker: plain serde types, nothing browser-specific.

use recalign_core::data::LoadReport;
use recalign_core::data::pairs::RejectStrategy;
use recalign_core::data::split::SplitName;
use recalign_core::data::stats::SplitStats;
use recalign_core::error::DeviceFault;
use recalign_core::eval::{EvalReport, RankMetrics};
use recalign_core::losses::LossConfig;
use recalign_core::prompt::PromptFormat;
use recalign_core::train::{LoraSettings, StepReport, TrainSettings};
use recalign_core::{Generation, Ranking};
use serde::{Deserialize, Serialize};

/// Which device the worker computes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKind {
    /// WebGPU through Burn's wgpu backend.
    WebGpu,
    /// Burn's Flex CPU backend (no WebGPU adapter).
    Cpu,
}

/// Which device the user asked for (`?device=` in the URL).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DevicePreference {
    /// WebGPU on a hardware adapter, otherwise the CPU (a software WebGPU adapter is far slower
    /// than the CPU device: 385 s against 4 s for one SmolLM2 ranking in headless Chromium).
    #[default]
    Auto,
    /// WebGPU whenever an adapter exists, even a software one.
    WebGpu,
    /// The CPU device.
    Cpu,
}

impl DevicePreference {
    /// Parses the `?device=` value; anything unknown means automatic.
    pub fn from_query(value: Option<&str>) -> Self {
        match value {
            Some("cpu") => Self::Cpu,
            Some("webgpu") => Self::WebGpu,
            _ => Self::Auto,
        }
    }
}

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

/// The part of the page a request belongs to: where its progress and its failure show, and
/// whether the page waits for it. Defined here once ([`Request::lane`]); the worker tags every
/// progress and failure with it and the page routes them by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lane {
    /// Loading the model and using it (ranking, recommending, generating): the page is busy.
    Model,
    /// Which adapter ranks, exporting and importing one.
    Adapters,
    /// Datasets, test users and the SASRec oracle (the Data card).
    Data,
    /// Training runs and their controls (the Align card).
    Training,
    /// Evaluating a model on a split (the Evaluate card).
    Evaluation,
    /// What is kept in the browser's storage.
    Storage,
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

/// A message with the id of the request it belongs to. The page numbers its requests and the
/// worker echoes the number on every response to one, so the page knows which request a
/// result ends (two rankings in flight no longer free the page when the first one ends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tagged<T> {
    /// The request's number, unique per page.
    pub id: u64,
    /// The message.
    pub body: T,
}

/// The base model or one of the session's adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelChoice {
    /// The model without adapters.
    Base,
    /// Adapter `index` in the session's list.
    Adapter(usize),
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

/// A message from the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// The device chosen, with why when it is not WebGPU.
    Device {
        /// The device.
        kind: DeviceKind,
        /// Why WebGPU is not used, if it is not.
        note: Option<String>,
    },
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

#[cfg(test)]
mod tests {
    use super::*;
    use recalign_core::data::split::SplitName;

    /// One request of every kind but `Train` (whose settings have their own tests in the core),
    /// with the lane the page expects of it.
    fn requests() -> Vec<(Request, Lane)> {
        let titles = || vec!["Heat (1995)".to_string(), "Fargo (1996)".to_string()];
        vec![
            (
                Request::LoadUrl {
                    url: "models/m.gguf".into(),
                    device: DevicePreference::Auto,
                    adapter: Some("models/a.safetensors".into()),
                },
                Lane::Model,
            ),
            (
                Request::LoadBytes {
                    name: "m.gguf".into(),
                    bytes: vec![1, 2, 3],
                },
                Lane::Model,
            ),
            (
                Request::LoadStored {
                    name: "m.gguf".into(),
                },
                Lane::Model,
            ),
            (
                Request::Rank {
                    history: titles(),
                    candidates: titles(),
                    length_normalised: true,
                    compare_with: Some(ModelChoice::Adapter(1)),
                },
                Lane::Model,
            ),
            (
                Request::Recommend {
                    history: titles(),
                    top: 10,
                },
                Lane::Model,
            ),
            (
                Request::Generate {
                    history: titles(),
                    candidates: titles(),
                    max_new_tokens: 32,
                },
                Lane::Model,
            ),
            (Request::UseAdapter { index: None }, Lane::Adapters),
            (Request::ExportAdapter { index: 0 }, Lane::Adapters),
            (
                Request::ImportAdapter {
                    name: "a.safetensors".into(),
                    bytes: vec![0; 4],
                    config: None,
                },
                Lane::Adapters,
            ),
            (
                Request::LoadDataset(DataSource::Urls {
                    interactions: "data/x.inter".into(),
                    items: "data/x.item".into(),
                }),
                Lane::Data,
            ),
            (
                Request::TrainOracle {
                    epochs: 2,
                    learning_rate: 1e-3,
                },
                Lane::Data,
            ),
            (Request::TestUser { index: 3 }, Lane::Data),
            (Request::ResumeTraining, Lane::Training),
            (Request::CancelTraining, Lane::Training),
            (Request::PauseTraining(true), Lane::Training),
            (
                Request::LoadPairs {
                    name: "p.jsonl".into(),
                    bytes: b"{}".to_vec(),
                },
                Lane::Training,
            ),
            (
                Request::Evaluate {
                    split: SplitName::Validation,
                    users: 20,
                    generate: 0,
                },
                Lane::Evaluation,
            ),
            (Request::StorageStatus, Lane::Storage),
            (Request::ClearStorage, Lane::Storage),
            (
                Request::ImportRuns {
                    name: "runs.json".into(),
                    bytes: b"[]".to_vec(),
                },
                Lane::Storage,
            ),
            (Request::DiscardCheckpoint, Lane::Storage),
        ]
    }

    #[test]
    fn every_request_survives_the_wire_and_has_its_lane() {
        for (i, (request, lane)) in requests().into_iter().enumerate() {
            assert_eq!(request.lane(), lane, "{request:?}");
            let sent = Tagged {
                id: i as u64 + 1,
                body: request,
            };
            let wire = serde_json::to_string(&sent).expect("serialises");
            let back: Tagged<Request> = serde_json::from_str(&wire).expect("deserialises");
            assert_eq!(back, sent);
        }
    }

    #[test]
    fn only_model_requests_wait_on_or_hold_the_model_load() {
        for (request, lane) in requests() {
            let access = request.model_access();
            if access == ModelAccess::Load {
                assert_eq!(lane, Lane::Model, "{request:?}");
            }
            // Data, storage and the training controls never wait for a model download.
            if matches!(lane, Lane::Data | Lane::Storage)
                || matches!(request, Request::CancelTraining | Request::PauseTraining(_))
            {
                assert_eq!(access, ModelAccess::Independent, "{request:?}");
            }
        }
    }

    #[test]
    fn progress_and_failures_carry_their_lane_over_the_wire() {
        for lane in [
            Lane::Model,
            Lane::Adapters,
            Lane::Data,
            Lane::Training,
            Lane::Evaluation,
            Lane::Storage,
        ] {
            for response in [
                Response::Progress {
                    lane,
                    stage: "Downloading the model".into(),
                    done: 5,
                    total: Some(10),
                },
                Response::Failed {
                    lane,
                    during: "ranking".into(),
                    message: "no model is loaded yet".into(),
                    fault: None,
                },
                Response::Failed {
                    lane,
                    during: "training".into(),
                    message: "device: out of memory".into(),
                    fault: Some(DeviceFault::OutOfMemory),
                },
            ] {
                let wire = serde_json::to_string(&response).expect("serialises");
                let back: Response = serde_json::from_str(&wire).expect("deserialises");
                assert_eq!(back, response);
            }
        }
    }
}
