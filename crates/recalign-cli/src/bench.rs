//! `recalign bench`: speed and memory figures as JSON, measured on the real model.

use std::time::Instant;

use clap::Subcommand;
use recalign_core::ScoreOptions;
use recalign_core::prompt::recommendation_prompt;
use serde_json::json;

use crate::{CliResult, ModelArgs, load_model};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// One ML-100K-style ranking (10 history titles, 20 candidates): shared prefix vs separate
    /// full sequences.
    Rank {
        /// Timed shared-prefix rankings (after one warm-up).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Timed separate-sequence rankings (slow: 20 full forward passes each).
        #[arg(long, default_value_t = 1)]
        separate_repeats: usize,
    },
}

/// Real MovieLens-100K titles (as in RecBole's `ml-100k.item`), a typical history and candidate set.
const HISTORY: [&str; 10] = [
    "Toy Story",
    "GoldenEye",
    "Four Rooms",
    "Get Shorty",
    "Copycat",
    "Twelve Monkeys",
    "Babe",
    "Dead Man Walking",
    "Richard III",
    "Seven (Se7en)",
];
const CANDIDATES: [&str; 20] = [
    "Usual Suspects, The",
    "Mighty Aphrodite",
    "Postino, Il",
    "Mr. Holland's Opus",
    "French Twist (Gazon maudit)",
    "From Dusk Till Dawn",
    "White Balloon, The",
    "Antonia's Line",
    "Angels and Insects",
    "Muppet Treasure Island",
    "Braveheart",
    "Taxi Driver",
    "Rumble in the Bronx",
    "Birdcage, The",
    "Brothers McMullen, The",
    "Bad Boys",
    "Apollo 13",
    "Batman Forever",
    "Belle de jour",
    "Crimson Tide",
];

/// Peak resident memory of this process in MiB (Linux `VmHWM`), if the platform reports it.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(what: BenchCommand, model: &ModelArgs) -> CliResult {
    match what {
        BenchCommand::Rank {
            repeats,
            separate_repeats,
        } => bench_rank(model, repeats.max(1), separate_repeats.max(1)),
    }
}

fn bench_rank(model: &ModelArgs, repeats: usize, separate_repeats: usize) -> CliResult {
    let t0 = Instant::now();
    let lm = load_model(model)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let history: Vec<String> = HISTORY.map(String::from).to_vec();
    let candidates: Vec<String> = CANDIDATES.map(String::from).to_vec();
    let prompt = lm
        .tokenizer
        .encode(&recommendation_prompt(&history, &candidates))
        .map_err(|e| e.to_string())?;
    let answers = lm.candidate_ids(&candidates).map_err(|e| e.to_string())?;
    let answer_tokens: usize = answers.iter().map(Vec::len).sum();
    let opts = ScoreOptions::default();
    let err = |e: recalign_core::Error| e.to_string();

    let warm = pollster::block_on(lm.score_candidates(&prompt, &candidates, opts)).map_err(err)?;
    let mut shared_ms = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        let s = pollster::block_on(lm.score_candidates(&prompt, &candidates, opts)).map_err(err)?;
        shared_ms.push(t.elapsed().as_secs_f64() * 1e3);
        // Consume the read-back so the timing includes the device work.
        std::hint::black_box(s);
    }
    let mut separate_ms = Vec::new();
    let mut separate = Vec::new();
    for _ in 0..separate_repeats {
        let t = Instant::now();
        separate = pollster::block_on(lm.score_candidates_separately(&prompt, &candidates, opts))
            .map_err(err)?;
        separate_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let max_diff = warm
        .iter()
        .zip(&separate)
        .map(|(a, b)| (a.log_prob - b.log_prob).abs())
        .fold(0f32, f32::max);
    let (shared, sep) = (median_ms(shared_ms.clone()), median_ms(separate_ms.clone()));
    let separate_tokens = answers
        .iter()
        .map(|a| prompt.len() + a.len() - 1)
        .sum::<usize>();
    let report = json!({
        "benchmark": "rank",
        "device": match model.device { crate::DeviceArg::Flex => "flex", crate::DeviceArg::Wgpu => "wgpu" },
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "history_titles": history.len(),
        "candidates": candidates.len(),
        "prompt_tokens": prompt.len(),
        "answer_tokens": answer_tokens,
        "model_load_ms": load_ms,
        "shared_prefix": {
            "runs_ms": shared_ms,
            "ms_per_ranking": shared,
            "prompt_tokens_per_s": prompt.len() as f64 / (shared / 1e3),
            "tokens_processed": prompt.len() - 1 + candidates.len() * answers.iter().map(Vec::len).max().unwrap_or(0),
        },
        "separate_sequences": {
            "runs_ms": separate_ms,
            "ms_per_ranking": sep,
            "tokens_processed": separate_tokens,
            "tokens_per_s": separate_tokens as f64 / (sep / 1e3),
        },
        "speedup_shared_prefix": sep / shared,
        "max_abs_logprob_difference": max_diff,
        "peak_rss_mib": peak_rss_mib(),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}
