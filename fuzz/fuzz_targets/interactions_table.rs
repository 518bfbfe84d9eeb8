#![no_main]
//! Fuzzes the CSV/TSV/RecBole reader and the split built on what it accepts.
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;
use recalign_core::data::{Domain, formats};

fuzz_target!(|data: &[u8]| {
    let (inter, items) = common::two_files(data);
    if let Ok(log) = formats::interactions_table(inter, items, Domain::Movies) {
        common::exercise(&log);
    }
});
