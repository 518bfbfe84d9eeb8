//! LoRA on the decoder through Burn's `apply_lora`, and adapters as files: one layout, PEFT's
//! (`adapter_model.safetensors` with Hugging Face module names and `adapter_config.json`), so an
//! adapter trained here loads in Python's PEFT on `HuggingFaceTB/SmolLM2-135M-Instruct` and back.
//!
//! Burn stores a LoRA factor pair as `a: [d_in, rank]`, `b: [rank, d_out]` and composes
//! `W + (alpha / rank) a b` with `W` as `[d_in, d_out]`; PEFT stores `lora_A.weight: [rank, d_in]`
//! and `lora_B.weight: [d_out, rank]` with the same scale, so export and import transpose both.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Lora, Module, ModuleMapper, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::hybrid::HybridWeights;
use crate::model::LlamaWeights;
use crate::{Error, Result};

/// Which linear layers get adapters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoraTargets {
    /// The attention query and value projections (LoRA's original choice, PEFT's default).
    #[default]
    QueryValue,
    /// Every linear layer of every block (attention and MLP).
    AllLinear,
}

impl LoraTargets {
    /// Hugging Face module names of the targets.
    pub fn modules(self) -> &'static [&'static str] {
        match self {
            LoraTargets::QueryValue => &["q_proj", "v_proj"],
            LoraTargets::AllLinear => &[
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ],
        }
    }
}

/// LoRA's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraSettings {
    /// Rank r of the factors.
    pub rank: usize,
    /// Scale numerator: the update is `(alpha / r) A B`.
    pub alpha: f64,
    /// Dropout on the adapter's input. Not implemented (the factored path of
    /// `model::project` is where it would go): only 0 is accepted, PEFT's value for inference
    /// and what the exported config says.
    pub dropout: f64,
    /// Which linear layers of each adapted block.
    pub targets: LoraTargets,
    /// Adapt only the top this many decoder blocks (0: every block). Below them nothing
    /// trains, so autodiff records nothing there and backward stops at the first adapted block:
    /// the lower blocks cost one forward pass. PEFT's `layers_to_transform`.
    #[serde(default)]
    pub top_layers: usize,
}

impl Default for LoraSettings {
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            dropout: 0.0,
            targets: LoraTargets::QueryValue,
            top_layers: 0,
        }
    }
}

impl LoraSettings {
    /// Refuses a shape LoRA cannot have.
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 || !self.alpha.is_finite() || self.alpha <= 0.0 {
            return Err(Error::Adapter(format!(
                "LoRA needs rank >= 1 and alpha > 0 (got rank {}, alpha {})",
                self.rank, self.alpha
            )));
        }
        if self.dropout != 0.0 {
            return Err(Error::Adapter(format!(
                "LoRA dropout {} is not supported (not implemented); use 0",
                self.dropout
            )));
        }
        Ok(())
    }

    /// `alpha / rank`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// The adapted blocks of a model with `n_layers` blocks, or an error naming the mismatch
    /// when `top_layers` asks for more blocks than it has.
    pub fn layer_range(&self, n_layers: usize) -> Result<std::ops::Range<usize>> {
        match self.top_layers {
            0 => Ok(0..n_layers),
            n if n <= n_layers => Ok(n_layers - n..n_layers),
            n => Err(Error::Adapter(format!(
                "LoRA on the top {n} layers, but the model has {n_layers}"
            ))),
        }
    }
}

/// Attaches fresh adapters (A random, B zero: the model's output is unchanged) to the target
/// layers and freezes everything else.
pub fn attach(weights: LlamaWeights, settings: &LoraSettings) -> Result<LlamaWeights> {
    settings.validate()?;
    let range = settings.layer_range(weights.layers.len())?;
    let paths: Vec<String> = range
        .flat_map(|i| {
            settings
                .targets
                .modules()
                .iter()
                .map(move |m| format!("layers.{i}.{}.{m}.weight", block(m)))
        })
        .collect();
    // Burn's own initial factors are placeholders: every trainer sets them from
    // `Adapter::fresh` (PEFT's initialisation, drawn on the host) or from a saved adapter.
    let lora = Lora::new(settings.rank, settings.alpha)
        .set_param_group(ParamGroup::from_any_predicates(paths));
    Ok(weights.apply_lora(lora))
}

fn layer_linear<'a>(layer: &'a crate::model::DecoderLayer, module: &str) -> Option<&'a Linear> {
    Some(match module {
        "q_proj" => &layer.self_attn.q_proj,
        "k_proj" => &layer.self_attn.k_proj,
        "v_proj" => &layer.self_attn.v_proj,
        "o_proj" => &layer.self_attn.o_proj,
        "gate_proj" => &layer.mlp.gate_proj,
        "up_proj" => &layer.mlp.up_proj,
        "down_proj" => &layer.mlp.down_proj,
        _ => return None,
    })
}

fn block(module: &str) -> &'static str {
    if module.ends_with("_proj") && ["gate_proj", "up_proj", "down_proj"].contains(&module) {
        "mlp"
    } else {
        "self_attn"
    }
}

