//! What both binaries (page and worker) run first: the static constructors, exactly once.
//!
//! Burn's compiler stack (`cubecl-core` → `pliron`) registers items with `inventory`, which on
//! wasm uses static constructors. A wasm32 binary that never calls `__wasm_call_ctors` itself is
//! linked as a "command": wasm-ld then wraps *every* export so that it runs all constructors
//! first. Here every event handler, every worker message and every resumed future enters through
//! an export, so the page re-ran Burn's registrations hundreds of times: measured in headless
//! Chromium, 0.4-0.9 s of main-thread work per training step report, growing as it went. Calling
//! the constructors once at start makes the module a "reactor" and removes the wrappers (see the
//! `inventory` crate's notes on WebAssembly).

#[cfg(target_family = "wasm")]
#[allow(unsafe_code)]
mod ctors {
    unsafe extern "C" {
        /// Synthesised by wasm-ld: runs every static constructor of the module.
        fn __wasm_call_ctors();
    }

    pub fn run() {
        // SAFETY: called once, first thing in `main`, before any other code of the module has
        // run or been entered from JS; this is what a reactor module's `_initialize` does.
        unsafe { __wasm_call_ctors() }
    }
}

/// Runs the module's static constructors; call it once, first thing in `main`.
pub fn run_static_constructors() {
    #[cfg(target_family = "wasm")]
    ctors::run();
}
