//! Training in the worker: prepares a run's inputs with the core's `train::data`, drives the
//! core's trainers step by step (pause, cancel and checkpoints between steps), and continues a
//! run a reload interrupted from its stored checkpoint.

use recalign_core::train::data::{self as train_data};
use recalign_core::train::{Checkpoint, PreferenceTrainer, SftTrainer, Trainer, with_adapter};

use super::browser::{now_ms, sleep_ms};
use super::persist::{self, Pending, Prepared};
use super::prepare::prepare;
use super::session::{Failure, Problem, Shared, TrainedAdapter, TrainingState};
use crate::protocol::{
    Response, RunRecord, TrainRequest, TrainStage, TrainSummary, ValidationPoint,
};

/// Sets the session's training state back to idle however a run ends.
struct TrainingGuard(Shared);

impl Drop for TrainingGuard {
    fn drop(&mut self) {
        self.0.borrow_mut().training = TrainingState::Idle;
    }
}

fn claim(shared: &Shared) -> Result<TrainingGuard, Failure> {
    if shared.borrow().training.is_running() {
        return Err((
            "starting training".into(),
            "a training run is already going; wait for it or cancel it".into(),
        ));
    }
    shared.borrow_mut().training = TrainingState::Running {
        paused: false,
        cancel: false,
    };
    Ok(TrainingGuard(shared.clone()))
}

/// Runs a training request with the core trainers, reporting each step; the adapter it trains
/// joins the session's list (and the browser's storage) and becomes the one ranking uses.
pub async fn train(
    shared: &Shared,
    request: TrainRequest,
    reply: &dyn Fn(Response),
) -> Result<(), Failure> {
    let start_fail = |m: Problem| ("starting training".to_string(), m);
    let base = shared.borrow().base_model().map_err(start_fail)?;
    let guard = claim(shared)?;
    let (prepared, start, inputs, too_long, initial) =
        prepare(shared, &base, &request, reply).await?;
    let label = request.stage.label();
    let during = format!("training {label}");
    let settings = request.settings.clone();
    let trainer = match (&request.stage, prepared.clone()) {
        (TrainStage::Sft, Prepared::Sft(examples)) => match &initial {
            // A hybrid run starts from a fresh adapter that carries the projector.
            Some(fresh) => SftTrainer::continue_from(&base, fresh, settings, examples),
            None => SftTrainer::new(&base, request.lora.clone(), settings, examples),
        }
        .map(|t| Trainer::Sft(Box::new(t))),
        (TrainStage::Preference { loss, .. }, Prepared::Preference { pairs, reference }) => {
            let (lora, adapter) = match &initial {
                Some(a) => (a.settings.clone(), Some(a)),
                None => (request.lora.clone(), None),
            };
            PreferenceTrainer::new(
                &base,
                lora,
                adapter,
                settings,
                loss.clone(),
                pairs,
                reference,
            )
            .map(|t| Trainer::Preference(Box::new(t)))
        }
        _ => unreachable!("prepare matches the stage"),
    }
    .map_err(|e| (format!("preparing {label}"), e.into()))?;
    let model = shared.borrow().model_name.clone().unwrap_or_default();
    let pending = Pending {
        run: RunRecord {
            id: js_sys::Date::now() as u64,
            label,
            model,
            request,
            steps: Vec::new(),
            validation: Vec::new(),
            summary: None,
        },
        start,
        inputs,
        too_long,
        checkpoint_step: 0,
    };
    send_pair_eps(&prepared, reply);
    if pending.run.request.checkpoint_every > 0 {
        let stored = persist::begin_checkpoints(shared, &prepared, &pending).await;
        persist::report(reply, "storing the run for resuming after a reload", stored);
    }
    drop(prepared);
    run(shared, trainer, pending, &during, reply, guard).await
}

/// Asks the running run to stop after the step under way.
pub fn cancel(shared: &Shared) {
    shared.borrow_mut().training.cancel();
}

/// Holds the running run between steps (`true`) or lets it go on; the run confirms with
/// `TrainPaused` when it actually holds or goes on.
pub fn pause(shared: &Shared, hold: bool) {
    shared.borrow_mut().training.pause(hold);
}

