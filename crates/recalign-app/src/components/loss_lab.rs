//! The loss lab: every preference loss and its gradient weight against the margin, side by side,
//! from the core's f64 formulas (`losses::scalar`), with one slider per hyper-parameter, the
//! optimum marked where one exists, S-DPO's per-negative weights, the running training step's
//! margins (each example's, and their mean) on its loss, and the distribution of RosePO's
//! per-pair smoothing factors from the oracle.

use recalign_core::losses::scalar::{curve_point, optimum, sdpo_negative_weights};
use recalign_core::losses::{LossConfig, LossKind};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::chart::{LineChart, Series, Ticks, nice_ticks};
use crate::hash;
use crate::state::BatchMarker;

/// Props of [`LossLab`].
#[derive(Properties, PartialEq)]
pub struct LossLabProps {
    /// The running (or last) preference step's margins (kept this small so the lab re-renders
    /// only when they move).
    pub batch: Option<BatchMarker>,
    /// RosePO's smoothing factor of every pair of the run (empty: none).
    #[prop_or_default]
    pub eps: Vec<f64>,
}

/// The lab's shared hyper-parameters: each slider moves every loss that reads it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct LabParams {
    beta: f64,
    eps: f64,
    tau: f64,
    gamma: f64,
    alpha: f64,
    beta_prime: f64,
    negatives: usize,
}

impl Default for LabParams {
    fn default() -> Self {
        Self {
            beta: 1.0,
            eps: 0.1,
            tau: 0.25,
            gamma: 1.0,
            alpha: 0.5,
            beta_prime: 1.0,
            negatives: 3,
        }
    }
}

impl LabParams {
    /// The defaults, overridden by whatever the URL hash holds (`lab.` keys).
    fn from_hash() -> Self {
        let d = Self::default();
        let get = |k: &str, default: f64| {
            hash::parse::<f64>(k)
                .filter(|v| v.is_finite())
                .unwrap_or(default)
        };
        Self {
            // The sliders' ranges bound what a link may set.
            beta: get("lab.beta", d.beta).clamp(0.1, 5.0),
            eps: get("lab.eps", d.eps).clamp(0.0, 0.45),
            tau: get("lab.tau", d.tau).clamp(0.05, 2.0),
            gamma: get("lab.gamma", d.gamma),
            alpha: get("lab.alpha", d.alpha),
            beta_prime: get("lab.beta-prime", d.beta_prime).clamp(0.1, 5.0),
            negatives: hash::parse("lab.k").unwrap_or(d.negatives).clamp(1, 8),
        }
    }

    fn to_hash(self) -> Vec<(&'static str, String)> {
        vec![
            ("lab.beta", self.beta.to_string()),
            ("lab.eps", self.eps.to_string()),
            ("lab.tau", self.tau.to_string()),
            ("lab.gamma", self.gamma.to_string()),
            ("lab.alpha", self.alpha.to_string()),
            ("lab.beta-prime", self.beta_prime.to_string()),
            ("lab.k", self.negatives.to_string()),
        ]
    }

    fn config(&self, kind: LossKind) -> LossConfig {
        LossConfig {
            beta: self.beta,
            eps: self.eps,
            tau: self.tau,
            gamma: self.gamma,
            alpha: self.alpha,
            beta_prime: self.beta_prime,
            // alpha-DPO's standardised gap: one standard deviation above the mean, so alpha
            // visibly moves its target margin.
            lab_gap: 1.0,
            ..LossConfig::new(kind)
        }
    }
}

/// The margin range every panel shares.
const X_RANGE: f64 = 6.0;
const POINTS: usize = 121;

/// What each loss reads, shown under its panel.
fn reads(kind: LossKind) -> &'static str {
    match kind {
        LossKind::Dpo | LossKind::BetaDpo => "beta",
        LossKind::Cdpo | LossKind::Rdpo => "beta, eps",
        LossKind::Rosepo => "beta, eps (each pair's own, from the oracle)",
        LossKind::Ipo => "tau",
        LossKind::Sdpo => "beta, K",
        LossKind::Simpo => "beta, gamma",
        LossKind::AlphaDpo => "beta, gamma, alpha",
        LossKind::DrDpo => "beta, beta'",
        LossKind::Orpo => "lambda (0.1)",
    }
}