/// One adapted layer's factors, host-side, in Burn's layout.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptedLayer {
    /// Hugging Face module path, e.g. `model.layers.3.self_attn.q_proj`.
    pub module: String,
    /// Input width.
    pub d_in: usize,
    /// Output width.
    pub d_out: usize,
    /// `A`, `[d_in, rank]`, row-major.
    pub a: Vec<f32>,
    /// `B`, `[rank, d_out]`, row-major.
    pub b: Vec<f32>,
}

/// How an adapter file stores its factors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FactorType {
    /// 32-bit floats, exactly what training holds.
    #[default]
    F32,
    /// IEEE half precision: half the bytes.
    F16,
    /// f16 LoRA factors (PEFT still loads them) and a hybrid adapter's projector and item
    /// table as int8 with one f32 scale per row (`NAME` I8 and `NAME.scale` F32): the
    /// projector and table are half the file and only this reader loads them anyway, so a
    /// quarter of their f32 bytes brings the shipped default adapter under 2 MB. Per-row
    /// absmax rounding moves each value by at most 1/254 of its row's largest.
    F16Int8Hybrid,
}

impl FactorType {
    fn dtype(self) -> Dtype {
        match self {
            FactorType::F32 => Dtype::F32,
            FactorType::F16 | FactorType::F16Int8Hybrid => Dtype::F16,
        }
    }
}

/// A trained adapter, off the device: what is saved, exported and shown.
#[derive(Clone, Debug, PartialEq)]
pub struct Adapter {
    /// Its shape.
    pub settings: LoraSettings,
    /// Its layers, in model order.
    pub layers: Vec<AdaptedLayer>,
    /// The prompt format it was trained with, which ranking with it should use (saved in the
    /// file's metadata; LLaRA's for files without it, such as PEFT imports).
    pub prompt: crate::prompt::PromptFormat,
    /// LLaRA's projector and its item table, for an adapter trained with hybrid item slots
    /// ([`crate::hybrid`]): such an adapter ranks LLaRA prompts with a slot after each title.
    pub hybrid: Option<HybridWeights>,
}

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

impl Adapter {
    /// A fresh adapter for a model of shape `config`, initialised as PEFT does: A from
    /// Kaiming-uniform with `a = sqrt(5)`, i.e. U(-1/sqrt(d_in), 1/sqrt(d_in)) (std 0.024 for
    /// d_in 576, where N(0, 1/r) would give 0.125 at r 8 and steps five times larger than the
    /// learning rate suggests), B = 0 (so the model is unchanged). Drawn on the host from a
    /// seeded ChaCha8 stream, so a run starts from the same weights on Flex and on WebGPU.
    pub fn fresh(
        settings: &LoraSettings,
        config: &crate::model::LlamaConfig,
        seed: u64,
    ) -> Result<Self> {
        use rand::{Rng, SeedableRng};
        settings.validate()?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut uniform = move |bound: f64| rng.random_range(-bound..bound);
        let kv = config.n_kv_heads * config.head_dim();
        let (d, ff) = (config.hidden_size, config.intermediate_size);
        let mut layers = Vec::new();
        for i in settings.layer_range(config.n_layers)? {
            for &m in settings.targets.modules() {
                let (d_in, d_out) = match m {
                    "k_proj" | "v_proj" => (d, kv),
                    "gate_proj" | "up_proj" => (d, ff),
                    "down_proj" => (ff, d),
                    _ => (d, d),
                };
                layers.push(AdaptedLayer {
                    module: format!("model.layers.{i}.{}.{m}", block(m)),
                    d_in,
                    d_out,
                    a: (0..d_in * settings.rank)
                        .map(|_| uniform(1.0 / (d_in as f64).sqrt()) as f32)
                        .collect(),
                    b: vec![0.0; settings.rank * d_out],
                });
            }
        }
        Ok(Self {
            settings: settings.clone(),
            layers,
            prompt: Default::default(),
            hybrid: None,
        })
    }

    /// Reads the adapters attached to `weights` back from the device.
    pub async fn read(weights: &LlamaWeights, settings: &LoraSettings) -> Result<Self> {
        let mut layers = Vec::new();
        let range = settings.layer_range(weights.layers.len())?;
        for (i, layer) in weights.layers.iter().enumerate().skip(range.start) {
            for &m in settings.targets.modules() {
                let linear = layer_linear(layer, m)
                    .ok_or_else(|| Error::Adapter(format!("unknown module {m}")))?;
                let adapter = linear.weight.adapter().ok_or_else(|| {
                    Error::Adapter(format!("layer {i} {m} has no adapter attached"))
                })?;
                let [d_in, d_out] = linear.weight.base().dims();
                layers.push(AdaptedLayer {
                    module: format!("model.layers.{i}.{}.{m}", block(m)),
                    d_in,
                    d_out,
                    a: crate::lm::read_f32(adapter.a.val()).await?,
                    b: crate::lm::read_f32(adapter.b.val()).await?,
                });
            }
        }
        let hybrid = match &weights.projector {
            Some(p) => Some(HybridWeights::read(p).await?),
            None => None,
        };
        Ok(Self {
            settings: settings.clone(),
            layers,
            prompt: Default::default(),
            hybrid,
        })
    }

