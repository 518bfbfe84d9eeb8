//! What the worker asks of the browser itself: the clock, a turn of the event loop, and
//! same-origin downloads with progress. The rest of the worker goes through these, so the
//! browser's API surface is in one place.

use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Milliseconds since the worker started (`performance.now()`), 0 where there is none.
pub fn now_ms() -> f64 {
    js_sys::global()
        .dyn_into::<web_sys::WorkerGlobalScope>()
        .ok()
        .and_then(|g| g.performance())
        .map_or(0.0, |p| p.now())
}

/// A JavaScript error as text.
pub fn js_error(v: JsValue) -> String {
    v.as_string()
        .or_else(|| {
            v.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{v:?}"))
}

/// Lets the worker's event loop run for `ms` (0: just once round), so pause and cancel requests
/// are seen between training steps.
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Ok(g) = js_sys::global().dyn_into::<web_sys::WorkerGlobalScope>() {
            let _ = g.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        } else {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Fetches `url` (same origin) as bytes, reporting progress as the body streams in; `None`
/// without reading the body when the server's file has the size `unless_size` (a stored copy).
pub async fn download(
    url: &str,
    progress: &dyn Fn(u64, Option<u64>),
    unless_size: Option<u64>,
) -> Result<Option<Vec<u8>>, String> {
    let global: web_sys::WorkerGlobalScope = js_sys::global()
        .dyn_into()
        .map_err(|_| "the model worker is not running in a worker".to_string())?;
    let response: web_sys::Response = JsFuture::from(global.fetch_with_str(url))
        .await
        .map_err(|e| format!("cannot download {url}: {}", js_error(e)))?
        .dyn_into()
        .map_err(|_| "fetch did not return a response".to_string())?;
    if !response.ok() {
        return Err(format!(
            "cannot download {url}: HTTP {} {} (are the model and data fetched? run `recalign fetch`)",
            response.status(),
            response.status_text()
        ));
    }
    let total = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok());
    let body = response.body().ok_or("the response has no body")?;
    if unless_size.is_some() && total == unless_size {
        let _ = JsFuture::from(body.cancel()).await;
        return Ok(None);
    }
    let reader: web_sys::ReadableStreamDefaultReader = body
        .get_reader()
        .dyn_into()
        .map_err(|_| "cannot read the response body".to_string())?;
    let mut bytes = Vec::with_capacity(total.unwrap_or(0) as usize);
    let mut last_report = 0u64;
    loop {
        let chunk: web_sys::ReadableStreamReadResult = JsFuture::from(reader.read())
            .await
            .map_err(|e| format!("download of {url} interrupted: {}", js_error(e)))?
            .unchecked_into();
        if chunk.get_done().unwrap_or(true) {
            break;
        }
        let data: Uint8Array = chunk.get_value().unchecked_into();
        let start = bytes.len();
        bytes.resize(start + data.length() as usize, 0);
        data.copy_to(&mut bytes[start..]);
        let done = bytes.len() as u64;
        if done - last_report > (1 << 20) {
            last_report = done;
            progress(done, total);
        }
    }
    Ok(Some(bytes))
}