/// Every loss's curve, with sliders.
#[function_component(LossLab)]
pub fn loss_lab(props: &LossLabProps) -> Html {
    let params = use_state(LabParams::from_hash);
    use_effect_with(*params, |p| hash::set(&p.to_hash()));
    let p = *params;
    let slider = |id: &'static str,
                  label: &'static str,
                  (min, max, step): (f64, f64, f64),
                  value: f64,
                  set: fn(&mut LabParams, f64)| {
        let params = params.clone();
        let oninput = Callback::from(move |e: InputEvent| {
            let input = e.target_unchecked_into::<HtmlInputElement>();
            if let Ok(v) = input.value().parse::<f64>() {
                let mut next = *params;
                set(&mut next, v);
                params.set(next);
            }
        });
        html! {
            <label class="slider">
                <span>{ label }<output for={ id }>{ format!("{value}") }</output></span>
                <input type="range" id={ id } min={ min.to_string() } max={ max.to_string() } step={ step.to_string() }
                    value={ value.to_string() } { oninput } />
            </label>
        }
    };
    let panels = LossKind::ALL.map(|kind| {
        let marker = props.batch.as_ref().filter(|b| b.kind == kind);
        panel(kind, &p, marker)
    });
    let margins: Vec<f64> = (0..p.negatives)
        .map(|k| {
            if p.negatives == 1 {
                0.0
            } else {
                -2.0 + 4.0 * k as f64 / (p.negatives - 1) as f64
            }
        })
        .collect();
    let weights = sdpo_negative_weights(p.beta, &margins);
    // Three losses on one scale to begin with (IPO's squared loss would dwarf them).
    let overlay = use_state(|| vec![LossKind::Dpo, LossKind::Cdpo, LossKind::Sdpo]);
    let toggle = |kind: LossKind| {
        let overlay = overlay.clone();
        Callback::from(move |_: Event| {
            let mut chosen = (*overlay).clone();
            if let Some(i) = chosen.iter().position(|k| *k == kind) {
                chosen.remove(i);
            } else {
                chosen.push(kind);
            }
            overlay.set(chosen);
        })
    };
    let xs: Vec<f64> = (0..POINTS)
        .map(|i| -X_RANGE + 2.0 * X_RANGE * i as f64 / (POINTS - 1) as f64)
        .collect();
    let overlay_series: Vec<Series> = LossKind::ALL
        .iter()
        .enumerate()
        .filter(|(_, k)| overlay.contains(k))
        .map(|(i, &kind)| {
            let config = p.config(kind);
            let losses = xs
                .iter()
                .map(|&x| curve_point(&config, x, p.eps, p.negatives).loss)
                .collect();
            Series::new(
                &format!("overlay-{}", kind.name()),
                // Each loss keeps its colour whichever others are picked.
                &format!("series-{i}"),
                kind.label(),
                losses,
            )
            .at(xs.clone())
        })
        .collect();
    html! {
        <section class="card" id="loss-lab">
            <h2>{ "Loss lab" }</h2>
            <p class="meta">{ "Each panel: the loss of one pair (blue, left scale) and its gradient weight −dL/dh (green, right scale: how hard training pushes the margin up; below the dashed zero line it pulls back) against the margin h = r(chosen) − r(rejected), from −6 to 6. A dotted line marks the optimum where one exists. Each slider moves the losses that read it." }</p>
            <div class="sliders">
                { slider("lab-beta", "beta ", (0.1, 5.0, 0.1), p.beta, |p, v| p.beta = v) }
                { slider("lab-eps", "eps ", (0.0, 0.45, 0.01), p.eps, |p, v| p.eps = v) }
                { slider("lab-tau", "tau ", (0.05, 2.0, 0.05), p.tau, |p, v| p.tau = v) }
                { slider("lab-gamma", "gamma ", (0.0, 4.0, 0.1), p.gamma, |p, v| p.gamma = v) }
                { slider("lab-alpha", "alpha ", (0.0, 2.0, 0.05), p.alpha, |p, v| p.alpha = v) }
                { slider("lab-beta-prime", "beta' ", (0.1, 5.0, 0.1), p.beta_prime, |p, v| p.beta_prime = v) }
                { slider("lab-k", "K ", (1.0, 8.0, 1.0), p.negatives as f64, |p, v| p.negatives = v.round().max(1.0) as usize) }
            </div>
            <div class="lab-grid">{ for panels }</div>
            <div id="lab-overlay">
                <h3>{ "Losses on one set of axes" }</h3>
                <fieldset class="strategies">
                    <legend>{ "Losses to compare" }</legend>
                    { for LossKind::ALL.iter().map(|&kind| html! {
                        <label class="check">
                            <input type="checkbox" id={ format!("overlay-pick-{}", kind.name()) }
                                checked={ overlay.contains(&kind) } onchange={ toggle(kind) } />
                            { format!(" {}", kind.label()) }
                        </label>
                    }) }
                </fieldset>
                if overlay_series.is_empty() {
                    <p class="meta">{ "Pick at least one loss." }</p>
                } else {
                    <LineChart id="lab-overlay-chart" aria="The chosen losses against the margin, on one scale"
                        x_label="margin h = r(chosen) − r(rejected)" y_label="loss of one pair" series={ overlay_series } />
                }
            </div>
            <figure class="sdpo-weights" id="sdpo-weights">
                <figcaption>{ format!("S-DPO: each negative's share of the gradient, K = {}, negatives at margins −2 … 2 (beta {}): the hardest negative, with the smallest margin, gets most.", p.negatives, p.beta) }</figcaption>
                <div class="bars">
                    { for margins.iter().zip(&weights).map(|(h, w)| html! {
                        <div class="bar" data-margin={ format!("{h}") } data-weight={ format!("{w}") }>
                            <span style={ format!("height:{:.1}%", 100.0 * w) } />
                            <em>{ format!("h {h:.1}: {:.0}%", 100.0 * w) }</em>
                        </div>
                    }) }
                </div>
            </figure>
            { eps_histogram(&props.eps) }
        </section>
    }
}

