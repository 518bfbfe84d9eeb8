//! What the worker keeps in the browser's storage ([`crate::store`]): the adapter list, the
//! runs, and the running training's checkpoint, with the records they are stored as.
//!
//! Storage is best effort: a failed write is reported (`Response::StorageFailed`) and the
//! session goes on with everything in memory; nothing already stored is touched by a failure.

use std::rc::Rc;

use recalign_core::train::{Adapter, SftExample, TokenisedPair};
use serde::{Deserialize, Serialize};

use super::session::Shared;
use crate::protocol::{Response, ResumeOffer, RunRecord, StorageInfo, TrainStage};
use crate::store::{self, ADAPTERS, CHECKPOINT, MODELS, RUNS, Store};

const ADAPTER_INDEX: &str = "index.json";
const PREPARED: &str = "prepared.json";
const PENDING: &str = "run.json";
const STATE: &str = "state.safetensors";

/// One stored adapter, as `adapters/index.json` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredAdapter {
    file: String,
    name: String,
    stage: Option<TrainStage>,
}

/// What a run trains on, prepared once. The checkpoint keeps it, so a resumed run needs neither
/// the dataset nor the oracle again, and sees exactly the same inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Prepared {
    /// SFT examples.
    Sft(Vec<SftExample>),
    /// Preference pairs with their cached reference log-probs.
    Preference {
        /// Tokenised pairs.
        pairs: Vec<TokenisedPair>,
        /// Reference log-probs per pair (chosen first).
        reference: Vec<Vec<f32>>,
    },
}

/// The running run's record next to its checkpoint (rewritten at each checkpoint).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// The run so far.
    pub run: RunRecord,
    /// What it started from ("the base model", "SFT #1").
    pub start: String,
    /// Inputs trained on.
    pub inputs: usize,
    /// Inputs dropped as too long.
    pub too_long: usize,
    /// Steps the stored checkpoint holds (0: none yet).
    pub checkpoint_step: usize,
}

/// The store, opened once per worker.
pub async fn store(shared: &Shared) -> Result<Rc<Store>, String> {
    if let Some(s) = shared.borrow().store.clone() {
        return s;
    }
    let opened = Store::open().await.map(Rc::new);
    shared.borrow_mut().store = Some(opened.clone());
    opened
}

/// Reports a failed write without stopping what the user is doing.
pub fn report(reply: &dyn Fn(Response), during: &str, result: Result<(), String>) {
    if let Err(message) = result {
        reply(Response::StorageFailed {
            during: during.into(),
            message,
        });
    }
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| e.to_string())
}

async fn adapter_index(store: &Store) -> Result<Vec<StoredAdapter>, String> {
    match store.read(ADAPTERS, ADAPTER_INDEX).await? {
        None => Ok(Vec::new()),
        Some(b) => serde_json::from_slice(&b).map_err(|e| format!("adapters/index.json: {e}")),
    }
}

/// Stores an adapter and lists it (the file first, so the index never names a missing file).
pub async fn save_adapter(
    shared: &Shared,
    name: &str,
    stage: Option<&TrainStage>,
    adapter: &Adapter,
) -> Result<(), String> {
    let store = store(shared).await?;
    let bytes = adapter.to_safetensors().map_err(|e| e.to_string())?;
    let mut index = adapter_index(&store).await?;
    let file = format!("{}.safetensors", js_sys::Date::now() as u64);
    store.write(ADAPTERS, &file, &bytes).await?;
    index.push(StoredAdapter {
        file: file.clone(),
        name: name.to_string(),
        stage: stage.cloned(),
    });
    if let Err(e) = store.write(ADAPTERS, ADAPTER_INDEX, &json(&index)?).await {
        let _ = store.remove(ADAPTERS, &file).await;
        return Err(e);
    }
    Ok(())
}

/// The stored adapters, oldest first, with the ones that cannot be read named in the errors.
pub async fn stored_adapters(
    shared: &Shared,
) -> Result<(Vec<(String, Option<TrainStage>, Adapter)>, Vec<String>), String> {
    let store = store(shared).await?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for a in adapter_index(&store).await? {
        match store.read(ADAPTERS, &a.file).await? {
            Some(bytes) => match Adapter::from_safetensors(&bytes, None) {
                Ok(adapter) => out.push((a.name, a.stage, adapter)),
                Err(e) => errors.push(format!("{}: {e}", a.name)),
            },
            None => errors.push(format!("{}: its file is missing", a.name)),
        }
    }
    Ok((out, errors))
}

/// Stores a finished run.
pub async fn save_run(shared: &Shared, run: &RunRecord) -> Result<(), String> {
    let store = store(shared).await?;
    store
        .write(RUNS, &format!("{}.json", run.id), &json(run)?)
        .await
}

/// Every stored run, oldest first (unreadable files are skipped).
pub async fn runs(shared: &Shared) -> Result<Vec<RunRecord>, String> {
    let store = store(shared).await?;
    let mut out = Vec::new();
    for (file, _) in store.list(RUNS).await? {
        if let Some(bytes) = store.read(RUNS, &file).await?
            && let Ok(run) = serde_json::from_slice::<RunRecord>(&bytes)
        {
            out.push(run);
        }
    }
    out.sort_by_key(|r| r.id);
    Ok(out)
}

