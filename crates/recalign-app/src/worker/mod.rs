//! The model worker: picks the device, loads the GGUF from the same origin with progress, and
//! answers ranking, generation, training, evaluation and adapter requests. It runs in a
//! dedicated Web Worker, so its long synchronous steps (dequantising weights, training steps)
//! never freeze the page.
//!
//! - [`training`]: training runs (prepare, step, checkpoint, resume).
//! - [`persist`]: what is kept in the browser's storage, and how.

mod persist;
mod training;

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
    DataSource, DatasetInfo, DeviceKind, DevicePreference, ModelAccess, ModelInfo, OracleSummary,
    Request, Response, TrainStage,
};
use crate::store::MODELS;
use recalign_core::data::formats::{self, DatasetFormat};
use recalign_core::data::split::{SplitConfig, Splits};
use recalign_core::data::stats::split_stats;
use recalign_core::data::windowed;
use recalign_core::data::{Domain, InteractionLog};
use recalign_core::oracle::sasrec::{
    SasRecConfig, SasRecOracle, SasRecTrainer, SasRecTraining, catalogue_fingerprint,
};
use recalign_core::oracle::{candidate_metrics, constant_scores, popularity_scores};
use recalign_core::prompt::PromptFormat;
use recalign_core::train::data as train_data;
use recalign_core::train::{Adapter, with_adapter};

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
    /// Pairs from a preference JSONL the user loaded (file name, pairs).
    imported_pairs: Option<(String, Vec<recalign_core::data::pairs::PreferencePair>)>,
    /// The device chosen, for error advice.
    device_kind: Option<DeviceKind>,
    /// The loaded model's file name (a checkpoint resumes only on the same model).
    model_name: Option<String>,
    /// The browser's storage, once opened (or why it cannot be).
    store: Option<Result<Rc<crate::store::Store>, String>>,
    /// The stored adapters were added to the list (once per worker, after the first model).
    adapters_restored: bool,
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
    /// Held by a model load for its whole run; a request that uses the model takes it and lets
    /// go at once, so it never starts while the model (or its default adapter) is changing.
    loads: Rc<futures::lock::Mutex<()>>,
}

impl Worker for ModelWorker {
    type Message = ();
    type Input = Request;
    type Output = Response;

    fn create(_scope: &WorkerScope<Self>) -> Self {
        console_error_panic_hook::set_once();
        Self {
            shared: Rc::default(),
            loads: Rc::default(),
        }
    }

    fn update(&mut self, _scope: &WorkerScope<Self>, _msg: ()) {}

