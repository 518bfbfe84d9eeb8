//! "Align in four steps": the story a class follows, run live on the loaded model with the same
//! requests as the other cards. It picks a test user, ranks their candidates with the base
//! model, runs Quick align's SFT, runs RosePO from it, and puts the three rankings and their
//! validation figures side by side. Nothing is pre-recorded.
//!
//! The steps advance on what the worker reports (a test user, a ranking made with the expected
//! adapter, a training summary), so the walk-through never guesses at timing; an error anywhere
//! stops it with the error shown, and what was trained stays in the Align card.

use yew::prelude::*;

use super::align_form::{quick_rosepo_request, quick_sft_request};
use super::use_page;
use crate::protocol::{Request, TrainRequest};
use crate::state::{Action, AppState};

/// Props of [`Walkthrough`].
#[derive(Properties, PartialEq)]
pub struct WalkthroughProps {
    /// Page state.
    pub state: AppState,
}

/// Where the walk-through is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
enum Step {
    #[default]
    Idle,
    PickUser,
    RankBase,
    TrainSft,
    RankSft,
    TrainRosepo,
    RankRosepo,
    Done,
}

/// Validation HR@1 and AvgPop@1 at one check.
type Check = (f64, f64);

/// One model's ranking of the test user's candidates, and its validation figures.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    model: String,
    /// Where the user's real next title came (1-based).
    target_rank: Option<usize>,
    top: Vec<String>,
    top_popularity: Option<u32>,
    /// Validation HR@1 and AvgPop@1 of this model, from its run's checks.
    validation: Option<Check>,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Walk {
    step: Step,
    /// The test user asked for.
    user: usize,
    /// Base, SFT and RosePO, as they come.
    snapshots: Vec<Snapshot>,
    /// The adapter each trained step made (SFT, RosePO).
    adapter: Option<usize>,
    /// Validation of the model about to be ranked, from its run.
    validation: Option<Check>,
    /// Validation before the SFT run's first step: the base model's.
    base_validation: Option<Check>,
    /// Why the walk-through stopped, when it did.
    stopped: Option<String>,
    /// The test user in the form when it started.
    form_user: Option<(usize, String)>,
}

fn snapshot(state: &AppState, model: &str, validation: Option<Check>) -> Option<Snapshot> {
    let (ranking, _) = state.request.ranking.as_ref()?;
    let target = state
        .data
        .test_user
        .as_ref()
        .map(|(_, t)| t.trim().to_string());
    Some(Snapshot {
        model: model.to_string(),
        target_rank: target.and_then(|t| {
            ranking
                .ranked
                .iter()
                .find(|r| r.candidate.title.trim() == t)
                .map(|r| r.rank)
        }),
        top: ranking
            .ranked
            .iter()
            .take(3)
            .map(|r| r.candidate.title.clone())
            .collect(),
        top_popularity: state
            .request
            .candidate_popularity
            .as_ref()
            .and_then(|p| p.counts.first().copied().flatten()),
        validation,
    })
}

/// The first and last validation check of the run that just ended.
fn run_validation(state: &AppState) -> (Option<Check>, Option<Check>) {
    let points = state
        .align
        .training
        .as_ref()
        .map(|t| t.validation.as_slice())
        .unwrap_or_default();
    let pair = |p: &crate::protocol::ValidationPoint| (p.hr_at_1, p.average_popularity);
    (points.first().map(pair), points.last().map(pair))
}

