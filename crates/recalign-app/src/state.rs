//! The page's state and the reducer that applies the worker's responses and the user's edits.

use std::rc::Rc;

use recalign_core::{Generation, Ranking};
use yew::Reducible;

use crate::protocol::{DatasetInfo, DeviceKind, ModelInfo, OracleSummary, Response};

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

/// A built-in example: a viewing history and its candidates (real MovieLens titles).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Example {
    /// Button label.
    pub label: &'static str,
    /// History, oldest first.
    pub history: &'static [&'static str],
    /// Candidates.
    pub candidates: &'static [&'static str],
}

/// Examples offered on the page.
pub const EXAMPLES: [Example; 2] = [
    Example {
        label: "Thrillers",
        history: &[
            "GoldenEye",
            "Twelve Monkeys",
            "Seven (Se7en)",
            "The Usual Suspects",
            "Heat",
            "Casino",
            "Fargo",
            "Reservoir Dogs",
            "Pulp Fiction",
            "The Silence of the Lambs",
        ],
        candidates: &[
            "Taxi Driver",
            "Babe",
            "Toy Story",
            "Sense and Sensibility",
            "Crimson Tide",
            "Muppet Treasure Island",
            "Apollo 13",
            "The Birdcage",
            "Braveheart",
            "Clueless",
            "Star Wars",
            "The Lion King",
            "Jumanji",
            "Pocahontas",
            "Die Hard",
            "Beauty and the Beast",
            "Aladdin",
            "Batman Forever",
            "Mrs. Doubtfire",
            "Dumbo",
        ],
    },
    Example {
        label: "Family",
        history: &[
            "Toy Story",
            "Aladdin",
            "The Lion King",
            "Beauty and the Beast",
            "Babe",
            "Muppet Treasure Island",
            "Jumanji",
            "Pocahontas",
            "The Santa Clause",
            "Mrs. Doubtfire",
        ],
        candidates: &[
            "Dumbo",
            "Heat",
            "Casino",
            "Fargo",
            "Taxi Driver",
            "Seven (Se7en)",
            "Crimson Tide",
            "Reservoir Dogs",
            "Die Hard",
            "GoldenEye",
            "The Usual Suspects",
            "Braveheart",
            "Apollo 13",
            "Star Wars",
            "Clueless",
            "Twelve Monkeys",
            "The Birdcage",
            "Sense and Sensibility",
            "Batman Forever",
            "Pulp Fiction",
        ],
    },
];

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct AppState {
    /// The device in use, and why it is not WebGPU if it is not.
    pub device: Option<(DeviceKind, Option<String>)>,
    /// The loaded model, kept when a later load fails.
    pub model: Option<ModelInfo>,
    /// Model loading in progress.
    pub progress: Option<Progress>,
    /// History text, one title per line.
    pub history: String,
    /// Candidates text, one title per line.
    pub candidates: String,
    /// Rank by mean instead of summed log-probability.
    pub length_normalised: bool,
    /// A request is running.
    pub busy: bool,
    /// The last ranking and its time in ms.
    pub ranking: Option<(Ranking, f64)>,
    /// The last generation, the candidate it names, and its time in ms.
    pub generation: Option<(Generation, Option<String>, f64)>,
    /// The last error, shown until dismissed.
    pub error: Option<String>,
    /// The loaded dataset's statistics.
    pub dataset: Option<DatasetInfo>,
    /// A dataset or oracle step in progress.
    pub data_progress: Option<Progress>,
    /// The last oracle training result.
    pub oracle: Option<OracleSummary>,
    /// The test user in the form (index, their actual next item).
    pub test_user: Option<(usize, String)>,
}

impl Default for AppState {
    fn default() -> Self {
        Self {
            device: None,
            model: None,
            progress: None,
            history: EXAMPLES[0].history.join("\n"),
            candidates: EXAMPLES[0].candidates.join("\n"),
            length_normalised: false,
            busy: false,
            ranking: None,
            generation: None,
            error: None,
            dataset: None,
            data_progress: None,
            oracle: None,
            test_user: None,
        }
    }
}

