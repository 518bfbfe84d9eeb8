//! The page's entry point: mounts the yew app.

fn main() {
    console_error_panic_hook::set_once();
    yew::Renderer::<recalign_app::components::App>::new().render();
}
