//! Line charts for the Align and Evaluate cards: axes with ticks and their quantities, a legend,
//! one scale per axis (a second y-axis on the right where two quantities share a panel), a
//! read-out of the nearest point under the pointer, and an SVG download.
//!
//! Hand-written rather than plotters: plotters renders a chart to a finished SVG string, so each
//! training step would replace the whole chart (no element to hover, no `data-values` for the page
//! tests to read), and its axis layout needs font metrics (a canvas in the browser, a font
//! library natively, where this module's layout code is unit-tested). The axes here are a page
//! of arithmetic ([`nice_ticks`]); the lines are yew elements that update in place.

use yew::prelude::*;

// Drawn at 280-640 px wide (CSS), so 12-unit text reads at 8-18 px.
const W: f64 = 420.0;
const H: f64 = 230.0;
const LEFT: f64 = 54.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 40.0;

/// Which y-axis a line is read against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// The left axis.
    Left,
    /// The right axis (a second quantity in the same panel, on its own scale).
    Right,
}

/// One line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Element id of the line.
    pub id: String,
    /// CSS class, which also picks its colour ([`colour`]).
    pub class: String,
    /// Legend label.
    pub label: String,
    /// x of each value.
    pub xs: Vec<f64>,
    /// The values.
    pub values: Vec<f64>,
    /// The axis it is read against.
    pub axis: Axis,
}

impl Series {
    /// A line named `label` with id `id` and colour class `class`, at x = 1, 2, 3, ... (steps,
    /// ranks), read against the left axis.
    pub fn new(id: &str, class: &str, label: &str, values: Vec<f64>) -> Self {
        Self {
            id: id.into(),
            class: class.into(),
            label: label.into(),
            xs: (1..=values.len()).map(|i| i as f64).collect(),
            values,
            axis: Axis::Left,
        }
    }

    /// The same line at the given x values.
    pub fn at(mut self, xs: Vec<f64>) -> Self {
        self.xs = xs;
        self
    }

    /// The same line read against the right axis.
    pub fn right(mut self) -> Self {
        self.axis = Axis::Right;
        self
    }

    fn points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.xs
            .iter()
            .zip(&self.values)
            .map(|(&x, &y)| (x, y))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    }
}

/// The colour of a series class (attributes, not CSS, so a downloaded SVG keeps its colours).
pub fn colour(class: &str) -> &'static str {
    match class {
        "series-loss" | "series-0" => "#2563eb",
        "series-margin" | "series-hr1" | "series-chosen" | "series-2" => "#16a34a",
        "series-rejected" | "series-avgpop" | "series-1" => "#dc2626",
        "series-accuracy" | "series-3" => "#7c3aed",
        "series-tps" | "series-4" => "#ca8a04",
        "series-lr" | "series-5" => "#0891b2",
        // Enough for the loss lab's overlay to give each of the eleven losses its own colour.
        "series-6" => "#db2777",
        "series-7" => "#ea580c",
        "series-8" => "#65a30d",
        "series-9" => "#0f766e",
        "series-10" => "#c026d3",
        _ => "#475569",
    }
}

/// An axis: its range, ticks and how they are written.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    /// Lowest value drawn (a tick).
    pub lo: f64,
    /// Highest value drawn (a tick).
    pub hi: f64,
    /// Tick values, lo to hi.
    pub values: Vec<f64>,
    /// Decimals the labels need (`None`: scientific notation).
    pub decimals: Option<usize>,
}

impl Ticks {
    /// A tick's label.
    pub fn label(&self, v: f64) -> String {
        match self.decimals {
            Some(d) => format!("{v:.d$}"),
            None if v == 0.0 => "0".into(),
            None => format!("{v:.0e}"),
        }
    }
}

/// About `target` ticks at 1, 2 or 5 times a power of ten covering `lo..=hi`, the range widened
/// to the outer ticks. `integer`: no tick between whole numbers (steps, ranks).
pub fn nice_ticks(lo: f64, hi: f64, target: usize, integer: bool) -> Ticks {
    let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() && lo <= hi {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        // A flat line: a range around it.
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo, hi) = (lo - pad, hi + pad);
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = match raw / magnitude {
        r if r < 1.5 => 1.0,
        r if r < 3.0 => 2.0,
        r if r < 7.0 => 5.0,
        _ => 10.0,
    } * magnitude;
    let step = if integer { step.max(1.0).round() } else { step };
    let first = (lo / step).floor();
    let last = (hi / step).ceil();
    let values: Vec<f64> = (0..=((last - first) as usize).min(50))
        .map(|i| (first + i as f64) * step)
        .collect();
    let small = step.abs() < 1e-3 || step.abs() >= 1e6;
    let decimals = (!small).then(|| (-step.log10().floor()).max(0.0) as usize);
    Ticks {
        lo: first * step,
        hi: last * step,
        values,
        decimals,
    }
}

