//! Loading the model: from this origin (streamed, with progress, kept in the browser's storage
//! for the next visit), from a file the user picked, or from storage; then the default adapter
//! and the adapters stored by earlier visits. A failed load leaves the previous model in use.

use burn::tensor::Device;
use recalign_core::LanguageModel;
use recalign_core::train::{Adapter, with_adapter};

use super::browser::{download, now_ms};
use super::device::ensure_device;
use super::persist;
use super::session::{Problem, Shared, TrainedAdapter};
use crate::protocol::{DevicePreference, Lane, ModelInfo, Response};
use crate::store::MODELS;

/// Loads the GGUF at `url` (the stored copy when the server's file has its size, or when the
/// server cannot be reached), then the default adapter at `adapter`, if any.
pub async fn load_url(
    shared: &Shared,
    url: &str,
    device: DevicePreference,
    adapter: Option<&str>,
    reply: &dyn Fn(Response),
) -> Result<(), Problem> {
    ensure_device(shared, device, reply).await;
    let name = url.rsplit('/').next().unwrap_or(url).to_string();
    let store = persist::store(shared).await.ok();
    let cached = match &store {
        Some(s) => s.size(MODELS, &name).await.ok().flatten(),
        None => None,
    };
    let progress = |done, total| {
        reply(Response::Progress {
            lane: Lane::Model,
            stage: "Downloading the model".into(),
            done,
            total,
        })
    };
    let fetched = download(url, &progress, cached).await;
    let (bytes, from_store) = match (fetched, &store) {
        (Ok(Some(bytes)), _) => (bytes, false),
        (Ok(None), Some(store)) | (Err(_), Some(store)) if cached.is_some() => {
            reply(Response::Progress {
                lane: Lane::Model,
                stage: "Reading the model from this browser's storage".into(),
                done: 0,
                total: None,
            });
            let bytes = store.read(MODELS, &name).await?;
            (
                bytes.ok_or_else(|| format!("{name} vanished from storage"))?,
                true,
            )
        }
        (Err(e), _) => return Err(e.into()),
        (Ok(None), _) => return Err("the stored copy cannot be read".into()),
    };
    load(shared, name.clone(), &bytes, reply)?;
    if !from_store {
        cache_model(shared, &name, &bytes, reply).await;
    }
    if let Some(url) = adapter {
        load_default_adapter(shared, url, reply).await;
    }
    restore_adapters(shared, reply).await;
    Ok(())
}

/// Loads a GGUF the user picked or dropped, and keeps it in storage.
pub async fn load_bytes(
    shared: &Shared,
    name: &str,
    bytes: &[u8],
    reply: &dyn Fn(Response),
) -> Result<(), Problem> {
    ensure_device(shared, DevicePreference::Auto, reply).await;
    load(shared, name.to_string(), bytes, reply)?;
    cache_model(shared, name, bytes, reply).await;
    restore_adapters(shared, reply).await;
    Ok(())
}

/// Loads a model kept in this browser's storage.
pub async fn load_stored(
    shared: &Shared,
    name: &str,
    reply: &dyn Fn(Response),
) -> Result<(), Problem> {
    ensure_device(shared, DevicePreference::Auto, reply).await;
    reply(Response::Progress {
        lane: Lane::Model,
        stage: "Reading the model from this browser's storage".into(),
        done: 0,
        total: None,
    });
    let store = persist::store(shared).await?;
    let bytes = store
        .read(MODELS, name)
        .await?
        .ok_or_else(|| "it is no longer stored".to_string())?;
    load(shared, name.to_string(), &bytes, reply)?;
    restore_adapters(shared, reply).await;
    Ok(())
}

