//! The root component: owns the state, the worker bridge, and lays out the page.

use gloo_worker::Spawnable;
use yew::prelude::*;

use super::files;
use crate::components::{
    AlignPanel, CatalogueList, DataPanel, EvaluatePanel, GenerationView, LossLab, ModelPanel, Page,
    RankingTable, RequestForm, Walkthrough,
};
use crate::protocol::{
    DataSource, DeviceInUse, DeviceKind, DevicePreference, Lane, Request, Response, Tagged,
};
use crate::state::{Action, AppState};
use crate::worker::ModelWorker;
use crate::{
    DEFAULT_ADAPTER_URL, DEFAULT_INTERACTIONS_URL, DEFAULT_ITEMS_URL, DEFAULT_MODEL_URL,
    WORKER_LOADER,
};

/// Query parameters: `?model=` (a GGUF on this origin) and `?device=cpu`.
fn query(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get(name)
}

/// The worker loader with what it needs to pick a build: the device asked for, and how many
/// threads the multi-threaded build may use (`?threads=`, else every core when the page is
/// cross-origin isolated, else 1, which keeps the single-thread build).
fn loader_url() -> String {
    let global = js_sys::global();
    let get = |o: &wasm_bindgen::JsValue, k: &str| js_sys::Reflect::get(o, &k.into()).ok();
    let isolated = get(&global, "crossOriginIsolated").and_then(|v| v.as_bool()) == Some(true);
    let cores = get(&global, "navigator")
        .and_then(|n| get(&n, "hardwareConcurrency"))
        .and_then(|c| c.as_f64())
        .map_or(1, |c| c as usize);
    let threads = match query("threads").and_then(|t| t.parse::<usize>().ok()) {
        Some(t) => t.max(1),
        None if isolated => cores.max(1),
        None => 1,
    };
    let device = DevicePreference::from_query(query("device").as_deref()).as_query();
    format!("{WORKER_LOADER}?device={device}&threads={threads}")
}

/// The whole page.
#[function_component(App)]
pub fn app() -> Html {
    let state = use_reducer(AppState::default);
    let bridge = {
        let dispatcher = state.dispatcher();
        use_memo((), move |_| {
            ModelWorker::spawner()
                .callback(move |r: Tagged<Response>| {
                    if let Response::AdapterExported {
                        safetensors,
                        config,
                        ..
                    } = &r.body
                    {
                        let saved = files::save_file(
                            "adapter_model.safetensors",
                            safetensors,
                            "application/octet-stream",
                        )
                        .and_then(|()| {
                            files::save_file(
                                "adapter_config.json",
                                config.as_bytes(),
                                "application/json",
                            )
                        });
                        if let Err(e) = saved {
                            dispatcher.dispatch(Action::Error(format!(
                                "Could not save the adapter: {e}"
                            )));
                            return;
                        }
                    }
                    dispatcher.dispatch(Action::Worker(Box::new(r)))
                })
                .spawn_with_loader(&loader_url())
        })
    };
    // Every request gets the next number; the worker echoes it on its responses.
    let next_id = use_mut_ref(|| 0u64);
    let send = {
        let (bridge, dispatcher) = (bridge.clone(), state.dispatcher());
        Callback::from(move |body: Request| {
            let id = {
                let mut n = next_id.borrow_mut();
                *n += 1;
                *n
            };
            // Only the model's own requests mark the page busy; the other lanes show their
            // progress in their cards.
            if body.lane() == Lane::Model {
                dispatcher.dispatch(Action::Started(id));
            }
            bridge.send(Tagged { id, body });
        })
    };
    {
        let send = send.clone();
        let dispatcher_for_data = state.dispatcher();
        use_effect_with((), move |_| {
            let url = query("model").unwrap_or_else(|| DEFAULT_MODEL_URL.to_string());
            let device = DevicePreference::from_query(query("device").as_deref());
            // The default adapter was trained on the default model; another model gets one
            // only when `?adapter=` names it (`?adapter=none`: the base model).
            let adapter = match query("adapter").as_deref() {
                Some("none") => None,
                Some(a) => Some(a.to_string()),
                None => (url == DEFAULT_MODEL_URL).then(|| DEFAULT_ADAPTER_URL.to_string()),
            };
            if adapter.is_some() {
                dispatcher_for_data.dispatch(Action::DefaultAdapterAsked);
            }
            send.emit(Request::StorageStatus);
            send.emit(Request::LoadUrl {
                url,
                device,
                adapter,
            });
            dispatcher_for_data.dispatch(Action::DataStarted("Loading ML-100K".into()));
            send.emit(Request::LoadDataset(DataSource::Urls {
                interactions: DEFAULT_INTERACTIONS_URL.into(),
                items: DEFAULT_ITEMS_URL.into(),
            }));
        });
    }
    let dispatch = {
        let d = state.dispatcher();
        Callback::from(move |a: Action| d.dispatch(a))
    };

    let device = match &state.model.device {
        None => html! { <span class="badge" id="device">{ "Detecting device…" }</span> },
        Some(DeviceInUse {
            kind: DeviceKind::WebGpu,
            ..
        }) => {
            html! { <span class="badge ok" id="device">{ "WebGPU" }</span> }
        }
        Some(DeviceInUse {
            kind: DeviceKind::Cpu,
            threads,
            ..
        }) => {
            let label = match threads {
                1 => "CPU · 1 thread".to_string(),
                n => format!("CPU · {n} threads"),
            };
            html! { <span class="badge warn" id="device">{ label }</span> }
        }
    };
    let note = state.model.device.as_ref().and_then(|d| d.note.clone());

    html! {
        <ContextProvider<Page> context={ Page { send: send.clone(), dispatch: dispatch.clone() } }>
        <header>
            <h1>{ "recalign" }</h1>
            <p class="tagline">{ "A small real LLM recommends from your history, in your browser." }</p>
            { device }
        </header>
        if let Some(note) = note {
            <p class="notice" id="device-note">{ note }</p>
        }
        if let Some(err) = state.error.clone() {
            <div class="error" id="error" role="alert">
                <span>{ err }</span>
                <button onclick={ dispatch.reform(|_| Action::DismissError) }>{ "Dismiss" }</button>
            </div>
        }
        <main>
            <ModelPanel model={ state.model.clone() } storage={ state.storage.clone() } running={ state.training() } />
            <DataPanel data={ state.data.clone() } />
            <RequestForm state={ (*state).clone() } />
            if let Some((ranking, ms)) = state.request.ranking.clone() {
                <RankingTable { ranking } { ms } comparison={ state.request.comparison.clone() }
                    popularity={ state.request.candidate_popularity.clone() }
                    chosen={ state.data.test_user.as_ref().map(|(_, t)| t.clone()) } />
            }
            if let Some((found, popularity, ms)) = state.request.recommended.clone() {
                <CatalogueList { found } { popularity } { ms } />
            }
            if let Some((generation, named, ms)) = state.request.generation.clone() {
                <GenerationView { generation } { named } { ms } />
            }
            <Walkthrough state={ (*state).clone() } />
            <AlignPanel model={ state.model.clone() } data={ state.data.clone() } align={ state.align.clone() } storage={ state.storage.clone() } />
            <EvaluatePanel model={ state.model.clone() } align={ state.align.clone() } evaluation={ state.evaluation.clone() } has_dataset={ state.data.dataset.is_some() } />
            <LossLab batch={ state.training_marker() } eps={ state.align.pair_eps.clone() } />
        </main>
        <footer>
            { "Private by design: the model and your data stay on this device; the page loads nothing from other sites." }
        </footer>
        </ContextProvider<Page>>
    }
}
