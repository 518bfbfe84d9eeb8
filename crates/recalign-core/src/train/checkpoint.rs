//! A run's checkpoint: where it stands, its adapter and AdamW's moments, in one safetensors
//! file, so a run killed (or a page reloaded) continues to the same result as an uninterrupted
//! one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Adapter, LoraSettings, OptimizerState, ParamMoments, TrainSettings};
use crate::losses::{LossConfig, LossState};
use crate::{Error, Result};

/// Where a run stands, as a checkpoint stores it next to the adapter and optimiser bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimiser steps done.
    pub step: usize,
    /// Finished passes over the data.
    pub epochs: usize,
    /// Position in the current pass.
    pub cursor: usize,
    /// The run's settings.
    pub settings: TrainSettings,
    /// LoRA's shape.
    pub lora: LoraSettings,
    /// The preference loss (`None` for SFT).
    pub loss: Option<LossConfig>,
    /// The loss's running statistics.
    pub loss_state: LossState,
    /// Parameter ids of the LoRA factors, which key the optimiser state.
    pub factor_ids: std::collections::HashMap<String, u64>,
}

/// A resumable snapshot of a training run.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Position and settings.
    pub state: CheckpointState,
    /// The adapter at that step.
    pub adapter: Adapter,
    /// AdamW's moments.
    pub optimizer: OptimizerState,
}

const CHECKPOINT_STATE_KEY: &str = "recalign.checkpoint";

/// AdamW's moments are stored as `recalign.adamw.{param id}.first` / `.second`, their step
/// counts as JSON metadata under [`OPTIMIZER_TIMES_KEY`].
const OPTIMIZER_PREFIX: &str = "recalign.adamw.";

const OPTIMIZER_TIMES_KEY: &str = "recalign.adamw.time";

impl Checkpoint {
    /// One file: the adapter's tensors in PEFT's layout, AdamW's moments as f32 tensors, and the
    /// position as JSON metadata.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let err = |e: safetensors::SafeTensorError| Error::Train(e.to_string());
        let json = |e: serde_json::Error| Error::Train(e.to_string());
        let adapter = self.adapter.to_safetensors()?;
        let st = safetensors::SafeTensors::deserialize(&adapter).map_err(err)?;
        let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
            st.tensors().into_iter().collect();
        let mut times = BTreeMap::new();
        let mut moments = Vec::new();
        for (id, p) in &self.optimizer.params {
            times.insert(*id, p.time);
            for (leaf, values) in [("first", &p.first), ("second", &p.second)] {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                moments.push((
                    format!("{OPTIMIZER_PREFIX}{id}.{leaf}"),
                    values.len(),
                    bytes,
                ));
            }
        }
        for (name, n, bytes) in &moments {
            views.push((
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![*n], bytes)
                    .map_err(err)?,
            ));
        }
        let mut meta = std::collections::HashMap::new();
        let (_, header) = safetensors::SafeTensors::read_metadata(&adapter).map_err(err)?;
        if let Some(m) = header.metadata() {
            meta.extend(m.clone());
        }
        meta.insert(
            CHECKPOINT_STATE_KEY.to_string(),
            serde_json::to_string(&self.state).map_err(json)?,
        );
        meta.insert(
            OPTIMIZER_TIMES_KEY.to_string(),
            serde_json::to_string(&times).map_err(json)?,
        );
        safetensors::serialize(views, Some(meta)).map_err(err)
    }

    /// Reads [`Self::to_bytes`]' output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |why: String| Error::Train(format!("checkpoint: {why}"));
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let state: CheckpointState = meta
            .get(CHECKPOINT_STATE_KEY)
            .ok_or_else(|| bad("no training state: this is not a recalign checkpoint".into()))
            .and_then(|s| serde_json::from_str(s).map_err(|e| bad(e.to_string())))?;
        let times: BTreeMap<u64, usize> = meta
            .get(OPTIMIZER_TIMES_KEY)
            .ok_or_else(|| bad("no optimiser state".into()))
            .and_then(|s| serde_json::from_str(s).map_err(|e| bad(e.to_string())))?;
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        let moment = |id: u64, leaf: &str| -> Result<Vec<f32>> {
            let name = format!("{OPTIMIZER_PREFIX}{id}.{leaf}");
            let t = st
                .tensor(&name)
                .map_err(|_| bad(format!("{name} is missing")))?;
            if t.dtype() != safetensors::Dtype::F32 {
                return Err(bad(format!("{name} is {:?}, not F32", t.dtype())));
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let mut optimizer = OptimizerState::default();
        for (&id, &time) in &times {
            let (first, second) = (moment(id, "first")?, moment(id, "second")?);
            if first.len() != second.len() {
                return Err(bad(format!("parameter {id}'s moments differ in size")));
            }
            optimizer.params.insert(
                id,
                ParamMoments {
                    time,
                    first,
                    second,
                },
            );
        }
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
            .tensors()
            .into_iter()
            .filter(|(n, _)| !n.starts_with(OPTIMIZER_PREFIX))
            .collect();
        let mut meta = std::collections::HashMap::new();
        meta.insert(
            "recalign.lora".to_string(),
            serde_json::to_string(&state.lora).map_err(|e| bad(e.to_string()))?,
        );
        let adapter_bytes =
            safetensors::serialize(views, Some(meta)).map_err(|e| bad(e.to_string()))?;
        let adapter = Adapter::from_safetensors(&adapter_bytes, None)?;
        Ok(Self {
            state,
            adapter,
            optimizer,
        })
    }
}
