//! An adapter as a file, in PEFT's layout: `adapter_model.safetensors` with Hugging Face module
//! names (factors transposed to PEFT's shapes, f32 or f16), our settings, prompt format and
//! hybrid projector in the metadata and extra tensors, and `adapter_config.json`; read back from
//! either our one file or PEFT's directory.

use std::collections::{BTreeMap, HashMap};

use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::hybrid::HybridWeights;
use crate::{Error, Result};

use super::*;

/// The model PEFT configs name as the base.
pub const PEFT_BASE_MODEL: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

const SETTINGS_KEY: &str = "recalign.lora";

const PROMPT_KEY: &str = "recalign.prompt";

const HYBRID_KEY: &str = "recalign.hybrid";

/// The item table's catalogue (domain and titles, JSON): about 40 KB for ML-100K.
const CATALOGUE_KEY: &str = "recalign.hybrid.catalogue";

/// The projector's shape, in the file's metadata next to its tensors.
#[derive(Serialize, Deserialize)]
struct HybridMeta {
    d_item: usize,
    hidden: usize,
    layer: usize,
}

/// The block index of a module path `model.layers.{i}.…`.
fn layer_index(module: &str) -> Option<usize> {
    module
        .strip_prefix("model.layers.")
        .and_then(|s| s.split('.').next())
        .and_then(|s| s.parse().ok())
}

/// A layer being read: module path, A and B once seen (our layout), d_in, d_out.
type PartialLayer = (String, Option<Vec<f32>>, Option<Vec<f32>>, usize, usize);

fn settings_from_peft(c: &serde_json::Value) -> Result<LoraSettings> {
    let bad = |why: &str| Error::Adapter(format!("adapter_config.json: {why}"));
    let rank = c["r"].as_u64().ok_or_else(|| bad("no integer \"r\""))? as usize;
    let alpha = c["lora_alpha"]
        .as_f64()
        .ok_or_else(|| bad("no number \"lora_alpha\""))?;
    if c["use_rslora"].as_bool() == Some(true) || c["use_dora"].as_bool() == Some(true) {
        return Err(bad("rsLoRA and DoRA adapters are not supported"));
    }
    let mut targets: Vec<String> = match &c["target_modules"] {
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => return Err(bad("\"target_modules\" must be a list of module names")),
    };
    targets.sort();
    let matches = |t: LoraTargets| {
        let mut m: Vec<String> = t.modules().iter().map(|s| s.to_string()).collect();
        m.sort();
        m == targets
    };
    let targets = if matches(LoraTargets::QueryValue) {
        LoraTargets::QueryValue
    } else if matches(LoraTargets::AllLinear) {
        LoraTargets::AllLinear
    } else {
        return Err(bad(&format!(
            "target_modules {targets:?} is neither [q_proj, v_proj] nor all linear layers"
        )));
    };
    // `layers_to_transform` must be the top blocks (what `top_layers` can say); that they
    // really are the model's top is checked when the adapter is applied to a model.
    let top_layers = match &c["layers_to_transform"] {
        serde_json::Value::Null => 0,
        serde_json::Value::Array(a) => {
            let blocks: Vec<u64> = a.iter().filter_map(serde_json::Value::as_u64).collect();
            let contiguous = blocks.len() == a.len() && blocks.windows(2).all(|w| w[1] == w[0] + 1);
            if !contiguous || blocks.is_empty() {
                return Err(bad(&format!(
                    "layers_to_transform {a:?} is not a run of consecutive top layers"
                )));
            }
            blocks.len()
        }
        other => return Err(bad(&format!("layers_to_transform {other} is not a list"))),
    };
    Ok(LoraSettings {
        rank,
        alpha,
        // Dropout only acts in training; the factors load the same whatever it was.
        dropout: 0.0,
        targets,
        top_layers,
    })
}

fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// Little-endian values of `N` bytes each (safetensors' layout) as f32.
fn decode<const N: usize>(data: &[u8], value: impl Fn([u8; N]) -> f32) -> Vec<f32> {
    data.chunks_exact(N)
        .filter_map(|c| <[u8; N]>::try_from(c).ok())
        .map(value)
        .collect()
}