/// The guided walk-through card.
#[function_component(Walkthrough)]
pub fn walkthrough(props: &WalkthroughProps) -> Html {
    let page = use_page();
    let walk = use_state(Walk::default);
    let state = &props.state;
    let layers = state.model.info.as_ref().map_or(8, |m| m.layers);

    // Advance on what the worker reported.
    {
        let (walk, send, dispatch) = (walk.clone(), page.send.clone(), page.dispatch.clone());
        let state = state.clone();
        let deps = (
            walk.step,
            state.data.test_user.clone(),
            state.request.ranking.as_ref().map(|(_, ms)| ms.to_bits()),
            state.align.adapter_in_use,
            state
                .align
                .training
                .as_ref()
                .and_then(|t| t.summary.as_ref().map(|s| s.index)),
            state.error.clone(),
        );
        use_effect_with(deps, move |_| {
            let mut w = (*walk).clone();
            let rank = || {
                send.emit(Request::Rank {
                    history: state.history_titles(),
                    candidates: state.candidate_titles(),
                    length_normalised: false,
                    compare_with: None,
                })
            };
            let train = |request: TrainRequest| {
                dispatch.emit(Action::TrainStarted {
                    stage: request.stage.clone(),
                    planned: request.settings.steps,
                });
                send.emit(Request::Train(Box::new(request)));
            };
            let finished = || {
                state
                    .align
                    .training
                    .as_ref()
                    .and_then(|t| t.summary.as_ref().map(|s| s.index))
            };
            let ranked_with = |adapter: Option<usize>| {
                state.request.ranking.is_some() && state.align.adapter_in_use == adapter
            };
            // The ranking just made with the trained adapter, under the adapter's name.
            let keep = |w: &mut Walk, fallback: &str| {
                let name = w.adapter.and_then(|i| state.align.adapters.get(i).cloned());
                let kept = snapshot(&state, name.as_deref().unwrap_or(fallback), w.validation);
                w.snapshots.extend(kept);
            };
            let running = !matches!(w.step, Step::Idle | Step::Done);
            if running && let Some(e) = &state.error {
                w.stopped = Some(e.clone());
                w.step = Step::Idle;
            } else {
                match w.step {
                    // The user asked for (its index wraps on a short split), not one an earlier
                    // click left in the form.
                    Step::PickUser
                        if state.data.test_user.is_some()
                            && (state.data.test_user != w.form_user
                                || state
                                    .data
                                    .test_user
                                    .as_ref()
                                    .is_some_and(|(i, _)| *i == w.user)) =>
                    {
                        // The base model: no adapter in use.
                        send.emit(Request::UseAdapter { index: None });
                        rank();
                        w.step = Step::RankBase;
                    }
                    Step::RankBase if ranked_with(None) => {
                        w.snapshots.extend(snapshot(&state, "base model", None));
                        train(quick_sft_request(layers));
                        w.step = Step::TrainSft;
                    }
                    Step::TrainSft if finished().is_some() => {
                        let (first, last) = run_validation(&state);
                        (w.adapter, w.base_validation, w.validation) = (finished(), first, last);
                        if let Some(base) = w.snapshots.first_mut() {
                            base.validation = first;
                        }
                        rank();
                        w.step = Step::RankSft;
                    }
                    Step::RankSft if ranked_with(w.adapter) => {
                        keep(&mut w, "SFT");
                        train(quick_rosepo_request(layers));
                        w.step = Step::TrainRosepo;
                    }
                    Step::TrainRosepo if finished().is_some_and(|i| Some(i) != w.adapter) => {
                        (w.adapter, w.validation) = (finished(), run_validation(&state).1);
                        rank();
                        w.step = Step::RankRosepo;
                    }
                    Step::RankRosepo if ranked_with(w.adapter) => {
                        keep(&mut w, "RosePO");
                        w.step = Step::Done;
                    }
                    _ => {}
                }
            }
            if w != *walk {
                walk.set(w);
            }
        });
    }

    let busy = !matches!(walk.step, Step::Idle | Step::Done);
    let can_start = state.ready() && state.data.dataset.is_some() && !state.training() && !busy;
    let start = {
        let (walk, send, dispatch) = (walk.clone(), page.send.clone(), page.dispatch.clone());
        let form_user = state.data.test_user.clone();
        Callback::from(move |_| {
            // An earlier error would stop the new walk-through at once.
            dispatch.emit(Action::DismissError);
            let user = if walk.step == Step::Done || walk.stopped.is_some() {
                walk.user + 1
            } else {
                walk.user
            };
            walk.set(Walk {
                step: Step::PickUser,
                user,
                form_user: form_user.clone(),
                ..Walk::default()
            });
            send.emit(Request::TestUser { index: user });
        })
    };
    let sft = quick_sft_request(layers);
    let rosepo = quick_rosepo_request(layers);
    // What a step is doing now, or a tick once the walk-through is past it.
    let status = |doing: Step, waiting: &str| -> Html {
        if walk.step == doing {
            html! { <span class="walk-status doing">{ waiting }</span> }
        } else if walk.step > doing && walk.stopped.is_none() {
            html! { <span class="walk-status done">{ " ✓" }</span> }
        } else {
            Html::default()
        }
    };
    let target = state.data.test_user.as_ref().map(|(_, t)| t.clone());
    let rows = walk.snapshots.iter().map(|s| {
        let validation = s
            .validation
            .map_or(("–".to_string(), "–".to_string()), |(hr, pop)| {
                (format!("{hr:.3}"), format!("{pop:.1}"))
            });
        html! {
            <tr class="walk-model">
                <td>{ &s.model }</td>
                <td class="walk-rank">{ s.target_rank.map_or("–".into(), |r| format!("{r} of 20")) }</td>
                <td>{ s.top.first().cloned().unwrap_or_default() }</td>
                <td>{ s.top_popularity.map_or("–".into(), |c| c.to_string()) }</td>
                <td class="walk-hr1">{ validation.0 }</td>
                <td>{ validation.1 }</td>
            </tr>
        }
    });
    html! {
        <section class="card" id="walkthrough">
            <h2>{ "Align in four steps" }</h2>
            <p class="meta">{ "A guided run of the whole story on the loaded model: what the base model recommends, what supervised fine-tuning (SFT) teaches it, and what a preference loss (RosePO) changes. It uses the Data card's dataset and the same training as the Align card; on the real model the two runs take about 10 and 5 minutes on the CPU." }</p>
            <ol class="walk-steps">
                <li>
                    <strong>{ "Pick a test user" }</strong>{ " from the held-out users: their history, 20 candidates and the title they really chose next, which no training run sees. " }
                    { status(Step::PickUser, "picking…") }
                    if let (Some(t), true) = (&target, !walk.snapshots.is_empty() || walk.step > Step::PickUser) {
                        <span class="meta">{ format!("Test user #{}: they chose “{t}”.", walk.user + 1) }</span>
                    }
                </li>
                <li>
                    <strong>{ "Rank with the base model" }</strong>{ ": SmolLM2 as downloaded, no adapter. It has never seen this catalogue's users, so it ranks by what titles sound likely." }
                    { status(Step::RankBase, "ranking…") }
                </li>
                <li>
                    <strong>{ format!("Quick SFT ({} steps of {})", sft.settings.steps, sft.settings.batch_size) }</strong>
                    { ": LoRA learns from training users' histories, every title a target, so the model learns which titles follow which. Validation HR@1 on held-out users is checked before, midway and after." }
                    { status(Step::TrainSft, "training (progress in the Align card)…") }
                    { status(Step::RankSft, "ranking…") }
                </li>
                <li>
                    <strong>{ format!("RosePO ({} steps of {})", rosepo.settings.steps, rosepo.settings.batch_size) }</strong>
                    { ": from the SFT adapter, pairs of the user's real next title against the model's own top mistake or a popular title, each pair smoothed by how sure the SASRec oracle is. It aims at less popularity bias at no loss of accuracy (trained first if the Data card has not)." }
                    { status(Step::TrainRosepo, "training (progress in the Align card)…") }
                    { status(Step::RankRosepo, "ranking…") }
                </li>
            </ol>
            <button id="walk-start" class="primary" onclick={ start } disabled={ !can_start }>
                { if walk.step == Step::Done || walk.stopped.is_some() { "Again, with the next test user" } else { "Start" } }
            </button>
            if !state.ready() || state.data.dataset.is_none() {
                <span class="meta">{ " Needs a model and a dataset (they load at start)." }</span>
            }
            if let Some(why) = &walk.stopped {
                <p class="warn" id="walk-stopped">{ format!("Stopped: {why}. The adapters trained so far stay in the Align card.") }</p>
            }
            if !walk.snapshots.is_empty() {
                <table id="walk-results">
                    <thead><tr>
                        <th>{ "model" }</th><th>{ "their next title" }</th><th>{ "top pick" }</th>
                        <th>{ "top pick's popularity" }</th><th>{ "validation HR@1" }</th><th>{ "validation AvgPop@1" }</th>
                    </tr></thead>
                    <tbody>{ for rows }</tbody>
                </table>
                <p class="meta">{ format!(
                    "“Their next title” is where the user's real choice came among the 20 candidates (one user: an anecdote). The validation columns are the runs' checks on {} held-out users (HR@1: their real next title ranked first; AvgPop@1: training interactions of the top pick, lower is less popularity bias), so they carry about ±0.2 at this size; docs/alignment.md has the figures on 470 examples with intervals.",
                    sft.validate_users) }</p>
            }
        </section>
    }
}
