//! The history and candidates the user ranks, with examples and options.

use web_sys::{HtmlInputElement, HtmlTextAreaElement};
use yew::prelude::*;

use crate::protocol::Request;
use crate::state::{Action, AppState, EXAMPLES};

/// Props of [`RequestForm`].
#[derive(Properties, PartialEq)]
pub struct RequestFormProps {
    /// Page state.
    pub state: AppState,
    /// Sends a request to the worker.
    pub send: Callback<Request>,
    /// Changes the page state.
    pub dispatch: Callback<Action>,
}

/// Two lists (history, candidates) and the Rank / Generate buttons.
#[function_component(RequestForm)]
pub fn request_form(props: &RequestFormProps) -> Html {
    let s = &props.state;
    let text = |f: fn(String) -> Action| {
        props.dispatch.reform(move |e: InputEvent| {
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
    let disabled = !s.ready() || s.busy || s.training() || problem.is_some();
    let rank = {
        let (send, h, c, ln) = (
            props.send.clone(),
            history.clone(),
            candidates.clone(),
            s.length_normalised,
        );
        Callback::from(move |_| {
            send.emit(Request::Rank {
                history: h.clone(),
                candidates: c.clone(),
                length_normalised: ln,
            })
        })
    };
    let generate = {
        let (send, h, c) = (props.send.clone(), history, candidates.clone());
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
            <div class="examples">
                { "Examples: " }
                { for EXAMPLES.iter().enumerate().map(|(i, e)| html! {
                    <button class="link" onclick={ props.dispatch.reform(move |_| Action::UseExample(i)) }>{ e.label }</button>
                }) }
            </div>
            <div class="lists">
                <label>{ "History, oldest first (one title per line)" }
                    <textarea id="history" rows="10" value={ s.history.clone() } oninput={ text(Action::SetHistory) } />
                </label>
                <label>{ format!("Candidates ({})", candidates.len()) }
                    <textarea id="candidates" rows="10" value={ s.candidates.clone() } oninput={ text(Action::SetCandidates) } />
                </label>
            </div>
            <div class="actions">
                <label class="check">
                    <input type="checkbox" id="length-normalised" checked={ s.length_normalised }
                        onchange={ props.dispatch.reform(|e: Event| Action::SetLengthNormalised(
                            e.target_unchecked_into::<HtmlInputElement>().checked())) } />
                    { " Length-normalised scores (mean log-probability per token)" }
                </label>
                <button id="rank" class="primary" onclick={ rank } { disabled }>{ if s.busy { "Working…" } else { "Rank candidates" } }</button>
                <button id="generate" onclick={ generate } { disabled }>{ "Generate an answer" }</button>
            </div>
            if let Some(p) = problem {
                <p class="hint">{ p }</p>
            } else if s.training() {
                <p class="hint">{ "Ranking waits while a training run uses the model." }</p>
            }
        </section>
    }
}
