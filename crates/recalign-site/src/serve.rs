//! `serve`: a static file server for the built page on 127.0.0.1, with the page's
//! Content-Security-Policy also sent as a header (the page talks only to its own origin), and
//! the two headers that make the page cross-origin isolated (COOP/COEP): only such a page may
//! share wasm memory between threads, which the multi-threaded CPU build needs. Every resource
//! is same-origin, so `require-corp` blocks nothing of the page's.

use std::path::{Component, Path, PathBuf};

use crate::Result;

/// The page's policy: same origin only; wasm compilation allowed; nothing else.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
    worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'";

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

fn resolve(dir: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next().unwrap_or("/");
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let full = dir.join(rel);
    Some(if full.is_dir() {
        full.join("index.html")
    } else {
        full
    })
}

/// Serves `dir` until interrupted.
pub fn serve(dir: &Path, port: u16) -> Result {
    if !dir.join("index.html").is_file() {
        return Err(format!(
            "{} has no index.html: build the page first (./x build)",
            dir.display()
        ));
    }
    let server = tiny_http::Server::http(("127.0.0.1", port))
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    println!(
        "serving {} on http://127.0.0.1:{port}/ (Ctrl-C to stop)",
        dir.display()
    );
    for request in server.incoming_requests() {
        let response =
            match resolve(dir, request.url()).and_then(|p| Some((std::fs::read(&p).ok()?, p))) {
                Some((body, path)) => [
                    header("Content-Type", content_type(&path)),
                    header("Content-Security-Policy", CSP),
                    header("Cache-Control", "no-cache"),
                    header("Cross-Origin-Opener-Policy", "same-origin"),
                    header("Cross-Origin-Embedder-Policy", "require-corp"),
                ]
                .into_iter()
                .flatten()
                .fold(tiny_http::Response::from_data(body), |r, h| {
                    r.with_header(h)
                }),
                None => tiny_http::Response::from_data(b"not found".to_vec()).with_status_code(404),
            };
        // A client that went away mid-response is not an error worth stopping for.
        let _ = request.respond(response);
    }
    Ok(())
}

/// Names and values are ASCII constants, which tiny_http always accepts; `None` would only drop
/// the header, never stop the server.
fn header(name: &str, value: &str) -> Option<tiny_http::Header> {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}
