//! `recalign bench`: speed and memory figures as JSON, measured on the real model.

use std::time::Instant;

use clap::Subcommand;
use recalign_core::ScoreOptions;
use recalign_core::prompt::recommendation_prompt;
use serde_json::json;

use crate::args::{CliResult, ModelArgs, load_model};

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
    /// LoRA training steps on the real model: SFT, then DPO (reference log-probs cached first);
    /// tokens/s and peak memory of each.
    Train {
        /// Timed steps per phase (after one warm-up step).
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Examples (pairs) per step.
        #[arg(long, default_value_t = 4)]
        batch: usize,
        /// LoRA rank.
        #[arg(long, default_value_t = 8)]
        rank: usize,
        /// Adapt every linear layer instead of q/v.
        #[arg(long)]
        all_linear: bool,
        /// Adapt only the top N blocks (0: all).
        #[arg(long, default_value_t = 0)]
        top_layers: usize,
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
        BenchCommand::Train {
            steps,
            batch,
            rank,
            all_linear,
            top_layers,
        } => bench_train(
            model,
            steps.max(1),
            batch.max(1),
            rank,
            all_linear,
            top_layers,
        ),
    }
}

fn bench_train(
    model: &ModelArgs,
    steps: usize,
    batch: usize,
    rank: usize,
    all_linear: bool,
    top_layers: usize,
) -> CliResult {
    use recalign_core::data::pairs::PreferencePair;
    use recalign_core::losses::{LossConfig, LossKind};
    use recalign_core::train::{
        LoraSettings, LoraTargets, PreferenceTrainer, Reference, SftExample, SftTrainer,
        StepReport, TokenisedPair, TrainSettings, Trainer, reference_log_probs,
    };
    let err = |e: recalign_core::Error| e.to_string();
    let lm = load_model(model)?;
    let history: Vec<String> = HISTORY.map(String::from).to_vec();
    // `batch` prompts: the same history with the candidate list rotated, the target varying.
    let prompts: Vec<(String, String, String)> = (0..batch)
        .map(|i| {
            let mut c: Vec<String> = CANDIDATES.map(String::from).to_vec();
            c.rotate_left(i);
            (
                recommendation_prompt_request(&history, &c),
                c[0].clone(),
                c[1].clone(),
            )
        })
        .collect();
    let settings = TrainSettings {
        learning_rate: 1e-4,
        warmup_steps: 0,
        steps: steps + 1,
        batch_size: batch,
        accumulation: 1,
        ..TrainSettings::default()
    };
    let lora = LoraSettings {
        rank,
        alpha: 2.0 * rank as f64,
        targets: if all_linear {
            LoraTargets::AllLinear
        } else {
            LoraTargets::QueryValue
        },
        top_layers,
        ..LoraSettings::default()
    };
    let summarise = |reports: &[StepReport], secs: &[f64]| {
        let tokens: usize = reports.iter().map(|r| r.tokens).sum();
        let total: f64 = secs.iter().sum();
        json!({
            "steps": reports.len(),
            "ms_per_step": median_ms(secs.iter().map(|s| s * 1e3).collect()),
            "tokens_per_step": tokens / reports.len().max(1),
            "tokens_per_s": tokens as f64 / total,
            "losses": reports.iter().map(|r| r.loss).collect::<Vec<_>>(),
            "peak_rss_mib_so_far": peak_rss_mib(),
        })
    };
    let rss_loaded = peak_rss_mib();

    let examples = prompts
        .iter()
        .map(|(p, chosen, _)| SftExample::new(&lm, p, chosen))
        .collect::<recalign_core::Result<Vec<_>>>()
        .map_err(err)?;
    let sft_inputs: Vec<_> = examples
        .iter()
        .map(|e| json!({ "prompt_ids": e.prompt_ids, "answer_ids": e.answer_ids }))
        .collect();
    let sft = SftTrainer::new(&lm, lora.clone(), settings.clone(), examples).map_err(err)?;
    let (reports, secs) = time_steps(Trainer::Sft(Box::new(sft)), steps)?;
    let sft_report = summarise(&reports, &secs);

    let pairs = prompts
        .iter()
        .map(|(p, chosen, rejected)| {
            let pair = PreferencePair {
                prompt: p.clone(),
                chosen: chosen.clone(),
                rejected: rejected.clone(),
                ..PreferencePair::default()
            };
            TokenisedPair::new(&lm, &pair, 1)
        })
        .collect::<recalign_core::Result<Vec<_>>>()
        .map_err(err)?;
    let t = Instant::now();
    let cached = pollster::block_on(reference_log_probs(&lm, &pairs, |_, _| {})).map_err(err)?;
    let reference_ms = t.elapsed().as_secs_f64() * 1e3;
    // Every step revisits the same pairs, so after the untimed first step the frozen-layer
    // cache holds them all: "dpo" is a later epoch's speed, "dpo_no_cache" a first pass's.
    let dpo_run = |cache_mib: usize| -> Result<serde_json::Value, String> {
        let dpo = PreferenceTrainer::new(
            &lm,
            lora.clone(),
            None,
            TrainSettings {
                cache_mib,
                ..settings.clone()
            },
            LossConfig::new(LossKind::Dpo),
            pairs.clone(),
            cached.clone(),
        )
        .map_err(err)?;
        let (reports, secs) = time_steps(Trainer::Preference(Box::new(dpo)), steps)?;
        Ok(summarise(&reports, &secs))
    };
    let dpo_no_cache = dpo_run(0)?;
    let dpo_cached = dpo_run(TrainSettings::default().cache_mib)?;
    // A first pass over fresh pairs with the reference scored by the run itself (what `train
    // pref` does): the reference and the policy share the frozen layers' states. Compare with
    // `dpo_reference_ms` (for this batch's pairs) plus a `dpo_no_cache` step.
    let mut first = Vec::new();
    for _ in 0..steps {
        let mut dpo = PreferenceTrainer::new(
            &lm,
            lora.clone(),
            None,
            settings.clone(),
            LossConfig::new(LossKind::Dpo),
            pairs.clone(),
            Reference::Model(Box::new(lm.clone())),
        )
        .map_err(err)?;
        let t = Instant::now();
        pollster::block_on(dpo.step()).map_err(err)?;
        first.push(t.elapsed().as_secs_f64() * 1e3);
    }
    first.sort_by(f64::total_cmp);
    let first_ms = first[first.len() / 2];
    let report = json!({
        "benchmark": "train",
        "device": match model.device { crate::args::DeviceArg::Flex => "flex", crate::args::DeviceArg::Wgpu => "wgpu" },
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "batch": batch,
        "lora_rank": rank,
        "lora_targets": if all_linear { "all-linear" } else { "q,v" },
        "lora_top_layers": top_layers,
        "prompt_tokens": prompts.first().map(|(p, _, _)| lm.tokenizer.encode(p).map(|v| v.len()).unwrap_or(0)),
        "peak_rss_mib_model_loaded": rss_loaded,
        "sft": sft_report,
        "dpo_reference_ms": reference_ms,
        "dpo_first_pass_with_reference_ms": first_ms,
        "dpo_no_cache": dpo_no_cache,
        "dpo": dpo_cached,
        // The SFT batch's token ids, for a peer running the same step (scripts/bench-compare.py).
        "inputs": { "sft_examples": sft_inputs, "learning_rate": settings.learning_rate },
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// One untimed warm-up step of `run`, then `steps` timed ones: their reports and seconds.
fn time_steps(
    mut run: recalign_core::train::Trainer,
    steps: usize,
) -> Result<(Vec<recalign_core::train::StepReport>, Vec<f64>), String> {
    let err = |e: recalign_core::Error| e.to_string();
    pollster::block_on(run.step()).map_err(err)?;
    let (mut reports, mut secs) = (Vec::new(), Vec::new());
    for _ in 0..steps {
        let t = Instant::now();
        reports.push(pollster::block_on(run.step()).map_err(err)?);
        secs.push(t.elapsed().as_secs_f64());
    }
    Ok((reports, secs))
}

/// The default template's user turn (without the chat wrapping the trainers add).
fn recommendation_prompt_request(history: &[String], candidates: &[String]) -> String {
    recalign_core::prompt::recommendation_request(history, candidates)
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
        "device": match model.device { crate::args::DeviceArg::Flex => "flex", crate::args::DeviceArg::Wgpu => "wgpu" },
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
        // The exact token ids and scores, so a peer (scripts/bench-compare.py) runs the same
        // work and checks it got the same answer.
        "inputs": {
            "prompt_ids": prompt,
            "answer_ids": answers,
            "log_probs": warm.iter().map(|c| c.log_prob).collect::<Vec<_>>(),
        },
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}
