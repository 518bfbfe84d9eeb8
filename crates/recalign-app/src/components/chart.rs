//! Small SVG line charts for the Align and Evaluate cards. Each line carries its values in
//! `data-values`, so the page tests read what is drawn. Hand-written rather than plotters: a
//! few polylines in yew's own markup keep the charts reactive and add nothing to the bundle.

use yew::prelude::*;

const W: f64 = 640.0;
const H: f64 = 150.0;
const PAD: f64 = 6.0;

/// One line.
pub struct Series {
    /// Element id of the line.
    pub id: String,
    /// CSS class (its colour); the caption's key uses `key-<class>`.
    pub class: String,
    /// Caption label.
    pub label: String,
    /// Values at x = 0, 1, 2, ...
    pub values: Vec<f64>,
}

impl Series {
    /// A line named `label` with id `id` and colour class `class`.
    pub fn new(id: &str, class: &str, label: &str, values: Vec<f64>) -> Self {
        Self {
            id: id.into(),
            class: class.into(),
            label: label.into(),
            values,
        }
    }
}

/// How lines share the vertical axis.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// One range for all lines (their values compare).
    Shared,
    /// Each line fills the height (shapes compare, magnitudes do not).
    PerSeries,
}

fn range<'a>(values: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) }
}

fn number(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-2 || v.abs() >= 1e4) {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

/// A chart with id `id`, its lines, and a caption with each line's range.
pub fn line_chart(id: &str, aria: &str, series: &[Series], scale: Scale) -> Html {
    let shared = range(series.iter().flat_map(|s| s.values.iter()));
    let n = series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(0)
        .max(2)
        - 1;
    let lines = series.iter().map(|s| {
        let (lo, hi) = match scale {
            Scale::Shared => shared,
            Scale::PerSeries => range(s.values.iter()),
        };
        let span = if hi > lo { hi - lo } else { 1.0 };
        let points: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, &v)| {
                let x = PAD + (W - 2.0 * PAD) * i as f64 / n as f64;
                let y = H - PAD - (H - 2.0 * PAD) * (v - lo) / span;
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let data: Vec<String> = s.values.iter().map(|v| format!("{v}")).collect();
        html! {
            <polyline id={ s.id.clone() } class={ s.class.clone() } points={ points.join(" ") }
                data-values={ data.join(",") } fill="none" />
        }
    });
    let keys = series.iter().enumerate().map(|(i, s)| {
        let (lo, hi) = range(s.values.iter());
        html! {
            <span class={ format!("key-{}", s.class) }>
                { format!("{}{} ({} – {})", if i > 0 { " · " } else { "" }, s.label, number(lo), number(hi)) }
            </span>
        }
    });
    html! {
        <figure class="chart">
            <svg id={ id.to_string() } viewBox={ format!("0 0 {W} {H}") } preserveAspectRatio="none"
                role="img" aria-label={ aria.to_string() }>
                { for lines }
            </svg>
            <figcaption>
                { for keys }
                if scale == Scale::PerSeries && series.len() > 1 {
                    { " · each line scaled to its own range" }
                }
            </figcaption>
        </figure>
    }
}