/// Props of [`LineChart`].
#[derive(Properties, PartialEq)]
pub struct LineChartProps {
    /// Element id of the `<svg>`.
    pub id: AttrValue,
    /// What the chart shows, for screen readers.
    pub aria: AttrValue,
    /// What x is ("step", "rank").
    pub x_label: AttrValue,
    /// What the left axis measures, with its unit.
    pub y_label: AttrValue,
    /// What the right axis measures, when a line uses it.
    #[prop_or_default]
    pub y_right_label: Option<AttrValue>,
    /// The lines.
    pub series: Vec<Series>,
}

/// A line chart with axes, legend, a read-out of the nearest point and an SVG download.
#[function_component(LineChart)]
pub fn line_chart(props: &LineChartProps) -> Html {
    let hover = use_state(|| None::<f64>);
    let has_right = props.series.iter().any(|s| s.axis == Axis::Right);
    let right_margin = if has_right { LEFT } else { 14.0 };
    let (plot_w, plot_h) = (W - LEFT - right_margin, H - TOP - BOTTOM);

    let range = |pick: &dyn Fn(&Series) -> bool, x: bool| {
        props
            .series
            .iter()
            .filter(|s| pick(s))
            .flat_map(|s| s.points())
            .map(|(px, py)| if x { px } else { py })
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
    };
    let (x0, x1) = range(&|_| true, true);
    let integer_x = props
        .series
        .iter()
        .flat_map(|s| s.xs.iter())
        .all(|x| x.fract() == 0.0);
    let x_ticks = nice_ticks(x0, x1, 5, integer_x);
    let y_of = |axis: Axis| {
        let (lo, hi) = range(&|s: &Series| s.axis == axis, false);
        nice_ticks(lo, hi, 4, false)
    };
    let (left, right) = (y_of(Axis::Left), y_of(Axis::Right));
    let sx = move |x: f64| LEFT + plot_w * (x - x_ticks.lo) / (x_ticks.hi - x_ticks.lo);
    let sy = |t: &Ticks, y: f64| TOP + plot_h * (1.0 - (y - t.lo) / (t.hi - t.lo));
    let x_ticks_for_hover = x_ticks.clone();

    let lines = props.series.iter().map(|s| {
        let t = if s.axis == Axis::Left { &left } else { &right };
        let points: Vec<String> = s
            .points()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(x), sy(t, y)))
            .collect();
        let data: Vec<String> = s.values.iter().map(|v| format!("{v}")).collect();
        let xs: Vec<String> = s.xs.iter().map(|v| format!("{v}")).collect();
        html! {
            <polyline id={ s.id.clone() } class={ s.class.clone() } points={ points.join(" ") }
                data-values={ data.join(",") } data-x={ xs.join(",") } fill="none"
                stroke={ colour(&s.class) } stroke-width="2" />
        }
    });
    let grid = left.values.iter().map(|&v| {
        let y = sy(&left, v);
        html! {
            <g class="tick">
                <line x1={ LEFT.to_string() } x2={ (LEFT + plot_w).to_string() } y1={ format!("{y:.1}") } y2={ format!("{y:.1}") } class="grid" />
                <text x={ (LEFT - 6.0).to_string() } y={ format!("{:.1}", y + 4.0) } text-anchor="end">{ left.label(v) }</text>
            </g>
        }
    });
    let right_ticks = has_right.then(|| {
        right.values.iter().map(|&v| {
            let y = sy(&right, v);
            html! {
                <text x={ (LEFT + plot_w + 6.0).to_string() } y={ format!("{:.1}", y + 4.0) } text-anchor="start">{ right.label(v) }</text>
            }
        }).collect::<Html>()
    });
    let x_axis = x_ticks.values.iter().map(|&v| {
        let x = sx(v);
        html! {
            <g class="tick">
                <line x1={ format!("{x:.1}") } x2={ format!("{x:.1}") } y1={ (TOP + plot_h).to_string() } y2={ (TOP + plot_h + 4.0).to_string() } class="axis" />
                <text x={ format!("{x:.1}") } y={ (TOP + plot_h + 16.0).to_string() } text-anchor="middle">{ x_ticks.label(v) }</text>
            </g>
        }
    });

    // The nearest x with a value under the pointer, and every line's value there.
    let readout = (*hover).map(|x| {
        let parts: Vec<String> = props
            .series
            .iter()
            .filter_map(|s| {
                s.points()
                    .find(|(px, _)| *px == x)
                    .map(|(_, y)| format!("{} {}", s.label, number(y)))
            })
            .collect();
        (
            x,
            format!(
                "{} {}: {}",
                props.x_label,
                x_ticks.label(x),
                parts.join(" · ")
            ),
        )
    });
    let onmousemove = {
        let hover = hover.clone();
        let xs: Vec<f64> = {
            let mut v: Vec<f64> = props
                .series
                .iter()
                .flat_map(|s| s.points().map(|(x, _)| x))
                .collect();
            v.sort_by(f64::total_cmp);
            v.dedup();
            v
        };
        Callback::from(move |e: MouseEvent| {
            use wasm_bindgen::JsCast;
            let Some(el) = e
                .current_target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            else {
                return;
            };
            let rect = el.get_bounding_client_rect();
            let svg_x = (f64::from(e.client_x()) - rect.left()) / rect.width().max(1.0) * W;
            let t = &x_ticks_for_hover;
            let x = t.lo + (svg_x - LEFT) / plot_w * (t.hi - t.lo);
            let nearest = xs
                .iter()
                .copied()
                .min_by(|a, b| (a - x).abs().total_cmp(&(b - x).abs()));
            hover.set(nearest);
        })
    };
    let onmouseleave = {
        let hover = hover.clone();
        Callback::from(move |_: MouseEvent| hover.set(None))
    };
    let download = {
        let id = props.id.clone();
        Callback::from(move |_: MouseEvent| {
            let svg = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.get_element_by_id(&id))
                .map(|e| e.outer_html());
            if let Some(svg) = svg {
                let _ =
                    super::files::save_file(&format!("{id}.svg"), svg.as_bytes(), "image/svg+xml");
            }
        })
    };
    let legend = props.series.iter().map(|s| {
        let side = if has_right {
            if s.axis == Axis::Left { " (left axis)" } else { " (right axis)" }
        } else {
            ""
        };
        html! {
            <span class="key">
                <svg class="swatch" viewBox="0 0 16 4" aria-hidden="true"><line x1="0" y1="2" x2="16" y2="2" stroke={ colour(&s.class) } stroke-width="3" /></svg>
                { format!("{}{side}", s.label) }
            </span>
        }
    });

    html! {
        <figure class="chart">
            <svg id={ props.id.clone() } xmlns="http://www.w3.org/2000/svg" viewBox={ format!("0 0 {W} {H}") }
                role="img" aria-label={ props.aria.clone() } font-size="12" font-family="system-ui, sans-serif"
                { onmousemove } { onmouseleave }>
                <rect x={ LEFT.to_string() } y={ TOP.to_string() } width={ plot_w.to_string() } height={ plot_h.to_string() } class="plot" fill="none" />
                { for grid }
                { for x_axis }
                { right_ticks.unwrap_or_default() }
                <text x={ (LEFT + plot_w / 2.0).to_string() } y={ (H - 4.0).to_string() } text-anchor="middle" class="axis-label">{ props.x_label.clone() }</text>
                <text transform={ format!("translate(12 {:.1}) rotate(-90)", TOP + plot_h / 2.0) } text-anchor="middle" class="axis-label">{ props.y_label.clone() }</text>
                if let Some(label) = props.y_right_label.clone().filter(|_| has_right) {
                    <text transform={ format!("translate({:.1} {:.1}) rotate(90)", W - 12.0, TOP + plot_h / 2.0) } text-anchor="middle" class="axis-label">{ label }</text>
                }
                { for lines }
                if let Some((x, _)) = &readout {
                    <line class="cursor" x1={ format!("{:.1}", sx(*x)) } x2={ format!("{:.1}", sx(*x)) } y1={ TOP.to_string() } y2={ (TOP + plot_h).to_string() } />
                }
            </svg>
            <figcaption>
                { for legend }
                <button class="link chart-download" onclick={ download } aria-label={ format!("Download {} as SVG", props.aria) }>{ "SVG" }</button>
                <span class="readout" aria-live="polite">{ readout.map(|(_, text)| text).unwrap_or_default() }</span>
            </figcaption>
        </figure>
    }
}