/// Continues the run a reload interrupted from its last checkpoint.
pub async fn resume(shared: &Shared, reply: &dyn Fn(Response)) -> Result<(), Failure> {
    let fail = |m: Problem| ("resuming training".to_string(), m);
    let base = shared.borrow().base_model().map_err(fail)?;
    let guard = claim(shared)?;
    let (mut pending, bytes, prepared) = persist::interrupted(shared)
        .await
        .map_err(|m| fail(m.into()))?
        .ok_or_else(|| fail("there is no interrupted run to resume".into()))?;
    let loaded = shared.borrow().model_name.clone().unwrap_or_default();
    if pending.run.model != loaded {
        return Err(fail(
            format!(
                "the run trained {}, but {loaded} is loaded; load {} first",
                pending.run.model, pending.run.model
            )
            .into(),
        ));
    }
    let checkpoint = Checkpoint::from_bytes(&bytes).map_err(|e| fail(e.into()))?;
    send_pair_eps(&prepared, reply);
    let trainer = match prepared {
        Prepared::Sft(examples) => {
            SftTrainer::resume(&base, &checkpoint, examples).map(|t| Trainer::Sft(Box::new(t)))
        }
        Prepared::Preference { pairs, reference } => {
            PreferenceTrainer::resume(&base, &checkpoint, pairs, reference)
                .map(|t| Trainer::Preference(Box::new(t)))
        }
    }
    .map_err(|e| fail(e.into()))?;
    // Steps after the checkpoint were lost with the reload; they run again.
    pending.run.steps.truncate(checkpoint.state.step);
    let held = checkpoint.state.step;
    pending.run.validation.retain(|v| v.step <= held);
    pending.checkpoint_step = checkpoint.state.step;
    reply(Response::Resuming(Box::new(pending.run.clone())));
    let during = format!("training {}", pending.run.label);
    run(shared, trainer, pending, &during, reply, guard).await
}

/// Ranks the candidates of the run's validation users with the adapter as trained so far and
/// reports HR@1 and AveragePopularity@1 (skipped without a dataset, e.g. on imported pairs).
async fn validation(
    shared: &Shared,
    trainer: &Trainer,
    pending: &mut Pending,
    step: usize,
    reply: &dyn Fn(Response),
) {
    let (Ok(base), Ok(data)) = (shared.borrow().base_model(), shared.borrow().dataset()) else {
        return;
    };
    let (log, splits) = &*data;
    let users = pending.run.request.validate_users.max(1);
    let examples = train_data::draw(&splits.validation, users, 2024);
    let format = pending.run.request.format;
    let checked = async {
        let adapter = trainer.adapter().await?;
        let lm = with_adapter(&base, &adapter)?;
        train_data::evaluate(
            &lm,
            format,
            log,
            &examples,
            &splits.popularity,
            None,
            0,
            |_, _| {},
        )
        .await
    }
    .await;
    match checked {
        Ok(report) => {
            let point = ValidationPoint {
                step,
                hr_at_1: report.ranking.hr[0],
                average_popularity: report.bias_at_1.average_popularity,
            };
            pending.run.validation.push(point);
            reply(Response::TrainValidation(point));
        }
        Err(e) => reply(Response::TrainWarning(format!(
            "The validation check at step {step} failed ({e}); training goes on."
        ))),
    }
}

/// Sends the pairs' smoothing factors for the loss lab's RosePO histogram (RosePO runs only:
/// the other losses do not read them).
fn send_pair_eps(prepared: &Prepared, reply: &dyn Fn(Response)) {
    if let Prepared::Preference { pairs, .. } = prepared {
        let eps: Vec<f64> = pairs.iter().flat_map(|p| p.eps.iter().copied()).collect();
        if eps.iter().any(|&e| e > 0.0) {
            reply(Response::PairEps(eps));
        }
    }
}

