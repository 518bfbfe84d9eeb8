//! `recalign rank`: one history's candidates ranked by the model (or an adapter), as a table or
//! as JSON with the exact prompt text, so other implementations can score the same.

use std::path::PathBuf;

use recalign_core::ScoreOptions;
use recalign_core::prompt::split_titles;

use crate::args::{CliResult, ModelArgs, PromptArg, load_model, read_adapter};

/// Rank candidates for a viewing history.
#[derive(clap::Args)]
pub struct RankArgs {
    /// History titles, oldest first, separated by ';'.
    #[arg(long)]
    pub history: String,
    /// Candidate titles separated by ';'.
    #[arg(long)]
    pub candidates: String,
    /// Divide each candidate's log-probability by its token count.
    #[arg(long)]
    pub length_normalised: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Rank with this trained adapter (`train` output, or `adapter import`).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Ranking prompt (default: the one the adapter was trained with; LLaRA's for the
    /// base model).
    #[arg(long, value_enum)]
    pub prompt: Option<PromptArg>,
    #[command(flatten)]
    pub model: ModelArgs,
}

pub fn run(args: RankArgs) -> CliResult {
    use recalign_core::prompt::PromptFormat;
    let mut lm = load_model(&args.model)?;
    let mut format = PromptFormat::Llara;
    if let Some(path) = &args.adapter {
        let a = read_adapter(path)?;
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
    let format = args.prompt.map_or(format, PromptFormat::from);
    let (history, candidates) = (split_titles(&args.history), split_titles(&args.candidates));
    let options = ScoreOptions {
        length_normalised: args.length_normalised,
    };
    // A hybrid adapter knows its catalogue: listed titles get their item slots, others
    // are read as text.
    let catalogue = recalign_core::hybrid::model_catalogue(&lm);
    let domain = catalogue
        .as_ref()
        .map_or(recalign_core::data::Domain::Movies, |c| c.domain);
    let ranking = pollster::block_on(async {
        match &catalogue {
            Some(c) => {
                recalign_core::hybrid::rank(&lm, c, format, &history, &candidates, options).await
            }
            None => {
                lm.rank_as(format, domain, &history, &candidates, options)
                    .await
            }
        }
    })
    .map_err(|e| e.to_string())?;
    if args.json {
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
