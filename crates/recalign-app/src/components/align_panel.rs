//! The Align card: LoRA SFT and preference training in the worker with the core trainers, live
//! step reports with a chart and an ETA, and the choice of adapter that ranking uses.

use recalign_core::data::pairs::RejectStrategy;
use recalign_core::losses::{LossConfig, LossKind};
use recalign_core::prompt::PromptFormat;
use recalign_core::train::{LoraSettings, LoraTargets, StepReport, TrainSettings};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::chart::{LineChart, Series};
use super::{RunsView, files, use_page};
use crate::hash;
use crate::protocol::{Request, TrainRequest, TrainStage, ValidationPoint};
use crate::state::{Action, AlignState, DataState, ModelState, StorageState, TrainingView};

/// Props of [`AlignPanel`].
#[derive(Properties, PartialEq)]
pub struct AlignPanelProps {
    /// The model, its device and busy requests.
    pub model: ModelState,
    /// The dataset, oracle, test user and preference file.
    pub data: DataState,
    /// The training run and the adapters.
    pub align: AlignState,
    /// What this browser stores.
    pub storage: StorageState,
}

/// The training form. Defaults suit a short demo of the real model on a laptop: batch 1 keeps a
/// SmolLM2 step well inside wasm32's 4 GiB (batch 4 peaks at 5.6 GiB natively), and
/// accumulation 2 still averages two prompts per step.
#[derive(Clone, Debug, PartialEq)]
struct AlignForm {
    preference: bool,
    loss: LossKind,
    beta: f64,
    negatives: usize,
    strategies: Vec<RejectStrategy>,
    prompts: usize,
    steps: usize,
    batch: usize,
    accumulation: usize,
    learning_rate: f64,
    rank: usize,
    targets: LoraTargets,
    seed: u64,
    checkpoint_every: usize,
    imported_pairs: bool,
    validate_every: usize,
    validate_users: usize,
    /// Compact prompt (sequence SFT) instead of LLaRA's.
    compact: bool,
    /// LoRA on the top N layers only (0: every layer).
    top_layers: usize,
    /// SFT with LLaRA's hybrid item tokens (the oracle's item vectors through a projector).
    hybrid: bool,
}

impl Default for AlignForm {
    fn default() -> Self {
        Self {
            preference: false,
            loss: LossKind::Dpo,
            beta: LossConfig::new(LossKind::Dpo).beta,
            negatives: 1,
            strategies: vec![RejectStrategy::Random],
            prompts: 16,
            steps: 8,
            batch: 1,
            accumulation: 2,
            learning_rate: 5e-4,
            rank: 8,
            targets: LoraTargets::QueryValue,
            seed: 2024,
            checkpoint_every: 1,
            imported_pairs: false,
            validate_every: 4,
            validate_users: 4,
            compact: false,
            top_layers: 0,
            hybrid: false,
        }
    }
}

impl AlignForm {
    /// The defaults, overridden by whatever the URL hash holds (`a.` keys).
    fn from_hash() -> Self {
        let d = Self::default();
        let loss = hash::get("a.loss")
            .and_then(|v| LossKind::parse(&v).ok())
            .unwrap_or(d.loss);
        let strategies: Vec<RejectStrategy> = hash::get("a.strategies")
            .map(|v| {
                v.split(',')
                    .filter_map(|n| {
                        RejectStrategy::ALL
                            .into_iter()
                            .find(|s| strategy_id(*s) == n)
                    })
                    .collect()
            })
            .filter(|v: &Vec<_>| !v.is_empty())
            .unwrap_or(d.strategies);
        Self {
            preference: hash::get("a.stage").map_or(d.preference, |v| v == "preference"),
            loss,
            beta: hash::parse("a.beta").unwrap_or_else(|| LossConfig::new(loss).beta),
            negatives: hash::parse("a.k").unwrap_or(d.negatives),
            strategies,
            prompts: hash::parse("a.prompts").unwrap_or(d.prompts),
            steps: hash::parse("a.steps").unwrap_or(d.steps),
            batch: hash::parse("a.batch").unwrap_or(d.batch),
            accumulation: hash::parse("a.accumulation").unwrap_or(d.accumulation),
            learning_rate: hash::parse("a.lr").unwrap_or(d.learning_rate),
            rank: hash::parse("a.rank").unwrap_or(d.rank),
            targets: match hash::get("a.targets").as_deref() {
                Some("all") => LoraTargets::AllLinear,
                Some("qv") => LoraTargets::QueryValue,
                _ => d.targets,
            },
            seed: hash::parse("a.seed").unwrap_or(d.seed),
            checkpoint_every: hash::parse("a.checkpoint").unwrap_or(d.checkpoint_every),
            imported_pairs: hash::get("a.pairs").is_some_and(|v| v == "file"),
            validate_every: hash::parse("a.validate").unwrap_or(d.validate_every),
            validate_users: hash::parse("a.vusers").unwrap_or(d.validate_users),
            compact: hash::get("a.prompt").map_or(d.compact, |v| v == "compact"),
            top_layers: hash::parse("a.top").unwrap_or(d.top_layers),
            hybrid: hash::get("a.hybrid").is_some_and(|v| v == "1"),
        }
    }

