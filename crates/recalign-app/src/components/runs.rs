//! Training runs kept in this browser: the run a reload interrupted (resume or discard), every
//! finished run with its last figures, and exporting or importing them as JSON.

use yew::prelude::*;

use super::files;
use super::use_page;
use crate::protocol::{Request, RunRecord};
use crate::state::{Action, ModelState, StorageState};

/// Props of [`RunsView`].
#[derive(Properties, PartialEq)]
pub struct RunsViewProps {
    /// The model, its device and busy requests.
    pub model: ModelState,
    /// What this browser stores.
    pub storage: StorageState,
    /// Whether a training run is going (its controls are then disabled).
    pub running: bool,
}

fn last_figures(run: &RunRecord) -> String {
    match run.steps.last() {
        Some(r) if run.label == "SFT" => format!("loss {:.4}", r.loss),
        Some(r) => format!("loss {:.4} · margin {:.3}", r.loss, r.margin),
        None => "no steps".into(),
    }
}

/// The interrupted run's offer and the stored runs.
#[function_component(RunsView)]
pub fn runs_view(props: &RunsViewProps) -> Html {
    let page = use_page();
    let running = props.running;
    let resume = {
        let (send, dispatch) = (page.send.clone(), page.dispatch.clone());
        Callback::from(move |_| {
            dispatch.emit(Action::DismissError);
            send.emit(Request::ResumeTraining);
        })
    };
    let discard = page.send.reform(|_| Request::DiscardCheckpoint);
    let export = {
        let (runs, dispatch) = (props.storage.runs.clone(), page.dispatch.clone());
        Callback::from(move |_| {
            let saved = serde_json::to_vec_pretty(&runs)
                .map_err(|e| e.to_string())
                .and_then(|json| files::save_file("recalign-runs.json", &json, "application/json"));
            if let Err(e) = saved {
                dispatch.emit(Action::Error(format!("Could not save the runs: {e}")));
            }
        })
    };
    let import = {
        let (send, dispatch) = (page.send.clone(), page.dispatch.clone());
        files::on_pick(Callback::from(move |file| {
            files::read_and_send(file, send.clone(), dispatch.clone(), |name, bytes| {
                Request::ImportRuns { name, bytes }
            });
        }))
    };
    let offer = props.storage.info.as_ref().and_then(|s| s.resume.as_ref());
    let loaded = props.model.info.as_ref().map(|m| m.name.as_str());
    let rows = props.storage.runs.iter().rev().map(|run| {
        let end = match &run.summary {
            Some(s) if s.cancelled => format!("cancelled at {} of {}", s.steps, s.planned),
            Some(s) => format!("{} steps in {:.0} s", s.steps, s.seconds),
            None => "interrupted".into(),
        };
        html! {
            <tr>
                <td>{ run.summary.as_ref().map_or_else(|| run.label.clone(), |s| s.name.clone()) }</td>
                <td>{ &run.model }</td>
                <td>{ end }</td>
                <td>{ last_figures(run) }</td>
            </tr>
        }
    });
    html! {
        <div id="runs">
            if let Some(o) = offer {
                <div class="notice" id="resume-offer">
                    <span>{ format!(
                        "A {} run on {} was interrupted; its checkpoint holds step {} of {}.",
                        o.run.label, o.run.model, o.step, o.run.request.settings.steps) }</span>
                    if loaded != Some(o.run.model.as_str()) {
                        <span>{ format!(" Load {} to resume it.", o.run.model) }</span>
                    }
                    <button id="resume-run" class="primary" onclick={ resume }
                        disabled={ running || !props.model.ready() || loaded != Some(o.run.model.as_str()) }>
                        { format!("Resume from step {}", o.step) }
                    </button>
                    <button id="discard-run" onclick={ discard } disabled={ running }>{ "Discard" }</button>
                </div>
            }
            <h3>{ format!("Runs kept in this browser ({})", props.storage.runs.len()) }</h3>
            if !props.storage.runs.is_empty() {
                <table class="metrics" id="runs-table">
                    <thead><tr><th>{ "run" }</th><th>{ "model" }</th><th>{ "how it ended" }</th><th>{ "last step" }</th></tr></thead>
                    <tbody>{ for rows }</tbody>
                </table>
            }
            <div class="actions">
                <button id="runs-export" onclick={ export } disabled={ props.storage.runs.is_empty() }>{ "Export runs (JSON)" }</button>
                <label class="file">{ "Import runs: " }
                    <input type="file" id="runs-import" accept=".json,application/json" onchange={ import } />
                </label>
            </div>
        </div>
    }
}
