//! What several commands read from their arguments: the prompt choice and an adapter file.
//! Here rather than in one command's module, so command modules import from this one and
//! never from each other (`data` and `train` used to import each other).

use std::path::Path;

use clap::ValueEnum;
use recalign_core::prompt::PromptFormat;
use recalign_core::train::Adapter;

use crate::CliResult;

/// Which ranking prompt a command uses.
#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum PromptArg {
    /// LLaRA's ChatML prompt with the candidate list.
    Llara,
    /// The history as a document, candidates scored as the next line.
    Compact,
}

impl From<PromptArg> for PromptFormat {
    fn from(p: PromptArg) -> Self {
        match p {
            PromptArg::Llara => PromptFormat::Llara,
            PromptArg::Compact => PromptFormat::Compact,
        }
    }
}

/// An adapter file (`train` output, `adapter import`, or PEFT's safetensors with our metadata).
pub fn read_adapter(path: &Path) -> CliResult<Adapter> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Adapter::from_safetensors(&bytes, None).map_err(|e| format!("{}: {e}", path.display()))
}
