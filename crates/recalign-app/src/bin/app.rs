//! The page's entry point: mounts the yew app.

fn main() {
    recalign_app::startup::run_static_constructors();
    console_error_panic_hook::set_once();
    yew::Renderer::<recalign_app::components::App>::new().render();
}
