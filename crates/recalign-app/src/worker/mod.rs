//! The model worker: a router from the page's requests to one module per concern. It runs in a
//! dedicated Web Worker, so long synchronous steps (dequantising weights, training steps) never
//! freeze the page. Every module works on the one [`session::Session`].
//!
//! - [`actor`]: starting the worker; the actor that tags every answer with its request's id.
//! - [`session`]: the state between requests, and the questions every concern asks of it.
//! - [`browser`]: the clock, a turn of the event loop, same-origin downloads.
//! - [`device`]: WebGPU or the CPU, chosen once.
//! - [`model`]: loading the model, its default adapter and the stored adapters.
//! - [`adapters`]: which adapter ranks; export and import.
//! - [`data`]: datasets, test users, the SASRec oracle, preference files.
//! - [`ranking`]: ranking, whole-catalogue recommendation, generation.
//! - [`prepare`]: a training run's inputs (examples or pairs with their reference, the oracle).
//! - [`training`]: training runs (prepare, step, checkpoint, resume, pause, cancel).
//! - [`evaluation`]: metrics on a split.
//! - [`persist`]: what is kept in the browser's storage, and how.

mod actor;
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
pub use actor::start_worker;
pub use actor::{ModelWorker, start};
#[cfg(target_feature = "atomics")]
pub use wasm_bindgen_rayon::init_thread_pool;

use crate::protocol::{Request, Response};
use session::{Failure, Problem, Shared};

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
