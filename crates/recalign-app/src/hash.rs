//! The URL hash holds the playground's settings (`#a.loss=rosepo&lab.eps=0.2`), so a reload
//! keeps them and a shared link reproduces a setup. Each card owns a key prefix; unknown or
//! malformed values are ignored, so an old or hand-edited link never breaks the page.

use web_sys::UrlSearchParams;

fn params() -> Option<UrlSearchParams> {
    let hash = web_sys::window()?.location().hash().ok()?;
    UrlSearchParams::new_with_str(hash.trim_start_matches('#')).ok()
}

/// The value of `key` in the hash, if any.
pub fn get(key: &str) -> Option<String> {
    params()?.get(key)
}

/// `key` parsed as `T`, if present and well-formed.
pub fn parse<T: std::str::FromStr>(key: &str) -> Option<T> {
    get(key)?.trim().parse().ok()
}

/// Writes `pairs` into the hash (keeping other keys) without adding a history entry.
pub fn set(pairs: &[(&str, String)]) {
    let Some(params) = params().or_else(|| UrlSearchParams::new().ok()) else {
        return;
    };
    for (k, v) in pairs {
        params.set(k, v);
    }
    let Some(window) = web_sys::window() else {
        return;
    };
    let hash = format!("#{}", String::from(params.to_string()));
    if window.location().hash().ok().as_deref() == Some(hash.as_str()) {
        return;
    }
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&hash));
    }
}
