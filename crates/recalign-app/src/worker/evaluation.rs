//! Evaluating the model in use on a split of the loaded dataset: ranking metrics, popularity
//! bias and, when asked, generation with LLaRA's prompt (ValidRatio), user by user with progress.

use recalign_core::data::split::SplitName;
use recalign_core::train::data as train_data;

use super::browser::now_ms;
use super::session::{Problem, Shared};
use crate::protocol::{Evaluation, Lane, Response};

/// Evaluates the model in use on `users` (seeded draw) of `split`, reporting each user.
pub async fn evaluate(
    shared: &Shared,
    split: SplitName,
    users: usize,
    generate: usize,
    reply: &dyn Fn(Response),
) -> Result<(), Problem> {
    let (lm, data, name, format) = {
        let s = shared.borrow();
        if s.training.is_running() {
            return Err("a training run is using the model; wait for it or cancel it".into());
        }
        (
            s.model()?,
            s.dataset()?,
            s.model_in_use_name(),
            s.prompt_format(None),
        )
    };
    let (log, splits) = &*data;
    let examples = train_data::draw(splits.get(split), users, 2024);
    let started = now_ms();
    let report = train_data::evaluate(
        &lm,
        format,
        log,
        &examples,
        &splits.popularity,
        None,
        generate,
        |done, total| {
            reply(Response::Progress {
                lane: Lane::Evaluation,
                stage: "Evaluating".into(),
                done: done as u64,
                total: Some(total as u64),
            })
        },
    )
    .await
    .map_err(Problem::from)?;
    reply(Response::Evaluated(Box::new(Evaluation {
        model: name,
        split,
        report,
        seconds: (now_ms() - started) / 1e3,
    })));
    Ok(())
}