/// Stores what a new run trains on and its record, before its first step.
pub async fn begin_checkpoints(
    shared: &Shared,
    prepared: &Prepared,
    pending: &Pending,
) -> Result<(), String> {
    let store = store(shared).await?;
    // A new run replaces an older interrupted one.
    store.remove(CHECKPOINT, STATE).await?;
    store.write(CHECKPOINT, PREPARED, &json(prepared)?).await?;
    store.write(CHECKPOINT, PENDING, &json(pending)?).await
}

/// Stores the run's record, then its checkpoint. In that order, a reload between the two leaves
/// a record with at least the checkpoint's steps; a resume keeps only the checkpoint's.
pub async fn save_checkpoint(
    shared: &Shared,
    bytes: &[u8],
    pending: &Pending,
) -> Result<(), String> {
    let store = store(shared).await?;
    store.write(CHECKPOINT, PENDING, &json(pending)?).await?;
    store.write(CHECKPOINT, STATE, bytes).await
}

/// Forgets the checkpoint (the run ended, or the user discarded it).
pub async fn end_checkpoints(shared: &Shared) -> Result<(), String> {
    let store = store(shared).await?;
    for f in [STATE, PENDING, PREPARED] {
        store.remove(CHECKPOINT, f).await?;
    }
    Ok(())
}

async fn pending(store: &Store) -> Result<Option<Pending>, String> {
    match store.read(CHECKPOINT, PENDING).await? {
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| format!("checkpoint/run.json: {e}")),
        None => Ok(None),
    }
}

/// The interrupted run, its checkpoint bytes and what it trains on, if one can resume.
pub async fn interrupted(shared: &Shared) -> Result<Option<(Pending, Vec<u8>, Prepared)>, String> {
    let store = store(shared).await?;
    let Some(pending) = pending(&store).await? else {
        return Ok(None);
    };
    let (Some(state), Some(prepared)) = (
        store.read(CHECKPOINT, STATE).await?,
        store.read(CHECKPOINT, PREPARED).await?,
    ) else {
        return Ok(None);
    };
    let prepared =
        serde_json::from_slice(&prepared).map_err(|e| format!("checkpoint/prepared.json: {e}"))?;
    Ok(Some((pending, state, prepared)))
}

/// What is stored, for the Model card.
pub async fn info(shared: &Shared) -> StorageInfo {
    let store = match store(shared).await {
        Ok(s) => s,
        Err(e) => {
            return StorageInfo {
                unavailable: Some(e),
                ..StorageInfo::default()
            };
        }
    };
    let resume = match pending(&store).await {
        Ok(Some(p)) if p.checkpoint_step > 0 => Some(ResumeOffer {
            step: p.checkpoint_step,
            run: p.run,
        }),
        _ => None,
    };
    StorageInfo {
        unavailable: None,
        usage: store::estimate().await,
        models: store.list(MODELS).await.unwrap_or_default(),
        adapters: adapter_index(&store).await.map_or(0, |i| i.len()),
        runs: store.list(RUNS).await.map_or(0, |r| r.len()),
        resume,
    }
}

/// Sends the storage summary.
pub async fn send_info(shared: &Shared, reply: &dyn Fn(Response)) {
    reply(Response::Storage(Box::new(info(shared).await)));
}

/// Sends what is stored and the stored runs (the page asks once at start).
pub async fn status(shared: &Shared, reply: &dyn Fn(Response)) {
    send_info(shared, reply).await;
    match runs(shared).await {
        Ok(runs) => reply(Response::Runs(runs)),
        Err(message) => reply(Response::StorageFailed {
            during: "reading the stored runs".into(),
            message,
        }),
    }
}

/// Clears everything this page stored in the browser.
pub async fn clear(shared: &Shared, reply: &dyn Fn(Response)) {
    let cleared = match store(shared).await {
        Ok(store) => store.clear().await,
        Err(e) => Err(e),
    };
    report(reply, "clearing the stored data", cleared);
    reply(Response::Runs(runs(shared).await.unwrap_or_default()));
    send_info(shared, reply).await;
}

/// Stores the runs of a file exported by [`RunRecord`]'s JSON (the Runs card's export).
pub async fn import_runs(
    shared: &Shared,
    bytes: &[u8],
    reply: &dyn Fn(Response),
) -> Result<(), String> {
    let imported: Vec<RunRecord> = serde_json::from_slice(bytes).map_err(|e| {
        format!("not a runs file exported from this page (a JSON list of runs): {e}")
    })?;
    for run in &imported {
        save_run(shared, run).await?;
    }
    reply(Response::Runs(runs(shared).await?));
    send_info(shared, reply).await;
    Ok(())
}

/// Forgets the interrupted run's checkpoint (the user declined to resume it).
pub async fn discard_checkpoint(shared: &Shared, reply: &dyn Fn(Response)) {
    let ended = end_checkpoints(shared).await;
    report(reply, "discarding the checkpoint", ended);
    send_info(shared, reply).await;
}
