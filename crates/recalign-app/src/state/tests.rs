//! The reducer's behaviour, natively: every worker response and user action on a state.

use std::rc::Rc;

use yew::Reducible;

use super::*;
use crate::protocol::{DeviceInUse, DeviceKind, Lane, Response, Tagged};

fn after(actions: impl IntoIterator<Item = Action>) -> AppState {
    let mut s = Rc::new(AppState::default());
    for a in actions {
        s = s.reduce(a);
    }
    (*s).clone()
}

fn worker(r: Response) -> Action {
    reply(0, r)
}

fn reply(id: u64, body: Response) -> Action {
    Action::Worker(Box::new(Tagged { id, body }))
}

fn progress(lane: Lane, done: u64) -> Action {
    worker(Response::Progress {
        lane,
        stage: "working".into(),
        done,
        total: Some(10),
    })
}

fn failed(lane: Lane) -> Action {
    worker(Response::Failed {
        lane,
        during: "doing it".into(),
        message: "it broke".into(),
        fault: None,
    })
}

#[test]
fn a_device_failure_is_advised_by_its_kind_and_the_device() {
    let out_of_memory = |device| {
        after([
            worker(Response::Device(DeviceInUse {
                kind: device,
                threads: 1,
                note: None,
            })),
            worker(Response::Failed {
                lane: Lane::Training,
                during: "training".into(),
                message: "device: out of memory".into(),
                fault: Some(recalign_core::error::DeviceFault::OutOfMemory),
            }),
        ])
        .error
        .unwrap_or_default()
    };
    let gpu = out_of_memory(DeviceKind::WebGpu);
    assert!(
        gpu.starts_with("Error while training: device: out of memory. "),
        "{gpu}"
    );
    assert!(gpu.contains("?device=cpu"), "{gpu}");
    assert!(out_of_memory(DeviceKind::Cpu).contains("4 GiB"));
    // Any other failure is shown as it came.
    assert_eq!(
        after([failed(Lane::Model)]).error.as_deref(),
        Some("Error while doing it: it broke")
    );
}

#[test]
fn progress_goes_to_the_card_of_its_lane() {
    let s = after([progress(Lane::Model, 1)]);
    assert_eq!(s.model.progress.as_ref().map(|p| p.done), Some(1));
    assert!(s.data.progress.is_none() && s.evaluation.evaluating.is_none());

    let s = after([progress(Lane::Data, 2)]);
    assert_eq!(s.data.progress.as_ref().map(|p| p.done), Some(2));
    assert!(s.model.progress.is_none());

    let s = after([progress(Lane::Evaluation, 3)]);
    assert_eq!(s.evaluation.evaluating, Some((3, 10)));
    assert!(s.model.progress.is_none() && s.data.progress.is_none());

    let s = after([
        Action::TrainStarted {
            stage: TrainStage::Sft,
            planned: 5,
        },
        progress(Lane::Training, 4),
    ]);
    let t = s.align.training.as_ref().expect("a run");
    assert_eq!(t.preparing.as_ref().map(|p| p.done), Some(4));
    assert!(s.model.progress.is_none());
}

#[test]
fn a_failed_model_request_frees_the_page_and_gives_up_the_default_adapter() {
    let s = after([
        Action::DefaultAdapterAsked,
        Action::Started(0),
        progress(Lane::Model, 1),
        failed(Lane::Model),
    ]);
    assert!(!s.busy() && s.model.progress.is_none());
    assert_eq!(s.align.default_adapter, DefaultAdapter::NotAsked);
    assert_eq!(s.error.as_deref(), Some("Error while doing it: it broke"));
}

#[test]
fn the_page_is_busy_until_its_last_model_request_ends() {
    let failed_rank = |id| {
        reply(
            id,
            Response::Failed {
                lane: Lane::Model,
                during: "ranking".into(),
                message: "no model".into(),
                fault: None,
            },
        )
    };
    // Two rankings in flight: the first one's end leaves the page busy for the second.
    let s = after([Action::Started(1), Action::Started(2), failed_rank(1)]);
    assert!(s.busy());
    assert_eq!(s.model.pending, vec![2]);
    let s = after([
        Action::Started(1),
        Action::Started(2),
        failed_rank(1),
        failed_rank(2),
    ]);
    assert!(!s.busy());
    // Progress and other lanes' results end nothing.
    let s = after([
        Action::Started(3),
        reply(3, progress_response(Lane::Model)),
        reply(3, Response::TrainPaused(false)),
    ]);
    assert!(s.busy());
}

fn progress_response(lane: Lane) -> Response {
    Response::Progress {
        lane,
        stage: "Downloading the model".into(),
        done: 1,
        total: None,
    }
}

#[test]
fn a_failure_in_one_lane_leaves_the_others_going() {
    // A dataset failure while the model loads: the load's progress and busy state stay.
    let s = after([
        Action::Started(0),
        progress(Lane::Model, 1),
        Action::DataStarted("Loading ML-100K".into()),
        failed(Lane::Data),
    ]);
    assert!(s.busy() && s.model.progress.is_some());
    assert!(s.data.progress.is_none());
    assert!(s.error.is_some());

    // A training failure ends the run's view but not the model's request.
    let s = after([
        Action::Started(0),
        Action::TrainStarted {
            stage: TrainStage::Sft,
            planned: 5,
        },
        failed(Lane::Training),
    ]);
    assert!(s.busy());
    let t = s.align.training.as_ref().expect("the run stays shown");
    assert!(!t.running && t.preparing.is_none());

    // An evaluation failure clears only the evaluation's progress.
    let s = after([
        Action::TrainStarted {
            stage: TrainStage::Sft,
            planned: 5,
        },
        progress(Lane::Evaluation, 2),
        failed(Lane::Evaluation),
    ]);
    assert!(s.evaluation.evaluating.is_none());
    assert!(s.align.training.as_ref().is_some_and(|t| t.running));
}