/// Steps `trainer` to its end (or a cancel), holding on pause and storing a checkpoint every
/// `checkpoint_every` steps; the adapter joins the session and the browser's storage.
async fn run(
    shared: &Shared,
    mut trainer: Trainer,
    mut pending: Pending,
    during: &str,
    reply: &dyn Fn(Response),
    guard: TrainingGuard,
) -> Result<(), Failure> {
    let fail = |e: recalign_core::Error| (during.to_string(), e.into());
    let every = pending.run.request.checkpoint_every;
    let validate_every = pending.run.request.validate_every;
    let validate = |step: usize| validate_every > 0 && step.is_multiple_of(validate_every);
    let started = now_ms();
    let mut cancelled = false;
    if validate(0) && pending.run.steps.is_empty() {
        validation(shared, &trainer, &mut pending, 0, reply).await;
    }
    while !trainer.is_done() {
        // A pause holds here, between steps, until resumed or cancelled.
        if shared.borrow().training.held() {
            reply(Response::TrainPaused(true));
            while shared.borrow().training.held() {
                sleep_ms(100).await;
            }
            reply(Response::TrainPaused(false));
        }
        if shared.borrow().training.cancelled() {
            cancelled = true;
            break;
        }
        let report = trainer.step().await.map_err(fail)?;
        let step = report.step;
        pending.run.steps.push(report.clone());
        reply(Response::TrainStep(report));
        if validate(step) || (validate_every > 0 && trainer.is_done()) {
            validation(shared, &trainer, &mut pending, step, reply).await;
        }
        if every > 0 && step.is_multiple_of(every) && !trainer.is_done() {
            let bytes = trainer
                .checkpoint()
                .await
                .and_then(|c| c.to_bytes())
                .map_err(fail)?;
            pending.checkpoint_step = step;
            let stored = persist::save_checkpoint(shared, &bytes, &pending).await;
            persist::report(
                reply,
                &format!("storing the checkpoint of step {step}"),
                stored,
            );
        }
        sleep_ms(0).await;
    }
    let seconds = (now_ms() - started) / 1e3;
    let mut adapter = trainer.adapter().await.map_err(fail)?;
    // It ranks in the prompt it was trained in.
    adapter.prompt = pending.run.request.format;
    let stage = pending.run.request.stage.clone();
    let label = pending.run.label.clone();
    let name = {
        let s = shared.borrow();
        let n = s
            .adapters
            .iter()
            .filter(|a| a.stage.as_ref().is_some_and(|st| st.label() == label))
            .count();
        format!("{label} #{}", n + 1)
    };
    let base = shared
        .borrow()
        .base_model()
        .map_err(|m| (during.to_string(), m))?;
    let lm = with_adapter(&base, &adapter).map_err(fail)?;
    let trained = TrainedAdapter {
        name: name.clone(),
        stage: Some(stage.clone()),
        adapter: adapter.clone(),
    };
    let index = shared.borrow_mut().add_adapter(trained, Some(lm));
    let summary = TrainSummary {
        index,
        name: name.clone(),
        steps: pending.run.steps.len(),
        planned: pending.run.request.settings.steps,
        seconds,
        inputs: pending.inputs,
        too_long: pending.too_long,
        start: pending.start.clone(),
        cancelled,
    };
    // Store the adapter and the run and forget the checkpoint before saying the run ended: the
    // page may then start another request at once, which must find the training finished.
    let saved = persist::save_adapter(shared, &name, Some(&stage), &adapter).await;
    persist::report(reply, &format!("storing adapter {name}"), saved);
    pending.run.summary = Some(summary.clone());
    let saved = persist::save_run(shared, &pending.run).await;
    persist::report(reply, "storing the run", saved);
    if every > 0 {
        let ended = persist::end_checkpoints(shared).await;
        persist::report(reply, "removing the finished run's checkpoint", ended);
    }
    // The run is over: another may start as soon as the page hears so.
    drop(guard);
    reply(Response::Trained(summary));
    reply(Response::AdapterInUse { index: Some(index) });
    if let Ok(runs) = persist::runs(shared).await {
        reply(Response::Runs(runs));
    }
    persist::send_info(shared, reply).await;
    Ok(())
}
