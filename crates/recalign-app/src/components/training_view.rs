//! A training run as the Align card shows it: progress, ETA, the summary when it ends, and the
//! live charts (loss, margins and rewards, gradient norm, validation HR@1).

use recalign_core::train::StepReport;
use yew::prelude::*;

use super::align_form::AlignForm;
use super::chart::{LineChart, Series};
use crate::protocol::ValidationPoint;
use crate::state::TrainingView;

/// What Quick align runs, read from its preset so the card cannot disagree with it, and what it
/// took on the real model (docs/alignment.md, "Training in the page").
pub(super) fn quick_summary(q: &AlignForm) -> String {
    let share = recalign_core::train::data::ONE_TARGET_SHARE;
    let one_target = (q.prompts as f64 * share / (1.0 - share)).round();
    format!(
        " Sequence SFT of the compact prompt on {} training histories (with {one_target} one-target \
         examples of LLaRA's prompt mixed in, so that generation still names a listed title): {} \
         steps of {} at learning rate {:e}, LoRA r {} on the top {} layers, validated on {} users \
         before, midway and at the end. On the default model, the CPU device in one thread of a \
         2-core Xeon takes about 15 minutes (13 s a step, under 2 minutes a check); the progress \
         line below gives the time on this device. The validation chart and the summary show \
         where HR@1 and the popularity of the top pick went from the base model's; with {} users \
         one hit is {:.2}, so the Evaluate card's larger sample is the measure.",
        q.prompts,
        q.steps,
        q.batch,
        q.learning_rate,
        q.rank,
        q.top_layers,
        q.validate_users,
        q.validate_users,
        1.0 / q.validate_users.max(1) as f64,
    )
}

/// Progress, ETA, a chart of loss and margin, the last steps, and how the run ended.
pub(super) fn training_view(t: &TrainingView) -> Html {
    let progress = if let Some(p) = &t.preparing {
        html! {
            <div id="train-progress">
                <label for="train-progress-bar">{ format!("{}: {}", t.label, p.stage) }</label>
                if let Some(total) = p.total.filter(|&n| n > 0) {
                    <progress id="train-progress-bar" max={ total.to_string() } value={ p.done.to_string() } />
                } else {
                    <progress id="train-progress-bar" />
                }
            </div>
        }
    } else if t.running {
        let eta = t.eta_seconds().map_or(String::new(), |(per, left)| {
            format!(" · {per:.1} s per step · about {} left", duration(left))
        });
        html! {
            <div id="train-progress">
                <label for="train-progress-bar">{ format!("{}: step {} of {}{eta}{}", t.label, t.steps.len(), t.planned,
                    if t.cancelling { " · stopping after this step" } else if t.pausing == Some(true) { " · pausing after this step" } else if t.paused { " · paused" } else { "" }) }</label>
                <progress id="train-progress-bar" max={ t.planned.to_string() } value={ t.steps.len().to_string() } />
            </div>
        }
    } else {
        Html::default()
    };
    let summary = t.summary.as_ref().map(|s| {
        let how = if s.cancelled { "cancelled after" } else { "finished" };
        html! {
            <p id="train-summary">{ format!(
                "{}: {how} {} of {} steps in {:.1} s on {} {} (from {}{}). Ranking now uses it.",
                s.name, s.steps, s.planned, s.seconds, s.inputs,
                if t.label == "SFT" { "examples" } else { "pairs" }, s.start,
                if s.too_long > 0 { format!("; {} prompts too long for the context were skipped", s.too_long) } else { String::new() }
            ) }</p>
        }
    });
    // What the run reached on its validation users, against where it started (step 0 is the
    // model before training: the base model for SFT).
    let reached = match (
        t.summary.as_ref(),
        t.validation.first(),
        t.validation.last(),
    ) {
        (Some(_), Some(first), Some(last)) if last.step > first.step => html! {
            <p id="train-validation-result">{ format!(
                "Validation HR@1 {:.3} at step {} → {:.3} at step {}; AveragePopularity@1 {:.0} → {:.0} (few users per check, so a small change is noise; the Evaluate card measures more users).",
                first.hr_at_1, first.step, last.hr_at_1, last.step,
                first.average_popularity, last.average_popularity
            ) }</p>
        },
        _ => Html::default(),
    };
    let rows = t.steps.iter().rev().take(12).map(|r| {
        html! {
            <tr>
                <td class="num">{ r.step }</td>
                <td class="num">{ format!("{:.4}", r.loss) }</td>
                <td class="num">{ format!("{:.3}", r.margin) }</td>
                <td class="num">{ format!("{:.3}", r.chosen_reward) }</td>
                <td class="num">{ format!("{:.3}", r.rejected_reward) }</td>
                <td class="num">{ format!("{:.2}", r.accuracy) }</td>
                <td class="num">{ format!("{:.1e}", r.learning_rate) }</td>
                <td class="num">{ format!("{:.2}", r.grad_norm) }</td>
                <td class="num">{ format!("{:.0}", r.tokens_per_second) }</td>
            </tr>
        }
    });
    let preference = t.label != "SFT";
    html! {
        <div id="training">
            { progress }
            { summary.unwrap_or_default() }
            { reached }
            if !t.steps.is_empty() {
                { charts(&t.steps, preference) }
                { validation_chart(&t.validation) }
                <table class="metrics steps" id="train-log">
                    <thead><tr>
                        <th>{ "step" }</th><th>{ "loss" }</th><th>{ "margin" }</th><th>{ "chosen" }</th>
                        <th>{ "rejected" }</th><th>{ "accuracy" }</th><th>{ "lr" }</th><th>{ "grad norm" }</th><th>{ "tok/s" }</th>
                    </tr></thead>
                    <tbody>{ for rows }</tbody>
                </table>
            }
        </div>
    }
}