    fn received(&mut self, scope: &WorkerScope<Self>, request: Request, id: HandlerId) {
        let (scope, shared, loads) = (scope.clone(), self.shared.clone(), self.loads.clone());
        wasm_bindgen_futures::spawn_local(async move {
            let reply = |r: Response| scope.respond(id, r);
            let _load = match request.model_access() {
                ModelAccess::Load => Some(loads.lock().await),
                ModelAccess::Use => {
                    drop(loads.lock().await);
                    None
                }
                ModelAccess::Independent => None,
            };
            let data_request = matches!(
                request,
                Request::LoadDataset(_) | Request::TrainOracle { .. } | Request::TestUser { .. }
            );
            let train_request = matches!(
                request,
                Request::Train(_)
                    | Request::ResumeTraining
                    | Request::Evaluate { .. }
                    | Request::LoadPairs { .. }
            );
            if let Err((during, message)) = handle(request, &shared, &reply).await {
                // Out of memory or a lost device: say what to do (the worker keeps going).
                let on_gpu = shared.borrow().device_kind.map(|k| k == DeviceKind::WebGpu);
                let message = match recalign_core::error::device_advice(&message, on_gpu) {
                    Some(advice) => format!("{message}. {advice}"),
                    None => message,
                };
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
            // Pre-windowed files have no test split: their held-out rows stand in.
            let test = if splits.test.is_empty() {
                &splits.validation
            } else {
                &splits.test
            };
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
        Request::Train(request) => training::train(shared, *request, reply).await,
        Request::ResumeTraining => training::resume(shared, reply).await,
        Request::DiscardCheckpoint => {
            let ended = persist::end_checkpoints(shared).await;
            persist::report(reply, "discarding the checkpoint", ended);
            persist::send_info(shared, reply).await;
            Ok(())
        }
        Request::LoadPairs { name, bytes } => {
            let pairs = recalign_core::data::pairs::read_jsonl(&bytes)
                .map_err(|e| (format!("reading {name}"), e.to_string()))?;
            reply(Response::PairsLoaded {
                name: name.clone(),
                pairs: pairs.len(),
                smoothed: pairs.iter().filter(|p| p.eps.is_some()).count(),
                negatives: pairs
                    .iter()
                    .map(|p| 1 + p.more_rejected.len())
                    .max()
                    .unwrap_or(1),
            });
            shared.borrow_mut().imported_pairs = Some((name, pairs));
            Ok(())
        }
        Request::StorageStatus => {
            persist::send_info(shared, reply).await;
            match persist::runs(shared).await {
                Ok(runs) => reply(Response::Runs(runs)),
                Err(message) => reply(Response::StorageFailed {
                    during: "reading the stored runs".into(),
                    message,
                }),
            }
            Ok(())
        }
        Request::ClearStorage => {
            let cleared = match persist::store(shared).await {
                Ok(store) => store.clear().await,
                Err(e) => Err(e),
            };
            persist::report(reply, "clearing the stored data", cleared);
            reply(Response::Runs(
                persist::runs(shared).await.unwrap_or_default(),
            ));
            persist::send_info(shared, reply).await;
            Ok(())
        }
        Request::ImportRuns { name, bytes } => {
            let fail = |m: String| (format!("importing runs from {name}"), m);
            let runs: Vec<crate::protocol::RunRecord> =
                serde_json::from_slice(&bytes).map_err(|e| {
                    fail(format!(
                        "not a runs file exported from this page (a JSON list of runs): {e}"
                    ))
                })?;
            for run in &runs {
                persist::save_run(shared, run).await.map_err(fail)?;
            }
            reply(Response::Runs(persist::runs(shared).await.map_err(fail)?));
            persist::send_info(shared, reply).await;
            Ok(())
        }
        Request::LoadStored { name } => {
            let fail = |m: String| (format!("loading {name} from this browser's storage"), m);
            ensure_device(shared, DevicePreference::Auto, reply).await;
            reply(Response::Progress {
                stage: "Reading the model from this browser's storage".into(),
                done: 0,
                total: None,
            });
            let store = persist::store(shared).await.map_err(fail)?;
            let bytes = store
                .read(MODELS, &name)
                .await
                .map_err(fail)?
                .ok_or_else(|| fail("it is no longer stored".into()))?;
            load(shared, name.clone(), &bytes, reply).map_err(fail)?;
            restore_adapters(shared, reply).await;
            Ok(())
        }
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
            let (name, adapter) = {
                let s = shared.borrow();
                (
                    s.adapters[index].name.clone(),
                    s.adapters[index].adapter.clone(),
                )
            };
            reply(Response::AdapterAdded {
                index,
                name: name.clone(),
            });
            reply(Response::AdapterInUse { index: Some(index) });
            let saved = persist::save_adapter(shared, &name, None, &adapter).await;
            persist::report(reply, &format!("storing adapter {name}"), saved);
            persist::send_info(shared, reply).await;
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
        Request::LoadUrl {
            url,
            device,
            adapter,
        } => {
            let fail = |m: String| ("loading the model".to_string(), m);
            ensure_device(shared, device, reply).await;
            let name = url.rsplit('/').next().unwrap_or(&url).to_string();
            let store = persist::store(shared).await.ok();
            let cached = match &store {
                Some(s) => s.size(MODELS, &name).await.ok().flatten(),
                None => None,
            };
            let progress = |done, total| {
                reply(Response::Progress {
                    stage: "Downloading the model".into(),
                    done,
                    total,
                })
            };
            // The stored copy is used when the server's file has its size, or when the server
            // cannot be reached.
            let fetched = download(&url, &progress, cached).await;
            let (bytes, from_store) = match (fetched, &store) {
                (Ok(Some(bytes)), _) => (bytes, false),
                (Ok(None), Some(store)) | (Err(_), Some(store)) if cached.is_some() => {
                    reply(Response::Progress {
                        stage: "Reading the model from this browser's storage".into(),
                        done: 0,
                        total: None,
                    });
                    let bytes = store.read(MODELS, &name).await.map_err(fail)?;
                    (
                        bytes.ok_or_else(|| fail(format!("{name} vanished from storage")))?,
                        true,
                    )
                }
                (Err(e), _) => return Err(fail(e)),
                (Ok(None), _) => return Err(fail("the stored copy cannot be read".into())),
            };
            load(shared, name.clone(), &bytes, reply).map_err(fail)?;
            if !from_store {
                cache_model(shared, &name, &bytes, reply).await;
            }
            if let Some(url) = adapter {
                load_default_adapter(shared, &url, reply).await;
            }
            restore_adapters(shared, reply).await;
            Ok(())
        }
        Request::LoadBytes { name, bytes } => {
            ensure_device(shared, DevicePreference::Auto, reply).await;
            load(shared, name.clone(), &bytes, reply)
                .map_err(|m| ("loading your model file".into(), m))?;
            cache_model(shared, &name, &bytes, reply).await;
            restore_adapters(shared, reply).await;
            Ok(())
        }
        Request::Rank {
            history,
            candidates,
            length_normalised,
            compare_with,
        } => {
            let fail = |m: String| ("ranking".to_string(), m);
            let lm = model(shared).map_err(fail)?;
            let format = prompt_format(shared, None);
            let options = ScoreOptions { length_normalised };
            let t = now_ms();
            let ranking = rank_with(shared, &lm, format, &history, &candidates, options)
                .await
                .map_err(fail)?;
            let ms = now_ms() - t;
            let comparison = match compare_with {
                None => None,
                Some(choice) => {
                    let (name, other) = chosen_model(shared, choice).map_err(fail)?;
                    let format = prompt_format(shared, Some(choice));
                    let ranking = rank_with(shared, &other, format, &history, &candidates, options)
                        .await
                        .map_err(|e| fail(format!("with {name}: {e}")))?;
                    Some(Box::new(crate::protocol::Comparison {
                        model: name,
                        ranking,
                    }))
                }
            };
            let popularity = candidate_popularity(shared, &ranking);
            reply(Response::Ranked {
                ranking,
                ms,
                comparison,
                popularity,
            });
            Ok(())
        }
        Request::Recommend { history, top } => {
            let fail = |m: String| ("recommending from the catalogue".to_string(), m);
            let lm = model(shared).map_err(fail)?;
            let data = dataset(shared).map_err(|_| {
                fail(
                    "load a dataset in the Data card first: its catalogue is what is searched"
                        .into(),
                )
            })?;
            let log = &data.0;
            let titles: Vec<String> = log
                .catalogue
                .items()
                .iter()
                .map(|i| i.title.clone())
                .collect();
            let items = recalign_core::hybrid::model_catalogue(&lm);
            let t = now_ms();
            let found = recalign_core::recommend::recommend(
                &lm,
                log.domain,
                &history,
                &titles,
                items.as_deref(),
                recalign_core::recommend::SearchOptions {
                    top,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
            let ms = now_ms() - t;
            let popularity = title_popularity(
                &data,
                found.recommendations.iter().map(|r| r.title.as_str()),
            );
            reply(Response::Recommended {
                found,
                popularity,
                ms,
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

/// The model `choice` names, with its display name.
fn chosen_model(
    shared: &Rc<RefCell<Shared>>,
    choice: crate::protocol::ModelChoice,
) -> Result<(String, LanguageModel), String> {
    match choice {
        crate::protocol::ModelChoice::Base => Ok(("base model".into(), base_model(shared)?)),
        crate::protocol::ModelChoice::Adapter(i) => adapter_model(shared, i),
    }
}

/// The base model with adapter `index` of the session's list, with the adapter's name.
fn adapter_model(
    shared: &Rc<RefCell<Shared>>,
    index: usize,
) -> Result<(String, LanguageModel), String> {
    let base = base_model(shared)?;
    let s = shared.borrow();
    let a = s
        .adapters
        .get(index)
        .ok_or_else(|| format!("there is no adapter #{}", index + 1))?;
    let lm = with_adapter(&base, &a.adapter).map_err(|e| format!("{}: {e}", a.name))?;
    Ok((a.name.clone(), lm))
}

/// The prompt format the model `choice` ranks with (`None`: the one in use): its adapter's,
/// LLaRA's for the base model.
fn prompt_format(
    shared: &Rc<RefCell<Shared>>,
    choice: Option<crate::protocol::ModelChoice>,
) -> PromptFormat {
    let s = shared.borrow();
    let index = match choice {
        None => s.with_adapter.as_ref().map(|(i, _)| *i),
        Some(crate::protocol::ModelChoice::Base) => None,
        Some(crate::protocol::ModelChoice::Adapter(i)) => Some(i),
    };
    index
        .and_then(|i| s.adapters.get(i))
        .map_or(PromptFormat::Llara, |a| a.adapter.prompt)
}

/// The loaded dataset's item kind (for the compact prompt's header); movies before any is.
/// Ranks with `lm` in `format`; a hybrid model (its adapter carries LLaRA's projector) gives
/// each title found in its catalogue (the adapter's own, else the loaded dataset's) its item
/// slot and reads other titles as text ([`recalign_core::hybrid::rank`]).
async fn rank_with(
    shared: &Rc<RefCell<Shared>>,
    lm: &LanguageModel,
    format: PromptFormat,
    history: &[String],
    candidates: &[String],
    options: ScoreOptions,
) -> Result<recalign_core::Ranking, String> {
    if recalign_core::train::data::is_hybrid(lm) {
        let catalogue = match recalign_core::hybrid::model_catalogue(lm) {
            Some(c) => c,
            None => std::sync::Arc::new(recalign_core::hybrid::ItemCatalogue::of(
                &dataset(shared)
                    .map_err(|_| {
                        "this adapter reads each title's catalogue item (hybrid item tokens) and \
                         does not carry its catalogue: load its dataset in the Data card first"
                            .to_string()
                    })?
                    .0,
            )),
        };
        return recalign_core::hybrid::rank(lm, &catalogue, format, history, candidates, options)
            .await
            .map_err(|e| e.to_string());
    }
    lm.rank_as(format, domain(shared), history, candidates, options)
        .await
        .map_err(|e| e.to_string())
}

/// Each ranked title's training count in the loaded dataset; `None` with no dataset.
fn candidate_popularity(
    shared: &Rc<RefCell<Shared>>,
    ranking: &recalign_core::Ranking,
) -> Option<crate::protocol::CandidatePopularity> {
    let data = dataset(shared).ok()?;
    Some(title_popularity(
        &data,
        ranking.ranked.iter().map(|c| c.candidate.title.as_str()),
    ))
}

/// The training popularity of `titles` in a loaded dataset.
fn title_popularity<'a>(
    data: &(InteractionLog, Splits),
    titles: impl Iterator<Item = &'a str>,
) -> crate::protocol::CandidatePopularity {
    let (log, splits) = data;
    let by_title: std::collections::HashMap<&str, u32> = log
        .catalogue
        .items()
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let count = splits.popularity.get(i).copied().unwrap_or(0);
            (item.title.trim(), count)
        })
        .collect();
    crate::protocol::CandidatePopularity {
        counts: titles.map(|t| by_title.get(t.trim()).copied()).collect(),
        max: splits.popularity.iter().copied().max().unwrap_or(0),
        head_floor: recalign_core::eval::head_floor(&splits.popularity),
    }
}

fn domain(shared: &Rc<RefCell<Shared>>) -> Domain {
    dataset(shared).map_or(Domain::Movies, |d| d.0.domain)
}

/// Fetches the adapter at `url` and, when it fits the loaded model, lists it first and ranks
/// with it. It is not stored (the server has it). A missing or unfit file leaves the base
/// model in use and says why, since the page works without it.
async fn load_default_adapter(shared: &Rc<RefCell<Shared>>, url: &str, reply: &dyn Fn(Response)) {
    let name = url
        .rsplit('/')
        .next()
        .unwrap_or(url)
        .trim_end_matches(".safetensors");
    let added = async {
        let bytes = download(url, &|_, _| {}, None)
            .await?
            .ok_or_else(|| "the download came back empty".to_string())?;
        let adapter = Adapter::from_safetensors(&bytes, None).map_err(|e| e.to_string())?;
        let lm = with_adapter(&base_model(shared)?, &adapter)
            .map_err(|e| format!("it does not fit the loaded model: {e}"))?;
        let mut s = shared.borrow_mut();
        s.adapters.push(TrainedAdapter {
            name: name.to_string(),
            stage: None,
            adapter,
        });
        let index = s.adapters.len() - 1;
        s.with_adapter = Some((index, lm));
        Ok::<usize, String>(index)
    }
    .await;
    match added {
        Ok(index) => {
            reply(Response::AdapterAdded {
                index,
                name: name.to_string(),
            });
            reply(Response::AdapterInUse { index: Some(index) });
            reply(Response::DefaultAdapter(Ok(index)));
        }
        Err(message) => reply(Response::DefaultAdapter(Err(format!(
            "The default adapter ({url}) was not loaded, so the base model ranks: {message}"
        )))),
    }
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
    let adapted = match index {
        None => None,
        Some(i) => Some((i, adapter_model(shared, i)?.1)),
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
    {
        let mut s = shared.borrow_mut();
        s.device = Some(device);
        s.device_kind = Some(kind);
    }
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
    let (name, main, items, held_out, domain) = match source {
        DataSource::Urls {
            interactions,
            items,
        } => {
            stage("Downloading the dataset");
            let quiet = |_, _| {};
            let main = download(&interactions, &quiet, None)
                .await?
                .unwrap_or_default();
            let side = download(&items, &quiet, None).await?.unwrap_or_default();
            let name = interactions
                .rsplit('/')
                .next()
                .unwrap_or(&interactions)
                .to_string();
            (name, main, Some(side), None, Domain::Movies)
        }
        DataSource::Files {
            name,
            interactions,
            items,
            held_out,
            domain,
        } => (name, interactions, items, held_out, domain),
    };
    stage("Parsing and splitting");
    let format = DatasetFormat::guess(&name);
    let main = formats::load(format, &main, items.as_deref(), domain)
        .map_err(|e| format!("{name}: {e}"))?;
    let held = match &held_out {
        Some((h, bytes)) => Some(
            formats::load(DatasetFormat::guess(h), bytes, items.as_deref(), domain)
                .map_err(|e| format!("{h}: {e}"))?,
        ),
        None => None,
    };
    // The papers' files go as they are: their rows are the split (data::windowed).
    let (log, splits) =
        windowed::split_dataset(main, held, &SplitConfig::default()).map_err(|e| e.to_string())?;
    let info = DatasetInfo {
        name,
        stats: split_stats(&log, &splits),
        report: log.report.clone(),
        titles: (0..log.catalogue.len())
            .map(|i| {
                log.catalogue
                    .title(recalign_core::data::ItemId(i as u32))
                    .to_string()
            })
            .collect(),
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

/// Fetches `url` (same origin) as bytes, reporting progress as the body streams in; `None`
/// without reading the body when the server's file has the size `unless_size` (a stored copy).
async fn download(
    url: &str,
    progress: &dyn Fn(u64, Option<u64>),
    unless_size: Option<u64>,
) -> Result<Option<Vec<u8>>, String> {
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
    if unless_size.is_some() && total == unless_size {
        let _ = JsFuture::from(body.cancel()).await;
        return Ok(None);
    }
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
    Ok(Some(bytes))
}

fn load(
    shared: &Rc<RefCell<Shared>>,
    name: String,
    bytes: &[u8],
    reply: &dyn Fn(Response),
) -> Result<(), String> {
    reply(Response::Progress {
        stage: "Preparing the weights on the device".into(),
        done: 0,
        total: None,
    });
    let device = shared.borrow().device.clone().unwrap_or_else(Device::flex);
    let t = now_ms();
    let lm = LanguageModel::from_gguf_bytes(bytes, &device).map_err(|e| format!("{name}: {e}"))?;
    let c = &lm.model.config;
    let info = ModelInfo {
        name: name.clone(),
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
        s.model_name = Some(name);
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
    let format = prompt_format(shared, None);
    let started = now_ms();
    let report = train_data::evaluate(
        &lm,
        format,
        log,
        &examples,
        &splits.popularity,
        None,
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

/// Keeps a loaded model in the browser's storage, so the next visit reads it from there.
async fn cache_model(
    shared: &Rc<RefCell<Shared>>,
    name: &str,
    bytes: &[u8],
    reply: &dyn Fn(Response),
) {
    let stored = match persist::store(shared).await {
        Ok(store) => store.write(MODELS, name, bytes).await,
        Err(e) => Err(e),
    };
    persist::report(
        reply,
        &format!("keeping {name} in this browser's storage"),
        stored,
    );
    persist::send_info(shared, reply).await;
}

/// Adds the adapters stored in this browser to the list (once, after the first model loads);
/// the ones that do not fit the model stay stored and are named in a message.
async fn restore_adapters(shared: &Rc<RefCell<Shared>>, reply: &dyn Fn(Response)) {
    if std::mem::replace(&mut shared.borrow_mut().adapters_restored, true) {
        return;
    }
    let Ok(base) = base_model(shared) else {
        return;
    };
    let (stored, mut errors) = match persist::stored_adapters(shared).await {
        Ok(found) => found,
        Err(message) => {
            reply(Response::StorageFailed {
                during: "reading the stored adapters".into(),
                message,
            });
            return;
        }
    };
    for (name, stage, adapter) in stored {
        if let Err(e) = with_adapter(&base, &adapter) {
            errors.push(format!("{name} does not fit this model: {e}"));
            continue;
        }
        let index = {
            let mut s = shared.borrow_mut();
            s.adapters.push(TrainedAdapter {
                name: name.clone(),
                stage,
                adapter,
            });
            s.adapters.len() - 1
        };
        reply(Response::AdapterAdded { index, name });
    }
    if !errors.is_empty() {
        reply(Response::StorageFailed {
            during: "restoring the stored adapters".into(),
            message: errors.join("; "),
        });
    }
}
