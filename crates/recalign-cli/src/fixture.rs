//! `recalign write-fixture` (hidden): the tiny deterministic model and its adapter that the page
//! tests load instead of the real ones.

use burn::tensor::Device;
use recalign_core::LanguageModel;

use crate::args::CliResult;

/// A compact-prompt adapter (r 2, q and v of the top layer) for the tiny model in `gguf`, hybrid
/// like the shipped default: a projector over a small catalogue of some of the page's example
/// titles, so the page ranks a mix of catalogue titles (with their items) and text.
fn tiny_adapter(gguf: &[u8], seed: u64) -> recalign_core::Result<Vec<u8>> {
    use recalign_core::train::{Adapter, FactorType, LoraSettings};
    let lm = LanguageModel::from_gguf_bytes(gguf, &Device::flex())?;
    let lora = LoraSettings {
        rank: 2,
        alpha: 4.0,
        top_layers: 1,
        ..LoraSettings::default()
    };
    let mut adapter = Adapter::fresh(&lora, &lm.model.config, seed)?;
    for (i, l) in adapter.layers.iter_mut().enumerate() {
        for (j, b) in l.b.iter_mut().enumerate() {
            *b = (((i * 31 + j * 17) % 13) as f32 - 6.0) * 0.05;
        }
    }
    adapter.prompt = recalign_core::prompt::PromptFormat::Compact;
    let titles = [
        "GoldenEye",
        "Heat",
        "Fargo",
        "Toy Story",
        "Babe",
        "Star Wars",
    ];
    let d_item = 4;
    let items = (0..(titles.len() + 1) * d_item)
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    let c = &lm.model.config;
    let mut hybrid = recalign_core::hybrid::HybridWeights::fresh(
        items,
        d_item,
        c.hidden_size,
        c.n_layers - 1,
        seed,
    )?;
    for (i, d) in hybrid.down.iter_mut().enumerate() {
        *d = ((i % 11) as f32 - 5.0) * 0.02;
    }
    adapter.hybrid = Some(hybrid.with_catalogue(
        recalign_core::hybrid::ItemCatalogue::from_titles(
            recalign_core::data::Domain::Movies,
            titles,
        ),
    )?);
    adapter.to_safetensors_as(FactorType::F16)
}

/// Writes the tiny model to `out` and, when asked, its adapter to `adapter`.
pub fn run(out: &std::path::Path, seed: u64, adapter: Option<&std::path::Path>) -> CliResult {
    let gguf = recalign_core::fixtures::tiny_model_gguf(seed);
    std::fs::write(out, &gguf).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    if let Some(path) = adapter {
        let bytes = tiny_adapter(&gguf, seed).map_err(|e| e.to_string())?;
        std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
