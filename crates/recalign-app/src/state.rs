//! The page's state and the reducer that applies the worker's responses and the user's edits.

use std::rc::Rc;

use recalign_core::train::StepReport;
use recalign_core::{Generation, Ranking};
use yew::Reducible;

use crate::examples::EXAMPLES;
use crate::protocol::{
    Comparison, DatasetInfo, DeviceKind, Evaluation, Lane, ModelInfo, OracleSummary, Response,
    RunRecord, StorageInfo, Tagged, TrainStage, TrainSummary, ValidationPoint,
};
use recalign_core::losses::LossKind;

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
    /// The device in use, and why it is not WebGPU if it is not.
    pub device: Option<(DeviceKind, Option<String>)>,
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

/// What can change the state.
#[derive(Debug, Clone)]
pub enum Action {
    /// A message from the worker.
    Worker(Box<Tagged<Response>>),
    /// The history text changed.
    SetHistory(String),
    /// The candidates text changed.
    SetCandidates(String),
    /// Toggle length normalisation.
    SetLengthNormalised(bool),
    /// Append a title to the history.
    AddToHistory(String),
    /// Fill in an example.
    UseExample(usize),
    /// A model-lane request (its id) was sent to the worker.
    Started(u64),
    /// The model load just sent also brings the default adapter.
    DefaultAdapterAsked,
    /// A local model file is being read.
    LoadingFile(String),
    /// A dataset or oracle request was sent.
    DataStarted(String),
    /// A training request was sent.
    TrainStarted {
        /// What is trained.
        stage: TrainStage,
        /// Steps asked for.
        planned: usize,
    },
    /// The user asked the running training to stop.
    CancelRequested,
    /// The user asked the running training to hold (true) or go on (false).
    PauseRequested(bool),
    /// An evaluation request was sent.
    EvalStarted,
    /// Dismiss the error.
    DismissError,
    /// Dismiss the storage warning.
    DismissStorageWarning,
    /// Show an error raised on the page itself.
    Error(String),
}

