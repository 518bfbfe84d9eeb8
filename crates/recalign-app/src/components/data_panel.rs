//! The data card: the dataset's split statistics, bringing your own interaction files, training
//! the SASRec preference oracle with live progress, and filling the form with a real test user.

use yew::prelude::*;

use recalign_core::data::Domain;

use super::files;
use super::use_page;
use crate::protocol::{DataSource, Request};
use crate::state::{Action, DataState};

/// Props of [`DataPanel`].
#[derive(Properties, PartialEq)]
pub struct DataPanelProps {
    /// The dataset, oracle, test user and preference file.
    pub data: DataState,
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

/// Which picked file is which, by name: (main, items, held-out), indices into `names`. The
/// items file is the one named like one (`.item`, `id2name`...); a held-out file is named like
/// LLaRA's or S-DPO's validation rows (`val`, `test`) or is S-DPO's `.json` next to LLaRA's
/// `.jsonl` rows; the main file is the rest.
fn roles(names: &[String]) -> Result<(usize, Option<usize>, Option<usize>), String> {
    if names.is_empty() || names.len() > 3 {
        return Err(
            "Pick the interactions file and its items file, or LLaRA's training rows \
             with id2name and (optionally) the held-out rows, or one S-DPO file."
                .into(),
        );
    }
    let lower: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
    let items: Vec<usize> = (0..names.len())
        .filter(|&i| is_items_file(&lower[i]))
        .collect();
    let rows = |i: usize| lower[i].ends_with(".jsonl") || lower[i].ends_with(".json");
    let held: Vec<usize> = (0..names.len())
        .filter(|i| !items.contains(i) && rows(*i))
        .filter(|&i| {
            lower[i].contains("val")
                || lower[i].contains("test")
                || (lower[i].ends_with(".json") && lower.iter().any(|n| n.ends_with(".jsonl")))
        })
        .collect();
    let main: Vec<usize> = (0..names.len())
        .filter(|i| !items.contains(i) && !held.contains(i))
        .collect();
    match (main.as_slice(), items.as_slice(), held.as_slice()) {
        ([m], [], []) => Ok((*m, None, None)),
        ([m], [i], []) => Ok((*m, Some(*i), None)),
        ([m], [i], [h]) => Ok((*m, Some(*i), Some(*h))),
        ([m], [], [h]) => Ok((*m, None, Some(*h))),
        // One file of rows named like held-out rows is the whole dataset (an S-DPO file).
        ([], [], [h]) => Ok((*h, None, None)),
        ([], [i], [h]) => Ok((*h, Some(*i), None)),
        // Both names look like items files: take them in the order given.
        ([], [a, b], []) => Ok((*a, Some(*b), None)),
        _ => Err(format!(
            "Could not tell which of {} is the interactions (or training rows) file, the items \
             file and the held-out rows.",
            names.join(", ")
        )),
    }
}

/// Dataset statistics, your own files, the oracle and test users.
#[function_component(DataPanel)]
pub fn data_panel(props: &DataPanelProps) -> Html {
    let page = use_page();
    let busy = props.data.busy();
    let domain = use_state(|| Domain::Movies);
    // Picked or dropped files go the same way.
    let load_files = {
        let (send, dispatch, domain) = (page.send.clone(), page.dispatch.clone(), *domain);
        Callback::from(move |files: Vec<web_sys::File>| {
            let names: Vec<String> = files.iter().map(|f| f.name()).collect();
            let roles = match roles(&names) {
                Ok(r) => r,
                Err(e) => return dispatch.emit(Action::Error(e)),
            };
            let mut files: Vec<Option<web_sys::File>> = files.into_iter().map(Some).collect();
            let mut take = |i: Option<usize>| i.and_then(|i| files[i].take());
            let (Some(main), items, held) = (take(Some(roles.0)), take(roles.1), take(roles.2))
            else {
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
                let held_out = match held {
                    Some(f) => {
                        let n = f.name();
                        match files::read_pair(f, None).await {
                            Ok((bytes, _)) => Some((n, bytes)),
                            Err(e) => return dispatch.emit(Action::Error(e)),
                        }
                    }
                    None => None,
                };
                send.emit(Request::LoadDataset(DataSource::Files {
                    name,
                    interactions,
                    items,
                    held_out,
                    domain,
                }));
            });
        })
    };
    let on_domain = {
        let domain = domain.clone();
        Callback::from(move |e: Event| {
            use wasm_bindgen::JsCast;
            if let Some(select) = e
                .target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlSelectElement>().ok())
            {
                domain.set(match select.value().as_str() {
                    "music" => Domain::Music,
                    "games" => Domain::Games,
                    "books" => Domain::Books,
                    _ => Domain::Movies,
                });
            }
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
        let (send, dispatch) = (page.send.clone(), page.dispatch.clone());
        Callback::from(move |_| {
            dispatch.emit(Action::DataStarted("Preparing SASRec".into()));
            send.emit(Request::TrainOracle {
                epochs: PAGE_EPOCHS,
                learning_rate: PAGE_LEARNING_RATE,
            });
        })
    };
    let next_user = props.data.test_user.as_ref().map_or(0, |(i, _)| i + 1);
    let test_user = {
        let (send, dispatch) = (page.send.clone(), page.dispatch.clone());
        Callback::from(move |_| {
            dispatch.emit(Action::DataStarted("Picking a test user".into()));
            send.emit(Request::TestUser { index: next_user });
        })
    };

    let progress = props.data.progress.as_ref().map(|p| {
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
    let stats = props.data.dataset.as_ref().map(|d| {
        let s = &d.stats;
        let [tr, va, te] = s.users_per_split;
        let [etr, eva, ete] = s.examples;
        let skipped = d.report.duplicate_rows + d.report.unknown_items + d.report.untitled_items;
        html! {
            <p id="dataset-info">
                <strong>{ &d.name }</strong>
                { format!(" · {} users (train {tr}, validation {va}, test {te}) · {} items · examples {etr} / {eva} / {ete} · top 10% of items hold {:.0}% of training interactions (Gini {:.2})",
                    s.users, s.items, 100.0 * s.popularity.top_decile_share, s.popularity.gini) }
                if d.report.empty_histories > 0 {
                    <span class="muted">{ format!(" · pre-windowed rows: {} cold-start rows without history skipped", d.report.empty_histories) }</span>
                }
                if skipped > 0 || s.short_users > 0 {
                    <span class="muted">{ format!(" · skipped: {} duplicate rows, {} unknown items, {} untitled items, {} users with too few positives",
                        d.report.duplicate_rows, d.report.unknown_items, d.report.untitled_items, s.short_users) }</span>
                }
            </p>
        }
    });
    let oracle = props.data.oracle.as_ref().map(|o| {
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
    let target = props.data.test_user.as_ref().map(|(i, t)| html! {
        <p id="test-user">{ format!("Test user #{}: the form holds their history and 20 candidates; they actually chose “{t}”.", i + 1) }</p>
    });
    html! {
        <section class="card drop-target" id="data-card" ondrop={ on_drop } ondragover={ on_drag_over }>
            <h2>{ "Data and preference oracle" }</h2>
            { progress.unwrap_or_default() }
            { stats.unwrap_or_else(|| html! { <p id="dataset-info">{ "No dataset loaded." }</p> }) }
            <label class="file">
                { "Use your own interactions + items files (CSV/TSV with user, item, timestamp[, rating] and id, title), or the papers' files as they are (LLaRA's training rows + id2name + validation rows, or S-DPO's .json); or drop them on this card: " }
                <input type="file" id="data-files" multiple=true onchange={ on_files } disabled={ busy } />
            </label>
            <label>
                { "The items are " }
                <select id="data-domain" onchange={ on_domain } disabled={ busy }>
                    <option value="movies" selected={ *domain == Domain::Movies }>{ "movies" }</option>
                    <option value="music" selected={ *domain == Domain::Music }>{ "music" }</option>
                    <option value="games" selected={ *domain == Domain::Games }>{ "games" }</option>
                    <option value="books" selected={ *domain == Domain::Books }>{ "books" }</option>
                </select>
                { " (the prompts' wording)" }
            </label>
            <div class="actions">
                <button id="train-oracle" onclick={ train } disabled={ busy || props.data.dataset.is_none() }>
                    { format!("Train SASRec oracle ({PAGE_EPOCHS} epochs, CPU)") }
                </button>
                <button id="test-user-button" onclick={ test_user } disabled={ busy || props.data.dataset.is_none() }>
                    { if props.data.test_user.is_some() { "Next test user" } else { "Fill the form with a test user" } }
                </button>
            </div>
            { target.unwrap_or_default() }
            { oracle.unwrap_or_default() }
        </section>
    }
}