/// The suffix of an int8 hybrid tensor's row scales.
const SCALE_SUFFIX: &str = ".scale";

/// Symmetric int8 per row of `cols`: each row scaled by its largest magnitude over 127.
fn quantize_rows(values: &[f32], cols: usize) -> (Vec<i8>, Vec<f32>) {
    let mut q = Vec::with_capacity(values.len());
    let mut scales = Vec::new();
    for row in values.chunks(cols.max(1)) {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        scales.push(scale);
        q.extend(
            row.iter()
                .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8),
        );
    }
    (q, scales)
}

fn dequantize_rows(q: &[i8], cols: usize, scales: &[f32]) -> Vec<f32> {
    q.chunks(cols.max(1))
        .zip(scales)
        .flat_map(|(row, s)| row.iter().map(move |v| f32::from(*v) * s))
        .collect()
}

fn to_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl Adapter {
    /// The adapter as `adapter_model.safetensors` in PEFT's layout (f32), with its settings in
    /// the metadata so one file is enough to load it here.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        self.to_safetensors_as(FactorType::F32)
    }

    /// [`Adapter::to_safetensors`] with the factors stored as `dtype`: f16 halves the file (the
    /// shipped default adapter), at a relative rounding of 2^-11 per factor, far below what
    /// training moves them by; PEFT and this reader load either.
    pub fn to_safetensors_as(&self, dtype: FactorType) -> Result<Vec<u8>> {
        let rank = self.settings.rank;
        let to_bytes = |v: &[f32]| match dtype {
            FactorType::F32 => to_bytes(v),
            FactorType::F16 | FactorType::F16Int8Hybrid => v
                .iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect(),
        };
        let mut owned: BTreeMap<String, (Dtype, Vec<u8>, Vec<usize>)> = BTreeMap::new();
        let float = |values: &[f32], shape: Vec<usize>| (dtype.dtype(), to_bytes(values), shape);
        for l in &self.layers {
            // PEFT's A is our A transposed ([rank, d_in]); its B is our B transposed.
            let a_t = transpose(&l.a, l.d_in, rank);
            let b_t = transpose(&l.b, rank, l.d_out);
            let name = format!("base_model.model.{}", l.module);
            owned.insert(
                format!("{name}.lora_A.weight"),
                float(&a_t, vec![rank, l.d_in]),
            );
            owned.insert(
                format!("{name}.lora_B.weight"),
                float(&b_t, vec![l.d_out, rank]),
            );
        }
        if let Some(h) = &self.hybrid {
            let tensors = [
                (crate::hybrid::ITEMS_TENSOR, &h.items, [h.rows(), h.d_item]),
                (crate::hybrid::UP_TENSOR, &h.up, [h.d_item, h.hidden]),
                (crate::hybrid::DOWN_TENSOR, &h.down, [h.hidden, h.hidden]),
            ];
            for (name, values, [rows, cols]) in tensors {
                if dtype == FactorType::F16Int8Hybrid {
                    let (q, scales) = quantize_rows(values, cols);
                    owned.insert(
                        name.into(),
                        (
                            Dtype::I8,
                            q.iter().map(|v| *v as u8).collect(),
                            vec![rows, cols],
                        ),
                    );
                    owned.insert(
                        format!("{name}{SCALE_SUFFIX}"),
                        (Dtype::F32, self::to_bytes(&scales), vec![rows]),
                    );
                } else {
                    owned.insert(name.into(), float(values, vec![rows, cols]));
                }
            }
        }
        let views: Vec<(String, TensorView<'_>)> = owned
            .iter()
            .map(|(k, (dtype, bytes, shape))| {
                TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| Error::Adapter(e.to_string()))
            })
            .collect::<Result<_>>()?;
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        meta.insert(
            SETTINGS_KEY.to_string(),
            serde_json::to_string(&self.settings).map_err(|e| Error::Adapter(e.to_string()))?,
        );
        meta.insert(
            PROMPT_KEY.to_string(),
            serde_json::to_string(&self.prompt).map_err(|e| Error::Adapter(e.to_string()))?,
        );
        if let Some(h) = &self.hybrid {
            let shape = HybridMeta {
                d_item: h.d_item,
                hidden: h.hidden,
                layer: h.layer,
            };
            meta.insert(
                HYBRID_KEY.to_string(),
                serde_json::to_string(&shape).map_err(|e| Error::Adapter(e.to_string()))?,
            );
            if let Some(c) = &h.catalogue {
                meta.insert(
                    CATALOGUE_KEY.to_string(),
                    serde_json::to_string(c.as_ref()).map_err(|e| Error::Adapter(e.to_string()))?,
                );
            }
        }
        safetensors::serialize(views, Some(meta)).map_err(|e| Error::Adapter(e.to_string()))
    }

    /// PEFT's `adapter_config.json` for this adapter.
    pub fn peft_config(&self) -> serde_json::Value {
        let mut blocks: Vec<usize> = self
            .layers
            .iter()
            .filter_map(|l| layer_index(&l.module))
            .collect();
        blocks.dedup();
        let mut config = serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": PEFT_BASE_MODEL,
            "r": self.settings.rank,
            "lora_alpha": self.settings.alpha,
            "lora_dropout": self.settings.dropout,
            "target_modules": self.settings.targets.modules(),
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "use_rslora": false,
            "use_dora": false,
            "init_lora_weights": true,
            "modules_to_save": null,
        });
        if self.settings.top_layers > 0 {
            config["layers_to_transform"] = serde_json::json!(blocks);
            config["layers_pattern"] = serde_json::json!("layers");
        }
        config
    }

    /// Reads `adapter_model.safetensors`: settings from our metadata, or else from PEFT's
    /// `adapter_config.json` given as `config`.
    pub fn from_safetensors(bytes: &[u8], config: Option<&serde_json::Value>) -> Result<Self> {
        let bad = |why: String| Error::Adapter(why);
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let tensors = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let settings = match (
            meta.metadata().as_ref().and_then(|m| m.get(SETTINGS_KEY)),
            config,
        ) {
            (_, Some(c)) => settings_from_peft(c)?,
            (Some(s), None) => {
                serde_json::from_str(s).map_err(|e| bad(format!("bad settings metadata: {e}")))?
            }
            (None, None) => {
                return Err(bad(
                    "the file carries no LoRA settings: give PEFT's adapter_config.json too".into(),
                ));
            }
        };
        settings.validate()?;
        let rank = settings.rank;
        let mut modules: BTreeMap<(usize, usize), PartialLayer> = BTreeMap::new();
        let mut hybrid_tensors: HashMap<String, Vec<f32>> = HashMap::new();
        // Int8 hybrid tensors wait for their row scales (`FactorType::F16Int8Hybrid`).
        let mut quantised: HashMap<String, (Vec<i8>, usize)> = HashMap::new();
        for (name, view) in tensors.tensors() {
            if name.starts_with("recalign.hybrid.") && view.dtype() == Dtype::I8 {
                let cols = view.shape().last().copied().unwrap_or(0);
                let q = view.data().iter().map(|b| *b as i8).collect();
                quantised.insert(name.clone(), (q, cols));
                continue;
            }
            let values = || -> Result<Vec<f32>> {
                let data = view.data();
                Ok(match view.dtype() {
                    Dtype::F32 => decode(data, f32::from_le_bytes),
                    Dtype::F16 => decode(data, |b| half::f16::from_le_bytes(b).to_f32()),
                    Dtype::BF16 => decode(data, |b| half::bf16::from_le_bytes(b).to_f32()),
                    other => {
                        return Err(bad(format!(
                            "{name:?} is {other:?}; adapters are read as F32, F16 or BF16"
                        )));
                    }
                })
            };
            if name.starts_with("recalign.hybrid.") {
                hybrid_tensors.insert(name.clone(), values()?);
                continue;
            }
            let Some(rest) = name.strip_prefix("base_model.model.") else {
                return Err(bad(format!(
                    "unexpected tensor {name:?} (not a PEFT LoRA name)"
                )));
            };
            let (module, which) = if let Some(m) = rest.strip_suffix(".lora_A.weight") {
                (m, 'A')
            } else if let Some(m) = rest.strip_suffix(".lora_B.weight") {
                (m, 'B')
            } else {
                return Err(bad(format!(
                    "unexpected tensor {name:?} (not lora_A/lora_B)"
                )));
            };
            let layer = layer_index(module)
                .ok_or_else(|| bad(format!("cannot read the layer of {name:?}")))?;
            let kind = module.rsplit('.').next().unwrap_or_default();
            let order = settings
                .targets
                .modules()
                .iter()
                .position(|m| *m == kind)
                .ok_or_else(|| {
                    bad(format!(
                        "{name:?} adapts {kind}, which the settings' targets do not include"
                    ))
                })?;
            let shape = view.shape().to_vec();
            let values = values()?;
            let entry = modules
                .entry((layer, order))
                .or_insert_with(|| (module.to_string(), None, None, 0, 0));
            match (which, shape.as_slice()) {
                ('A', &[r, d_in]) if r == rank => {
                    entry.3 = d_in;
                    entry.1 = Some(transpose(&values, rank, d_in));
                }
                ('B', &[d_out, r]) if r == rank => {
                    entry.4 = d_out;
                    entry.2 = Some(transpose(&values, d_out, rank));
                }
                _ => {
                    return Err(bad(format!(
                        "{name:?} has shape {shape:?}, which does not fit rank {rank}"
                    )));
                }
            }
        }
        let layers = modules
            .into_values()
            .map(|(module, a, b, d_in, d_out)| match (a, b) {
                (Some(a), Some(b)) => Ok(AdaptedLayer {
                    module,
                    d_in,
                    d_out,
                    a,
                    b,
                }),
                _ => Err(bad(format!("{module} has only one of lora_A and lora_B"))),
            })
            .collect::<Result<Vec<_>>>()?;
        if layers.is_empty() {
            return Err(bad("the file holds no LoRA tensors".into()));
        }
        let prompt = match meta.metadata().as_ref().and_then(|m| m.get(PROMPT_KEY)) {
            Some(p) => serde_json::from_str(p)
                .map_err(|e| bad(format!("bad prompt-format metadata {p:?}: {e}")))?,
            None => Default::default(),
        };
        let hybrid = match meta.metadata().as_ref().and_then(|m| m.get(HYBRID_KEY)) {
            None if hybrid_tensors.is_empty() && quantised.is_empty() => None,
            None => {
                return Err(bad(
                    "the file has projector tensors but no recalign.hybrid metadata".into(),
                ));
            }
            Some(m) => {
                let shape: HybridMeta = serde_json::from_str(m)
                    .map_err(|e| bad(format!("bad recalign.hybrid metadata {m:?}: {e}")))?;
                for (name, (q, cols)) in quantised.drain() {
                    let scales = hybrid_tensors
                        .remove(&format!("{name}{SCALE_SUFFIX}"))
                        .ok_or_else(|| bad(format!("{name} is int8 but has no row scales")))?;
                    let rows = q.len().checked_div(cols).unwrap_or(0);
                    if scales.len() != rows {
                        return Err(bad(format!(
                            "{name} has {rows} rows but {} scales",
                            scales.len()
                        )));
                    }
                    hybrid_tensors.insert(name, dequantize_rows(&q, cols, &scales));
                }
                let mut take = |name: &str| {
                    hybrid_tensors
                        .remove(name)
                        .ok_or_else(|| bad(format!("the hybrid adapter lacks {name}")))
                };
                let h = HybridWeights {
                    d_item: shape.d_item,
                    hidden: shape.hidden,
                    layer: shape.layer,
                    items: take(crate::hybrid::ITEMS_TENSOR)?,
                    up: take(crate::hybrid::UP_TENSOR)?,
                    down: take(crate::hybrid::DOWN_TENSOR)?,
                    catalogue: None,
                };
                h.validate_shapes()?;
                match meta.metadata().as_ref().and_then(|m| m.get(CATALOGUE_KEY)) {
                    None => Some(h),
                    Some(c) => {
                        let c = serde_json::from_str(c)
                            .map_err(|e| bad(format!("bad {CATALOGUE_KEY} metadata: {e}")))?;
                        Some(h.with_catalogue(c)?)
                    }
                }
            }
        };
        Ok(Self {
            settings,
            layers,
            prompt,
            hybrid,
        })
    }
}
