//! The model card: loading progress, what is loaded, and picking a GGUF from disk.

use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::protocol::Request;
use crate::state::{Action, AppState};

/// Props of [`ModelPanel`].
#[derive(Properties, PartialEq)]
pub struct ModelPanelProps {
    /// Page state.
    pub state: AppState,
    /// Sends a request to the worker.
    pub send: Callback<Request>,
    /// Changes the page state.
    pub dispatch: Callback<Action>,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Shows loading progress or the loaded model, and lets the user load their own GGUF.
#[function_component(ModelPanel)]
pub fn model_panel(props: &ModelPanelProps) -> Html {
    let on_file = {
        let (send, dispatch) = (props.send.clone(), props.dispatch.clone());
        Callback::from(move |e: Event| {
            let Some(input) = e.target_dyn_into::<HtmlInputElement>() else {
                return;
            };
            let Some(file) = input.files().and_then(|f| f.get(0)) else {
                return;
            };
            let name = file.name();
            dispatch.emit(Action::LoadingFile(name.clone()));
            let (send, dispatch) = (send.clone(), dispatch.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match gloo_file::futures::read_as_bytes(&gloo_file::File::from(file)).await {
                    Ok(bytes) => send.emit(Request::LoadBytes { name, bytes }),
                    Err(e) => dispatch.emit(Action::Error(format!("Cannot read {name}: {e}"))),
                }
            });
        })
    };
    let status = match (&props.state.progress, &props.state.model) {
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
    html! {
        <section class="card">
            <h2>{ "Model" }</h2>
            { status }
            <label class="file">
                { "Load another GGUF from this device: " }
                <input type="file" id="model-file" accept=".gguf" onchange={ on_file } />
            </label>
        </section>
    }
}