impl AppState {
    /// Takes in a worker response (the request it answers is already accounted for).
    fn apply(&mut self, response: Response) {
        let s = self;
        match response {
            Response::Device { kind, note } => s.model.device = Some((kind, note)),
            Response::Progress {
                lane,
                stage,
                done,
                total,
            } => {
                let progress = Progress { stage, done, total };
                match lane {
                    Lane::Model | Lane::Adapters | Lane::Storage => {
                        s.model.progress = Some(progress);
                    }
                    Lane::Data => s.data.progress = Some(progress),
                    Lane::Training => {
                        if let Some(t) = s.align.training.as_mut() {
                            t.preparing = Some(progress);
                        }
                    }
                    Lane::Evaluation => {
                        s.evaluation.evaluating =
                            Some((progress.done, progress.total.unwrap_or(0)));
                    }
                }
            }
            Response::Loaded(info) => {
                s.model.info = Some(info);
                s.model.progress = None;
            }
            Response::Storage(info) => s.storage.info = Some(*info),
            Response::PairEps(eps) => s.align.pair_eps = eps,
            Response::PairsLoaded {
                name,
                pairs,
                smoothed,
                negatives,
            } => s.data.pairs_file = Some((name, pairs, smoothed, negatives)),
            Response::Runs(runs) => s.storage.runs = runs,
            Response::Resuming(run) => {
                s.align.training = Some(TrainingView::resumed(*run));
                if let Some(st) = s.storage.info.as_mut() {
                    st.resume = None;
                }
                s.error = None;
            }
            Response::StorageFailed { during, message } => {
                s.storage.warning = Some(format!("Not stored while {during}: {message}"));
            }
            Response::Ranked {
                ranking,
                ms,
                comparison,
                popularity,
            } => {
                s.request.ranking = Some((ranking, ms));
                s.request.comparison = comparison.map(|c| *c);
                s.request.candidate_popularity = popularity;
            }
            Response::Recommended {
                found,
                popularity,
                ms,
            } => {
                s.request.recommended = Some((found, popularity, ms));
            }
            Response::Generated {
                generation,
                named,
                ms,
            } => {
                let title = named.and_then(|i| s.candidate_titles().get(i).cloned());
                s.request.generation = Some((generation, title, ms));
            }
            Response::DatasetLoaded(info) => {
                s.data.dataset = Some(info);
                s.data.progress = None;
                s.data.oracle = None;
                s.data.test_user = None;
            }
            Response::OracleTrained(summary) => {
                s.data.oracle = Some(summary);
                s.data.progress = None;
            }
            Response::TestUser {
                index,
                history,
                candidates,
                target,
            } => {
                s.request.history = history.join("\n");
                s.request.candidates = candidates.join("\n");
                s.data.test_user = Some((index, target));
                s.request.ranking = None;
                s.request.generation = None;
                s.data.progress = None;
            }
            Response::TrainStep(report) => {
                if let Some(t) = s.align.training.as_mut() {
                    t.preparing = None;
                    t.steps.push(report);
                }
            }
            Response::TrainValidation(point) => {
                if let Some(t) = s.align.training.as_mut() {
                    t.validation.push(point);
                }
            }
            Response::TrainWarning(message) => s.align.notice = Some(message),
            Response::TrainPaused(paused) => {
                if let Some(t) = s.align.training.as_mut() {
                    t.paused = paused;
                    t.pausing = None;
                }
            }
            Response::Trained(summary) => {
                s.name_adapter(summary.index, summary.name.clone());
                if let Some(t) = s.align.training.as_mut() {
                    t.end();
                    t.summary = Some(summary);
                }
            }
            Response::Evaluated(evaluation) => {
                s.evaluation.evaluations.push(*evaluation);
                s.evaluation.evaluating = None;
            }
            Response::AdapterAdded { index, name } => s.name_adapter(index, name),
            Response::DefaultAdapter(outcome) => {
                s.align.default_adapter = match outcome {
                    Ok(index) => DefaultAdapter::Loaded(index),
                    Err(why) => DefaultAdapter::Failed(why),
                };
            }
            Response::AdapterExported { name, .. } => {
                s.align.notice = Some(format!(
                    "Saved {name} as adapter_model.safetensors and adapter_config.json (PEFT's layout)."
                ));
            }
            Response::AdapterInUse { index } => {
                if s.align.adapter_in_use != index {
                    // A ranking made with another model would now mislead.
                    s.request.ranking = None;
                    s.request.generation = None;
                }
                s.align.adapter_in_use = index;
            }
            Response::Failed {
                lane,
                during,
                message,
                fault,
            } => {
                let device = s.model.device.as_ref().map(|(kind, _)| *kind);
                s.error = Some(match fault.and_then(|f| crate::advice::after(f, device)) {
                    Some(advice) => format!("Error while {during}: {message}. {advice}"),
                    None => format!("Error while {during}: {message}"),
                });
                match lane {
                    // The dataset and oracle shown before stay: the user loses nothing.
                    Lane::Data => s.data.progress = None,
                    Lane::Training => {
                        if let Some(t) = s.align.training.as_mut() {
                            t.end();
                        }
                    }
                    Lane::Evaluation => s.evaluation.evaluating = None,
                    Lane::Model | Lane::Adapters | Lane::Storage => {
                        // A failed load keeps a previously loaded model usable.
                        s.model.progress = None;
                        // A failed model load never gets to its adapter.
                        if s.align.default_adapter == DefaultAdapter::Loading {
                            s.align.default_adapter = DefaultAdapter::NotAsked;
                        }
                    }
                }
            }
        }
    }
}

