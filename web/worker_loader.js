// The model worker (wasm-bindgen --target no-modules). A static file rather than gloo-worker's
// blob: URL, so the Content-Security-Policy can stay at worker-src 'self'.
importScripts('./recalign-worker.js');
wasm_bindgen('./recalign-worker_bg.wasm');
