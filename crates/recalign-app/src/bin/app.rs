//! The page's entry point: mounts the yew app.

#[cfg(target_arch = "wasm32")]
fn main() {
    recalign_app::startup::run_static_constructors();
    console_error_panic_hook::set_once();
    yew::Renderer::<recalign_app::components::App>::new().render();
}

/// The page runs only in a browser (`./x build` compiles it for wasm32).
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("recalign-app is the page: build it with `./x build` and open it with `./x serve`");
    std::process::exit(2);
}