/// RosePO's smoothing factors of the run's pairs in ten bins over [0, 0.5).
fn eps_histogram(eps: &[f64]) -> Html {
    if eps.is_empty() {
        return Html::default();
    }
    const BINS: usize = 10;
    let mut counts = [0usize; BINS];
    for &e in eps {
        counts[((e / 0.05) as usize).min(BINS - 1)] += 1;
    }
    let most = counts.iter().copied().max().unwrap_or(1).max(1);
    let mean = eps.iter().sum::<f64>() / eps.len() as f64;
    html! {
        <figure class="sdpo-weights" id="rosepo-eps" data-values={ eps.iter().map(|e| format!("{e:.6}")).collect::<Vec<_>>().join(",") }>
            <figcaption>{ format!("RosePO: the oracle's smoothing factor eps of the run's {} pairs (mean {mean:.3}). Pairs the oracle doubts get a larger eps, so their optimum margin ln((1 − eps)/eps)/beta is smaller.", eps.len()) }</figcaption>
            <div class="bars">
                { for counts.iter().enumerate().map(|(i, &c)| html! {
                    <div class="bar" data-count={ c.to_string() }>
                        <span style={ format!("height:{:.1}%", 100.0 * c as f64 / most as f64) } />
                        <em>{ format!("{:.2}–{:.2}: {c}", 0.05 * i as f64, 0.05 * (i + 1) as f64) }</em>
                    </div>
                }) }
            </div>
        </figure>
    }
}

