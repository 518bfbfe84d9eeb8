//! The history and candidates the user ranks, with examples, a catalogue search that builds a
//! history, and a second model to compare rankings side by side.

use web_sys::{HtmlInputElement, HtmlTextAreaElement};
use yew::prelude::*;

use super::use_page;
use crate::examples::EXAMPLES;
use crate::protocol::{ModelChoice, Request};
use crate::state::{Action, AppState, DefaultAdapter};

/// Props of [`RequestForm`].
#[derive(Properties, PartialEq)]
pub struct RequestFormProps {
    /// Page state.
    pub state: AppState,
}

/// Two lists (history, candidates) and the Rank / Generate buttons.
#[function_component(RequestForm)]
pub fn request_form(props: &RequestFormProps) -> Html {
    let page = use_page();
    let s = &props.state;
    let text = |f: fn(String) -> Action| {
        page.dispatch.reform(move |e: InputEvent| {
            f(e.target_unchecked_into::<HtmlTextAreaElement>().value())
        })
    };
    let (history, candidates) = (s.history_titles(), s.candidate_titles());
    let problem = if history.is_empty() {
        Some("Add at least one title to the history.")
    } else if candidates.is_empty() {
        Some("Add at least one candidate.")
    } else {
        None
    };
    let disabled = !s.ready()
        || s.align.default_adapter == DefaultAdapter::Loading
        || s.busy()
        || s.training()
        || problem.is_some();
    let compare = use_state(|| None::<ModelChoice>);
    // A compared adapter that no longer exists (a new session) falls back to none.
    let compare_with = (*compare).filter(|c| match c {
        ModelChoice::Base => s.align.adapter_in_use.is_some(),
        ModelChoice::Adapter(i) => {
            *i < s.align.adapters.len() && s.align.adapter_in_use != Some(*i)
        }
    });
    let rank = {
        let (send, h, c, ln) = (
            page.send.clone(),
            history.clone(),
            candidates.clone(),
            s.request.length_normalised,
        );
        Callback::from(move |_| {
            send.emit(Request::Rank {
                history: h.clone(),
                candidates: c.clone(),
                length_normalised: ln,
                compare_with,
            })
        })
    };
    let on_compare = {
        let compare = compare.clone();
        Callback::from(move |e: Event| {
            let v = e
                .target_unchecked_into::<web_sys::HtmlSelectElement>()
                .value();
            compare.set(match v.as_str() {
                "base" => Some(ModelChoice::Base),
                _ => v.parse().ok().map(ModelChoice::Adapter),
            });
        })
    };
    let search = use_state(String::new);
    let on_search = {
        let search = search.clone();
        Callback::from(move |e: InputEvent| {
            search.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let query = search.trim().to_lowercase();
    let hits: Vec<String> = match &s.data.dataset {
        Some(d) if query.chars().count() >= 2 => d
            .titles
            .iter()
            .filter(|t| t.to_lowercase().contains(&query))
            .take(8)
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    let recommend = {
        let (send, h) = (page.send.clone(), history.clone());
        Callback::from(move |_| {
            send.emit(Request::Recommend {
                history: h.clone(),
                top: 10,
            })
        })
    };
    // Needs a history and the dataset's catalogue, not candidates.
    let recommend_disabled = !s.ready()
        || s.align.default_adapter == DefaultAdapter::Loading
        || s.busy()
        || s.training()
        || history.is_empty()
        || s.data.dataset.is_none();
    let generate = {
        let (send, h, c) = (page.send.clone(), history, candidates.clone());
        Callback::from(move |_| {
            send.emit(Request::Generate {
                history: h.clone(),
                candidates: c.clone(),
                max_new_tokens: 24,
            })
        })
    };
    html! {
        <section class="card">
            <h2>{ "Recommend" }<span class="muted" id="model-in-use">{ format!(" · with {}", s.model_in_use()) }</span></h2>
            { default_adapter(s, &page.send) }
            <div class="examples">
                { "Examples: " }
                { for EXAMPLES.iter().enumerate().map(|(i, e)| html! {
                    <button class="link" onclick={ page.dispatch.reform(move |_| Action::UseExample(i)) }>{ e.label }</button>
                }) }
            </div>
            <div class="lists">
                <label>{ "History, oldest first (one title per line)" }
                    <textarea id="history" rows="10" value={ s.request.history.clone() } oninput={ text(Action::SetHistory) } />
                </label>
                <label>{ format!("Candidates ({})", candidates.len()) }
                    <textarea id="candidates" rows="10" value={ s.request.candidates.clone() } oninput={ text(Action::SetCandidates) } />
                </label>
            </div>
            <div class="catalogue-search">
                <label class="field">{ "Build a history from the catalogue" }
                    <input type="search" id="catalogue-search" placeholder={ if s.data.dataset.is_some() { "type a title, e.g. star wars" } else { "the catalogue loads with the dataset" } }
                        value={ (*search).clone() } oninput={ on_search } disabled={ s.data.dataset.is_none() } />
                </label>
                if !hits.is_empty() {
                    <ul class="hits" id="catalogue-hits">
                        { for hits.into_iter().map(|t| {
                            let label = format!("+ {t}");
                            html! {
                                <li><button class="link catalogue-hit" onclick={ page.dispatch.reform(move |_| Action::AddToHistory(t.clone())) }>{ label }</button></li>
                            }
                        }) }
                    </ul>
                } else if query.chars().count() >= 2 && s.data.dataset.is_some() {
                    <p class="hint">{ "No title in the catalogue contains that." }</p>
                }
            </div>
            <div class="actions">
                <label class="field" id="compare-choice">{ "Compare with" }
                    <select id="compare-select" onchange={ on_compare }>
                        <option value="none" selected={ compare_with.is_none() }>{ "nothing" }</option>
                        if s.align.adapter_in_use.is_some() {
                            <option value="base" selected={ compare_with == Some(ModelChoice::Base) }>{ "base model" }</option>
                        }
                        { for s.align.adapters.iter().enumerate().filter(|(i, _)| s.align.adapter_in_use != Some(*i)).map(|(i, name)| html! {
                            <option value={ i.to_string() } selected={ compare_with == Some(ModelChoice::Adapter(i)) }>{ name.clone() }</option>
                        }) }
                    </select>
                </label>
                <label class="check">
                    <input type="checkbox" id="length-normalised" checked={ s.request.length_normalised }
                        onchange={ page.dispatch.reform(|e: Event| Action::SetLengthNormalised(
                            e.target_unchecked_into::<HtmlInputElement>().checked())) } />
                    { " Length-normalised scores (mean log-probability per token)" }
                </label>
                <button id="rank" class="primary" onclick={ rank } { disabled }>{ if s.busy() { "Working…" } else { "Rank candidates" } }</button>
                <button id="generate" onclick={ generate } { disabled }>{ "Generate an answer" }</button>
                <button id="recommend-catalogue" onclick={ recommend } disabled={ recommend_disabled }
                    title="the 10 likeliest next titles of the whole catalogue (the history's own left out), no candidates needed">
                    { match &s.data.dataset {
                        Some(d) => format!("Top 10 of all {} titles", d.titles.len()),
                        None => "Top 10 of the catalogue (load a dataset)".to_string(),
                    } }</button>
            </div>
            if let Some(p) = problem {
                <p class="hint">{ p }</p>
            } else if s.training() {
                <p class="hint">{ "Ranking waits while a training run uses the model." }</p>
            }
        </section>
    }
}

/// What the shipped default adapter is, with the switch to the base model and back.
fn default_adapter(s: &AppState, send: &Callback<Request>) -> Html {
    match &s.align.default_adapter {
        DefaultAdapter::Loading if s.ready() => html! {
            <p class="hint" id="default-adapter">{ "Loading the default adapter…" }</p>
        },
        DefaultAdapter::NotAsked | DefaultAdapter::Loading => html! {},
        DefaultAdapter::Failed(why) => {
            html! { <p class="hint" id="default-adapter">{ why.clone() }</p> }
        }
        DefaultAdapter::Loaded(index) => {
            let index = *index;
            if s.align.adapter_in_use == Some(index) {
                html! {
                    <p class="hint" id="default-adapter">
                        { "Ranking with the default adapter: LoRA with LLaRA's item tokens (each \
                           MovieLens 100K title also read as its SASRec vector), trained on a CPU in \
                           20 minutes by the recipe in docs/alignment.md (models/default-adapter.md \
                           has its figures). Titles outside MovieLens 100K are read as text alone. " }
                        <button class="link" id="use-base" onclick={ send.reform(|_| Request::UseAdapter { index: None }) }>{ "Use the base model" }</button>
                    </p>
                }
            } else {
                html! {
                    <p class="hint" id="default-adapter">
                        <button class="link" id="use-default" onclick={ send.reform(move |_| Request::UseAdapter { index: Some(index) }) }>{ "Use the default adapter" }</button>
                    </p>
                }
            }
        }
    }
}
