#![no_main]
//! Fuzzes LLaRA's JSONL rows + id2name reader and candidate attachment.
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;
use recalign_core::data::{Domain, formats, split};

fuzz_target!(|data: &[u8]| {
    let (rows, names) = common::two_files(data);
    if let Ok(mut set) = formats::llara_jsonl(rows, names, Domain::Movies) {
        let n = set.catalogue.len();
        let _ = split::attach_candidates(&mut set.examples, n, 1, 3);
    }
});
