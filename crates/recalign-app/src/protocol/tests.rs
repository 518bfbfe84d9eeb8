//! The protocol's round trips, natively: every message survives the worker boundary's encoding.

use super::*;
use recalign_core::data::split::SplitName;
use recalign_core::error::DeviceFault;

/// One request of every kind but `Train` (whose settings have their own tests in the core),
/// with the lane the page expects of it.
fn requests() -> Vec<(Request, Lane)> {
    let titles = || vec!["Heat (1995)".to_string(), "Fargo (1996)".to_string()];
    vec![
        (
            Request::LoadUrl {
                url: "models/m.gguf".into(),
                device: DevicePreference::Auto,
                adapter: Some("models/a.safetensors".into()),
            },
            Lane::Model,
        ),
        (
            Request::LoadBytes {
                name: "m.gguf".into(),
                bytes: vec![1, 2, 3],
            },
            Lane::Model,
        ),
        (
            Request::LoadStored {
                name: "m.gguf".into(),
            },
            Lane::Model,
        ),
        (
            Request::Rank {
                history: titles(),
                candidates: titles(),
                length_normalised: true,
                compare_with: Some(ModelChoice::Adapter(1)),
            },
            Lane::Model,
        ),
        (
            Request::Recommend {
                history: titles(),
                top: 10,
            },
            Lane::Model,
        ),
        (
            Request::Generate {
                history: titles(),
                candidates: titles(),
                max_new_tokens: 32,
            },
            Lane::Model,
        ),
        (Request::UseAdapter { index: None }, Lane::Adapters),
        (Request::ExportAdapter { index: 0 }, Lane::Adapters),
        (
            Request::ImportAdapter {
                name: "a.safetensors".into(),
                bytes: vec![0; 4],
                config: None,
            },
            Lane::Adapters,
        ),
        (
            Request::LoadDataset(DataSource::Urls {
                interactions: "data/x.inter".into(),
                items: "data/x.item".into(),
            }),
            Lane::Data,
        ),
        (
            Request::TrainOracle {
                epochs: 2,
                learning_rate: 1e-3,
            },
            Lane::Data,
        ),
        (Request::TestUser { index: 3 }, Lane::Data),
        (Request::ResumeTraining, Lane::Training),
        (Request::CancelTraining, Lane::Training),
        (Request::PauseTraining(true), Lane::Training),
        (
            Request::LoadPairs {
                name: "p.jsonl".into(),
                bytes: b"{}".to_vec(),
            },
            Lane::Training,
        ),
        (
            Request::Evaluate {
                split: SplitName::Validation,
                users: 20,
                generate: 0,
            },
            Lane::Evaluation,
        ),
        (Request::StorageStatus, Lane::Storage),
        (Request::ClearStorage, Lane::Storage),
        (
            Request::ImportRuns {
                name: "runs.json".into(),
                bytes: b"[]".to_vec(),
            },
            Lane::Storage,
        ),
        (Request::DiscardCheckpoint, Lane::Storage),
    ]
}

#[test]
fn every_request_survives_the_wire_and_has_its_lane() {
    for (i, (request, lane)) in requests().into_iter().enumerate() {
        assert_eq!(request.lane(), lane, "{request:?}");
        let sent = Tagged {
            id: i as u64 + 1,
            body: request,
        };
        let wire = serde_json::to_string(&sent).expect("serialises");
        let back: Tagged<Request> = serde_json::from_str(&wire).expect("deserialises");
        assert_eq!(back, sent);
    }
}

#[test]
fn only_model_requests_wait_on_or_hold_the_model_load() {
    for (request, lane) in requests() {
        let access = request.model_access();
        if access == ModelAccess::Load {
            assert_eq!(lane, Lane::Model, "{request:?}");
        }
        // Data, storage and the training controls never wait for a model download.
        if matches!(lane, Lane::Data | Lane::Storage)
            || matches!(request, Request::CancelTraining | Request::PauseTraining(_))
        {
            assert_eq!(access, ModelAccess::Independent, "{request:?}");
        }
    }
}

#[test]
fn progress_and_failures_carry_their_lane_over_the_wire() {
    for lane in [
        Lane::Model,
        Lane::Adapters,
        Lane::Data,
        Lane::Training,
        Lane::Evaluation,
        Lane::Storage,
    ] {
        for response in [
            Response::Progress {
                lane,
                stage: "Downloading the model".into(),
                done: 5,
                total: Some(10),
            },
            Response::Failed {
                lane,
                during: "ranking".into(),
                message: "no model is loaded yet".into(),
                fault: None,
            },
            Response::Failed {
                lane,
                during: "training".into(),
                message: "device: out of memory".into(),
                fault: Some(DeviceFault::OutOfMemory),
            },
        ] {
            let wire = serde_json::to_string(&response).expect("serialises");
            let back: Response = serde_json::from_str(&wire).expect("deserialises");
            assert_eq!(back, response);
        }
    }
}

#[test]
fn the_device_report_carries_its_threads_and_the_preference_its_query() {
    let device = Response::Device(DeviceInUse {
        kind: DeviceKind::Cpu,
        threads: 8,
        note: Some("the CPU was requested (?device=cpu)".into()),
    });
    let wire = serde_json::to_string(&device).expect("serialises");
    assert_eq!(
        serde_json::from_str::<Response>(&wire).expect("deserialises"),
        device
    );
    // The worker loader reads `?device=` back from the page's query.
    for p in [
        DevicePreference::Auto,
        DevicePreference::WebGpu,
        DevicePreference::Cpu,
    ] {
        assert_eq!(DevicePreference::from_query(Some(p.as_query())), p);
    }
}
