//! The Align card: LoRA SFT and preference training in the worker with the core trainers, live
//! step reports with a chart and an ETA, and the choice of adapter that ranking uses.

use recalign_core::data::pairs::RejectStrategy;
use recalign_core::losses::{LossConfig, LossKind};
use recalign_core::train::LoraTargets;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::align_form::{AlignForm, strategy_id, strategy_label};
use super::training_view::{quick_summary, training_view};
use super::{RunsView, files, use_page};
use crate::hash;
use crate::protocol::Request;
use crate::state::{Action, AlignState, DataState, ModelState, StorageState};

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