    /// Sets these factors on `weights`, which must carry adapters of the same shape (from
    /// [`attach`] with these settings).
    pub fn apply(&self, weights: LlamaWeights, device: &Device) -> Result<LlamaWeights> {
        self.apply_with_ids(weights, device, &HashMap::new())
    }

    /// [`Self::apply`], also giving each factor the parameter id in `ids` (keyed by its path, as
    /// [`factor_ids`] lists them), so a resumed optimiser finds its state.
    pub fn apply_with_ids(
        &self,
        weights: LlamaWeights,
        device: &Device,
        ids: &HashMap<String, u64>,
    ) -> Result<LlamaWeights> {
        let rank = self.settings.rank;
        let mut values = HashMap::new();
        for l in &self.layers {
            let path = l
                .module
                .strip_prefix("model.")
                .unwrap_or(&l.module)
                .to_string();
            if l.a.len() != l.d_in * rank || l.b.len() != rank * l.d_out {
                return Err(Error::Adapter(format!(
                    "{} has factors of {} and {} values, expected {}x{rank} and {rank}x{}",
                    l.module,
                    l.a.len(),
                    l.b.len(),
                    l.d_in,
                    l.d_out
                )));
            }
            let a = Tensor::<2>::from_data(TensorData::new(l.a.clone(), [l.d_in, rank]), device);
            let b = Tensor::<2>::from_data(TensorData::new(l.b.clone(), [rank, l.d_out]), device);
            values.insert(format!("{path}.weight.lora.a"), a);
            values.insert(format!("{path}.weight.lora.b"), b);
        }
        let expected = values.len();
        let mut setter = FactorSetter {
            path: Vec::new(),
            ids: ids.clone(),
            values,
            set: 0,
            trainable: false,
            error: None,
        };
        let mut weights = weights.map(&mut setter);
        if let Some(e) = setter.error {
            return Err(e);
        }
        if setter.set != expected {
            let missing: Vec<&String> = setter.values.keys().take(3).collect();
            return Err(Error::Adapter(format!(
                "the model has no adapter slot for {} of the adapter's {expected} factors (e.g. \
                 {missing:?}): attach LoRA with the adapter's settings first",
                expected - setter.set
            )));
        }
        if let Some(h) = &self.hybrid {
            h.validate(
                weights.embed_tokens.weight.val().dims()[1],
                weights.layers.len(),
            )?;
            let id = |k: &str| ids.get(k).copied();
            // Trainable exactly when the LoRA factors are (an autodiff policy, not a scorer).
            weights.projector = Some(h.projector(
                device,
                [id(PROJECTOR_UP), id(PROJECTOR_DOWN)],
                setter.trainable,
            ));
        }
        Ok(weights)
    }

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

/// Replaces the LoRA factors whose module path is in `values` (paths as Burn's mapper walks
/// them: `layers.3.self_attn.q_proj.weight.lora.a`).
struct FactorSetter {
    path: Vec<String>,
    ids: HashMap<String, u64>,
    values: HashMap<String, Tensor<2>>,
    set: usize,
    /// Whether any factor it set was trainable.
    trainable: bool,
    error: Option<Error>,
}

impl ModuleMapper for FactorSetter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let key = self.path.join(".");
        let Some(value) = self.values.remove(&key) else {
            return param;
        };
        let dims = param.val().dims();
        if D != 2 || dims[..] != value.dims()[..] {
            self.error = Some(Error::Adapter(format!(
                "{key} has shape {:?} in the model but {:?} in the adapter",
                &dims[..],
                value.dims()
            )));
            return param;
        }
        self.set += 1;
        let value: Tensor<D> = value.reshape(param.val().shape());
        // The new value is a fresh leaf: keep the old factor's trainability explicitly.
        let trainable = param.val().is_require_grad();
        self.trainable |= trainable;
        let param = param.map(|old| value.to_device(&old.device()));
        let param = if trainable {
            param.set_require_grad(true)
        } else {
            param
        };
        match self.ids.get(&key) {
            Some(&id) => {
                let (_, tensor, mapper) = param.consume();
                Param::from_mapped_value(ParamId::from(id), tensor, mapper)
            }
            None => param,
        }
    }
}

/// The projector's trainable matrices as [`factor_ids`] names them.
const PROJECTOR_UP: &str = "projector.up";
const PROJECTOR_DOWN: &str = "projector.down";

/// Paths and parameter ids of every LoRA factor in `weights` (`layers.3.self_attn.q_proj.weight.lora.a`).
pub fn factor_ids(weights: &LlamaWeights) -> HashMap<String, u64> {
    let mut v = FactorIds::default();
    weights.visit(&mut v);
    v.ids
}

#[derive(Default)]
struct FactorIds {
    path: Vec<String>,
    ids: HashMap<String, u64>,
}

impl ModuleVisitor for FactorIds {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let key = self.path.join(".");
        if key.ends_with(".lora.a")
            || key.ends_with(".lora.b")
            || key == PROJECTOR_UP
            || key == PROJECTOR_DOWN
        {
            self.ids.insert(key, param.id.val());
        }
    }
}
