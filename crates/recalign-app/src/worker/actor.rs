//! The `gloo-worker` glue: starting the worker, and the actor that takes each tagged request,
//! holds the model-load lock the request needs, hands it to the router and tags every answer,
//! a failure included, with the request's id.

use gloo_worker::{HandlerId, Worker, WorkerScope};

use super::route;
use super::session::{Problem, Shared};
use crate::protocol::{ModelAccess, Request, Response, Tagged};

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
