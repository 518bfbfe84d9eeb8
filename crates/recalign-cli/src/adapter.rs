//! `recalign adapter export|import|f16`: adapters to and from PEFT's directory layout, and their
//! factors in f16 (what ships as the default adapter).

use std::path::PathBuf;

use clap::Subcommand;
use recalign_core::train::{Adapter, FactorType};

use crate::args::{CliResult, read_adapter, write_file};

#[derive(Subcommand)]
pub enum AdapterCommand {
    /// Write PEFT's two files (adapter_model.safetensors, adapter_config.json) to a directory.
    Export {
        /// The adapter.
        adapter: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Rewrite an adapter with its factors in f16 (half the size; what ships as
    /// models/default-adapter.safetensors).
    F16 {
        /// The adapter.
        adapter: PathBuf,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Also store a hybrid adapter's projector and item table as int8 with a scale per
        /// row (a quarter of their f32 bytes; only recalign reads them, PEFT never did).
        #[arg(long)]
        int8_hybrid: bool,
    },
    /// Read a PEFT adapter directory into one recalign adapter file.
    Import {
        /// Directory with adapter_model.safetensors and adapter_config.json.
        dir: PathBuf,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(command: AdapterCommand) -> CliResult {
    match command {
        AdapterCommand::Export { adapter, out } => {
            let mut a = read_adapter(&adapter)?;
            if a.hybrid.is_some() {
                // PEFT has no place for LLaRA's projector: its file keeps the LoRA factors, and
                // the whole adapter goes next to it as recalign reads it.
                let whole = out.join("recalign_adapter.safetensors");
                write_file(&whole, &a.to_safetensors().map_err(|e| e.to_string())?)?;
                a.hybrid = None;
                eprintln!(
                    "the adapter has LLaRA's projector (hybrid item slots), which PEFT cannot                      hold: adapter_model.safetensors has the LoRA factors only, {} the whole                      adapter",
                    whole.display()
                );
            }
            write_file(
                &out.join("adapter_model.safetensors"),
                &a.to_safetensors().map_err(|e| e.to_string())?,
            )?;
            let config =
                serde_json::to_string_pretty(&a.peft_config()).map_err(|e| e.to_string())?;
            write_file(&out.join("adapter_config.json"), config.as_bytes())?;
            eprintln!("wrote {} (PEFT layout)", out.display());
            Ok(())
        }
        AdapterCommand::F16 {
            adapter,
            out,
            int8_hybrid,
        } => {
            let a = read_adapter(&adapter)?;
            if int8_hybrid && a.hybrid.is_none() {
                return Err(format!(
                    "{} has no hybrid projector for --int8-hybrid to store",
                    adapter.display()
                ));
            }
            let dtype = if int8_hybrid {
                FactorType::F16Int8Hybrid
            } else {
                FactorType::F16
            };
            let bytes = a.to_safetensors_as(dtype).map_err(|e| e.to_string())?;
            write_file(&out, &bytes)?;
            eprintln!(
                "wrote {} ({} bytes, f16 factors{})",
                out.display(),
                bytes.len(),
                if int8_hybrid {
                    ", int8 projector and item table"
                } else {
                    ""
                }
            );
            Ok(())
        }
        AdapterCommand::Import { dir, out } => {
            let bytes = std::fs::read(dir.join("adapter_model.safetensors")).map_err(|e| {
                format!(
                    "cannot read {}/adapter_model.safetensors: {e}",
                    dir.display()
                )
            })?;
            let config = std::fs::read(dir.join("adapter_config.json"))
                .map_err(|e| format!("cannot read {}/adapter_config.json: {e}", dir.display()))?;
            let config: serde_json::Value = serde_json::from_slice(&config)
                .map_err(|e| format!("{}/adapter_config.json: {e}", dir.display()))?;
            let a = Adapter::from_safetensors(&bytes, Some(&config)).map_err(|e| e.to_string())?;
            write_file(&out, &a.to_safetensors().map_err(|e| e.to_string())?)?;
            eprintln!(
                "imported {} adapted layers to {}",
                a.layers.len(),
                out.display()
            );
            Ok(())
        }
    }
}