fn number(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-2 || v.abs() >= 1e4) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers_that_cover_the_values() {
        let t = nice_ticks(0.47, 0.77, 4, false);
        assert!(t.lo <= 0.47 && t.hi >= 0.77, "{t:?}");
        assert_eq!(t.decimals, Some(1));
        assert_eq!(
            t.values.iter().map(|&v| t.label(v)).collect::<Vec<_>>(),
            ["0.4", "0.5", "0.6", "0.7", "0.8"]
        );
        // Steps: whole numbers only, even for a short run.
        let t = nice_ticks(1.0, 3.0, 6, true);
        assert!(t.values.iter().all(|v| v.fract() == 0.0), "{t:?}");
        assert_eq!(t.label(2.0), "2");
        // A learning rate: scientific labels.
        let t = nice_ticks(1e-5, 2e-4, 4, false);
        assert_eq!(t.decimals, None);
        assert_eq!(t.label(1e-4), "1e-4");
        assert_eq!(t.label(0.0), "0");
        // Tokens per second in the thousands: no decimals.
        let t = nice_ticks(180.0, 2400.0, 4, false);
        assert_eq!(t.decimals, Some(0));
        assert!(t.lo <= 180.0 && t.hi >= 2400.0);
    }

    #[test]
    fn a_flat_or_empty_series_still_gets_an_axis() {
        let t = nice_ticks(0.6, 0.6, 4, false);
        assert!(t.lo < 0.6 && t.hi > 0.6 && t.values.len() >= 2, "{t:?}");
        let t = nice_ticks(f64::INFINITY, f64::NEG_INFINITY, 4, false);
        assert_eq!((t.lo, t.hi), (0.0, 1.0));
        let t = nice_ticks(0.0, 0.0, 4, false);
        assert!(t.lo < 0.0 && t.hi > 0.0);
    }
}