impl Reducible for AppState {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut s = (*self).clone();
        match action {
            Action::Worker(tagged) => {
                let Tagged { id, body } = *tagged;
                if body.ends_model_request() {
                    s.model.pending.retain(|p| *p != id);
                }
                s.apply(body);
            }
            Action::SetHistory(t) => s.request.history = t,
            Action::SetCandidates(t) => s.request.candidates = t,
            Action::SetLengthNormalised(b) => s.request.length_normalised = b,
            Action::AddToHistory(title) => {
                if !s.request.history.is_empty() && !s.request.history.ends_with('\n') {
                    s.request.history.push('\n');
                }
                s.request.history.push_str(&title);
                s.data.test_user = None;
            }
            Action::UseExample(i) => {
                if let Some(e) = EXAMPLES.get(i) {
                    s.request.history = e.history.join("\n");
                    s.request.candidates = e.candidates.join("\n");
                    s.data.test_user = None;
                    s.request.ranking = None;
                    s.request.generation = None;
                }
            }
            Action::Started(id) => {
                s.model.pending.push(id);
                s.error = None;
            }
            Action::DefaultAdapterAsked => s.align.default_adapter = DefaultAdapter::Loading,
            Action::LoadingFile(name) => {
                s.model.progress = Some(Progress {
                    stage: format!("Reading {name}"),
                    done: 0,
                    total: None,
                });
                s.error = None;
            }
            Action::DataStarted(stage) => {
                s.data.progress = Some(Progress {
                    stage,
                    done: 0,
                    total: None,
                });
                s.error = None;
            }
            Action::TrainStarted { stage, planned } => {
                s.align.training = Some(TrainingView::new(&stage, planned));
                s.align.pair_eps = Vec::new();
                s.error = None;
            }
            Action::PauseRequested(pause) => {
                if let Some(t) = s.align.training.as_mut() {
                    t.pausing = Some(pause);
                }
            }
            Action::CancelRequested => {
                if let Some(t) = s.align.training.as_mut() {
                    t.cancelling = true;
                }
            }
            Action::EvalStarted => {
                s.evaluation.evaluating = Some((0, 0));
                s.error = None;
            }
            Action::DismissError => s.error = None,
            Action::DismissStorageWarning => s.storage.warning = None,
            Action::Error(e) => {
                s.error = Some(e);
                s.model.pending.clear();
            }
        }
        Rc::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(actions: impl IntoIterator<Item = Action>) -> AppState {
        let mut s = Rc::new(AppState::default());
        for a in actions {
            s = s.reduce(a);
        }
        (*s).clone()
    }

    fn worker(r: Response) -> Action {
        reply(0, r)
    }

    fn reply(id: u64, body: Response) -> Action {
        Action::Worker(Box::new(Tagged { id, body }))
    }

    fn progress(lane: Lane, done: u64) -> Action {
        worker(Response::Progress {
            lane,
            stage: "working".into(),
            done,
            total: Some(10),
        })
    }

    fn failed(lane: Lane) -> Action {
        worker(Response::Failed {
            lane,
            during: "doing it".into(),
            message: "it broke".into(),
            fault: None,
        })
    }

    #[test]
    fn a_device_failure_is_advised_by_its_kind_and_the_device() {
        let out_of_memory = |device| {
            after([
                worker(Response::Device {
                    kind: device,
                    note: None,
                }),
                worker(Response::Failed {
                    lane: Lane::Training,
                    during: "training".into(),
                    message: "device: out of memory".into(),
                    fault: Some(recalign_core::error::DeviceFault::OutOfMemory),
                }),
            ])
            .error
            .unwrap_or_default()
        };
        let gpu = out_of_memory(DeviceKind::WebGpu);
        assert!(
            gpu.starts_with("Error while training: device: out of memory. "),
            "{gpu}"
        );
        assert!(gpu.contains("?device=cpu"), "{gpu}");
        assert!(out_of_memory(DeviceKind::Cpu).contains("4 GiB"));
        // Any other failure is shown as it came.
        assert_eq!(
            after([failed(Lane::Model)]).error.as_deref(),
            Some("Error while doing it: it broke")
        );
    }

