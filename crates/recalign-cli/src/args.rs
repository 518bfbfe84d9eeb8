//! What several commands read from their arguments: the model and device, the prompt choice,
//! an adapter, loss hyper-parameters, and files; `dataset` the dataset, split and oracle options.
//! Here rather than in one command's module, so command modules import from this one and never
//! from each other.

mod dataset;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use recalign_core::LanguageModel;
use recalign_core::losses::{LossConfig, LossKind};
use recalign_core::prompt::PromptFormat;
use recalign_core::train::Adapter;
use serde::Serialize;

pub use dataset::*;

/// A command's outcome: the error is the message printed after `error:`.
pub type CliResult<T = ()> = Result<T, String>;

/// The model `recalign fetch` installs, relative to the repository root.
pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// GGUF model file (default: the copy `recalign fetch` installs).
    #[arg(long, global = true)]
    pub model: Option<PathBuf>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Flex, global = true)]
    pub device: DeviceArg,
}

#[derive(Copy, Clone, ValueEnum)]
pub enum DeviceArg {
    /// Burn's pure-Rust CPU backend.
    Flex,
    /// Burn's wgpu backend (Vulkan/Metal natively); needs the `wgpu` feature.
    Wgpu,
}

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

/// A loss and the hyper-parameters to override; unset ones take method.md's defaults.
#[derive(Args)]
pub struct LossParams {
    /// dpo, cdpo, rdpo, ipo, sdpo, simpo, alpha-dpo, beta-dpo, dr-dpo, orpo or rosepo.
    #[arg(long = "type")]
    kind: String,
    /// Inverse temperature.
    #[arg(long)]
    beta: Option<f64>,
    /// Label smoothing / noise (cDPO, rDPO); RosePO's eps for `curve`.
    #[arg(long)]
    pub eps: Option<f64>,
    /// IPO's tau.
    #[arg(long)]
    tau: Option<f64>,
    /// SimPO / alpha-DPO target margin gamma.
    #[arg(long, allow_negative_numbers = true)]
    gamma: Option<f64>,
    /// alpha-DPO's alpha.
    #[arg(long)]
    alpha: Option<f64>,
    /// Dr. DPO's beta'.
    #[arg(long)]
    beta_prime: Option<f64>,
    /// ORPO's lambda.
    #[arg(long)]
    lambda: Option<f64>,
    /// beta-DPO's kept fraction rho.
    #[arg(long)]
    rho: Option<f64>,
    /// beta-DPO's sensitivity a.
    #[arg(long)]
    beta_scale: Option<f64>,
}

impl LossParams {
    pub(crate) fn config(&self) -> CliResult<LossConfig> {
        let kind = LossKind::parse(&self.kind).map_err(|e| e.to_string())?;
        let mut c = LossConfig::new(kind);
        let set = |field: &mut f64, v: Option<f64>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut c.beta, self.beta);
        set(&mut c.eps, self.eps);
        set(&mut c.tau, self.tau);
        set(&mut c.gamma, self.gamma);
        set(&mut c.alpha, self.alpha);
        set(&mut c.beta_prime, self.beta_prime);
        set(&mut c.lambda, self.lambda);
        set(&mut c.rho, self.rho);
        set(&mut c.beta_scale, self.beta_scale);
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

pub fn model_path(args: &ModelArgs) -> CliResult<PathBuf> {
    let path = args
        .model
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL));
    if !path.is_file() {
        return Err(format!(
            "model file {} not found: run `recalign fetch` or pass --model PATH",
            path.display()
        ));
    }
    Ok(path)
}

pub fn device(arg: DeviceArg) -> CliResult<Device> {
    match arg {
        DeviceArg::Flex => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        DeviceArg::Wgpu => Device::wgpu_options()
            .init()
            .map_err(|e| format!("no wgpu device: {e}")),
        #[cfg(not(feature = "wgpu"))]
        DeviceArg::Wgpu => {
            Err("this build has no wgpu support: rebuild with `--features wgpu`".into())
        }
    }
}

pub fn load_model(args: &ModelArgs) -> CliResult<LanguageModel> {
    let path = model_path(args)?;
    let bytes = read(&path)?;
    LanguageModel::from_gguf_bytes(&bytes, &device(args.device)?)
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn read(path: &Path) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

pub fn write_file(path: &Path, bytes: &[u8]) -> CliResult {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub fn to_json<T: Serialize>(value: &T) -> CliResult<String> {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
