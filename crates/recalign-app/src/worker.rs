//! The model worker: picks the device, loads the GGUF from the same origin with progress, and
//! answers ranking, generation, training, evaluation and adapter requests. It runs in a
//! dedicated Web Worker, so its long synchronous steps (dequantising weights, training steps)
//! never freeze the page.

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::Device;
use gloo_worker::{HandlerId, Worker, WorkerScope};
use js_sys::Uint8Array;
use recalign_core::eval::named_candidate;
use recalign_core::prompt::recommendation_prompt;
use recalign_core::{LanguageModel, ScoreOptions};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::protocol::{
    DataSource, DatasetInfo, DeviceKind, DevicePreference, ModelInfo, OracleSummary, Request,
    Response, TrainRequest, TrainStage, TrainSummary,
};
use recalign_core::data::formats::{self, Dataset, DatasetFormat};
use recalign_core::data::pairs::{Mixture, PairConfig, RejectStrategy};
use recalign_core::data::split::{self, SplitConfig, Splits};
use recalign_core::data::stats::split_stats;
use recalign_core::data::{Domain, InteractionLog};
use recalign_core::losses::LossKind;
use recalign_core::oracle::sasrec::{
    SasRecConfig, SasRecOracle, SasRecTrainer, SasRecTraining, catalogue_fingerprint,
};
use recalign_core::oracle::{candidate_metrics, constant_scores, popularity_scores};
use recalign_core::train::data::{self as train_data, PairScores};
use recalign_core::train::{
    Adapter, PreferenceTrainer, SftTrainer, Trainer, reference_log_probs, with_adapter,
};

/// The worker's state, shared with the futures it spawns.
#[derive(Default)]
struct Shared {
    device: Option<Device>,
    /// The base model as loaded.
    model: Option<LanguageModel>,
    data: Option<Rc<(InteractionLog, Splits)>>,
    /// The SASRec oracle trained on the loaded dataset (RosePO's smoothing).
    oracle: Option<SasRecOracle>,
    /// Adapters trained in this session, oldest first.
    adapters: Vec<TrainedAdapter>,
    /// The base model with the adapter in use, when one is (ranking and generation use it).
    with_adapter: Option<(usize, LanguageModel)>,
    /// A training run is going.
    training: bool,
    /// The user asked the running training to stop.
    cancel: bool,
    /// The user holds the running training between steps.
    paused: bool,
}

/// An adapter trained (or imported) in this session.
struct TrainedAdapter {
    name: String,
    /// How it was trained; `None` when imported.
    stage: Option<TrainStage>,
    adapter: Adapter,
}

/// The model host (a `gloo-worker` actor).
pub struct ModelWorker {
    shared: Rc<RefCell<Shared>>,
}

impl Worker for ModelWorker {
    type Message = ();
    type Input = Request;
    type Output = Response;

    fn create(_scope: &WorkerScope<Self>) -> Self {
        console_error_panic_hook::set_once();
        Self {
            shared: Rc::default(),
        }
    }

    fn update(&mut self, _scope: &WorkerScope<Self>, _msg: ()) {}

    fn received(&mut self, scope: &WorkerScope<Self>, request: Request, id: HandlerId) {
        let (scope, shared) = (scope.clone(), self.shared.clone());
        wasm_bindgen_futures::spawn_local(async move {
            let reply = |r: Response| scope.respond(id, r);
            let data_request = matches!(
                request,
                Request::LoadDataset(_) | Request::TrainOracle { .. } | Request::TestUser { .. }
            );
            let train_request = matches!(request, Request::Train(_) | Request::Evaluate { .. });
            if let Err((during, message)) = handle(request, &shared, &reply).await {
                reply(if data_request {
                    Response::DataFailed { during, message }
                } else if train_request {
                    Response::TrainFailed { during, message }
                } else {
                    Response::Failed { during, message }
                });
            }
        });
    }
}

type Failure = (String, String);

fn now_ms() -> f64 {
    js_sys::global()
        .dyn_into::<web_sys::WorkerGlobalScope>()
        .ok()
        .and_then(|g| g.performance())
        .map_or(0.0, |p| p.now())
}

