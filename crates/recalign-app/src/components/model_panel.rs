//! The model card: loading progress, what is loaded, picking or dropping a GGUF, and what this
//! browser stores (models, adapters, runs) with a button to clear it.

use yew::prelude::*;

use super::files;
use super::use_page;
use crate::protocol::Request;
use crate::state::{Action, ModelState, StorageState};

/// Props of [`ModelPanel`].
#[derive(Properties, PartialEq)]
pub struct ModelPanelProps {
    /// The model, its device and busy requests.
    pub model: ModelState,
    /// What this browser stores.
    pub storage: StorageState,
    /// Whether a training run is going (its controls are then disabled).
    pub running: bool,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Shows loading progress or the loaded model, and lets the user load their own GGUF.
#[function_component(ModelPanel)]
pub fn model_panel(props: &ModelPanelProps) -> Html {
    let page = use_page();
    // A picked or dropped file goes the same way.
    let load_file = {
        let (send, dispatch) = (page.send.clone(), page.dispatch.clone());
        Callback::from(move |file: web_sys::File| {
            dispatch.emit(Action::LoadingFile(file.name()));
            files::read_and_send(file, send.clone(), dispatch.clone(), |name, bytes| {
                Request::LoadBytes { name, bytes }
            });
        })
    };
    let on_file = files::on_pick(load_file.clone());
    let dragging = use_state(|| false);
    let on_drop = {
        let (load_file, dragging) = (load_file.clone(), dragging.clone());
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            dragging.set(false);
            if let Some(file) = files::dropped(&e).into_iter().next() {
                load_file.emit(file);
            }
        })
    };
    let on_drag_over = {
        let dragging = dragging.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            dragging.set(true);
        })
    };
    let on_drag_leave = {
        let dragging = dragging.clone();
        Callback::from(move |_: DragEvent| dragging.set(false))
    };
    let status = match (&props.model.progress, &props.model.info) {
        (Some(p), _) => {
            let (value, label) = match p.total {
                Some(t) if t > 0 => (
                    Some(p.done as f64 / t as f64),
                    format!("{} — {} of {}", p.stage, mib(p.done), mib(t)),
                ),
                _ if p.done > 0 => (None, format!("{} — {}", p.stage, mib(p.done))),
                _ => (None, format!("{}…", p.stage)),
            };
            html! {
                <div id="progress">
                    <label for="progress-bar">{ label }</label>
                    if let Some(v) = value {
                        <progress id="progress-bar" max="1" value={ v.to_string() } />
                    } else {
                        <progress id="progress-bar" />
                    }
                </div>
            }
        }
        (None, Some(m)) => html! {
            <p id="model-info">
                <strong>{ &m.name }</strong>
                { format!(" · {} · {} layers · width {} · {} tokens · context {} · ready in {:.1} s",
                    mib(m.bytes), m.layers, m.hidden, m.vocab, m.context, m.prepare_ms / 1e3) }
            </p>
        },
        (None, None) => html! { <p id="model-info">{ "No model loaded." }</p> },
    };
    let busy = props.model.busy() || props.model.progress.is_some() || props.running;
    html! {
        <section class={ classes!("card", "drop-target", dragging.then_some("dragging")) } id="model-card"
            ondrop={ on_drop } ondragover={ on_drag_over } ondragleave={ on_drag_leave }>
            <h2>{ "Model" }</h2>
            { status }
            <label class="file">
                { "Load another GGUF from this device (or drop it on this card): " }
                <input type="file" id="model-file" accept=".gguf" onchange={ on_file } disabled={ busy } />
            </label>
            <StorageView storage={ props.storage.clone() } model={ props.model.clone() } running={ props.running } />
        </section>
    }
}

/// What [`StorageView`] shows.
#[derive(Properties, PartialEq)]
struct StorageViewProps {
    /// What this browser stores.
    storage: StorageState,
    /// The loaded model (its file is marked in the list).
    model: ModelState,
    /// Whether a training run is going.
    running: bool,
}

/// What this browser keeps for the page, the storage estimate, and clearing it (two clicks).
#[function_component(StorageView)]
fn storage_view(props: &StorageViewProps) -> Html {
    let page = use_page();
    let confirming = use_state(|| false);
    let warning = props.storage.warning.clone().map(|w| html! {
        <div class="error" id="storage-warning" role="alert">
            <span>{ w }</span>
            <button onclick={ page.dispatch.reform(|_| Action::DismissStorageWarning) }>{ "Dismiss" }</button>
        </div>
    });
    let Some(info) = &props.storage.info else {
        return warning.unwrap_or_default();
    };
    if let Some(why) = &info.unavailable {
        return html! {
            <div id="storage">
                <p class="hint" id="storage-info">{ format!("Nothing can be kept in this browser: {why}. Models download again on each visit; export adapters to keep them.") }</p>
                { warning.unwrap_or_default() }
            </div>
        };
    }
    let busy = props.model.busy() || props.model.progress.is_some() || props.running;
    let usage = info.usage.map_or(String::new(), |(used, quota)| {
        format!(
            " · {} used of about {} this site may use",
            mib(used),
            mib(quota)
        )
    });
    let models = info.models.iter().map(|(name, bytes)| {
        let send = page.send.clone();
        let load_name = name.clone();
        let loaded = props.model.info.as_ref().is_some_and(|m| &m.name == name);
        html! {
            <li>
                { format!("{name} ({}) ", mib(*bytes)) }
                <button class="small" onclick={ Callback::from(move |_| send.emit(Request::LoadStored { name: load_name.clone() })) }
                    disabled={ busy || loaded }>{ if loaded { "loaded" } else { "Load" } }</button>
            </li>
        }
    });
    let ask = {
        let confirming = confirming.clone();
        Callback::from(move |_| confirming.set(true))
    };
    let keep = {
        let confirming = confirming.clone();
        Callback::from(move |_| confirming.set(false))
    };
    let clear = {
        let (confirming, send) = (confirming.clone(), page.send.clone());
        Callback::from(move |_| {
            confirming.set(false);
            send.emit(Request::ClearStorage);
        })
    };
    html! {
        <div id="storage">
            <p class="meta" id="storage-info">{ format!(
                "Kept in this browser (never uploaded): {} model{}, {} adapter{}, {} run{}{usage}.",
                info.models.len(), if info.models.len() == 1 { "" } else { "s" },
                info.adapters, if info.adapters == 1 { "" } else { "s" },
                info.runs, if info.runs == 1 { "" } else { "s" }) }</p>
            if !info.models.is_empty() {
                <ul class="stored-models" id="stored-models">{ for models }</ul>
            }
            if *confirming {
                <p class="actions">
                    { "Remove every stored model, adapter, run and checkpoint? What is loaded now stays until you leave. " }
                    <button id="storage-clear-confirm" class="danger" onclick={ clear }>{ "Yes, clear" }</button>
                    <button onclick={ keep }>{ "Keep" }</button>
                </p>
            } else {
                <button id="storage-clear" onclick={ ask } disabled={ busy }>{ "Clear stored data" }</button>
            }
            { warning.unwrap_or_default() }
        </div>
    }
}