    #[test]
    fn progress_goes_to_the_card_of_its_lane() {
        let s = after([progress(Lane::Model, 1)]);
        assert_eq!(s.model.progress.as_ref().map(|p| p.done), Some(1));
        assert!(s.data.progress.is_none() && s.evaluation.evaluating.is_none());

        let s = after([progress(Lane::Data, 2)]);
        assert_eq!(s.data.progress.as_ref().map(|p| p.done), Some(2));
        assert!(s.model.progress.is_none());

        let s = after([progress(Lane::Evaluation, 3)]);
        assert_eq!(s.evaluation.evaluating, Some((3, 10)));
        assert!(s.model.progress.is_none() && s.data.progress.is_none());

        let s = after([
            Action::TrainStarted {
                stage: TrainStage::Sft,
                planned: 5,
            },
            progress(Lane::Training, 4),
        ]);
        let t = s.align.training.as_ref().expect("a run");
        assert_eq!(t.preparing.as_ref().map(|p| p.done), Some(4));
        assert!(s.model.progress.is_none());
    }

    #[test]
    fn a_failed_model_request_frees_the_page_and_gives_up_the_default_adapter() {
        let s = after([
            Action::DefaultAdapterAsked,
            Action::Started(0),
            progress(Lane::Model, 1),
            failed(Lane::Model),
        ]);
        assert!(!s.busy() && s.model.progress.is_none());
        assert_eq!(s.align.default_adapter, DefaultAdapter::NotAsked);
        assert_eq!(s.error.as_deref(), Some("Error while doing it: it broke"));
    }

    #[test]
    fn the_page_is_busy_until_its_last_model_request_ends() {
        let failed_rank = |id| {
            reply(
                id,
                Response::Failed {
                    lane: Lane::Model,
                    during: "ranking".into(),
                    message: "no model".into(),
                    fault: None,
                },
            )
        };
        // Two rankings in flight: the first one's end leaves the page busy for the second.
        let s = after([Action::Started(1), Action::Started(2), failed_rank(1)]);
        assert!(s.busy());
        assert_eq!(s.model.pending, vec![2]);
        let s = after([
            Action::Started(1),
            Action::Started(2),
            failed_rank(1),
            failed_rank(2),
        ]);
        assert!(!s.busy());
        // Progress and other lanes' results end nothing.
        let s = after([
            Action::Started(3),
            reply(3, progress_response(Lane::Model)),
            reply(3, Response::TrainPaused(false)),
        ]);
        assert!(s.busy());
    }

    fn progress_response(lane: Lane) -> Response {
        Response::Progress {
            lane,
            stage: "Downloading the model".into(),
            done: 1,
            total: None,
        }
    }

    #[test]
    fn a_failure_in_one_lane_leaves_the_others_going() {
        // A dataset failure while the model loads: the load's progress and busy state stay.
        let s = after([
            Action::Started(0),
            progress(Lane::Model, 1),
            Action::DataStarted("Loading ML-100K".into()),
            failed(Lane::Data),
        ]);
        assert!(s.busy() && s.model.progress.is_some());
        assert!(s.data.progress.is_none());
        assert!(s.error.is_some());

        // A training failure ends the run's view but not the model's request.
        let s = after([
            Action::Started(0),
            Action::TrainStarted {
                stage: TrainStage::Sft,
                planned: 5,
            },
            failed(Lane::Training),
        ]);
        assert!(s.busy());
        let t = s.align.training.as_ref().expect("the run stays shown");
        assert!(!t.running && t.preparing.is_none());

        // An evaluation failure clears only the evaluation's progress.
        let s = after([
            Action::TrainStarted {
                stage: TrainStage::Sft,
                planned: 5,
            },
            progress(Lane::Evaluation, 2),
            failed(Lane::Evaluation),
        ]);
        assert!(s.evaluation.evaluating.is_none());
        assert!(s.align.training.as_ref().is_some_and(|t| t.running));
    }
}
