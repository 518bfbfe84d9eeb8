//! The dataset a command reads (a log or pre-windowed rows), the split it works on, and the
//! SASRec oracle file: shared by `data`, `oracle`, `pairs`, `train`, `eval` and `recommend`.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use recalign_core::data::formats::{self, Dataset, DatasetFormat};
use recalign_core::data::split::{self, SplitConfig, SplitName, Splits};
use recalign_core::data::windowed;
use recalign_core::data::{Domain, InteractionLog};
use recalign_core::oracle::sasrec::{SasRecOracle, catalogue_fingerprint};
use serde::Serialize;

use super::CliResult;

/// The default dataset `recalign fetch` installs.
pub const DEFAULT_INTERACTIONS: &str = "data/ml-100k/ml-100k.inter";

/// Where `oracle train` saves by default.
pub const DEFAULT_ORACLE: &str = "models/sasrec-ml-100k.safetensors";

#[derive(clap::Args, Clone)]
pub struct DatasetArgs {
    /// Interactions file (`.inter`, `u.data`, CSV/TSV), LLaRA `.jsonl` rows or S-DPO `.json`.
    #[arg(long, default_value = DEFAULT_INTERACTIONS)]
    interactions: PathBuf,
    /// Items file (`.item`, `u.item`, items CSV/TSV) or LLaRA `id2name`; default: next to the
    /// interactions (`X.inter` -> `X.item`, `u.data` -> `u.item`).
    #[arg(long)]
    items: Option<PathBuf>,
    /// File layout (default: guessed from the interactions file name).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Item kind, for the prompt wording.
    #[arg(long, value_enum, default_value_t = DomainArg::Movies)]
    domain: DomainArg,
    /// Split seed (user split and candidate sets).
    #[arg(long, default_value_t = 2024)]
    pub(crate) seed: u64,
    /// Ratings below this are not positives (`--min-rating 0` keeps all).
    #[arg(long, default_value_t = 3.0)]
    min_rating: f32,
    /// Examples per validation/test user: the last N windows (1: the papers' last item).
    #[arg(long, default_value_t = 1)]
    eval_windows: usize,
    /// With pre-windowed rows as --interactions (LLaRA's `train_data.jsonl`): the held-out rows,
    /// evaluated as `--split validation` (LLaRA's `Val_data.jsonl`, read with the same
    /// id2name, or S-DPO's `.json` with its own candidates).
    #[arg(long)]
    held_out: Option<PathBuf>,
}

#[derive(Copy, Clone, ValueEnum)]
pub enum FormatArg {
    Recbole,
    Grouplens,
    Table,
    Llara,
    Sdpo,
}

#[derive(Copy, Clone, ValueEnum)]
pub enum DomainArg {
    Movies,
    Music,
    Games,
    Books,
}

impl DatasetArgs {
    pub(crate) fn domain(&self) -> Domain {
        match self.domain {
            DomainArg::Movies => Domain::Movies,
            DomainArg::Music => Domain::Music,
            DomainArg::Games => Domain::Games,
            DomainArg::Books => Domain::Books,
        }
    }

    pub(crate) fn split_config(&self) -> SplitConfig {
        SplitConfig {
            seed: self.seed,
            min_rating: Some(self.min_rating),
            eval_windows: self.eval_windows,
            ..Default::default()
        }
    }

    pub(crate) fn load(&self) -> CliResult<Dataset> {
        self.load_file(&self.interactions, self.format)
    }