    /// Quick align: the native recipe (sequence SFT in the compact prompt, LoRA r 8 on every
    /// linear layer of the top 8 blocks, batch 4) cut to 48 steps on 192 training histories,
    /// so the CPU device in one wasm thread finishes in minutes; validation before, midway and
    /// at the end shows where HR@1 went. Its learning rate is the short runs' (docs/alignment.md,
    /// the SFT learning-rate sweep at 200 steps), not the long recipe's 1e-3.
    fn quick(layers: usize) -> Self {
        Self {
            preference: false,
            prompts: 192,
            steps: 48,
            batch: 4,
            accumulation: 1,
            learning_rate: 5e-3,
            rank: 8,
            targets: LoraTargets::AllLinear,
            checkpoint_every: 8,
            validate_every: 24,
            validate_users: 24,
            compact: true,
            // A smaller model (the tests' tiny one) is adapted in every layer.
            top_layers: 8.min(layers),
            ..Self::default()
        }
    }

    /// The walk-through's preference step: RosePO from the quick SFT adapter, on pairs whose
    /// rejected answer is the model's own top mistake (helpfulness) or a popular title
    /// (harmlessness), smoothed by the SASRec oracle; 24 steps of 4 at the gentle rate that kept
    /// SFT's accuracy natively (docs/alignment.md, "A gentler preference stage").
    fn quick_rosepo(layers: usize) -> Self {
        Self {
            preference: true,
            loss: LossKind::Rosepo,
            beta: 1.0,
            strategies: vec![RejectStrategy::SelfHard, RejectStrategy::Popular],
            prompts: 96,
            steps: 24,
            learning_rate: 5e-5,
            validate_every: 24,
            ..Self::quick(layers)
        }
    }

    /// The form as hash pairs.
    fn to_hash(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "a.stage",
                if self.preference { "preference" } else { "sft" }.into(),
            ),
            ("a.loss", self.loss.name().into()),
            ("a.beta", self.beta.to_string()),
            ("a.k", self.negatives.to_string()),
            (
                "a.strategies",
                self.strategies
                    .iter()
                    .map(|s| strategy_id(*s))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("a.prompts", self.prompts.to_string()),
            ("a.steps", self.steps.to_string()),
            ("a.batch", self.batch.to_string()),
            ("a.accumulation", self.accumulation.to_string()),
            ("a.lr", self.learning_rate.to_string()),
            ("a.rank", self.rank.to_string()),
            (
                "a.targets",
                match self.targets {
                    LoraTargets::AllLinear => "all",
                    LoraTargets::QueryValue => "qv",
                }
                .into(),
            ),
            ("a.seed", self.seed.to_string()),
            (
                "a.prompt",
                if self.compact { "compact" } else { "llara" }.into(),
            ),
            ("a.top", self.top_layers.to_string()),
            ("a.hybrid", u8::from(self.hybrid).to_string()),
            ("a.checkpoint", self.checkpoint_every.to_string()),
            (
                "a.pairs",
                if self.imported_pairs {
                    "file"
                } else {
                    "sample"
                }
                .into(),
            ),
        ]
    }

    fn request(&self) -> TrainRequest {
        let stage = if self.preference {
            let mut loss = LossConfig::new(self.loss);
            loss.beta = self.beta;
            TrainStage::Preference {
                loss,
                strategies: self.strategies.clone(),
                negatives: self.negatives,
                imported_pairs: self.imported_pairs,
            }
        } else {
            TrainStage::Sft
        };
        TrainRequest {
            stage,
            prompts: self.prompts,
            lora: LoraSettings {
                rank: self.rank,
                alpha: 2.0 * self.rank as f64,
                targets: self.targets,
                top_layers: self.top_layers,
                ..LoraSettings::default()
            },
            settings: TrainSettings {
                learning_rate: self.learning_rate,
                warmup_steps: (self.steps / 10).max(1).min(self.steps.saturating_sub(1)),
                steps: self.steps,
                batch_size: self.batch,
                accumulation: self.accumulation,
                seed: self.seed,
                ..TrainSettings::default()
            },
            checkpoint_every: self.checkpoint_every,
            validate_every: self.validate_every,
            validate_users: self.validate_users,
            format: if self.compact {
                PromptFormat::Compact
            } else {
                PromptFormat::Llara
            },
            hybrid: self.hybrid && !self.preference,
        }
    }
}

