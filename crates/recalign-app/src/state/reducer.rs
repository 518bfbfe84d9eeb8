//! The reducer: the user's actions and the worker's responses applied to the page state, in
//! one place so the page's behaviour can be tested natively (`tests.rs`).

use std::rc::Rc;

use yew::Reducible;

use super::{AppState, DefaultAdapter, Progress, TrainingView};
use crate::examples::EXAMPLES;
use crate::protocol::{Lane, Response, Tagged, TrainStage};

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
            Response::Device(device) => s.model.device = Some(device),
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
                let device = s.model.device.as_ref().map(|d| d.kind);
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
