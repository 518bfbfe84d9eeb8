//! The data card: the dataset's split statistics, bringing your own interaction files, training
//! the SASRec preference oracle with live progress, and filling the form with a real test user.

use yew::prelude::*;

use super::files;
use crate::protocol::{DataSource, Request};
use crate::state::{Action, AppState};

/// Props of [`DataPanel`].
#[derive(Properties, PartialEq)]
pub struct DataPanelProps {
    /// Page state.
    pub state: AppState,
    /// Sends a request to the worker.
    pub send: Callback<Request>,
    /// Changes the page state.
    pub dispatch: Callback<Action>,
}

/// Epochs the page trains by default: about a minute on the CPU device for ML-100K (64 s in
/// headless Chromium on a 2-core machine); the higher learning rate makes up for the short run.
const PAGE_EPOCHS: usize = 4;
/// Adam's learning rate for the page's short run.
const PAGE_LEARNING_RATE: f64 = 5e-3;

/// Which of two picked files holds the items (the other holds the interactions).
fn is_items_file(name: &str) -> bool {
    let n = name.to_lowercase();
    n.ends_with(".item")
        || n == "u.item"
        || n.contains("items")
        || n.contains("id2name")
        || n.contains("movies")
}

/// Dataset statistics, your own files, the oracle and test users.
#[function_component(DataPanel)]
pub fn data_panel(props: &DataPanelProps) -> Html {
    let state = &props.state;
    let busy = state.data_busy();
    // Picked or dropped files go the same way.
    let load_files = {
        let (send, dispatch) = (props.send.clone(), props.dispatch.clone());
        Callback::from(move |files: Vec<web_sys::File>| {
            if files.is_empty() || files.len() > 2 {
                dispatch.emit(Action::Error(
                    "Pick the interactions file and its items file (two files), or one S-DPO/LLaRA file.".into(),
                ));
                return;
            }
            let (items, main): (Vec<_>, Vec<_>) =
                files.into_iter().partition(|f| is_items_file(&f.name()));
            let (main, items) = match (main.len(), items.len()) {
                (1, _) => (main.into_iter().next(), items.into_iter().next()),
                // Both names look like items files: take them in the order given.
                (0, 2) => {
                    let mut it = items.into_iter();
                    (it.next(), it.next())
                }
                (0, 1) => (None, None),
                _ => (None, None),
            };
            let Some(main) = main else {
                dispatch.emit(Action::Error(
                    "Could not tell the interactions file apart from the items file.".into(),
                ));
                return;
            };
            let name = main.name();
            dispatch.emit(Action::DataStarted(format!("Reading {name}")));
            let (send, dispatch) = (send.clone(), dispatch.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let (interactions, items) = match files::read_pair(main, items).await {
                    Ok(bytes) => bytes,
                    Err(e) => return dispatch.emit(Action::Error(e)),
                };
                send.emit(Request::LoadDataset(DataSource::Files {
                    name,
                    interactions,
                    items,
                }));
            });
        })
    };
    let on_files = load_files.reform(|e: Event| files::picked(&e));
    let on_drop = {
        let load_files = load_files.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            if !busy {
                load_files.emit(files::dropped(&e));
            }
        })
    };
    let on_drag_over = Callback::from(|e: DragEvent| e.prevent_default());
    let train = {
        let (send, dispatch) = (props.send.clone(), props.dispatch.clone());
        Callback::from(move |_| {
            dispatch.emit(Action::DataStarted("Preparing SASRec".into()));
            send.emit(Request::TrainOracle {
                epochs: PAGE_EPOCHS,
                learning_rate: PAGE_LEARNING_RATE,
            });
        })
    };
    let next_user = state.test_user.as_ref().map_or(0, |(i, _)| i + 1);
    let test_user = {
        let (send, dispatch) = (props.send.clone(), props.dispatch.clone());
        Callback::from(move |_| {
            dispatch.emit(Action::DataStarted("Picking a test user".into()));
            send.emit(Request::TestUser { index: next_user });
        })
    };

    let progress = state.data_progress.as_ref().map(|p| {
        let label = p.stage.clone();
        html! {
            <div id="data-progress">
                <label for="data-progress-bar">{ label }</label>
                if let Some(total) = p.total.filter(|&t| t > 0) {
                    <progress id="data-progress-bar" max={ total.to_string() } value={ p.done.to_string() } />
                } else {
                    <progress id="data-progress-bar" />
                }
            </div>
        }
    });
    let stats = state.dataset.as_ref().map(|d| {
        let s = &d.stats;
        let [tr, va, te] = s.users_per_split;
        let [etr, eva, ete] = s.examples;
        let skipped = d.report.duplicate_rows + d.report.unknown_items + d.report.untitled_items;
        html! {
            <p id="dataset-info">
                <strong>{ &d.name }</strong>
                { format!(" · {} users (train {tr}, validation {va}, test {te}) · {} items · examples {etr} / {eva} / {ete} · top 10% of items hold {:.0}% of training interactions (Gini {:.2})",
                    s.users, s.items, 100.0 * s.popularity.top_decile_share, s.popularity.gini) }
                if skipped > 0 || s.short_users > 0 {
                    <span class="muted">{ format!(" · skipped: {} duplicate rows, {} unknown items, {} untitled items, {} users with too few positives",
                        d.report.duplicate_rows, d.report.unknown_items, d.report.untitled_items, s.short_users) }</span>
                }
            </p>
        }
    });
    let oracle = state.oracle.as_ref().map(|o| {
        let row = |name: &str, m: &recalign_core::eval::RankMetrics| html! {
            <tr>
                <td>{ name.to_string() }</td>
                <td>{ format!("{:.3}", m.hr[0]) }</td>
                <td>{ format!("{:.3}", m.hr[2]) }</td>
                <td>{ format!("{:.3}", m.ndcg[2]) }</td>
                <td>{ format!("{:.3}", m.mrr) }</td>
            </tr>
        };
        html! {
            <div id="oracle-result">
                <p>{ format!("SASRec trained {} epochs in {:.0} s (loss {:.2} → {:.2}); {} validation users, 20 candidates each:",
                    o.epochs, o.seconds, o.losses.first().copied().unwrap_or(f64::NAN), o.losses.last().copied().unwrap_or(f64::NAN), o.users) }</p>
                <div class="scroll"><table class="metrics">
                    <thead><tr><th>{ "scorer" }</th><th>{ "HR@1" }</th><th>{ "HR@5" }</th><th>{ "NDCG@5" }</th><th>{ "MRR" }</th></tr></thead>
                    <tbody>
                        { row("SASRec", &o.sasrec) }
                        { row("popularity", &o.popularity) }
                        { row("random", &o.random) }
                    </tbody>
                </table></div>
            </div>
        }
    });
    let target = state.test_user.as_ref().map(|(i, t)| html! {
        <p id="test-user">{ format!("Test user #{}: the form holds their history and 20 candidates; they actually chose “{t}”.", i + 1) }</p>
    });
    html! {
        <section class="card drop-target" id="data-card" ondrop={ on_drop } ondragover={ on_drag_over }>
            <h2>{ "Data and preference oracle" }</h2>
            { progress.unwrap_or_default() }
            { stats.unwrap_or_else(|| html! { <p id="dataset-info">{ "No dataset loaded." }</p> }) }
            <label class="file">
                { "Use your own interactions + items files (CSV/TSV with user, item, timestamp[, rating] and id, title; or drop them on this card): " }
                <input type="file" id="data-files" multiple=true onchange={ on_files } disabled={ busy } />
            </label>
            <div class="actions">
                <button id="train-oracle" onclick={ train } disabled={ busy || state.dataset.is_none() }>
                    { format!("Train SASRec oracle ({PAGE_EPOCHS} epochs, CPU)") }
                </button>
                <button id="test-user-button" onclick={ test_user } disabled={ busy || state.dataset.is_none() }>
                    { if state.test_user.is_some() { "Next test user" } else { "Fill the form with a test user" } }
                </button>
            </div>
            { target.unwrap_or_default() }
            { oracle.unwrap_or_default() }
        </section>
    }
}
