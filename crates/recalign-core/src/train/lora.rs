//! LoRA on the decoder through Burn's `apply_lora`, and adapters as files (`lora/file.rs`): one
//! layout, PEFT's (`adapter_model.safetensors` with Hugging Face module names and
//! `adapter_config.json`), so an adapter trained here loads in Python's PEFT on
//! `HuggingFaceTB/SmolLM2-135M-Instruct` and back.
//!
//! Burn stores a LoRA factor pair as `a: [d_in, rank]`, `b: [rank, d_out]` and composes
//! `W + (alpha / rank) a b` with `W` as `[d_in, d_out]`; PEFT stores `lora_A.weight: [rank, d_in]`
//! and `lora_B.weight: [d_out, rank]` with the same scale, so export and import transpose both.

use std::collections::HashMap;

use burn::module::{Lora, Module, ModuleMapper, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::Dtype;
use serde::{Deserialize, Serialize};

use crate::hybrid::HybridWeights;
use crate::model::LlamaWeights;
use crate::{Error, Result};

mod file;

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
