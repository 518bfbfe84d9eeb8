//! The page's state, split by concern (model, request, data, align, storage, evaluation), and
//! the questions panels ask of it; `reducer.rs` applies the worker's responses and the user's
//! edits to it.

use recalign_core::train::StepReport;
use recalign_core::{Generation, Ranking};

use crate::examples::EXAMPLES;
use crate::protocol::{
    Comparison, DatasetInfo, DeviceInUse, Evaluation, ModelInfo, OracleSummary, RunRecord,
    StorageInfo, TrainStage, TrainSummary, ValidationPoint,
};
use recalign_core::losses::LossKind;

mod reducer;
#[cfg(test)]
mod tests;

pub use reducer::Action;

/// The loss a preference run trains and its latest step's margins, marked on that curve.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchMarker {
    /// The loss.
    pub kind: LossKind,
    /// Every example's margin in the step.
    pub margins: Vec<f64>,
    /// Their mean.
    pub mean: f64,
}

/// A long step in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// What is happening.
    pub stage: String,
    /// Units done (bytes when downloading).
    pub done: u64,
    /// Units in all, when known.
    pub total: Option<u64>,
}

/// The current (or last) training run, as the Align card shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingView {
    /// What is trained ("SFT", "DPO", ...).
    pub label: String,
    /// The preference loss trained (`None` for SFT).
    pub loss: Option<LossKind>,
    /// Steps asked for.
    pub planned: usize,
    /// Preparation in progress (tokenising, reference log-probs).
    pub preparing: Option<Progress>,
    /// Every step's report so far.
    pub steps: Vec<StepReport>,
    /// Validation checks so far.
    pub validation: Vec<ValidationPoint>,
    /// Still running.
    pub running: bool,
    /// The user asked it to stop.
    pub cancelling: bool,
    /// Held between steps (the worker confirmed that no step is running).
    pub paused: bool,
    /// The user asked for a pause (or, false, for it to end) that the worker has not confirmed.
    pub pausing: Option<bool>,
    /// How it ended.
    pub summary: Option<TrainSummary>,
}

impl TrainingView {
    /// A run of `stage` starting now.
    pub fn new(stage: &TrainStage, planned: usize) -> Self {
        Self {
            label: stage.label(),
            loss: match stage {
                TrainStage::Sft => None,
                TrainStage::Preference { loss, .. } => Some(loss.kind),
            },
            planned,
            preparing: Some(Progress {
                stage: "Preparing".into(),
                done: 0,
                total: None,
            }),
            steps: Vec::new(),
            validation: Vec::new(),
            running: true,
            cancelling: false,
            paused: false,
            pausing: None,
            summary: None,
        }
    }

    /// A run continuing from a checkpoint, with its steps so far.
    fn resumed(run: RunRecord) -> Self {
        Self {
            preparing: None,
            steps: run.steps,
            validation: run.validation,
            ..Self::new(&run.request.stage, run.request.settings.steps)
        }
    }

    /// The run ended (finished, cancelled or failed): nothing runs, holds or prepares any more.
    fn end(&mut self) {
        self.running = false;
        self.cancelling = false;
        self.paused = false;
        self.pausing = None;
        self.preparing = None;
    }

    /// Seconds per step so far (from the reports' token rates) and the estimated time left.
    pub fn eta_seconds(&self) -> Option<(f64, f64)> {
        let secs: f64 = self
            .steps
            .iter()
            .map(|r| r.tokens as f64 / r.tokens_per_second.max(1e-9))
            .sum();
        let n = self.steps.len();
        (n > 0).then(|| {
            let per_step = secs / n as f64;
            (per_step, per_step * self.planned.saturating_sub(n) as f64)
        })
    }
}

/// The adapter the page loads with the model (the shipped default, or `?adapter=`).
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultAdapter {
    /// None was asked for (another model, or `?adapter=none`).
    NotAsked,
    /// Asked for with the model and not arrived yet: ranking waits, since a ranking made
    /// before it would be with the base model.
    Loading,
    /// Loaded as the session's adapter `index`.
    Loaded(usize),
    /// Not loaded, and why (the base model ranks).
    Failed(String),
}

/// The model concern: the device, the loaded model and the requests it is busy with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelState {
    /// The device in use, its threads, and why it is not WebGPU if it is not.
    pub device: Option<DeviceInUse>,
    /// The loaded model, kept when a later load fails.
    pub info: Option<ModelInfo>,
    /// Model loading in progress.
    pub progress: Option<Progress>,
    /// Model-lane requests in flight, by id: the page is busy while there is one.
    pub pending: Vec<u64>,
}

/// The request concern: the form (history, candidates) and what the model answered.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestState {
    /// History text, one title per line.
    pub history: String,
    /// Candidates text, one title per line.
    pub candidates: String,
    /// Rank by mean instead of summed log-probability.
    pub length_normalised: bool,
    /// The last ranking and its time in ms.
    pub ranking: Option<(Ranking, f64)>,
    /// The same candidates ranked by a second model, when asked for.
    pub comparison: Option<Comparison>,
    /// The ranked candidates' training popularity, when a dataset was loaded.
    pub candidate_popularity: Option<crate::protocol::CandidatePopularity>,
    /// The last catalogue search, its titles' popularity, and its time in ms.
    pub recommended: Option<(
        recalign_core::recommend::CatalogueRecommendations,
        crate::protocol::CandidatePopularity,
        f64,
    )>,
    /// The last generation, the candidate it names, and its time in ms.
    pub generation: Option<(Generation, Option<String>, f64)>,
}

