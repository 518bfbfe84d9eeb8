//! Why the CLI tunes glibc's allocator before anything else runs.
//!
//! A ranking or a training step allocates tensor buffers of megabytes each and frees them an op
//! later. glibc's malloc serves such sizes with `mmap` and returns them with `munmap`, so every
//! op made the kernel fault in and zero fresh pages: `perf` put a third of `bench rank` in
//! `clear_page_erms` and page faults. Keeping freed memory in the heap (no `mmap` for large
//! blocks, no trimming) made a ranking 1.4x faster at the same peak memory (docs/benchmarks.md).
//! mimalloc helped less unless told never to purge, and costs a C build, so this stays a
//! two-line tuning of the allocator every glibc binary already has. Other platforms keep their
//! allocator's defaults; the page's wasm heap never returns memory anyway.

/// Tells glibc to keep freed blocks for reuse instead of returning them to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    // SAFETY: mallopt only sets glibc tuning parameters; it is called first thing in `main`,
    // before any other thread exists. A value glibc refuses leaves its default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Nothing to tune outside glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() {}
