//! The URL hash holds the playground's settings (`#a.loss=rosepo&lab.eps=0.2`), so a reload
//! keeps them and a shared link reproduces a setup. Each card owns a key prefix; unknown or
//! malformed values are ignored, so an old or hand-edited link never breaks the page.
//!
//! The hash is `application/x-www-form-urlencoded`, as `URLSearchParams` reads it; the parsing
//! and merging are plain functions ([`lookup`], [`merged`]) so they are tested natively.

fn current() -> Option<String> {
    web_sys::window()?.location().hash().ok()
}

/// The value of `key` in `hash` (with or without its leading `#`), if any.
pub fn lookup(hash: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(hash.trim_start_matches('#').as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// `hash` with `pairs` set (replacing earlier values, keeping every other key in its place),
/// with its leading `#`.
pub fn merged(hash: &str, pairs: &[(&str, String)]) -> String {
    let mut entries: Vec<(String, String)> =
        form_urlencoded::parse(hash.trim_start_matches('#').as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    for (key, value) in pairs {
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.clone(),
            None => entries.push((key.to_string(), value.clone())),
        }
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(entries)
        .finish();
    format!("#{query}")
}

/// The value of `key` in the page's hash, if any.
pub fn get(key: &str) -> Option<String> {
    lookup(&current()?, key)
}

/// `key` parsed as `T`, if present and well-formed.
pub fn parse<T: std::str::FromStr>(key: &str) -> Option<T> {
    get(key)?.trim().parse().ok()
}

/// Writes `pairs` into the hash (keeping other keys) without adding a history entry.
pub fn set(pairs: &[(&str, String)]) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let now = window.location().hash().unwrap_or_default();
    let hash = merged(&now, pairs);
    if now == hash {
        return;
    }
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&hash));
    }
}

#[cfg(test)]
mod tests {
    use super::{lookup, merged};

    #[test]
    fn a_link_reads_back_what_was_written() {
        let hash = merged(
            "",
            &[("a.loss", "rosepo".into()), ("lab.eps", "0.2".into())],
        );
        assert_eq!(hash, "#a.loss=rosepo&lab.eps=0.2");
        assert_eq!(lookup(&hash, "a.loss").as_deref(), Some("rosepo"));
        assert_eq!(lookup(&hash, "lab.eps").as_deref(), Some("0.2"));
        assert_eq!(lookup(&hash, "a.steps"), None);
    }

    #[test]
    fn setting_keys_keeps_the_others_in_place() {
        let hash = merged(
            "#lab.k=4&a.steps=5&someone.else=x",
            &[("a.steps", "8".into()), ("a.seed", "7".into())],
        );
        assert_eq!(hash, "#lab.k=4&a.steps=8&someone.else=x&a.seed=7");
    }

    #[test]
    fn odd_values_survive_the_round_trip() {
        let odd = "Amélie & co = 50% + more";
        let hash = merged("#", &[("w.title", odd.into())]);
        assert!(
            !hash[1..].contains(' ') && hash.matches('&').count() == 0,
            "{hash}"
        );
        assert_eq!(lookup(&hash, "w.title").as_deref(), Some(odd));
        // A hand-edited link: malformed escapes and empty parts do not break the rest.
        let edited = "#a.steps=many&&=x&%zz=1&lab.eps=0.3";
        assert_eq!(lookup(edited, "a.steps").as_deref(), Some("many"));
        assert_eq!(lookup(edited, "lab.eps").as_deref(), Some("0.3"));
    }
}
