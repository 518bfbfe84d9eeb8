//! The worker's one piece of state, a [`Session`], and the questions every concern asks of it
//! (which model ranks, which dataset is loaded, is a run going). Each request's module borrows
//! the session through [`Shared`]; none of them keeps state of its own.

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::Device;
use recalign_core::LanguageModel;
use recalign_core::data::pairs::PreferencePair;
use recalign_core::data::split::Splits;
use recalign_core::data::{Domain, InteractionLog};
use recalign_core::error::DeviceFault;
use recalign_core::oracle::sasrec::SasRecOracle;
use recalign_core::prompt::PromptFormat;
use recalign_core::train::{Adapter, with_adapter};

use crate::protocol::{DeviceKind, ModelChoice, TrainStage};
use crate::store::Store;

/// The session, shared by the request futures the worker spawns (one thread: a `RefCell`, never
/// borrowed across an `await`).
pub type Shared = Rc<RefCell<Session>>;

/// An error of a request: its message and, for a device failure, its kind (the page turns the
/// kind into advice). Core errors convert keeping their kind; the worker's own refusals are
/// plain messages.
#[derive(Debug)]
pub struct Problem {
    /// What went wrong.
    pub message: String,
    /// The kind, when the compute device failed.
    pub fault: Option<DeviceFault>,
}

impl From<recalign_core::Error> for Problem {
    fn from(e: recalign_core::Error) -> Self {
        Problem {
            fault: e.device_fault(),
            message: e.to_string(),
        }
    }
}

impl From<String> for Problem {
    fn from(message: String) -> Self {
        Problem {
            message,
            fault: None,
        }
    }
}

impl From<&str> for Problem {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<recalign_core::data::DataError> for Problem {
    fn from(e: recalign_core::data::DataError) -> Self {
        recalign_core::Error::from(e).into()
    }
}

/// What went wrong, as the page shows it: what was being done, and the problem.
pub type Failure = (String, Problem);

/// Everything the worker holds between requests.
#[derive(Default)]
pub struct Session {
    /// The device, chosen by the first model request.
    pub device: Option<Device>,
    /// Which kind it is, for error advice.
    pub device_kind: Option<DeviceKind>,
    /// The base model as loaded.
    pub model: Option<LanguageModel>,
    /// The loaded model's file name (a checkpoint resumes only on the same model).
    pub model_name: Option<String>,
    /// The loaded dataset and its split.
    pub data: Option<Rc<(InteractionLog, Splits)>>,
    /// The SASRec oracle trained on the loaded dataset (RosePO's smoothing).
    pub oracle: Option<SasRecOracle>,
    /// Pairs from a preference JSONL the user loaded (file name, pairs).
    pub imported_pairs: Option<(String, Vec<PreferencePair>)>,
    /// Adapters trained, imported or restored in this session, oldest first.
    pub adapters: Vec<TrainedAdapter>,
    /// The base model with the adapter in use, when one is (ranking and generation use it).
    pub in_use: Option<(usize, LanguageModel)>,
    /// Whether a training run is going, and what the user asked of it.
    pub training: TrainingState,
    /// The browser's storage, once opened (or why it cannot be).
    pub store: Option<Result<Rc<Store>, String>>,
    /// The stored adapters were added to the list (once per worker, after the first model).
    pub adapters_restored: bool,
}

/// An adapter trained (or imported) in this session.
pub struct TrainedAdapter {
    /// Its name in the page's lists.
    pub name: String,
    /// How it was trained; `None` when imported.
    pub stage: Option<TrainStage>,
    /// The factors (and projector, for a hybrid adapter).
    pub adapter: Adapter,
}

/// The training run's state. Pause and cancel are requests that arrive while the run's future
/// awaits between steps; the run reads them there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrainingState {
    /// No run is going.
    #[default]
    Idle,
    /// A run is going.
    Running {
        /// Held between steps until resumed.
        paused: bool,
        /// Stop after the step under way.
        cancel: bool,
    },
}

impl TrainingState {
    /// Whether a run is going.
    pub fn is_running(self) -> bool {
        matches!(self, Self::Running { .. })
    }

