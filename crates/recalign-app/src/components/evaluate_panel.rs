//! The Evaluate card: the model in use (base or an adapter) on validation or test users, with
//! accuracy next to popularity bias and hallucination (method.md §4), one row per evaluation so
//! adapters compare side by side.

use recalign_core::data::split::SplitName;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::chart::{LineChart, Series};
use super::use_page;
use crate::protocol::{Evaluation, Request};
use crate::state::{Action, AlignState, EvaluationState, ModelState};

/// Props of [`EvaluatePanel`].
#[derive(Properties, PartialEq)]
pub struct EvaluatePanelProps {
    /// The model, its device and busy requests.
    pub model: ModelState,
    /// The training run and the adapters.
    pub align: AlignState,
    /// The evaluations.
    pub evaluation: EvaluationState,
    /// Whether a dataset is loaded (evaluation needs its split).
    pub has_dataset: bool,
}

/// Tokens generated per user when generation is on: enough for any catalogue title.
const GENERATE_TOKENS: usize = 24;

/// Split, users and generation; a metrics table of every evaluation so far.
#[function_component(EvaluatePanel)]
pub fn evaluate_panel(props: &EvaluatePanelProps) -> Html {
    let page = use_page();
    let split = use_state(|| SplitName::Validation);
    let users = use_state(|| 20usize);
    let generate = use_state(|| true);
    let busy = props.evaluation.evaluating.is_some() || props.align.running() || props.model.busy();
    let can_run = props.model.ready() && props.has_dataset && !busy;
    let run = {
        let (send, dispatch) = (page.send.clone(), page.dispatch.clone());
        let (split, users, generate) = (*split, *users, *generate);
        Callback::from(move |_| {
            dispatch.emit(Action::EvalStarted);
            send.emit(Request::Evaluate {
                split,
                users,
                generate: if generate { GENERATE_TOKENS } else { 0 },
            });
        })
    };
    let on_split = {
        let split = split.clone();
        Callback::from(move |e: Event| {
            let v = e.target_unchecked_into::<HtmlSelectElement>().value();
            split.set(if v == "test" {
                SplitName::Test
            } else {
                SplitName::Validation
            });
        })
    };
    let on_users = {
        let users = users.clone();
        Callback::from(move |e: Event| {
            if let Ok(n) = e
                .target_unchecked_into::<HtmlInputElement>()
                .value()
                .trim()
                .parse()
            {
                users.set(n);
            }
        })
    };
    let on_generate = {
        let generate = generate.clone();
        Callback::from(move |e: Event| {
            generate.set(e.target_unchecked_into::<HtmlInputElement>().checked());
        })
    };
    let progress = props.evaluation.evaluating.map(|(done, total)| {
        html! {
            <div id="eval-progress">
                <label for="eval-progress-bar">{ format!("Evaluating the {}: {done} of {total} users", props.align.model_in_use()) }</label>
                if total > 0 {
                    <progress id="eval-progress-bar" max={ total.to_string() } value={ done.to_string() } />
                } else {
                    <progress id="eval-progress-bar" />
                }
            </div>
        }
    });
    let pct = |v: f64| format!("{:.1}%", 100.0 * v);
    let row = |e: &Evaluation| {
        let r = &e.report;
        let g = r.generation.as_ref();
        html! {
            <tr>
                <td>{ e.model.clone() }</td>
                <td>{ e.split.name() }</td>
                <td class="num">{ r.ranking.examples }</td>
                <td class="num">{ format!("{:.3}", r.ranking.hr[0]) }</td>
                <td class="num">{ format!("{:.3}", r.ranking.hr[2]) }</td>
                <td class="num">{ format!("{:.3}", r.ranking.ndcg[2]) }</td>
                <td class="num">{ format!("{:.3}", r.ranking.mrr) }</td>
                <td class="num">{ format!("{:.1}", r.bias_at_1.average_popularity) }</td>
                <td class="num">{ pct(r.bias_at_1.tail_percentage) }</td>
                <td class="num">{ pct(r.bias_at_5.item_coverage) }</td>
                <td class="num">{ format!("{:.3}", r.bias_at_5.gini_index) }</td>
                <td class="num">{ g.map_or("–".into(), |g| pct(g.valid_ratio)) }</td>
                <td class="num">{ g.map_or("–".into(), |g| format!("{:.3}", g.hit_ratio_at_1)) }</td>
                <td class="num">{ format!("{:.0} s", e.seconds) }</td>
            </tr>
        }
    };
    html! {
        <section class="card" id="evaluate-card">
            <h2>{ "Evaluate" }</h2>
            <p class="meta">{ "Accuracy next to popularity bias and hallucination, for the model in use; evaluate the base model and each adapter to compare them row by row. HR and NDCG rank the 20 candidates; AvgPop@1 is the mean training popularity of the top pick (lower: less popularity bias); Tail@1 the share of top picks outside the 20% most popular items; Coverage@5 and Gini@5 how widely the top-5 lists spread over the catalogue; ValidRatio the share of generated answers naming exactly one candidate (the rest are hallucinations); HitRatio@1 the share naming the right one." }</p>
            <div class="fields">
                <label class="field">{ "Split" }
                    <select id="eval-split" onchange={ on_split } disabled={ busy }>
                        <option value="validation" selected={ *split == SplitName::Validation }>{ "validation" }</option>
                        <option value="test" selected={ *split == SplitName::Test }>{ "test" }</option>
                    </select>
                </label>
                <label class="field">{ "Users (0: all)" }
                    <input type="text" inputmode="numeric" id="eval-users" value={ users.to_string() } onchange={ on_users } disabled={ busy } />
                </label>
            </div>
            <div class="actions">
                <label class="check">
                    <input type="checkbox" id="eval-generate" checked={ *generate } onchange={ on_generate } disabled={ busy } />
                    { format!(" Also generate an answer per user (up to {GENERATE_TOKENS} tokens): ValidRatio, HitRatio@1") }
                </label>
                <button id="eval-run" class="primary" onclick={ run } disabled={ !can_run }>{ format!("Evaluate the {}", props.align.model_in_use()) }</button>
            </div>
            { progress.unwrap_or_default() }
            if !props.evaluation.evaluations.is_empty() {
                <div class="scroll">
                    <table class="metrics wide" id="eval-table">
                        <thead><tr>
                            <th>{ "model" }</th><th>{ "split" }</th><th>{ "users" }</th><th>{ "HR@1" }</th><th>{ "HR@5" }</th>
                            <th>{ "NDCG@5" }</th><th>{ "MRR" }</th><th>{ "AvgPop@1" }</th><th>{ "Tail@1" }</th>
                            <th>{ "Coverage@5" }</th><th>{ "Gini@5" }</th><th>{ "ValidRatio" }</th><th>{ "HitRatio@1" }</th><th>{ "time" }</th>
                        </tr></thead>
                        <tbody>{ for props.evaluation.evaluations.iter().map(row) }</tbody>
                    </table>
                </div>
                { popularity_chart(&props.evaluation.evaluations) }
            }
        </section>
    }
}

/// Mean training popularity of the item at each rank, one line per evaluation on one scale: a
/// popularity-biased model's line falls steeply from rank 1.
fn popularity_chart(evaluations: &[Evaluation]) -> Html {
    let series: Vec<Series> = evaluations
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.report.popularity_by_rank.is_empty())
        .map(|(i, e)| {
            Series::new(
                &format!("eval-pop-{i}"),
                &format!("series-{}", i % 6),
                &format!("{} ({})", e.model, e.split.name()),
                e.report.popularity_by_rank.clone(),
            )
        })
        .collect();
    if series.is_empty() {
        return Html::default();
    }
    html! {
        <div id="eval-popularity">
            <h3>{ "Popularity against rank" }</h3>
            <p class="meta">{ "Mean training popularity (interactions) of the candidate each model puts at rank 1, 2, … 20. Candidates are drawn at random, so an unbiased ranking gives a flat line; one that falls steeply from rank 1 ranks by popularity." }</p>
            <LineChart id="eval-popularity-chart" aria="Mean popularity of the candidate at each rank, per model"
                x_label="rank" y_label="mean popularity (interactions)" { series } />
        </div>
    }
}