/// One loss: curve, gradient weight, optimum and the training marker, as an SVG whose lines carry
/// their values (`data-values`) so tests can read what is drawn.
fn panel(kind: LossKind, p: &LabParams, batch: Option<&BatchMarker>) -> Html {
    // The margin axis below, the loss's scale on the left, the weight's on the right.
    const W: f64 = 260.0;
    const H: f64 = 150.0;
    let (left, right, top, bottom) = (30.0f64, 30.0f64, 6.0f64, 30.0f64);
    let (plot_w, plot_h) = (W - left - right, H - top - bottom);
    let config = p.config(kind);
    let xs: Vec<f64> = (0..POINTS)
        .map(|i| -X_RANGE + 2.0 * X_RANGE * i as f64 / (POINTS - 1) as f64)
        .collect();
    let points: Vec<_> = xs
        .iter()
        .map(|&x| curve_point(&config, x, p.eps, p.negatives))
        .collect();
    let sx = |x: f64| left + plot_w * (x + X_RANGE) / (2.0 * X_RANGE);
    let ticks = |values: &[f64]| {
        let finite = values.iter().copied().filter(|v| v.is_finite());
        let lo = finite.clone().fold(f64::INFINITY, f64::min).min(0.0);
        let hi = finite.fold(f64::NEG_INFINITY, f64::max).max(0.0);
        nice_ticks(lo, hi, 3, false)
    };
    let scale = |t: &Ticks| {
        let (lo, span) = (t.lo, t.hi - t.lo);
        move |v: f64| top + plot_h * (1.0 - (v - lo) / span)
    };
    let losses: Vec<f64> = points.iter().map(|c| c.loss).collect();
    let weights: Vec<f64> = points.iter().map(|c| c.weight).collect();
    let (loss_ticks, weight_ticks) = (ticks(&losses), ticks(&weights));
    let (sl, sw) = (scale(&loss_ticks), scale(&weight_ticks));
    let y_labels = |t: &Ticks, sy: &dyn Fn(f64) -> f64, x: f64, anchor: &'static str| {
        t.values
            .iter()
            .map(|&v| {
                html! {
                    <text x={ format!("{x:.1}") } y={ format!("{:.1}", sy(v) + 3.0) } text-anchor={ anchor }>{ t.label(v) }</text>
                }
            })
            .collect::<Html>()
    };
    let margin_ticks = [-X_RANGE, -X_RANGE / 2.0, 0.0, X_RANGE / 2.0, X_RANGE].map(|m| {
        html! {
            <text x={ format!("{:.1}", sx(m)) } y={ format!("{:.1}", top + plot_h + 12.0) } text-anchor="middle">{ format!("{m}") }</text>
        }
    });
    let line = |class: &'static str, values: &[f64], sy: &dyn Fn(f64) -> f64| {
        let pts: Vec<String> = xs
            .iter()
            .zip(values)
            .filter(|(_, v)| v.is_finite())
            .map(|(&x, &v)| format!("{:.1},{:.1}", sx(x), sy(v)))
            .collect();
        let data: Vec<String> = values.iter().map(|v| format!("{v:.6}")).collect();
        html! { <polyline class={ class } points={ pts.join(" ") } data-values={ data.join(",") } fill="none" /> }
    };
    let zero = sw(0.0);
    let best = optimum(&config, p.eps).filter(|x| x.abs() <= X_RANGE);
    let id = format!("lab-{}", kind.name());
    html! {
        <figure class="lab-panel" id={ id.clone() } data-optimum={ best.map(|x| format!("{x:.6}")).unwrap_or_default() }>
            <svg viewBox={ format!("0 0 {W} {H}") } role="img" aria-label={ format!("{} loss and gradient weight against the margin", kind.label()) }
                font-size="9" font-family="system-ui, sans-serif">
                <rect class="plot" x={ left.to_string() } y={ top.to_string() } width={ plot_w.to_string() } height={ plot_h.to_string() } fill="none" />
                <line class="axis" x1={ sx(0.0).to_string() } x2={ sx(0.0).to_string() } y1={ top.to_string() } y2={ (top + plot_h).to_string() } />
                <line class="zero" x1={ left.to_string() } x2={ (left + plot_w).to_string() } y1={ format!("{zero:.1}") } y2={ format!("{zero:.1}") } />
                { y_labels(&loss_ticks, &sl, left - 3.0, "end") }
                { y_labels(&weight_ticks, &sw, left + plot_w + 3.0, "start") }
                { for margin_ticks }
                <text class="axis-label" x={ format!("{:.1}", left + plot_w / 2.0) } y={ format!("{:.1}", H - 4.0) } text-anchor="middle">{ "margin h" }</text>
                { line("series-loss", &losses, &sl) }
                { line("series-weight", &weights, &sw) }
                if let Some(x) = best {
                    <line class="optimum" x1={ format!("{:.1}", sx(x)) } x2={ format!("{:.1}", sx(x)) } y1={ top.to_string() } y2={ (top + plot_h).to_string() } />
                }
                if let Some(b) = batch {
                    { for b.margins.iter().copied().filter(|m| m.is_finite()).map(|m| {
                        let m = m.clamp(-X_RANGE, X_RANGE);
                        html! { <circle class="batch-example" data-margin={ format!("{m}") } cx={ format!("{:.1}", sx(m)) } cy={ format!("{:.1}", sl(curve_point(&config, m, p.eps, p.negatives).loss)) } r="2.5" /> }
                    }) }
                    if b.mean.is_finite() && b.mean.abs() <= X_RANGE {
                        <circle class="batch" cx={ format!("{:.1}", sx(b.mean)) } cy={ format!("{:.1}", sl(curve_point(&config, b.mean, p.eps, p.negatives).loss)) } r="4" />
                    }
                }
            </svg>
            <figcaption>
                <strong>{ kind.label() }</strong>
                <span class="muted">{ format!(" · reads {}", reads(kind)) }</span>
                if let Some(x) = best {
                    <span class="muted">{ format!(" · optimum h* = {x:.2}") }</span>
                }
                if let Some(b) = batch {
                    <span class="muted">{ format!(" · training step: {} examples, mean margin {:.3}", b.margins.len(), b.mean) }</span>
                }
            </figcaption>
        </figure>
    }
}