/// Prepares the weights on the device and makes the model the one in use.
fn load(
    shared: &Shared,
    name: String,
    bytes: &[u8],
    reply: &dyn Fn(Response),
) -> Result<(), Problem> {
    reply(Response::Progress {
        lane: Lane::Model,
        stage: "Preparing the weights on the device".into(),
        done: 0,
        total: None,
    });
    let device = shared.borrow().device.clone().unwrap_or_else(Device::flex);
    let t = now_ms();
    let lm = LanguageModel::from_gguf_bytes(bytes, &device).map_err(|e| format!("{name}: {e}"))?;
    let c = &lm.model.config;
    let info = ModelInfo {
        name: name.clone(),
        bytes: bytes.len() as u64,
        layers: c.n_layers,
        hidden: c.hidden_size,
        vocab: c.vocab_size,
        context: c.context_length,
        prepare_ms: now_ms() - t,
    };
    // A failed load leaves the previous model in place: the user loses nothing. Trained adapters
    // are kept (they may fit the new model), but ranking starts again from the base model.
    {
        let mut s = shared.borrow_mut();
        s.model = Some(lm);
        s.model_name = Some(name);
        s.in_use = None;
    }
    reply(Response::AdapterInUse { index: None });
    reply(Response::Loaded(info));
    Ok(())
}

/// Keeps a loaded model in the browser's storage, so the next visit reads it from there.
async fn cache_model(shared: &Shared, name: &str, bytes: &[u8], reply: &dyn Fn(Response)) {
    let stored = match persist::store(shared).await {
        Ok(store) => store.write(MODELS, name, bytes).await,
        Err(e) => Err(e),
    };
    persist::report(
        reply,
        &format!("keeping {name} in this browser's storage"),
        stored,
    );
    persist::send_info(shared, reply).await;
}

/// Fetches the adapter at `url` and, when it fits the loaded model, lists it first and ranks
/// with it. It is not stored (the server has it). A missing or unfit file leaves the base
/// model in use and says why, since the page works without it.
async fn load_default_adapter(shared: &Shared, url: &str, reply: &dyn Fn(Response)) {
    let name = url
        .rsplit('/')
        .next()
        .unwrap_or(url)
        .trim_end_matches(".safetensors");
    let added = async {
        let bytes = download(url, &|_, _| {}, None)
            .await?
            .ok_or("the download came back empty")?;
        let adapter = Adapter::from_safetensors(&bytes, None).map_err(Problem::from)?;
        let base = shared.borrow().base_model()?;
        let lm = with_adapter(&base, &adapter).map_err(|e| Problem {
            message: format!("it does not fit the loaded model: {e}"),
            fault: e.device_fault(),
        })?;
        let added = TrainedAdapter {
            name: name.to_string(),
            stage: None,
            adapter,
        };
        Ok::<usize, Problem>(shared.borrow_mut().add_adapter(added, Some(lm)))
    }
    .await;
    match added {
        Ok(index) => {
            reply(Response::AdapterAdded {
                index,
                name: name.to_string(),
            });
            reply(Response::AdapterInUse { index: Some(index) });
            reply(Response::DefaultAdapter(Ok(index)));
        }
        Err(message) => reply(Response::DefaultAdapter(Err(format!(
            "The default adapter ({url}) was not loaded, so the base model ranks: {message}"
        )))),
    }
}

/// Adds the adapters stored in this browser to the list (once, after the first model loads);
/// the ones that do not fit the model stay stored and are named in a message.
async fn restore_adapters(shared: &Shared, reply: &dyn Fn(Response)) {
    if std::mem::replace(&mut shared.borrow_mut().adapters_restored, true) {
        return;
    }
    let Ok(base) = shared.borrow().base_model() else {
        return;
    };
    let (stored, mut errors) = match persist::stored_adapters(shared).await {
        Ok(found) => found,
        Err(message) => {
            reply(Response::StorageFailed {
                during: "reading the stored adapters".into(),
                message,
            });
            return;
        }
    };
    for (name, stage, adapter) in stored {
        if let Err(e) = with_adapter(&base, &adapter) {
            errors.push(format!("{name} does not fit this model: {e}"));
            continue;
        }
        let restored = TrainedAdapter {
            name: name.clone(),
            stage,
            adapter,
        };
        let index = shared.borrow_mut().add_adapter(restored, None);
        reply(Response::AdapterAdded { index, name });
    }
    if !errors.is_empty() {
        reply(Response::StorageFailed {
            during: "restoring the stored adapters".into(),
            message: errors.join("; "),
        });
    }
}
