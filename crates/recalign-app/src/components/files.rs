//! Files the user picks: listing an `<input type="file">`'s selection and reading a main file
//! with an optional companion, shared by the data card and the adapter import; and offering
//! bytes back as a download.

use yew::{Event, TargetCast};

use crate::protocol::Request;
use crate::state::Action;

/// The files picked in the input that fired `e` (empty when there is none).
pub fn picked(e: &Event) -> Vec<web_sys::File> {
    e.target_dyn_into::<web_sys::HtmlInputElement>()
        .and_then(|input| input.files())
        .map(|list| (0..list.length()).filter_map(|i| list.get(i)).collect())
        .unwrap_or_default()
}

/// The first file picked in the input that fired `e`; the input is cleared so that picking the
/// same file again fires `change` again.
pub fn take_picked(e: &Event) -> Option<web_sys::File> {
    let file = picked(e).into_iter().next();
    if let Some(input) = e.target_dyn_into::<web_sys::HtmlInputElement>() {
        input.set_value("");
    }
    file
}

/// An `onchange` handler for a file input that hands its first picked file to `take`.
pub fn on_pick(take: yew::Callback<web_sys::File>) -> yew::Callback<Event> {
    yew::Callback::from(move |e: Event| {
        if let Some(file) = take_picked(&e) {
            take.emit(file);
        }
    })
}

/// Reads `file` in the background and sends the request `to_request(name, bytes)` builds, or
/// shows the read error: how every single-file picker and drop target hands a file to the worker.
pub fn read_and_send(
    file: web_sys::File,
    send: yew::Callback<Request>,
    dispatch: yew::Callback<Action>,
    to_request: fn(String, Vec<u8>) -> Request,
) {
    wasm_bindgen_futures::spawn_local(async move {
        let name = file.name();
        match read(file).await {
            Ok(bytes) => send.emit(to_request(name, bytes)),
            Err(e) => dispatch.emit(Action::Error(e)),
        }
    });
}

/// The files dropped by the drag event `e` (empty when there is none).
pub fn dropped(e: &web_sys::DragEvent) -> Vec<web_sys::File> {
    e.data_transfer()
        .and_then(|d| d.files())
        .map(|list| (0..list.length()).filter_map(|i| list.get(i)).collect())
        .unwrap_or_default()
}

/// The bytes of `file`, or an error naming it.
pub async fn read(file: web_sys::File) -> Result<Vec<u8>, String> {
    let name = file.name();
    gloo_file::futures::read_as_bytes(&gloo_file::File::from(file))
        .await
        .map_err(|e| format!("Cannot read {name}: {e}"))
}

/// The bytes of `main` and, when given, of `companion`.
pub async fn read_pair(
    main: web_sys::File,
    companion: Option<web_sys::File>,
) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
    let main = read(main).await?;
    let companion = match companion {
        Some(f) => Some(read(f).await?),
        None => None,
    };
    Ok((main, companion))
}

/// Offers `bytes` to the user as a download named `name`.
pub fn save_file(name: &str, bytes: &[u8], mime: &str) -> Result<(), String> {
    use wasm_bindgen::JsCast;
    let js = |e: wasm_bindgen::JsValue| format!("{e:?}");
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob =
        web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options).map_err(js)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(js)?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let link: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(js)?
        .dyn_into()
        .map_err(|_| "not an anchor".to_string())?;
    link.set_href(&url);
    link.set_download(name);
    link.click();
    // The download has its own reference to the blob by now.
    web_sys::Url::revoke_object_url(&url).map_err(js)?;
    Ok(())
}
