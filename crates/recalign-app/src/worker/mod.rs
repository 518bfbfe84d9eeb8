//! The model worker: a router from the page's requests to one module per concern. It runs in a
//! dedicated Web Worker, so long synchronous steps (dequantising weights, training steps) never
//! freeze the page. Every module works on the one [`session::Session`].
//!
//! - [`session`]: the state between requests, and the questions every concern asks of it.
//! - [`browser`]: the clock, a turn of the event loop, same-origin downloads.
//! - [`device`]: WebGPU or the CPU, chosen once.
//! - [`model`]: loading the model, its default adapter and the stored adapters.
//! - [`adapters`]: which adapter ranks; export and import.
//! - [`data`]: datasets, test users, the SASRec oracle, preference files.
//! - [`ranking`]: ranking, whole-catalogue recommendation, generation.
//! - [`training`]: training runs (prepare, step, checkpoint, resume, pause, cancel).
//! - [`evaluation`]: metrics on a split.
//! - [`persist`]: what is kept in the browser's storage, and how.

mod adapters;
mod browser;
mod data;
mod device;
mod evaluation;
mod model;
mod persist;
mod prepare;
mod ranking;
mod session;
mod training;

#[cfg(target_feature = "atomics")]
pub use wasm_bindgen_rayon::init_thread_pool;

use gloo_worker::{HandlerId, Worker, WorkerScope};

use crate::protocol::{ModelAccess, Request, Response, Tagged};
use session::{Failure, Problem, Shared};

/// Starts the worker: the static constructors, the panic hook, then the actor that answers the
/// page. The single-thread build calls it from `main`; the multi-threaded one from JS
/// (`startWorker`), after `initThreadPool`, so that no request computes before the pool exists
/// and rayon's helper threads, which load the same module, never start a second actor.
pub fn start() {
    use gloo_worker::Registrable;
    crate::startup::run_static_constructors();
    console_error_panic_hook::set_once();
    ModelWorker::registrar().register();
}

/// [`start`] for the multi-threaded build's loader (`web/worker_loader.js`).
#[cfg(target_feature = "atomics")]
#[wasm_bindgen::prelude::wasm_bindgen(js_name = startWorker)]
pub fn start_worker() {
    start();
}

/// The model host (a `gloo-worker` actor).
pub struct ModelWorker {
    session: Shared,
    /// Held by a model load for its whole run; a request that uses the model takes it and lets
    /// go at once, so it never starts while the model (or its default adapter) is changing.
    loads: std::rc::Rc<futures::lock::Mutex<()>>,
}

impl Worker for ModelWorker {
    type Message = ();
    type Input = Tagged<Request>;
    type Output = Tagged<Response>;

    fn create(_scope: &WorkerScope<Self>) -> Self {
        Self {
            session: Shared::default(),
            loads: Default::default(),
        }
    }

    fn update(&mut self, _scope: &WorkerScope<Self>, _msg: ()) {}

    fn received(&mut self, scope: &WorkerScope<Self>, request: Tagged<Request>, to: HandlerId) {
        let (scope, session, loads) = (scope.clone(), self.session.clone(), self.loads.clone());
        let Tagged { id, body: request } = request;
        wasm_bindgen_futures::spawn_local(async move {
            // Every response to this request carries its id.
            let reply = |body: Response| scope.respond(to, Tagged { id, body });
            let _load = match request.model_access() {
                ModelAccess::Load => Some(loads.lock().await),
                ModelAccess::Use => {
                    drop(loads.lock().await);
                    None
                }
                ModelAccess::Independent => None,
            };
            let lane = request.lane();
            if let Err((during, Problem { message, fault })) =
                route(request, &session, &reply).await
            {
                reply(Response::Failed {
                    lane,
                    during,
                    message,
                    fault,
                });
            }
        });
    }
}

/// Sends `request` to the module of its concern; a failure names what was being done.
async fn route(request: Request, s: &Shared, reply: &dyn Fn(Response)) -> Result<(), Failure> {
    match request {
        Request::LoadUrl {
            url,
            device,
            adapter,
        } => model::load_url(s, &url, device, adapter.as_deref(), reply)
            .await
            .map_err(during("loading the model")),
        Request::LoadBytes { name, bytes } => model::load_bytes(s, &name, &bytes, reply)
            .await
            .map_err(during("loading your model file")),
        Request::LoadStored { name } => {
            model::load_stored(s, &name, reply)
                .await
                .map_err(during(format!(
                    "loading {name} from this browser's storage"
                )))
        }
        Request::Rank {
            history,
            candidates,
            length_normalised,
            compare_with,
        } => ranking::rank(
            s,
            &history,
            &candidates,
            length_normalised,
            compare_with,
            reply,
        )
        .await
        .map_err(during("ranking")),
        Request::Recommend { history, top } => ranking::recommend(s, &history, top, reply)
            .await
            .map_err(during("recommending from the catalogue")),
        Request::Generate {
            history,
            candidates,
            max_new_tokens,
        } => ranking::generate(s, &history, &candidates, max_new_tokens, reply)
            .await
            .map_err(during("generating")),
        Request::UseAdapter { index } => {
            adapters::use_adapter(s, index, reply).map_err(during("switching the adapter"))
        }
        Request::ExportAdapter { index } => {
            adapters::export(s, index, reply).map_err(during("exporting the adapter"))
        }
        Request::ImportAdapter {
            name,
            bytes,
            config,
        } => adapters::import(s, &name, &bytes, config.as_deref(), reply)
            .await
            .map_err(during(format!("importing {name}"))),
        Request::LoadDataset(source) => data::load_dataset(s, source, reply)
            .await
            .map_err(during("loading the dataset")),
        Request::TrainOracle {
            epochs,
            learning_rate,
        } => data::train_oracle(s, epochs, learning_rate, reply)
            .await
            .map_err(during("training the SASRec oracle")),
        Request::TestUser { index } => {
            data::test_user(s, index, reply).map_err(during("picking a test user"))
        }
        Request::LoadPairs { name, bytes } => data::load_pairs(s, name.clone(), &bytes, reply)
            .map_err(during(format!("reading {name}"))),
        Request::Train(request) => training::train(s, *request, reply).await,
        Request::ResumeTraining => training::resume(s, reply).await,
        Request::CancelTraining => {
            training::cancel(s);
            Ok(())
        }
        Request::PauseTraining(hold) => {
            training::pause(s, hold);
            Ok(())
        }
        Request::Evaluate {
            split,
            users,
            generate,
        } => evaluation::evaluate(s, split, users, generate, reply)
            .await
            .map_err(during(format!("evaluating on the {} split", split.name()))),
        Request::StorageStatus => {
            persist::status(s, reply).await;
            Ok(())
        }
        Request::ClearStorage => {
            persist::clear(s, reply).await;
            Ok(())
        }
        Request::ImportRuns { name, bytes } => persist::import_runs(s, &bytes, reply)
            .await
            .map_err(during(format!("importing runs from {name}"))),
        Request::DiscardCheckpoint => {
            persist::discard_checkpoint(s, reply).await;
            Ok(())
        }
    }
}

/// Names what was being done when an error `m` came.
fn during<E: Into<Problem>>(what: impl Into<String>) -> impl FnOnce(E) -> Failure {
    let what = what.into();
    move |m| (what, m.into())
}