fn js_error(v: JsValue) -> String {
    v.as_string()
        .or_else(|| {
            v.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{v:?}"))
}

async fn handle(
    request: Request,
    shared: &Rc<RefCell<Shared>>,
    reply: &dyn Fn(Response),
) -> Result<(), Failure> {
    match request {
        Request::LoadDataset(source) => load_dataset(shared, source, reply)
            .await
            .map_err(|m| ("loading the dataset".to_string(), m)),
        Request::TrainOracle {
            epochs,
            learning_rate,
        } => train_oracle(shared, epochs, learning_rate, reply)
            .await
            .map_err(|m| ("training the SASRec oracle".to_string(), m)),
        Request::TestUser { index } => {
            let data = dataset(shared).map_err(|m| ("picking a test user".to_string(), m))?;
            let (log, splits) = &*data;
            let test = &splits.test;
            if test.is_empty() {
                return Err((
                    "picking a test user".into(),
                    "the test split is empty".into(),
                ));
            }
            let index = index % test.len();
            let e = &test[index];
            reply(Response::TestUser {
                index,
                history: log.catalogue.titles(&e.history),
                candidates: log.catalogue.titles(&e.candidates),
                target: log.catalogue.title(e.target).to_string(),
            });
            Ok(())
        }
        Request::Train(request) => train(shared, *request, reply).await,
        Request::CancelTraining => {
            let mut s = shared.borrow_mut();
            s.cancel = s.training;
            Ok(())
        }
        Request::PauseTraining(pause) => {
            // The training loop confirms (`TrainPaused`) when it actually holds or goes on.
            let mut s = shared.borrow_mut();
            s.paused = pause && s.training;
            Ok(())
        }
        Request::ExportAdapter { index } => {
            let fail = |m: String| ("exporting the adapter".to_string(), m);
            let (name, adapter) = {
                let s = shared.borrow();
                let a = s
                    .adapters
                    .get(index)
                    .ok_or_else(|| fail(format!("there is no adapter #{}", index + 1)))?;
                (a.name.clone(), a.adapter.clone())
            };
            let safetensors = adapter.to_safetensors().map_err(|e| fail(e.to_string()))?;
            let config = serde_json::to_string_pretty(&adapter.peft_config())
                .map_err(|e| fail(e.to_string()))?;
            reply(Response::AdapterExported {
                name,
                safetensors,
                config,
            });
            Ok(())
        }
        Request::ImportAdapter {
            name,
            bytes,
            config,
        } => {
            let fail = |m: String| (format!("importing {name}"), m);
            let config = config
                .map(|c| serde_json::from_slice::<serde_json::Value>(&c))
                .transpose()
                .map_err(|e| fail(format!("adapter_config.json is not valid JSON: {e}")))?;
            let adapter = Adapter::from_safetensors(&bytes, config.as_ref())
                .map_err(|e| fail(e.to_string()))?;
            let base = base_model(shared).map_err(fail)?;
            // Refuse an adapter that does not fit the loaded model before listing it.
            let lm = with_adapter(&base, &adapter)
                .map_err(|e| fail(format!("it does not fit the loaded model: {e}")))?;
            let stem = name.trim_end_matches(".safetensors").to_string();
            let index = {
                let mut s = shared.borrow_mut();
                s.adapters.push(TrainedAdapter {
                    name: format!("{stem} (imported)"),
                    stage: None,
                    adapter,
                });
                let index = s.adapters.len() - 1;
                s.with_adapter = Some((index, lm));
                index
            };
            let name = shared.borrow().adapters[index].name.clone();
            reply(Response::AdapterAdded { index, name });
            reply(Response::AdapterInUse { index: Some(index) });
            Ok(())
        }
        Request::Evaluate {
            split,
            users,
            generate,
        } => evaluate_model(shared, split, users, generate, reply)
            .await
            .map_err(|m| (format!("evaluating on the {} split", split.name()), m)),
        Request::UseAdapter { index } => {
            use_adapter(shared, index).map_err(|m| ("switching the adapter".to_string(), m))?;
            reply(Response::AdapterInUse { index });
            Ok(())
        }
        Request::LoadUrl { url, device } => {
            let fail = |m: String| ("loading the model".to_string(), m);
            ensure_device(shared, device, reply).await;
            let progress = |done, total| {
                reply(Response::Progress {
                    stage: "Downloading the model".into(),
                    done,
                    total,
                })
            };
            let bytes = download(&url, &progress).await.map_err(fail)?;
            let name = url.rsplit('/').next().unwrap_or(&url).to_string();
            load(shared, name, bytes, reply).map_err(fail)
        }
        Request::LoadBytes { name, bytes } => {
            ensure_device(shared, DevicePreference::Auto, reply).await;
            load(shared, name, bytes, reply).map_err(|m| ("loading your model file".into(), m))
        }
        Request::Rank {
            history,
            candidates,
            length_normalised,
        } => {
            let lm = model(shared).map_err(|m| ("ranking".to_string(), m))?;
            let t = now_ms();
            let ranking = lm
                .rank(&history, &candidates, ScoreOptions { length_normalised })
                .await
                .map_err(|e| ("ranking".to_string(), e.to_string()))?;
            reply(Response::Ranked {
                ranking,
                ms: now_ms() - t,
            });
            Ok(())
        }
        Request::Generate {
            history,
            candidates,
            max_new_tokens,
        } => {
            let fail = |m: String| ("generating".to_string(), m);
            let lm = model(shared).map_err(fail)?;
            let t = now_ms();
            let prompt = lm
                .tokenizer
                .encode(&recommendation_prompt(&history, &candidates))
                .map_err(|e| fail(e.to_string()))?;
            let generation = lm
                .generate(&prompt, max_new_tokens)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let named = named_candidate(&generation.text, &candidates);
            reply(Response::Generated {
                generation,
                named,
                ms: now_ms() - t,
            });
            Ok(())
        }
    }
}

/// The model ranking and generation use: the base model with the adapter in use, if any.
fn model(shared: &Rc<RefCell<Shared>>) -> Result<LanguageModel, String> {
    let s = shared.borrow();
    s.with_adapter
        .as_ref()
        .map(|(_, lm)| lm.clone())
        .or_else(|| s.model.clone())
        .ok_or_else(|| "no model is loaded yet".to_string())
}

/// The base model, without adapters.
fn base_model(shared: &Rc<RefCell<Shared>>) -> Result<LanguageModel, String> {
    shared
        .borrow()
        .model
        .clone()
        .ok_or_else(|| "no model is loaded yet".to_string())
}

/// Makes ranking and generation use trained adapter `index` (`None`: the base model).
fn use_adapter(shared: &Rc<RefCell<Shared>>, index: Option<usize>) -> Result<(), String> {
    let base = base_model(shared)?;
    let adapted = match index {
        None => None,
        Some(i) => {
            let s = shared.borrow();
            let trained = s
                .adapters
                .get(i)
                .ok_or_else(|| format!("there is no adapter #{}", i + 1))?;
            let lm = with_adapter(&base, &trained.adapter)
                .map_err(|e| format!("{}: {e}", trained.name))?;
            Some((i, lm))
        }
    };
    shared.borrow_mut().with_adapter = adapted;
    Ok(())
}

/// Picks the device as `preference` says and tells the page which one and why.
async fn ensure_device(
    shared: &Rc<RefCell<Shared>>,
    preference: DevicePreference,
    reply: &dyn Fn(Response),
) {
    if shared.borrow().device.is_some() {
        return;
    }
    let cpu = |note: String| (Device::flex(), DeviceKind::Cpu, Some(note));
    let (device, kind, note) = match preference {
        DevicePreference::Cpu => cpu("the CPU was requested (?device=cpu)".into()),
        DevicePreference::Auto if software_adapter().await == Some(true) => cpu(
            "this browser's only WebGPU adapter is a software renderer, which is much slower than \
             the CPU here; using the CPU (?device=webgpu forces WebGPU)"
                .into(),
        ),
        DevicePreference::Auto | DevicePreference::WebGpu => {
            match Device::wgpu_options().init_async().await {
                Ok(d) => (d, DeviceKind::WebGpu, None),
                Err(e) => cpu(format!(
                    "WebGPU is not available in this browser ({e}); using the CPU, which is slower"
                )),
            }
        }
    };
    shared.borrow_mut().device = Some(device);
    reply(Response::Device { kind, note });
}

/// Whether the default WebGPU adapter is a software fallback (SwiftShader), `None` when there is
/// no adapter or the browser does not say. Burn does not expose the adapter, so this asks
/// `navigator.gpu` directly.
async fn software_adapter() -> Option<bool> {
    use js_sys::{Function, Promise, Reflect};
    let get = |v: &JsValue, k: &str| {
        Reflect::get(v, &JsValue::from_str(k))
            .ok()
            .filter(|x| !x.is_undefined() && !x.is_null())
    };
    let gpu = get(&get(&js_sys::global(), "navigator")?, "gpu")?;
    let request: Function = get(&gpu, "requestAdapter")?.dyn_into().ok()?;
    let promise: Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter = JsFuture::from(promise)
        .await
        .ok()
        .filter(|a| !a.is_null())?;
    let info = get(&adapter, "info");
    let flag = info
        .as_ref()
        .and_then(|i| get(i, "isFallbackAdapter"))
        .or_else(|| get(&adapter, "isFallbackAdapter"))
        .and_then(|f| f.as_bool());
    let named_software = info
        .as_ref()
        .and_then(|i| get(i, "architecture"))
        .and_then(|a| a.as_string())
        .is_some_and(|a| a.to_lowercase().contains("swiftshader"));
    Some(flag.unwrap_or(false) || named_software)
}

fn dataset(shared: &Rc<RefCell<Shared>>) -> Result<Rc<(InteractionLog, Splits)>, String> {
    shared
        .borrow()
        .data
        .clone()
        .ok_or_else(|| "no dataset is loaded yet".to_string())
}

/// Parses and splits a dataset; a failure keeps the previous dataset.
async fn load_dataset(
    shared: &Rc<RefCell<Shared>>,
    source: DataSource,
    reply: &dyn Fn(Response),
) -> Result<(), String> {
    let stage = |s: &str| {
        reply(Response::DataProgress {
            stage: s.into(),
            done: 0,
            total: None,
        })
    };
    let (name, main, items) = match source {
        DataSource::Urls {
            interactions,
            items,
        } => {
            stage("Downloading the dataset");
            let quiet = |_, _| {};
            let main = download(&interactions, &quiet).await?;
            let side = download(&items, &quiet).await?;
            let name = interactions
                .rsplit('/')
                .next()
                .unwrap_or(&interactions)
                .to_string();
            (name, main, Some(side))
        }
        DataSource::Files {
            name,
            interactions,
            items,
        } => (name, interactions, items),
    };
    stage("Parsing and splitting");
    let format = DatasetFormat::guess(&name);
    let log = match formats::load(format, &main, items.as_deref(), Domain::Movies)
        .map_err(|e| e.to_string())?
    {
        Dataset::Log(log) => log,
        Dataset::Examples(_) => {
            return Err(format!(
                "{name} holds pre-windowed examples (LLaRA/S-DPO); the page needs an interaction \
                 log (RecBole .inter/.item, GroupLens u.data/u.item, or a CSV/TSV pair)"
            ));
        }
    };
    let splits = split::split(&log, &SplitConfig::default()).map_err(|e| e.to_string())?;
    let info = DatasetInfo {
        name,
        stats: split_stats(&log, &splits),
        report: log.report.clone(),
    };
    {
        let mut s = shared.borrow_mut();
        s.data = Some(Rc::new((log, splits)));
        // The oracle scored the previous catalogue.
        s.oracle = None;
    }
    reply(Response::DatasetLoaded(info));
    Ok(())
}

/// Trains SASRec on Burn's CPU device (the oracle is small; WebGPU dispatch overhead would
/// dominate), reporting every step, then evaluates it on the validation users.
async fn train_oracle(
    shared: &Rc<RefCell<Shared>>,
    epochs: usize,
    learning_rate: f64,
    reply: &dyn Fn(Response),
) -> Result<(), String> {
    let data = dataset(shared)?;
    let (log, splits) = &*data;
    let config = SasRecConfig::new(log.catalogue.len(), catalogue_fingerprint(&log.catalogue));
    let training = SasRecTraining {
        epochs,
        learning_rate,
        ..Default::default()
    };
    let device = Device::flex();
    let mut trainer = SasRecTrainer::new(config, training, &splits.train_sequences, &device)
        .map_err(|e| e.to_string())?;
    let total = trainer.total_steps() as u64;
    let start = now_ms();
    let (mut losses, mut sum, mut count, mut done) = (Vec::new(), 0.0f64, 0usize, 0u64);
    while !trainer.is_done() {
        let step = trainer.step().await.map_err(|e| e.to_string())?;
        done += 1;
        sum += f64::from(step.loss);
        count += 1;
        if step.step == step.steps_per_epoch {
            losses.push(sum / count as f64);
            (sum, count) = (0.0, 0);
        }
        reply(Response::DataProgress {
            stage: format!(
                "Training SASRec: epoch {} of {epochs}, loss {:.3}",
                step.epoch + 1,
                step.loss
            ),
            done,
            total: Some(total),
        });
    }
    let seconds = (now_ms() - start) / 1e3;
    let oracle = trainer.oracle();
    shared.borrow_mut().oracle = Some(oracle.clone());
    let examples = &splits.validation;
    let scores = oracle
        .candidate_scores(examples)
        .await
        .map_err(|e| e.to_string())?;
    reply(Response::OracleTrained(OracleSummary {
        epochs,
        seconds,
        losses,
        users: examples.len(),
        sasrec: candidate_metrics(examples, &scores),
        popularity: candidate_metrics(examples, &popularity_scores(examples, &splits.popularity)),
        random: candidate_metrics(examples, &constant_scores(examples)),
    }));
    Ok(())
}

/// Fetches `url` (same origin) as bytes, reporting progress as the body streams in.
async fn download(url: &str, progress: &dyn Fn(u64, Option<u64>)) -> Result<Vec<u8>, String> {
    let global: web_sys::WorkerGlobalScope = js_sys::global()
        .dyn_into()
        .map_err(|_| "the model worker is not running in a worker".to_string())?;
    let response: web_sys::Response = JsFuture::from(global.fetch_with_str(url))
        .await
        .map_err(|e| format!("cannot download {url}: {}", js_error(e)))?
        .dyn_into()
        .map_err(|_| "fetch did not return a response".to_string())?;
    if !response.ok() {
        return Err(format!(
            "cannot download {url}: HTTP {} {} (are the model and data fetched? run `recalign fetch`)",
            response.status(),
            response.status_text()
        ));
    }
    let total = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok());
    let body = response.body().ok_or("the response has no body")?;
    let reader: web_sys::ReadableStreamDefaultReader = body
        .get_reader()
        .dyn_into()
        .map_err(|_| "cannot read the response body".to_string())?;
    let mut bytes = Vec::with_capacity(total.unwrap_or(0) as usize);
    let mut last_report = 0u64;
    loop {
        let chunk: web_sys::ReadableStreamReadResult = JsFuture::from(reader.read())
            .await
            .map_err(|e| format!("download of {url} interrupted: {}", js_error(e)))?
            .unchecked_into();
        if chunk.get_done().unwrap_or(true) {
            break;
        }
        let data: Uint8Array = chunk.get_value().unchecked_into();
        let start = bytes.len();
        bytes.resize(start + data.length() as usize, 0);
        data.copy_to(&mut bytes[start..]);
        let done = bytes.len() as u64;
        if done - last_report > (1 << 20) {
            last_report = done;
            progress(done, total);
        }
    }
    Ok(bytes)
}

fn load(
    shared: &Rc<RefCell<Shared>>,
    name: String,
    bytes: Vec<u8>,
    reply: &dyn Fn(Response),
) -> Result<(), String> {
    reply(Response::Progress {
        stage: "Preparing the weights on the device".into(),
        done: 0,
        total: None,
    });
    let device = shared.borrow().device.clone().unwrap_or_else(Device::flex);
    let t = now_ms();
    let lm = LanguageModel::from_gguf_bytes(&bytes, &device).map_err(|e| format!("{name}: {e}"))?;
    let c = &lm.model.config;
    let info = ModelInfo {
        name,
        bytes: bytes.len() as u64,
        layers: c.n_layers,
        hidden: c.hidden_size,
        vocab: c.vocab_size,
        context: c.context_length,
        prepare_ms: now_ms() - t,
    };
    // A failed load leaves the previous model in place: the user loses nothing. Trained adapters
    // are kept (they may fit the new model), but ranking starts again from the base model.
    {
        let mut s = shared.borrow_mut();
        s.model = Some(lm);
        s.with_adapter = None;
    }
    reply(Response::AdapterInUse { index: None });
    reply(Response::Loaded(info));
    Ok(())
}

/// Lets the worker's event loop run for `ms` (0: just once round), so pause and cancel requests
/// are seen between training steps.
async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Ok(g) = js_sys::global().dyn_into::<web_sys::WorkerGlobalScope>() {
            let _ = g.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        } else {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Clears the worker's training flags however a run ends.
struct TrainingGuard(Rc<RefCell<Shared>>);

impl Drop for TrainingGuard {
    fn drop(&mut self) {
        let mut s = self.0.borrow_mut();
        s.training = false;
        s.cancel = false;
        s.paused = false;
    }
}

/// Runs a training request with the core trainers, reporting each step; the adapter it trains
/// joins the session's list and becomes the one ranking uses.
async fn train(
    shared: &Rc<RefCell<Shared>>,
    request: TrainRequest,
    reply: &dyn Fn(Response),
) -> Result<(), Failure> {
    let fail = |during: &str| {
        let during = during.to_string();
        move |m: String| (during.clone(), m)
    };
    if shared.borrow().training {
        return Err((
            "starting training".into(),
            "a training run is already going; wait for it or cancel it".into(),
        ));
    }
    let base = base_model(shared).map_err(fail("starting training"))?;
    let data = dataset(shared).map_err(fail("starting training"))?;
    shared.borrow_mut().training = true;
    let _guard = TrainingGuard(shared.clone());
    let (log, splits) = &*data;
    let progress = |stage: &str, done: usize, total: usize| {
        reply(Response::TrainProgress {
            stage: stage.into(),
            done: done as u64,
            total: Some(total as u64),
        })
    };
    let settings = request.settings.clone();
    let examples = train_data::draw(&splits.train, request.prompts, settings.seed);
    progress("Tokenising the training prompts", 0, examples.len());
    let (trainer, inputs, too_long, start) = match &request.stage {
        TrainStage::Sft => {
            let sft = train_data::sft_examples(&base, log, &examples, None)
                .map_err(|e| ("preparing SFT".to_string(), e.to_string()))?;
            let (n, skipped) = (sft.items.len(), sft.too_long);
            let trainer = SftTrainer::new(&base, request.lora.clone(), settings, sft.items)
                .map_err(|e| ("preparing SFT".to_string(), e.to_string()))?;
            (
                Trainer::Sft(Box::new(trainer)),
                n,
                skipped,
                "the base model".to_string(),
            )
        }
        TrainStage::Preference {
            loss,
            strategies,
            negatives,
        } => {
            let during = format!("preparing {}", loss.kind.label());
            let err = |e: recalign_core::Error| (during.clone(), e.to_string());
            // Preference training starts from the latest SFT adapter, which is also the frozen
            // reference (method.md §3); without one, from the base model.
            let sft = shared
                .borrow()
                .adapters
                .iter()
                .rev()
                .find(|a| a.stage == Some(TrainStage::Sft))
                .map(|a| (a.name.clone(), a.adapter.clone()));
            let (reference, start, lora) = match &sft {
                Some((name, a)) => (
                    with_adapter(&base, a).map_err(err)?,
                    name.clone(),
                    a.settings.clone(),
                ),
                None => (
                    base.clone(),
                    "the base model".to_string(),
                    request.lora.clone(),
                ),
            };
            let oracle = shared.borrow().oracle.clone();
            let oracle_scores = match (loss.kind, oracle) {
                (_, Some(o)) => Some(o.candidate_scores(&examples).await.map_err(err)?),
                (LossKind::Rosepo, None) => {
                    return Err((
                        during,
                        "RosePO smooths each pair with the SASRec oracle's scores: train the                          oracle first (the Data card's button)"
                            .into(),
                    ));
                }
                (_, None) => None,
            };
            let model_scores = if strategies.contains(&RejectStrategy::SelfHard) {
                Some(
                    train_data::model_scores(&reference, log, &examples, None, |d, t| {
                        progress("Scoring candidates for self-hard negatives", d, t)
                    })
                    .await
                    .map_err(err)?,
                )
            } else {
                None
            };
            let config = PairConfig {
                mixture: Mixture::OnePerStrategy(strategies.clone()),
                negatives: *negatives,
                seed: settings.seed,
                ..PairConfig::default()
            };
            let pairs = train_data::preference_pairs(
                log,
                &splits.popularity,
                &examples,
                None,
                PairScores {
                    model: model_scores.as_deref(),
                    oracle: oracle_scores.as_deref(),
                },
                &config,
            )
            .map_err(err)?;
            let tokenised = train_data::tokenise_pairs(&base, &pairs, *negatives).map_err(err)?;
            let (n, skipped) = (tokenised.items.len(), tokenised.too_long);
            let cached = if loss.kind.uses_reference() {
                reference_log_probs(&reference, &tokenised.items, |d, t| {
                    progress("Reference log-probs (computed once)", d, t)
                })
                .await
                .map_err(err)?
            } else {
                tokenised
                    .items
                    .iter()
                    .map(|p| vec![0.0; p.answers.len()])
                    .collect()
            };
            let trainer = PreferenceTrainer::new(
                &base,
                lora,
                sft.as_ref().map(|(_, a)| a),
                settings,
                loss.clone(),
                tokenised.items,
                cached,
            )
            .map_err(err)?;
            (Trainer::Preference(Box::new(trainer)), n, skipped, start)
        }
    };
    let mut trainer = trainer;
    let label = request.stage.label();
    let during = format!("training {label}");
    let started = now_ms();
    let mut steps = 0;
    let mut cancelled = false;
    while !trainer.is_done() {
        // A pause holds here, between steps, until resumed or cancelled.
        if shared.borrow().paused && !shared.borrow().cancel {
            reply(Response::TrainPaused(true));
            while shared.borrow().paused && !shared.borrow().cancel {
                sleep_ms(100).await;
            }
            reply(Response::TrainPaused(false));
        }
        if shared.borrow().cancel {
            cancelled = true;
            break;
        }
        let report = trainer
            .step()
            .await
            .map_err(|e| (during.clone(), e.to_string()))?;
        steps = report.step;
        reply(Response::TrainStep(report));
        sleep_ms(0).await;
    }
    let seconds = (now_ms() - started) / 1e3;
    let adapter = trainer
        .adapter()
        .await
        .map_err(|e| (during.clone(), e.to_string()))?;
    let index = {
        let mut s = shared.borrow_mut();
        let n = s
            .adapters
            .iter()
            .filter(|a| a.stage.as_ref().is_some_and(|st| st.label() == label))
            .count();
        let name = format!("{label} #{}", n + 1);
        s.adapters.push(TrainedAdapter {
            name,
            stage: Some(request.stage.clone()),
            adapter,
        });
        s.adapters.len() - 1
    };
    let name = shared.borrow().adapters[index].name.clone();
    use_adapter(shared, Some(index)).map_err(|m| (during.clone(), m))?;
    reply(Response::Trained(TrainSummary {
        index,
        name,
        steps,
        planned: request.settings.steps,
        seconds,
        inputs,
        too_long,
        start,
        cancelled,
    }));
    reply(Response::AdapterInUse { index: Some(index) });
    Ok(())
}

/// Evaluates the model in use on `users` (seeded draw) of `split`, reporting each user.
async fn evaluate_model(
    shared: &Rc<RefCell<Shared>>,
    split: recalign_core::data::split::SplitName,
    users: usize,
    generate: usize,
    reply: &dyn Fn(Response),
) -> Result<(), String> {
    if shared.borrow().training {
        return Err("a training run is using the model; wait for it or cancel it".into());
    }
    let lm = model(shared)?;
    let data = dataset(shared)?;
    let (log, splits) = &*data;
    let name = {
        let s = shared.borrow();
        s.with_adapter
            .as_ref()
            .and_then(|(i, _)| s.adapters.get(*i))
            .map_or_else(|| "base model".to_string(), |a| a.name.clone())
    };
    let examples = train_data::draw(splits.get(split), users, 2024);
    let request = |e: &recalign_core::data::split::Example| train_data::request_text(log, None, e);
    let started = now_ms();
    let report = recalign_core::eval::evaluate(
        &lm,
        &examples,
        &log.catalogue,
        &splits.popularity,
        &request,
        generate,
        |done, total| {
            reply(Response::EvalProgress {
                done: done as u64,
                total: total as u64,
            })
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    reply(Response::Evaluated(Box::new(crate::protocol::Evaluation {
        model: name,
        split,
        report,
        seconds: (now_ms() - started) / 1e3,
    })));
    Ok(())
}
