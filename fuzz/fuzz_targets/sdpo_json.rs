#![no_main]
//! Fuzzes the S-DPO prompt-ready JSON reader.
#[path = "common.rs"]
#[allow(dead_code)]
mod common;
use libfuzzer_sys::fuzz_target;
use recalign_core::data::{Domain, formats};

fuzz_target!(|data: &[u8]| {
    let _ = formats::sdpo_json(data, Domain::Music);
});