impl AppState {
    /// History titles, one per non-empty line.
    pub fn history_titles(&self) -> Vec<String> {
        lines(&self.history)
    }

    /// Candidate titles, one per non-empty line.
    pub fn candidate_titles(&self) -> Vec<String> {
        lines(&self.candidates)
    }

    /// Whether a dataset step is running.
    pub fn data_busy(&self) -> bool {
        self.data_progress.is_some()
    }

    /// Whether a model is ready.
    pub fn ready(&self) -> bool {
        self.model.is_some() && self.progress.is_none()
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
    Worker(Box<Response>),
    /// The history text changed.
    SetHistory(String),
    /// The candidates text changed.
    SetCandidates(String),
    /// Toggle length normalisation.
    SetLengthNormalised(bool),
    /// Fill in an example.
    UseExample(usize),
    /// A request was sent to the worker.
    Started,
    /// A local model file is being read.
    LoadingFile(String),
    /// A dataset or oracle request was sent.
    DataStarted(String),
    /// Dismiss the error.
    DismissError,
    /// Show an error raised on the page itself.
    Error(String),
}

impl Reducible for AppState {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut s = (*self).clone();
        match action {
            Action::Worker(r) => match *r {
                Response::Device { kind, note } => s.device = Some((kind, note)),
                Response::Progress { stage, done, total } => {
                    s.progress = Some(Progress { stage, done, total });
                }
                Response::Loaded(info) => {
                    s.model = Some(info);
                    s.progress = None;
                    s.busy = false;
                }
                Response::Ranked { ranking, ms } => {
                    s.ranking = Some((ranking, ms));
                    s.busy = false;
                }
                Response::Generated {
                    generation,
                    named,
                    ms,
                } => {
                    let title = named.and_then(|i| s.candidate_titles().get(i).cloned());
                    s.generation = Some((generation, title, ms));
                    s.busy = false;
                }
                Response::DataProgress { stage, done, total } => {
                    s.data_progress = Some(Progress { stage, done, total });
                }
                Response::DatasetLoaded(info) => {
                    s.dataset = Some(info);
                    s.data_progress = None;
                    s.oracle = None;
                    s.test_user = None;
                }
                Response::OracleTrained(summary) => {
                    s.oracle = Some(summary);
                    s.data_progress = None;
                }
                Response::TestUser {
                    index,
                    history,
                    candidates,
                    target,
                } => {
                    s.history = history.join("\n");
                    s.candidates = candidates.join("\n");
                    s.test_user = Some((index, target));
                    s.ranking = None;
                    s.generation = None;
                    s.data_progress = None;
                }
                Response::DataFailed { during, message } => {
                    s.error = Some(format!("Error while {during}: {message}"));
                    // The dataset and oracle shown before stay: the user loses nothing.
                    s.data_progress = None;
                }
                Response::Failed { during, message } => {
                    s.error = Some(format!("Error while {during}: {message}"));
                    s.busy = false;
                    // A failed load keeps a previously loaded model usable.
                    s.progress = None;
                }
            },
            Action::SetHistory(t) => s.history = t,
            Action::SetCandidates(t) => s.candidates = t,
            Action::SetLengthNormalised(b) => s.length_normalised = b,
            Action::UseExample(i) => {
                if let Some(e) = EXAMPLES.get(i) {
                    s.history = e.history.join("\n");
                    s.candidates = e.candidates.join("\n");
                    s.test_user = None;
                    s.ranking = None;
                    s.generation = None;
                }
            }
            Action::Started => {
                s.busy = true;
                s.error = None;
            }
            Action::LoadingFile(name) => {
                s.progress = Some(Progress {
                    stage: format!("Reading {name}"),
                    done: 0,
                    total: None,
                });
                s.error = None;
            }
            Action::DataStarted(stage) => {
                s.data_progress = Some(Progress {
                    stage,
                    done: 0,
                    total: None,
                });
                s.error = None;
            }
            Action::DismissError => s.error = None,
            Action::Error(e) => {
                s.error = Some(e);
                s.busy = false;
            }
        }
        Rc::new(s)
    }
}