/// Quick align's SFT run, for a model of `layers` blocks (the walk-through's third step).
pub fn quick_sft_request(layers: usize) -> TrainRequest {
    AlignForm::quick(layers).request()
}

/// The walk-through's RosePO run after [`quick_sft_request`].
pub fn quick_rosepo_request(layers: usize) -> TrainRequest {
    AlignForm::quick_rosepo(layers).request()
}

fn strategy_label(s: RejectStrategy) -> &'static str {
    match s {
        RejectStrategy::Random => "random",
        RejectStrategy::Popular => "popular (harmlessness: popularity bias)",
        RejectStrategy::SemanticSimilar => "similar title (harmlessness: hallucination)",
        RejectStrategy::SelfHard => "self-hard (helpfulness: the model's top mistake)",
    }
}

fn strategy_id(s: RejectStrategy) -> &'static str {
    match s {
        RejectStrategy::Random => "random",
        RejectStrategy::Popular => "popular",
        RejectStrategy::SemanticSimilar => "semantic-similar",
        RejectStrategy::SelfHard => "self-hard",
    }
}

/// Stage, loss, sampling, LoRA and optimiser settings; start and cancel; live reports.
#[function_component(AlignPanel)]
pub fn align_panel(props: &AlignPanelProps) -> Html {
    let page = use_page();
    let form = use_state(AlignForm::from_hash);
    use_effect_with((*form).clone(), |f| hash::set(&f.to_hash()));
    let running = props.align.running();
    // Training needs the dataset, except a preference run on a loaded JSONL's pairs.
    let inputs_ready = if form.preference && form.imported_pairs {
        props.data.pairs_file.is_some()
    } else {
        props.data.dataset.is_some()
    };
    let can_start = props.model.ready() && inputs_ready && !running && !props.model.busy();

    // One editor per field: parse, and keep the previous value when the text does not parse.
    let edit = |apply: fn(&mut AlignForm, &str)| {
        let form = form.clone();
        Callback::from(move |e: Event| {
            let value = e
                .target_dyn_into::<HtmlInputElement>()
                .map(|i| i.value())
                .or_else(|| e.target_dyn_into::<HtmlSelectElement>().map(|s| s.value()))
                .unwrap_or_default();
            let mut f = (*form).clone();
            apply(&mut f, value.trim());
            form.set(f);
        })
    };
    let start = {
        let (form, send, dispatch) = (form.clone(), page.send.clone(), page.dispatch.clone());
        Callback::from(move |_| {
            let request = form.request();
            dispatch.emit(Action::TrainStarted {
                stage: request.stage.clone(),
                planned: request.settings.steps,
            });
            send.emit(Request::Train(Box::new(request)));
        })
    };
    let layers = props.model.info.as_ref().map_or(8, |m| m.layers);
    let quick = {
        let (form, send, dispatch) = (form.clone(), page.send.clone(), page.dispatch.clone());
        Callback::from(move |_| {
            // The preset becomes the form, so what ran stays visible and editable.
            let preset = AlignForm {
                seed: form.seed,
                ..AlignForm::quick(layers)
            };
            let request = preset.request();
            form.set(preset);
            dispatch.emit(Action::TrainStarted {
                stage: request.stage.clone(),
                planned: request.settings.steps,
            });
            send.emit(Request::Train(Box::new(request)));
        })
    };
    let cancel = {
        let (send, dispatch) = (page.send.clone(), page.dispatch.clone());
        Callback::from(move |_| {
            dispatch.emit(Action::CancelRequested);
            send.emit(Request::CancelTraining);
        })
    };
    // Held, or asked to hold: the button then offers to go on.
    let holding = props
        .align
        .training
        .as_ref()
        .is_some_and(|t| t.pausing.unwrap_or(t.paused));
    let pause = {
        let (send, dispatch) = (page.send.clone(), page.dispatch.clone());
        Callback::from(move |_| {
            dispatch.emit(Action::PauseRequested(!holding));
            send.emit(Request::PauseTraining(!holding));
        })
    };
    let export = {
        let (send, index) = (page.send.clone(), props.align.adapter_in_use);
        Callback::from(move |_| {
            if let Some(index) = index {
                send.emit(Request::ExportAdapter { index });
            }
        })
    };
    let import = {
        let (send, dispatch) = (page.send.clone(), page.dispatch.clone());
        Callback::from(move |e: Event| {
            let files = files::picked(&e);
            // Picking the same files again must fire `change` again.
            if let Some(input) = e.target_dyn_into::<HtmlInputElement>() {
                input.set_value("");
            }
            let (configs, weights): (Vec<_>, Vec<_>) = files
                .into_iter()
                .partition(|f| f.name().to_lowercase().ends_with(".json"));
            let (Some(weights), true) = (weights.into_iter().next(), configs.len() <= 1) else {
                dispatch.emit(Action::Error(
                    "Pick an adapter's .safetensors file, and optionally its adapter_config.json."
                        .into(),
                ));
                return;
            };
            let send = send.clone();
            let dispatch = dispatch.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let name = weights.name();
                let (bytes, config) =
                    match files::read_pair(weights, configs.into_iter().next()).await {
                        Ok(b) => b,
                        Err(e) => return dispatch.emit(Action::Error(e)),
                    };
                send.emit(Request::ImportAdapter {
                    name,
                    bytes,
                    config,
                });
            });
        })
    };
    // A preference JSONL picked, or dropped on the card.
    let read_pairs = {
        let (send, dispatch) = (page.send.clone(), page.dispatch.clone());
        Callback::from(move |file: web_sys::File| {
            files::read_and_send(file, send.clone(), dispatch.clone(), |name, bytes| {
                Request::LoadPairs { name, bytes }
            });
        })
    };
    let load_pairs = files::on_pick(read_pairs.clone());
    let on_drop = {
        let (form, read_pairs, dispatch) =
            (form.clone(), read_pairs.clone(), page.dispatch.clone());
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            let Some(file) = files::dropped(&e).into_iter().next() else {
                return;
            };
            let name = file.name().to_lowercase();
            if !(name.ends_with(".jsonl") || name.ends_with(".json")) {
                dispatch.emit(Action::Error(format!(
                    "{}: the Align card takes a preference JSONL; drop a model on the Model card and a dataset on the Data card",
                    file.name()
                )));
                return;
            }
            if !running {
                // Dropped pairs are the ones to train on.
                let mut f = (*form).clone();
                f.preference = true;
                f.imported_pairs = true;
                form.set(f);
                read_pairs.emit(file);
            }
        })
    };
    let on_drag_over = Callback::from(|e: DragEvent| e.prevent_default());
    let choose_adapter = {
        let send = page.send.clone();
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            send.emit(Request::UseAdapter {
                index: value.parse::<usize>().ok(),
            });
        })
    };

    let f = &*form;
    let number = |id: &'static str,
                  label: &'static str,
                  value: String,
                  apply: fn(&mut AlignForm, &str)| {
        html! {
            <label class="field">{ label }
                <input type="text" inputmode="decimal" id={ id } value={ value } onchange={ edit(apply) } disabled={ running } />
            </label>
        }
    };
    let loss_options = LossKind::ALL.iter().map(|k| {
        html! { <option value={ k.name() } selected={ *k == f.loss }>{ k.label() }</option> }
    });
    let strategy_boxes = RejectStrategy::ALL.iter().map(|&s| {
        let form = form.clone();
        let on = f.strategies.contains(&s);
        let toggle = Callback::from(move |_| {
            let mut f = (*form).clone();
            if f.strategies.contains(&s) {
                // At least one strategy stays selected.
                if f.strategies.len() > 1 {
                    f.strategies.retain(|&x| x != s);
                }
            } else {
                f.strategies.push(s);
            }
            form.set(f);
        });
        html! {
            <label class="check">
                <input type="checkbox" id={ format!("train-strategy-{}", strategy_id(s)) } checked={ on } onchange={ toggle } disabled={ running } />
                { format!(" {}", strategy_label(s)) }
            </label>
        }
    });
    let preference_fields = f.preference.then(|| html! {
        <>
        <div class="fields">
            <label class="field">{ "Loss" }
                <select id="train-loss" onchange={ edit(|f, v| {
                    if let Ok(k) = LossKind::parse(v) {
                        f.loss = k;
                        f.beta = LossConfig::new(k).beta;
                        // S-DPO compares against several rejected answers at once.
                        if k == LossKind::Sdpo && f.negatives < 2 {
                            f.negatives = 3;
                        }
                    }
                }) } disabled={ running }>{ for loss_options }</select>
            </label>
            { number("train-beta", "beta", f.beta.to_string(), |f, v| if let Ok(x) = v.parse() { f.beta = x }) }
            { number("train-negatives", "Rejected per pair (K)", f.negatives.to_string(), |f, v| if let Ok(x) = v.parse() { f.negatives = x }) }
        </div>
        <div class="fields">
            <label class="field">{ "Pairs" }
                <select id="train-pairs" onchange={ edit(|f, v| f.imported_pairs = v == "file") } disabled={ running }>
                    <option value="sample" selected={ !f.imported_pairs }>{ "sampled from the dataset" }</option>
                    <option value="file" selected={ f.imported_pairs }>{ "from a preference JSONL" }</option>
                </select>
            </label>
        </div>
        if f.imported_pairs {
            <label class="file">
                { "Preference JSONL (TRL's prompt, chosen, rejected per line; recalign's eps and more_rejected optional; or drop it on this card): " }
                <input type="file" id="pairs-file" accept=".jsonl,.json,application/jsonl" onchange={ load_pairs } disabled={ running } />
            </label>
            if let Some((name, n, smoothed, k)) = &props.data.pairs_file {
                <p class="meta" id="pairs-info">{ format!("{name}: {n} pairs, {smoothed} with RosePO's eps, up to {k} rejected per pair.") }</p>
            }
        } else {
            <fieldset class="strategies">
                <legend>{ "Rejected sampling (one pair per strategy per prompt)" }</legend>
                { for strategy_boxes }
            </fieldset>
        }
        if f.loss == LossKind::Rosepo && props.data.oracle.is_none() && !f.imported_pairs {
            <p class="hint">{ "RosePO smooths each pair with the SASRec oracle: train the oracle in the Data card first." }</p>
        }
        </>
    });

    let adapters = html! {
        <label class="field" id="adapter-choice">{ "Rank and generate with" }
            <select id="adapter-select" onchange={ choose_adapter } disabled={ running || props.model.busy() }>
                <option value="base" selected={ props.align.adapter_in_use.is_none() }>{ "base model" }</option>
                { for props.align.adapters.iter().enumerate().map(|(i, name)| html! {
                    <option value={ i.to_string() } selected={ props.align.adapter_in_use == Some(i) }>{ name.clone() }</option>
                }) }
            </select>
        </label>
    };

    html! {
        <section class="card drop-target" id="align-card" ondrop={ on_drop } ondragover={ on_drag_over }>
            <h2>{ "Align" }</h2>
            <p class="meta">{ "LoRA adapters trained here, on this device, with the same code as the command line. SFT teaches the answer format; a preference stage then starts from the latest SFT adapter, which is also its frozen reference." }</p>
            <div class="fields">
                <label class="field">{ "Stage" }
                    <select id="train-stage" onchange={ edit(|f, v| f.preference = v == "preference") } disabled={ running }>
                        <option value="sft" selected={ !f.preference }>{ "SFT" }</option>
                        <option value="preference" selected={ f.preference }>{ "Preference" }</option>
                    </select>
                </label>
                <label class="field">{ "Prompt" }
                    <select id="train-prompt" onchange={ edit(|f, v| f.compact = v == "compact") } disabled={ running }>
                        <option value="compact" selected={ f.compact }>{ "compact (history as lines; SFT on every title)" }</option>
                        <option value="llara" selected={ !f.compact }>{ "LLaRA (candidate list; one target per prompt)" }</option>
                    </select>
                </label>
                { number("train-prompts", if f.compact && !f.preference { "Training histories" } else { "Training prompts" }, f.prompts.to_string(), |f, v| if let Ok(x) = v.parse() { f.prompts = x }) }
                { number("train-steps", "Steps", f.steps.to_string(), |f, v| if let Ok(x) = v.parse() { f.steps = x }) }
                { number("train-batch", "Batch", f.batch.to_string(), |f, v| if let Ok(x) = v.parse() { f.batch = x }) }
                { number("train-accumulation", "Accumulation", f.accumulation.to_string(), |f, v| if let Ok(x) = v.parse() { f.accumulation = x }) }
                { number("train-lr", "Learning rate", f.learning_rate.to_string(), |f, v| if let Ok(x) = v.parse() { f.learning_rate = x }) }
                { number("train-rank", "LoRA rank", f.rank.to_string(), |f, v| if let Ok(x) = v.parse() { f.rank = x }) }
                <label class="field">{ "LoRA on" }
                    <select id="train-targets" onchange={ edit(|f, v| f.targets = if v == "all" { LoraTargets::AllLinear } else { LoraTargets::QueryValue }) } disabled={ running }>
                        <option value="qv" selected={ f.targets == LoraTargets::QueryValue }>{ "q, v projections" }</option>
                        <option value="all" selected={ f.targets == LoraTargets::AllLinear }>{ "all linear layers" }</option>
                    </select>
                </label>
                <label class="field">{ "Item tokens" }
                    <select id="train-hybrid" aria-describedby="train-hybrid-help" onchange={ edit(|f, v| f.hybrid = v == "hybrid") } disabled={ running || f.preference }>
                        <option value="text" selected={ !f.hybrid }>{ "titles only" }</option>
                        <option value="hybrid" selected={ f.hybrid }>{ "hybrid: titles + SASRec item vectors (LLaRA)" }</option>
                    </select>
                    <span id="train-hybrid-help" class="meta">{ "SFT only; trains the SASRec oracle first if the Data card has not. A preference run from a hybrid adapter keeps its item tokens." }</span>
                </label>
                { number("train-top-layers", "LoRA on the top N layers (0: all)", f.top_layers.to_string(), |f, v| if let Ok(x) = v.parse() { f.top_layers = x }) }
                { number("train-seed", "Seed", f.seed.to_string(), |f, v| if let Ok(x) = v.parse() { f.seed = x }) }
                { number("train-checkpoint", "Checkpoint every (steps; 0: never)", f.checkpoint_every.to_string(), |f, v| if let Ok(x) = v.parse() { f.checkpoint_every = x }) }
                { number("train-validate", "Validate every (steps; 0: never)", f.validate_every.to_string(), |f, v| if let Ok(x) = v.parse() { f.validate_every = x }) }
                { number("train-validate-users", "Validation users", f.validate_users.to_string(), |f, v| if let Ok(x) = v.parse() { f.validate_users = x }) }
            </div>
            { preference_fields.unwrap_or_default() }
            <div class="quick" id="quick-align">
                <button id="quick-align-start" class="primary" onclick={ quick } disabled={ !can_start }>{ "Quick align" }</button>
                <span class="meta">{ quick_summary(&AlignForm::quick(layers)) }</span>
            </div>
            <div class="actions">
                <button id="train-start" class="primary" onclick={ start } disabled={ !can_start }>
                    { if f.preference { format!("Train {}", f.loss.label()) } else { "Train SFT".to_string() } }
                </button>
                <button id="train-pause" onclick={ pause } disabled={ !running }>{ if holding { "Resume" } else { "Pause" } }</button>
                <button id="train-cancel" onclick={ cancel } disabled={ !running || props.align.training.as_ref().is_some_and(|t| t.cancelling) }>{ "Cancel" }</button>
                { adapters }
                <button id="adapter-export" onclick={ export } disabled={ running || props.align.adapter_in_use.is_none() }>{ "Export (PEFT)" }</button>
            </div>
            <label class="file">
                { "Import an adapter (adapter_model.safetensors, with its adapter_config.json if you have it): " }
                <input type="file" id="adapter-files" multiple=true accept=".safetensors,.json" onchange={ import } disabled={ running || !props.model.ready() } />
            </label>
            if let Some(n) = &props.align.notice {
                <p class="hint" id="adapter-notice">{ n }</p>
            }
            if !props.model.ready() || !inputs_ready {
                <p class="hint">{ if f.preference && f.imported_pairs { "Training needs the model and a preference JSONL loaded." } else { "Training needs the model and a dataset loaded." } }</p>
            }
            { props.align.training.as_ref().map(training_view).unwrap_or_default() }
            <RunsView model={ props.model.clone() } storage={ props.storage.clone() } {running} />
        </section>
    }
}

/// What Quick align runs, read from its preset so the card cannot disagree with it, and what it
/// took on the real model (docs/alignment.md, "Training in the page").
fn quick_summary(q: &AlignForm) -> String {
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
fn training_view(t: &TrainingView) -> Html {
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