    /// Whether the run should stop.
    pub fn cancelled(self) -> bool {
        matches!(self, Self::Running { cancel: true, .. })
    }

    /// Whether the run should hold (and was not cancelled meanwhile).
    pub fn held(self) -> bool {
        matches!(
            self,
            Self::Running {
                paused: true,
                cancel: false
            }
        )
    }

    /// Asks the running run to stop; nothing when none runs.
    pub fn cancel(&mut self) {
        if let Self::Running { cancel, .. } = self {
            *cancel = true;
        }
    }

    /// Holds (or releases) the running run; nothing when none runs.
    pub fn pause(&mut self, hold: bool) {
        if let Self::Running { paused, .. } = self {
            *paused = hold;
        }
    }
}

impl Session {
    /// The base model, without adapters.
    pub fn base_model(&self) -> Result<LanguageModel, Problem> {
        self.model
            .clone()
            .ok_or_else(|| "no model is loaded yet".into())
    }

    /// The model ranking and generation use: the base model with the adapter in use, if any.
    pub fn model(&self) -> Result<LanguageModel, Problem> {
        match &self.in_use {
            Some((_, lm)) => Ok(lm.clone()),
            None => self.base_model(),
        }
    }

    /// The name of the model in use.
    pub fn model_in_use_name(&self) -> String {
        self.in_use
            .as_ref()
            .and_then(|(i, _)| self.adapters.get(*i))
            .map_or_else(|| "base model".to_string(), |a| a.name.clone())
    }

    /// The base model with adapter `index` of the session's list, with the adapter's name.
    pub fn adapter_model(&self, index: usize) -> Result<(String, LanguageModel), Problem> {
        let base = self.base_model()?;
        let a = self
            .adapters
            .get(index)
            .ok_or_else(|| format!("there is no adapter #{}", index + 1))?;
        let lm = with_adapter(&base, &a.adapter).map_err(|e| format!("{}: {e}", a.name))?;
        Ok((a.name.clone(), lm))
    }

    /// The model `choice` names, with its display name.
    pub fn chosen_model(&self, choice: ModelChoice) -> Result<(String, LanguageModel), Problem> {
        match choice {
            ModelChoice::Base => Ok(("base model".into(), self.base_model()?)),
            ModelChoice::Adapter(i) => self.adapter_model(i),
        }
    }

    /// The prompt format the model `choice` ranks with (`None`: the one in use): its adapter's,
    /// LLaRA's for the base model.
    pub fn prompt_format(&self, choice: Option<ModelChoice>) -> PromptFormat {
        let index = match choice {
            None => self.in_use.as_ref().map(|(i, _)| *i),
            Some(ModelChoice::Base) => None,
            Some(ModelChoice::Adapter(i)) => Some(i),
        };
        index
            .and_then(|i| self.adapters.get(i))
            .map_or(PromptFormat::Llara, |a| a.adapter.prompt)
    }

    /// Makes ranking and generation use adapter `index` (`None`: the base model).
    pub fn use_adapter(&mut self, index: Option<usize>) -> Result<(), Problem> {
        self.in_use = match index {
            None => None,
            Some(i) => Some((i, self.adapter_model(i)?.1)),
        };
        Ok(())
    }

    /// Lists `adapter` and, with `model` (the base model with it), puts it in use; its index.
    pub fn add_adapter(&mut self, adapter: TrainedAdapter, model: Option<LanguageModel>) -> usize {
        self.adapters.push(adapter);
        let index = self.adapters.len() - 1;
        if let Some(lm) = model {
            self.in_use = Some((index, lm));
        }
        index
    }

    /// The loaded dataset and its split.
    pub fn dataset(&self) -> Result<Rc<(InteractionLog, Splits)>, Problem> {
        self.data
            .clone()
            .ok_or_else(|| "no dataset is loaded yet".into())
    }

    /// The loaded dataset's item kind (the compact prompt's header); movies before any is.
    pub fn domain(&self) -> Domain {
        self.data.as_ref().map_or(Domain::Movies, |d| d.0.domain)
    }
}
