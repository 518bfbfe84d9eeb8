//! The session's adapters: which one ranks, exporting one in PEFT's layout, importing one (a
//! PEFT export or a recalign file), refused before listing when it does not fit the model.

use recalign_core::train::{Adapter, with_adapter};

use super::persist;
use super::session::{Problem, Shared, TrainedAdapter};
use crate::protocol::Response;

/// Makes adapter `index` (`None`: the base model) the one ranking and generation use.
pub fn use_adapter(
    shared: &Shared,
    index: Option<usize>,
    reply: &dyn Fn(Response),
) -> Result<(), Problem> {
    shared.borrow_mut().use_adapter(index)?;
    reply(Response::AdapterInUse { index });
    Ok(())
}

/// Sends adapter `index` in PEFT's layout (`adapter_model.safetensors`, `adapter_config.json`).
pub fn export(shared: &Shared, index: usize, reply: &dyn Fn(Response)) -> Result<(), Problem> {
    let (name, adapter) = {
        let s = shared.borrow();
        let a = s
            .adapters
            .get(index)
            .ok_or_else(|| format!("there is no adapter #{}", index + 1))?;
        (a.name.clone(), a.adapter.clone())
    };
    let safetensors = adapter.to_safetensors().map_err(Problem::from)?;
    let config = serde_json::to_string_pretty(&adapter.peft_config()).map_err(|e| e.to_string())?;
    reply(Response::AdapterExported {
        name,
        safetensors,
        config,
    });
    Ok(())
}

/// Reads an adapter file (with PEFT's `adapter_config.json`, when given), lists it, puts it in
/// use and stores it.
pub async fn import(
    shared: &Shared,
    name: &str,
    bytes: &[u8],
    config: Option<&[u8]>,
    reply: &dyn Fn(Response),
) -> Result<(), Problem> {
    let config = config
        .map(serde_json::from_slice::<serde_json::Value>)
        .transpose()
        .map_err(|e| format!("adapter_config.json is not valid JSON: {e}"))?;
    let adapter = Adapter::from_safetensors(bytes, config.as_ref()).map_err(Problem::from)?;
    let base = shared.borrow().base_model()?;
    // Refuse an adapter that does not fit the loaded model before listing it.
    let lm = with_adapter(&base, &adapter)
        .map_err(|e| format!("it does not fit the loaded model: {e}"))?;
    let stem = name.trim_end_matches(".safetensors");
    let name = format!("{stem} (imported)");
    let imported = TrainedAdapter {
        name: name.clone(),
        stage: None,
        adapter: adapter.clone(),
    };
    let index = shared.borrow_mut().add_adapter(imported, Some(lm));
    reply(Response::AdapterAdded {
        index,
        name: name.clone(),
    });
    reply(Response::AdapterInUse { index: Some(index) });
    let saved = persist::save_adapter(shared, &name, None, &adapter).await;
    persist::report(reply, &format!("storing adapter {name}"), saved);
    persist::send_info(shared, reply).await;
    Ok(())
}
