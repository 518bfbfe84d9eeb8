//! The page's function components. Each panel takes the parts of the state it shows as props;
//! the two callbacks every panel needs (a request to the worker, an action on the state) come
//! from the [`Page`] context that [`App`] provides.

mod align_form;
mod align_panel;
#[cfg(target_arch = "wasm32")]
mod app;
mod chart;
mod data_panel;
mod evaluate_panel;
mod files;
mod loss_lab;
mod model_panel;
mod ranking;
mod request_form;
mod runs;
mod training_view;
mod walkthrough;

pub use align_panel::AlignPanel;
#[cfg(target_arch = "wasm32")]
pub use app::App;
pub use data_panel::DataPanel;
pub use evaluate_panel::EvaluatePanel;
pub use loss_lab::LossLab;
pub use model_panel::ModelPanel;
pub use ranking::{CatalogueList, GenerationView, RankingTable};
pub use request_form::RequestForm;
pub use runs::RunsView;
pub use walkthrough::Walkthrough;

use yew::Callback;

use crate::protocol::Request;
use crate::state::Action;

/// What every panel may do, from [`App`]'s context: send a request to the worker, change the
/// page state. (Outside an `App`, e.g. a panel rendered alone, both do nothing.)
#[derive(Clone, PartialEq, Default)]
pub struct Page {
    /// Sends a request to the worker.
    pub send: Callback<Request>,
    /// Changes the page state.
    pub dispatch: Callback<Action>,
}

/// The page's callbacks ([`Page`]); a hook, so call it at the top of a component.
#[yew::hook]
pub fn use_page() -> Page {
    yew::use_context::<Page>().unwrap_or_default()
}