    pub(crate) fn load_file(&self, file: &Path, format: Option<FormatArg>) -> CliResult<Dataset> {
        let format = match format {
            Some(FormatArg::Recbole) => DatasetFormat::Recbole,
            Some(FormatArg::Grouplens) => DatasetFormat::Grouplens,
            Some(FormatArg::Table) => DatasetFormat::Table,
            Some(FormatArg::Llara) => DatasetFormat::Llara,
            Some(FormatArg::Sdpo) => DatasetFormat::Sdpo,
            None => DatasetFormat::guess(&file.to_string_lossy()),
        };
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| {
                let hint = if p == Path::new(DEFAULT_INTERACTIONS) {
                    " (run `recalign fetch` first)"
                } else {
                    ""
                };
                format!("cannot read {}: {e}{hint}", p.display())
            })
        };
        let main = read(file)?;
        let items = if format.needs_items() {
            let path = match &self.items {
                Some(p) => p.clone(),
                None => sibling_items(file).ok_or_else(|| {
                    "this format needs --items (the items table or id2name file)".to_string()
                })?,
            };
            Some(read(&path)?)
        } else {
            None
        };
        formats::load(format, &main, items.as_deref(), self.domain())
            .map_err(|e| format!("{}: {e}", file.display()))
    }

    /// The dataset's split: a log's seeded user split, or pre-windowed rows as they are (the
    /// training rows, and the --held-out rows as validation).
    pub(crate) fn splits(&self) -> CliResult<(InteractionLog, Splits)> {
        let held = self
            .held_out
            .as_deref()
            .map(|p| self.load_file(p, None))
            .transpose()?;
        windowed::split_dataset(self.load()?, held, &self.split_config()).map_err(|e| e.to_string())
    }
}

fn sibling_items(interactions: &Path) -> Option<PathBuf> {
    let name = interactions.file_name()?.to_string_lossy();
    if name == "u.data" {
        return Some(interactions.with_file_name("u.item"));
    }
    if name.ends_with(".inter") {
        return Some(interactions.with_extension("item"));
    }
    if name.ends_with(".jsonl") {
        // LLaRA's layout: the rows next to their id2name.
        return ["id2name.txt", "id2name.tsv"]
            .iter()
            .map(|n| interactions.with_file_name(n))
            .find(|p| p.exists());
    }
    None
}

#[derive(Copy, Clone, ValueEnum)]
pub enum SplitArg {
    Train,
    Validation,
    Test,
    /// Validation then test users: every example no training run sees (for a final figure
    /// with twice the examples; tune on validation alone).
    HeldOut,
}

impl SplitArg {
    /// The split's examples, its name for reports, and its parts in order (name, examples):
    /// one for a single split, validation then test for `held-out`. An empty split is an
    /// error (pre-windowed rows have no test split, and validation only with --held-out).
    pub fn examples(
        self,
        splits: &Splits,
    ) -> CliResult<(Vec<split::Example>, &'static str, Vec<Part>)> {
        let got = self.examples_or_none(splits);
        if got.0.is_empty() {
            return Err(format!(
                "the {} split has no examples (with pre-windowed rows the training file is \
                 `--split train`, the --held-out file `--split validation`, and there is no test \
                 split)",
                got.1
            ));
        }
        Ok(got)
    }

    fn examples_or_none(self, splits: &Splits) -> (Vec<split::Example>, &'static str, Vec<Part>) {
        let one = |name: SplitName| {
            let e = splits.get(name).to_vec();
            let parts = vec![Part {
                split: name.name(),
                examples: e.len(),
            }];
            (e, name.name(), parts)
        };
        match self {
            Self::Train => one(SplitName::Train),
            Self::Validation => one(SplitName::Validation),
            Self::Test => one(SplitName::Test),
            Self::HeldOut => {
                let (v, t) = (
                    splits.get(SplitName::Validation),
                    splits.get(SplitName::Test),
                );
                let parts = vec![
                    Part {
                        split: SplitName::Validation.name(),
                        examples: v.len(),
                    },
                    Part {
                        split: SplitName::Test.name(),
                        examples: t.len(),
                    },
                ];
                ([v, t].concat(), "held-out", parts)
            }
        }
    }
}

/// A run of consecutive examples from one split, so per-example results of `held-out` can be
/// cut back into validation and test.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Part {
    pub split: &'static str,
    pub examples: usize,
}

/// The SASRec oracle saved at `path`, checked against `log`'s catalogue.
pub fn read_oracle(
    path: &std::path::Path,
    log: &recalign_core::data::InteractionLog,
    device: &burn::tensor::Device,
) -> Result<SasRecOracle, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read oracle {}: {e} (train one with `recalign oracle train`)",
            path.display()
        )
    })?;
    SasRecOracle::from_safetensors(&bytes, device, Some(catalogue_fingerprint(&log.catalogue)))
        .map_err(|e| format!("{}: {e}", path.display()))
}