fn duration(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{:.0} min", seconds / 60.0)
    }
}

/// HR@1 and AveragePopularity@1 of the adapter being trained on validation users, at each check.
fn validation_chart(points: &[ValidationPoint]) -> Html {
    if points.is_empty() {
        return Html::default();
    }
    let steps: Vec<String> = points.iter().map(|p| p.step.to_string()).collect();
    let xs: Vec<f64> = points.iter().map(|p| p.step as f64).collect();
    html! {
        <div id="train-validation">
            <LineChart id="train-chart-validation" aria="Validation HR@1 and AveragePopularity@1 during training"
                x_label="step" y_label="validation HR@1" y_right_label="AvgPop@1 (training interactions)"
                series={ vec![
                    Series::new("train-chart-hr1", "series-hr1", "validation HR@1", points.iter().map(|p| p.hr_at_1).collect()).at(xs.clone()),
                    Series::new("train-chart-avgpop", "series-avgpop", "AvgPop@1", points.iter().map(|p| p.average_popularity).collect()).at(xs).right(),
                ] } />
            <p class="meta">{ format!("Checked at steps {} (step 0: before training).", steps.join(", ")) }</p>
        </div>
    }
}

/// The run's charts: loss (and reward margin); chosen and rejected rewards with pair accuracy
/// (preference stages); learning rate and tokens per second.
fn charts(steps: &[StepReport], preference: bool) -> Html {
    let values = |f: fn(&StepReport) -> f64| steps.iter().map(f).collect::<Vec<f64>>();
    let xs = values(|r| r.step as f64);
    let line = |id: &str, class: &str, label: &str, f: fn(&StepReport) -> f64| {
        Series::new(id, class, label, values(f)).at(xs.clone())
    };
    let mut main = vec![line("train-chart-loss", "series-loss", "loss", |r| {
        f64::from(r.loss)
    })];
    if preference {
        main.push(
            line(
                "train-chart-margin",
                "series-margin",
                "reward margin",
                |r| f64::from(r.margin),
            )
            .right(),
        );
    }
    let rates = vec![
        line("train-chart-lr", "series-lr", "learning rate", |r| {
            r.learning_rate
        }),
        line("train-chart-tps", "series-tps", "tokens/s", |r| {
            r.tokens_per_second
        })
        .right(),
    ];
    let rewards = vec![
        line(
            "train-chart-chosen",
            "series-chosen",
            "chosen reward",
            |r| f64::from(r.chosen_reward),
        ),
        line(
            "train-chart-rejected",
            "series-rejected",
            "rejected reward",
            |r| f64::from(r.rejected_reward),
        ),
    ];
    let accuracy = vec![line(
        "train-chart-acc",
        "series-accuracy",
        "pair accuracy",
        |r| f64::from(r.accuracy),
    )];
    let loss_label = if preference {
        "loss"
    } else {
        "loss (nats per answer token)"
    };
    html! {
        <div class="charts">
            <LineChart id="train-chart" aria="Training loss and reward margin per step" x_label="step"
                y_label={ loss_label } y_right_label="reward margin (β · log-ratio)" series={ main } />
            if preference {
                <LineChart id="train-chart-rewards" aria="Chosen and rejected rewards per step" x_label="step"
                    y_label="reward (β · log-ratio)" series={ rewards } />
                <LineChart id="train-chart-accuracy" aria="Pair accuracy per step" x_label="step"
                    y_label="pair accuracy" series={ accuracy } />
            }
            <LineChart id="train-chart-rates" aria="Learning rate and tokens per second per step" x_label="step"
                y_label="learning rate" y_right_label="tokens/s" series={ rates } />
        </div>
    }
}
