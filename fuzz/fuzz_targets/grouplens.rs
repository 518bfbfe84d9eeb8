#![no_main]
//! Fuzzes the GroupLens u.data/u.item reader and the split built on what it accepts.
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;
use recalign_core::data::formats;

fuzz_target!(|data: &[u8]| {
    let (u_data, u_item) = common::two_files(data);
    if let Ok(log) = formats::grouplens(u_data, u_item) {
        common::exercise(&log);
    }
});
