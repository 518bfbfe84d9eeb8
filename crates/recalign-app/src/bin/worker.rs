//! The model worker's entry point (the single-thread build): registers the worker so the page
//! can talk to it. The multi-threaded build is `crates/recalign-worker-threads`.

#[cfg(target_arch = "wasm32")]
fn main() {
    recalign_app::worker::start();
}

/// The worker runs only in a browser, next to the page.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("recalign-worker runs in the page's Web Worker: build it with `./x build`");
    std::process::exit(2);
}
