//! The page's function components.

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
