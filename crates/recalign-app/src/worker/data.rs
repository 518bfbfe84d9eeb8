//! Datasets and the SASRec oracle: a dataset is parsed and split once and kept in the session;
//! the oracle trains on its training sequences (RosePO's smoothing); test users fill the form;
//! a preference JSONL is kept for the next preference run.

use std::rc::Rc;

use burn::tensor::Device;
use recalign_core::data::formats::{self, DatasetFormat};
use recalign_core::data::split::SplitConfig;
use recalign_core::data::stats::split_stats;
use recalign_core::data::{Domain, windowed};
use recalign_core::oracle::sasrec::{
    SasRecConfig, SasRecTrainer, SasRecTraining, catalogue_fingerprint,
};
use recalign_core::oracle::{candidate_metrics, constant_scores, popularity_scores};

use super::browser::{download, now_ms};
use super::session::{Problem, Shared};
use crate::protocol::{DataSource, DatasetInfo, Lane, OracleSummary, Response};

/// Parses and splits a dataset; a failure keeps the previous dataset.
pub async fn load_dataset(
    shared: &Shared,
    source: DataSource,
    reply: &dyn Fn(Response),
) -> Result<(), Problem> {
    let stage = |s: &str| {
        reply(Response::Progress {
            lane: Lane::Data,
            stage: s.into(),
            done: 0,
            total: None,
        })
    };
    let (name, main, items, held_out, domain) = match source {
        DataSource::Urls {
            interactions,
            items,
        } => {
            stage("Downloading the dataset");
            let quiet = |_, _| {};
            let main = download(&interactions, &quiet, None)
                .await?
                .unwrap_or_default();
            let side = download(&items, &quiet, None).await?.unwrap_or_default();
            let name = interactions
                .rsplit('/')
                .next()
                .unwrap_or(&interactions)
                .to_string();
            (name, main, Some(side), None, Domain::Movies)
        }
        DataSource::Files {
            name,
            interactions,
            items,
            held_out,
            domain,
        } => (name, interactions, items, held_out, domain),
    };
    stage("Parsing and splitting");
    let format = DatasetFormat::guess(&name);
    let main = formats::load(format, &main, items.as_deref(), domain)
        .map_err(|e| format!("{name}: {e}"))?;
    let held = match &held_out {
        Some((h, bytes)) => Some(
            formats::load(DatasetFormat::guess(h), bytes, items.as_deref(), domain)
                .map_err(|e| format!("{h}: {e}"))?,
        ),
        None => None,
    };
    // The papers' files go as they are: their rows are the split (data::windowed).
    let (log, splits) =
        windowed::split_dataset(main, held, &SplitConfig::default()).map_err(Problem::from)?;
    let info = DatasetInfo {
        name,
        stats: split_stats(&log, &splits),
        report: log.report.clone(),
        titles: (0..log.catalogue.len())
            .map(|i| {
                log.catalogue
                    .title(recalign_core::data::ItemId(i as u32))
                    .to_string()
            })
            .collect(),
    };
    {
        let mut s = shared.borrow_mut();
        s.data = Some(Rc::new((log, splits)));
        // The oracle scored the previous catalogue.
        s.oracle = None;
    }
    reply(Response::DatasetLoaded(info));
    Ok(())
}

/// Trains SASRec on Burn's CPU device (the oracle is small; WebGPU dispatch overhead would
/// dominate), reporting every step, then evaluates it on the validation users.
pub async fn train_oracle(
    shared: &Shared,
    epochs: usize,
    learning_rate: f64,
    reply: &dyn Fn(Response),
) -> Result<(), Problem> {
    let data = shared.borrow().dataset()?;
    let (log, splits) = &*data;
    let config = SasRecConfig::new(log.catalogue.len(), catalogue_fingerprint(&log.catalogue));
    let training = SasRecTraining {
        epochs,
        learning_rate,
        ..Default::default()
    };
    let device = Device::flex();
    let mut trainer = SasRecTrainer::new(config, training, &splits.train_sequences, &device)
        .map_err(Problem::from)?;
    let total = trainer.total_steps() as u64;
    let start = now_ms();
    let (mut losses, mut sum, mut count, mut done) = (Vec::new(), 0.0f64, 0usize, 0u64);
    while !trainer.is_done() {
        let step = trainer.step().await.map_err(Problem::from)?;
        done += 1;
        sum += f64::from(step.loss);
        count += 1;
        if step.step == step.steps_per_epoch {
            losses.push(sum / count as f64);
            (sum, count) = (0.0, 0);
        }
        reply(Response::Progress {
            lane: Lane::Data,
            stage: format!(
                "Training SASRec: epoch {} of {epochs}, loss {:.3}",
                step.epoch + 1,
                step.loss
            ),
            done,
            total: Some(total),
        });
    }
    let seconds = (now_ms() - start) / 1e3;
    let oracle = trainer.oracle();
    shared.borrow_mut().oracle = Some(oracle.clone());
    let examples = &splits.validation;
    let scores = oracle
        .candidate_scores(examples)
        .await
        .map_err(Problem::from)?;
    reply(Response::OracleTrained(OracleSummary {
        epochs,
        seconds,
        losses,
        users: examples.len(),
        sasrec: candidate_metrics(examples, &scores),
        popularity: candidate_metrics(examples, &popularity_scores(examples, &splits.popularity)),
        random: candidate_metrics(examples, &constant_scores(examples)),
    }));
    Ok(())
}

/// A test user's example, titles only. Pre-windowed files have no test split: their held-out
/// rows stand in.
pub fn test_user(shared: &Shared, index: usize, reply: &dyn Fn(Response)) -> Result<(), Problem> {
    let data = shared.borrow().dataset()?;
    let (log, splits) = &*data;
    let test = if splits.test.is_empty() {
        &splits.validation
    } else {
        &splits.test
    };
    if test.is_empty() {
        return Err("the test split is empty".into());
    }
    let index = index % test.len();
    let e = &test[index];
    reply(Response::TestUser {
        index,
        history: log.catalogue.titles(&e.history),
        candidates: log.catalogue.titles(&e.candidates),
        target: log.catalogue.title(e.target).to_string(),
    });
    Ok(())
}

/// Reads a preference JSONL and keeps its pairs for the next preference run.
pub fn load_pairs(
    shared: &Shared,
    name: String,
    bytes: &[u8],
    reply: &dyn Fn(Response),
) -> Result<(), Problem> {
    let pairs = recalign_core::data::pairs::read_jsonl(bytes).map_err(Problem::from)?;
    reply(Response::PairsLoaded {
        name: name.clone(),
        pairs: pairs.len(),
        smoothed: pairs.iter().filter(|p| p.eps.is_some()).count(),
        negatives: pairs
            .iter()
            .map(|p| 1 + p.more_rejected.len())
            .max()
            .unwrap_or(1),
    });
    shared.borrow_mut().imported_pairs = Some((name, pairs));
    Ok(())
}
