#![no_main]
//! Fuzzes the TRL-style preference JSONL reader and its writer round trip.
use libfuzzer_sys::fuzz_target;
use recalign_core::data::pairs;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = pairs::read_jsonl(data) {
        let again = pairs::read_jsonl(pairs::write_jsonl(&p).as_bytes());
        assert_eq!(again.ok().as_ref(), Some(&p));
    }
});
