//! The model worker's entry point: registers the worker so the page can talk to it.

#[cfg(target_arch = "wasm32")]
fn main() {
    use gloo_worker::Registrable;
    recalign_app::startup::run_static_constructors();
    console_error_panic_hook::set_once();
    recalign_app::worker::ModelWorker::registrar().register();
}

/// The worker runs only in a browser, next to the page.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("recalign-worker runs in the page's Web Worker: build it with `./x build`");
    std::process::exit(2);
}