impl Default for RequestState {
    /// The form starts with the first example filled in.
    fn default() -> Self {
        Self {
            history: EXAMPLES[0].history.join("\n"),
            candidates: EXAMPLES[0].candidates.join("\n"),
            length_normalised: false,
            ranking: None,
            comparison: None,
            candidate_popularity: None,
            recommended: None,
            generation: None,
        }
    }
}

impl ModelState {
    /// Whether a model-lane request (a load, ranking, recommendation, generation) is running.
    pub fn busy(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether a model is ready.
    pub fn ready(&self) -> bool {
        self.info.is_some() && self.progress.is_none()
    }
}

/// The data concern: the dataset, its oracle, and the preference file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataState {
    /// The loaded dataset's statistics.
    pub dataset: Option<DatasetInfo>,
    /// A dataset or oracle step in progress.
    pub progress: Option<Progress>,
    /// The last oracle training result.
    pub oracle: Option<OracleSummary>,
    /// The test user in the form (index, their actual next item).
    pub test_user: Option<(usize, String)>,
    /// The preference JSONL loaded for training: name, pairs, pairs with eps, most negatives.
    pub pairs_file: Option<(String, usize, usize, usize)>,
}

/// The training concern: the run, and the adapters it made.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignState {
    /// The current or last training run.
    pub training: Option<TrainingView>,
    /// Names of the adapters trained in this session, by index.
    pub adapters: Vec<String>,
    /// The adapter ranking and generation use (`None`: the base model).
    pub adapter_in_use: Option<usize>,
    /// The shipped default adapter (or `?adapter=`): asked for, loaded, or why not.
    pub default_adapter: DefaultAdapter,
    /// A one-line confirmation (e.g. an export), shown in the Align card.
    pub notice: Option<String>,
    /// RosePO's smoothing factor of every pair of the current run (one per rejected answer).
    pub pair_eps: Vec<f64>,
}

impl Default for AlignState {
    fn default() -> Self {
        Self {
            training: None,
            adapters: Vec::new(),
            adapter_in_use: None,
            default_adapter: DefaultAdapter::NotAsked,
            notice: None,
            pair_eps: Vec::new(),
        }
    }
}

impl DataState {
    /// Whether a dataset step is running.
    pub fn busy(&self) -> bool {
        self.progress.is_some()
    }
}

impl AlignState {
    /// Whether a training run is going.
    pub fn running(&self) -> bool {
        self.training.as_ref().is_some_and(|t| t.running)
    }

    /// Name of the model ranking uses: the base model or an adapter.
    pub fn model_in_use(&self) -> String {
        self.adapter_in_use
            .and_then(|i| self.adapters.get(i))
            .map_or_else(|| "the base model".into(), |a| format!("adapter {a}"))
    }
}

/// The storage concern: what this browser keeps for the page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageState {
    /// What this browser stores for the page.
    pub info: Option<StorageInfo>,
    /// The runs stored in this browser, oldest first.
    pub runs: Vec<RunRecord>,
    /// The last storage failure (the session goes on without storing that).
    pub warning: Option<String>,
}

/// The evaluation concern.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvaluationState {
    /// Every evaluation of this session, oldest first.
    pub evaluations: Vec<Evaluation>,
    /// An evaluation in progress (users done, users in all).
    pub evaluating: Option<(u64, u64)>,
}

/// Everything the page shows, by concern; a panel takes the parts it shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppState {
    /// Device, model, busy requests.
    pub model: ModelState,
    /// The request form and its answers.
    pub request: RequestState,
    /// Dataset, oracle, test user, preference file.
    pub data: DataState,
    /// Training and adapters.
    pub align: AlignState,
    /// Browser storage.
    pub storage: StorageState,
    /// Evaluations.
    pub evaluation: EvaluationState,
    /// The last error, shown until dismissed.
    pub error: Option<String>,
}

impl AppState {
    /// History titles, one per non-empty line.
    pub fn history_titles(&self) -> Vec<String> {
        lines(&self.request.history)
    }

    /// Candidate titles, one per non-empty line.
    pub fn candidate_titles(&self) -> Vec<String> {
        lines(&self.request.candidates)
    }

    /// Whether a model-lane request (a load, ranking, recommendation, generation) is running.
    pub fn busy(&self) -> bool {
        self.model.busy()
    }

    /// Whether a dataset step is running.
    pub fn data_busy(&self) -> bool {
        self.data.busy()
    }

    /// Whether a model is ready.
    pub fn ready(&self) -> bool {
        self.model.ready()
    }

    /// Records the name of the worker's adapter `index` (the worker numbers them).
    fn name_adapter(&mut self, index: usize, name: String) {
        if self.align.adapters.len() <= index {
            self.align.adapters.resize(index + 1, String::new());
        }
        self.align.adapters[index] = name;
    }

    /// Whether a training run is going.
    pub fn training(&self) -> bool {
        self.align.running()
    }

    /// The loss the running (or last) preference run trains and its latest step's margins.
    pub fn training_marker(&self) -> Option<BatchMarker> {
        let t = self.align.training.as_ref()?;
        let last = t.steps.last()?;
        let margins = if last.margins.is_empty() {
            vec![f64::from(last.margin)]
        } else {
            last.margins.iter().map(|&m| f64::from(m)).collect()
        };
        Some(BatchMarker {
            kind: t.loss?,
            margins,
            mean: f64::from(last.margin),
        })
    }

    /// Name of the model ranking uses: the base model or an adapter.
    pub fn model_in_use(&self) -> String {
        self.align.model_in_use()
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}
