//! The SASRec oracle in the browser: a model trained on Flex in wasm scores the same on WebGPU
//! after a safetensors round trip (forward agreement across devices), and training steps run on
//! WebGPU too (autodiff and Adam on Burn's wgpu backend), with a falling, finite loss.

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

use burn::tensor::Device;
use recalign_core::data::split::{SplitConfig, split};
use recalign_core::data::{Catalogue, Domain, Interaction, InteractionLog, ItemId, LoadReport};
use recalign_core::fixtures::scores;
use recalign_core::oracle::sasrec::{SasRecConfig, SasRecOracle, SasRecTrainer, SasRecTraining};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// A deterministic log where each user walks the catalogue with a fixed stride, so the next item
/// is learnable from the history.
fn walk_log() -> InteractionLog {
    let items = 60;
    let mut catalogue = Catalogue::new();
    for i in 0..items {
        catalogue.insert(&i.to_string(), &format!("Item {i}"));
    }
    let mut interactions = Vec::new();
    for u in 0..40u32 {
        for k in 0..14u32 {
            let item = ItemId((u * 7 + k * 3) % items as u32);
            interactions.push(Interaction {
                user: u,
                item,
                timestamp: i64::from(k),
                rating: Some(5.0),
            });
        }
    }
    InteractionLog {
        domain: Domain::Movies,
        catalogue,
        users: (0..40).map(|u: u32| u.to_string()).collect(),
        interactions,
        report: LoadReport::default(),
    }
}

fn config() -> SasRecConfig {
    SasRecConfig {
        dropout: 0.0,
        hidden: 32,
        ..SasRecConfig::new(60, 0)
    }
}

async fn train(device: &Device, steps: usize) -> (Vec<f32>, SasRecTrainer) {
    let log = walk_log();
    let s = split(
        &log,
        &SplitConfig {
            candidates: 10,
            ..Default::default()
        },
    )
    .unwrap();
    let training = SasRecTraining {
        epochs: 50,
        batch_size: 16,
        learning_rate: 1e-2,
        seed: 3,
    };
    let mut trainer = SasRecTrainer::new(config(), training, &s.train_sequences, device).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        losses.push(trainer.step().await.unwrap().loss);
    }
    (losses, trainer)
}

thread_local! {
    /// Burn registers one wgpu server per device: a second `init_async` fails, so every test in
    /// this binary shares the first.
    static WEBGPU: std::cell::RefCell<Option<Device>> = const { std::cell::RefCell::new(None) };
}

async fn webgpu() -> Device {
    if let Some(d) = WEBGPU.with(|w| w.borrow().clone()) {
        return d;
    }
    let d = Device::wgpu_options()
        .init_async()
        .await
        .expect("WebGPU adapter (run Chromium with --enable-unsafe-webgpu)");
    WEBGPU.with(|w| *w.borrow_mut() = Some(d.clone()));
    d
}

#[wasm_bindgen_test]
async fn an_oracle_trained_on_flex_scores_the_same_on_webgpu() {
    let (_, trainer) = train(&Device::flex(), 20).await;
    let bytes = trainer.oracle().to_safetensors().unwrap();
    let log = walk_log();
    let s = split(
        &log,
        &SplitConfig {
            candidates: 10,
            ..Default::default()
        },
    )
    .unwrap();
    let examples: Vec<_> = s.validation.iter().chain(&s.test).cloned().collect();
    let on_flex = SasRecOracle::from_safetensors(&bytes, &Device::flex(), None).unwrap();
    let on_gpu = SasRecOracle::from_safetensors(&bytes, &webgpu().await, None).unwrap();
    let a = on_flex.candidate_scores(&examples).await.unwrap();
    let b = on_gpu.candidate_scores(&examples).await.unwrap();
    // Flex (within `scores::F32_CPU` of exact) against WebGPU (within `scores::WEBGPU`): the
    // oracle is, like the tiny Llama, two transformer blocks of short reductions, so the same
    // bounds in units of f32 roundoff relative to each score's size hold for it.
    let (a, b): (Vec<f32>, Vec<f32>) = (
        a.iter().flatten().copied().collect(),
        b.iter().flatten().copied().collect(),
    );
    let d = scores::deviation(&b, &a).unwrap();
    wasm_bindgen_test::console_log!("SASRec Flex vs WebGPU: {d:.1} u");
    let bound = scores::F32_CPU + scores::WEBGPU;
    assert!(
        d <= bound,
        "Flex vs WebGPU scores differ by {d} u (bound {bound})"
    );
}

#[wasm_bindgen_test]
async fn sasrec_trains_on_webgpu() {
    let (losses, _) = train(&webgpu().await, 12).await;
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let first = losses[..3].iter().sum::<f32>() / 3.0;
    let last = losses[losses.len() - 3..].iter().sum::<f32>() / 3.0;
    assert!(
        last < first - 0.1,
        "loss did not fall on WebGPU: {losses:?}"
    );
}
