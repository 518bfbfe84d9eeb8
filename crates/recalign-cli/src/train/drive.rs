//! Running a prepared trainer from the command line: a progress bar, a JSON line per step,
//! checkpoints written atomically (and read back to resume), the adapter saved at the end; and
//! a fresh hybrid projector from the oracle for `--hybrid`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use recalign_core::prompt::PromptFormat;
use recalign_core::train::{Adapter, Checkpoint, LoraSettings, Trainer};

use crate::args::{CliResult, bar, read_oracle, write_file};

use super::{Stage, TrainArgs};

fn checkpoint_path(out: &Path) -> PathBuf {
    out.with_extension("ckpt")
}

/// Writes via a temporary file and a rename, so a kill mid-write never leaves a torn checkpoint.
fn save_checkpoint(run: &Trainer, out: &Path) -> CliResult<PathBuf> {
    let path = checkpoint_path(out);
    let bytes = pollster::block_on(run.checkpoint())
        .and_then(|c| c.to_bytes())
        .map_err(|e| e.to_string())?;
    let tmp = path.with_extension("ckpt.tmp");
    write_file(&tmp, &bytes)?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| format!("cannot move {} into place: {e}", tmp.display()))?;
    Ok(path)
}

/// The checkpoint a run resumes from, saying where it stands.
pub(super) fn read_checkpoint(path: &Path) -> CliResult<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let c = Checkpoint::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "resuming from step {} of {}",
        c.state.step, c.state.settings.steps
    );
    Ok(c)
}

/// Runs the remaining steps, printing a line per step, appending JSON lines to
/// `<out>.steps.jsonl`, checkpointing every `every` steps, and saving the adapter at the end.
/// A failing step (a NaN loss) leaves a checkpoint of the last good step behind.
pub(super) fn drive(
    mut run: Trainer,
    (train, stage): (&TrainArgs, Stage),
    out: &Path,
    prompt: PromptFormat,
) -> CliResult {
    let (steps, every) = (train.settings(stage).steps, train.checkpoint_every);
    let started = Instant::now();
    let log_path = out.with_extension("steps.jsonl");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open({
            if train.resume.is_none() {
                write_file(&log_path, b"")?;
            }
            &log_path
        })
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let progress = bar(steps as u64, "training");
    let mut done = 0;
    while !run.is_done() {
        let r = match pollster::block_on(run.step()) {
            Ok(r) => r,
            Err(e) => {
                progress.finish_and_clear();
                let kept = save_checkpoint(&run, out)
                    .map(|p| format!("; the last good step is saved in {}", p.display()))
                    .unwrap_or_default();
                return Err(format!("{e}{kept}"));
            }
        };
        done += 1;
        progress.set_position(r.step as u64);
        progress.println(format!(
            "step {:>4}/{}  loss {:>8.4}  margin {:>8.4}  acc {:>4.2}  lr {:.2e}  |g| {:>7.3}  {:>6.0} tok/s",
            r.step, r.steps, r.loss, r.margin, r.accuracy, r.learning_rate, r.grad_norm,
            r.tokens_per_second
        ));
        use std::io::Write;
        writeln!(
            log,
            "{}",
            serde_json::to_string(&r).map_err(|e| e.to_string())?
        )
        .map_err(|e| format!("cannot write {}: {e}", log_path.display()))?;
        if every > 0 && r.step % every == 0 && !run.is_done() {
            save_checkpoint(&run, out)?;
        }
    }
    progress.finish_and_clear();
    let mut adapter = pollster::block_on(run.adapter()).map_err(|e| e.to_string())?;
    adapter.prompt = prompt;
    write_file(out, &adapter.to_safetensors().map_err(|e| e.to_string())?)?;
    save_checkpoint(&run, out)?;
    eprintln!(
        "{done} steps in {:.1} s; adapter in {}, step log in {}",
        started.elapsed().as_secs_f64(),
        out.display(),
        log_path.display()
    );
    Ok(())
}

/// A fresh adapter with LLaRA's projector over `oracle`'s item table, fed at the lowest adapted
/// layer; the LoRA factors are drawn as a fresh run would draw them with `seed`.
pub(super) fn fresh_hybrid(
    lm: &recalign_core::LanguageModel,
    log: &recalign_core::data::InteractionLog,
    oracle: &std::path::Path,
    settings: &LoraSettings,
    seed: u64,
    prompt: PromptFormat,
) -> Result<Adapter, String> {
    let oracle = read_oracle(oracle, log, lm.model.device())?;
    let (items, d_item) = pollster::block_on(oracle.item_table()).map_err(|e| e.to_string())?;
    let c = &lm.model.config;
    let layer = settings
        .layer_range(c.n_layers)
        .map_err(|e| e.to_string())?
        .start;
    let mut adapter = Adapter::fresh(settings, c, seed).map_err(|e| e.to_string())?;
    adapter.hybrid = Some(
        recalign_core::hybrid::HybridWeights::fresh(items, d_item, c.hidden_size, layer, seed)
            .and_then(|h| h.with_catalogue(recalign_core::hybrid::ItemCatalogue::of(log)))
            .map_err(|e| e.to_string())?,
    );
    adapter.prompt = prompt;
    eprintln!("hybrid: item vectors of {d_item} from the oracle, projected into layer {layer}");
    Ok(adapter)
}
