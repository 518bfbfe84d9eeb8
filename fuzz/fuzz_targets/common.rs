// Shared by the fuzz targets: split one input into two files, and run the split on any log
// that parses, so the whole data path (not just the parser) is fuzzed.
use recalign_core::data::InteractionLog;
use recalign_core::data::split::{SplitConfig, split};
use recalign_core::data::stats::split_stats;

/// Splits at the first 0x00 byte: (main file, second file).
pub fn two_files(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    }
}

pub fn exercise(log: &InteractionLog) {
    let config = SplitConfig { candidates: 3, min_history: 1, ..Default::default() };
    if let Ok(s) = split(log, &config) {
        let _ = split_stats(log, &s);
    }
}
