//! The model worker's entry point: registers the worker so the page can talk to it.

use gloo_worker::Registrable;

fn main() {
    recalign_app::startup::run_static_constructors();
    console_error_panic_hook::set_once();
    recalign_app::worker::ModelWorker::registrar().register();
}
