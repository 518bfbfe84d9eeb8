//! The Llama-family decoder (SmolLM2's shape) in Burn: config from GGUF metadata, weights from GGUF
//! tensors, a forward pass over a key/value cache, and the tied output head.
//!
//! Module and field names follow Hugging Face's `LlamaForCausalLM` (`layers.N.self_attn.q_proj`),
//! so LoRA targets and exported adapters use the names PEFT expects. For the same reason the GGUF
//! q/k rows are un-permuted at load time (llama.cpp's converter interleaves each head's two RoPE
//! halves) and RoPE is applied in Hugging Face's rotate-half form: the two are equivalent, and the
//! weights then match the Hugging Face checkpoint row for row.

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::gguf::Gguf;

mod config;
mod slots;

pub use config::LlamaConfig;
pub use slots::{Projector, SlotTensors, Slots};

/// Multi-head attention with grouped key/value heads.
#[derive(Module, Debug)]
pub struct Attention {
    /// Query projection.
    pub q_proj: Linear,
    /// Key projection.
    pub k_proj: Linear,
    /// Value projection.
    pub v_proj: Linear,
    /// Output projection.
    pub o_proj: Linear,
}

/// The SwiGLU feed-forward block.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Gate projection (through SiLU).
    pub gate_proj: Linear,
    /// Up projection.
    pub up_proj: Linear,
    /// Down projection.
    pub down_proj: Linear,
}

/// One pre-norm decoder layer.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Attention.
    pub self_attn: Attention,
    /// Norm before the feed-forward block.
    pub post_attention_layernorm: RmsNorm,
    /// Feed-forward block.
    pub mlp: Mlp,
}

/// The decoder's parameters (the part LoRA attaches to and optimisers update).
#[derive(Module, Debug)]
pub struct LlamaWeights {
    /// Token embeddings, also the output head (tied).
    pub embed_tokens: Embedding,
    /// Decoder layers.
    pub layers: Vec<DecoderLayer>,
    /// Final norm.
    pub norm: RmsNorm,
    /// LLaRA's hybrid item input, when a hybrid adapter is applied ([`crate::hybrid`]).
    pub projector: Option<Projector>,
}

/// Keys and values of every layer for the tokens seen so far, `[batch, kv_heads, len, head_dim]`.
/// A batch of 1 broadcasts over a larger batch of new tokens (one prompt, many candidates).
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<(Tensor<4>, Tensor<4>)>,
    len: usize,
    /// The next pass is the last over this cache: it reads the cached keys and values and keeps
    /// none of its own ([`Self::last_pass`]).
    last: bool,
}

impl KvCache {
    /// Makes the next pass the last over this cache: it reads what is cached and adds nothing.
    /// A pass over many rows (twenty candidates' answers after one shared prompt) would
    /// otherwise hold every layer's keys and values of every row, the prompt's broadcast to
    /// each, until it ends (about 200 MB for a ranking on SmolLM2), only for them to be dropped.
    pub fn last_pass(&mut self) {
        self.last = true;
    }

    /// An empty cache for one pass over whole sequences, which keeps nothing.
    pub fn single_pass() -> Self {
        Self {
            last: true,
            ..Self::default()
        }
    }

    /// Tokens cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Sequences laid end to end in one row `[1, total, hidden]` instead of padded to the longest in
/// a batch: a prompt followed by its answers (twenty candidates, or a preference pair's chosen
/// and rejected), or answers after a cached prompt. Each token sees what it would see alone (the
/// cache, its own group's prompt, the tokens before it in its own sequence) at the position it
/// would have alone, so the result is the padded batch's without its padding: a ranking's
/// answers are 111 tokens where the padded batch was 200 rows, and a prompt's keys and values
/// are computed once for all its answers, in the same pass (one pass instead of two, which
/// autodiff keeps apart). Several groups can share a row, none seeing another's; two preference
/// pairs per row measured slower than one (docs/benchmarks.md), so the trainers use one.
#[derive(Debug, Clone)]
pub struct Packed {
    /// Each token's position: what precedes it in its group (and the cache) plus its offset.
    positions: Tensor<1, Int>,
    /// `[total, cached + total]`: 0 where a token may attend, -1e9 where not.
    mask: Tensor<2>,
    total: usize,
    /// One past the highest position, which the context must hold.
    reach: usize,
}

/// One group of a [`Packed`] pass: a prompt of `prompt` tokens (possibly none) and the
/// sequences that each continue it.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    /// Prompt tokens, laid first.
    pub prompt: usize,
    /// Each continuation's length, laid after the prompt in order; none empty.
    pub answers: &'a [usize],
}

impl Group<'_> {
    /// Tokens in the group.
    pub fn tokens(&self) -> usize {
        self.prompt + self.answers.iter().sum::<usize>()
    }
}

impl Packed {
    /// Sequences of `lens` tokens (in order, none empty) after a cache of `prefix` tokens.
    pub fn new(prefix: usize, lens: &[usize], device: &Device) -> Self {
        Self::build(
            prefix,
            &[Group {
                prompt: 0,
                answers: lens,
            }],
            device,
        )
    }

    /// `groups` side by side in one pass with nothing cached: no token sees another group's.
    pub fn groups(groups: &[Group], device: &Device) -> Self {
        Self::build(0, groups, device)
    }

    fn build(cached: usize, groups: &[Group], device: &Device) -> Self {
        let total: usize = groups.iter().map(Group::tokens).sum();
        let width = cached + total;
        let mut positions = Vec::with_capacity(total);
        let mut mask = vec![-1e9f32; total * width];
        let mut reach = cached;
        let mut first = cached;
        let mut rows = mask.chunks_exact_mut(width.max(1));
        for g in groups {
            // The prompt is causal; each answer sees the whole prompt and itself up to the token.
            let spans = std::iter::once((0, g.prompt)).chain(g.answers.iter().scan(
                g.prompt,
                |at, &len| {
                    let span = (*at, len);
                    *at += len;
                    Some(span)
                },
            ));
            for (k, (at, len)) in spans.enumerate() {
                for o in 0..len {
                    positions.push((cached + if k == 0 { o } else { g.prompt + o }) as i64);
                    let Some(row) = rows.next() else { break };
                    row[..cached].fill(0.0);
                    if k > 0 {
                        row[first..first + g.prompt].fill(0.0);
                    }
                    row[first + at..=first + at + o].fill(0.0);
                }
                reach = reach.max(cached + if k == 0 { len } else { g.prompt + len });
            }
            first += g.tokens();
        }
        Self {
            positions: Tensor::from_data(TensorData::new(positions, [total]), device),
            mask: Tensor::from_data(TensorData::new(mask, [total, width]), device),
            total,
            reach,
        }
    }

    /// Tokens in all the sequences.
    pub fn total(&self) -> usize {
        self.total
    }
}

/// A loaded decoder: config, weights and RoPE tables on one device.
#[derive(Debug, Clone)]
pub struct Llama {
    /// Hyper-parameters.
    pub config: LlamaConfig,
    /// Parameters.
    pub weights: LlamaWeights,
    cos: Tensor<2>,
    sin: Tensor<2>,
    device: Device,
}

/// `x W`, plus `s (x A) B` where a LoRA adapter is attached, computed factored. Burn's
/// `Linear::forward` reads the weight through its reparameterisation, which materialises
/// `W + s A B` (a `d_in x d_out` matrix per adapted layer and step) and gives autodiff a dense
/// gradient of that size to build before reducing it to the factors; factored, the extra work is
/// two thin matmuls and the factors' gradients come straight out of them.
pub fn project<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let base = matmul_rows(x.clone(), layer.weight.base());
    let out = match layer.weight.adapter() {
        Some(adapter) => {
            let low = matmul_rows(x, adapter.a.val());
            base + matmul_rows(low, adapter.b.val()) * adapter.scale
        }
        None => base,
    };
    match &layer.bias {
        Some(b) => out + b.val().unsqueeze(),
        None => out,
    }
}

/// `x w` for `x` `[..., d_in]` and `w` `[d_in, d_out]`, as one 2-d matmul over the flattened
/// rows. Burn's `linear` lifts `w` to `[1, d_in, d_out]` first, and on Flex that reshape of a
/// transposed view (how GGUF's `[out, in]` weights are held) copies the whole matrix on every
/// call: 12% of a ranking in `perf`. The 2-d matmul hands gemm the strides instead.
fn matmul_rows<const D: usize>(x: Tensor<D>, w: Tensor<2>) -> Tensor<D> {
    let dims = x.dims();
    let d_in = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let mut out = dims;
    out[D - 1] = w.dims()[1];
    x.reshape([rows, d_in]).matmul(w).reshape(out)
}

/// A projection from GGUF's (and Hugging Face's) `[out, in]` row-major values, held as Burn's
/// `[in, out]` with that layout in memory, not as a transposed view of `[out, in]`. gemm computes
/// a row-major product as its transpose, `W^T x^T`, and wants that left operand with unit stride
/// down a column; the view has it across a row, so gemm packed (copied) the whole weight on
/// every call, about a sixth of a ranking in `perf`. Transposed once here, it reads the weight
/// in place.
fn linear(values: &[f32], out: usize, inp: usize, device: &Device) -> Linear {
    // In 32 x 32 tiles, so that reads and writes both stay in cache lines already loaded.
    const TILE: usize = 32;
    let mut t = vec![0f32; values.len()];
    for o0 in (0..out).step_by(TILE) {
        for i0 in (0..inp).step_by(TILE) {
            for o in o0..(o0 + TILE).min(out) {
                for i in i0..(i0 + TILE).min(inp) {
                    t[i * out + o] = values[o * inp + i];
                }
            }
        }
    }
    Linear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(t, [inp, out]), device)),
        bias: None,
    }
}

/// RMS normalisation in the input's own float type. Burn's `RmsNorm` takes the mean square in
/// f32 whatever the input (right for f16), which turned the float64 reference runs
/// (`tests/f64_reference.rs`) into f32 at every norm, so their values moved with the CPU's f32
/// kernels; on f32 tensors this is the same arithmetic as Burn's.
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// Per-channel gain.
    pub gamma: Param<Tensor<1>>,
    /// Added to the mean square.
    pub epsilon: f64,
}

impl RmsNorm {
    /// Normalises the last axis.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let rms = (x.clone().square().mean_dim(D - 1) + self.epsilon).sqrt();
        (x / rms) * self.gamma.val().unsqueeze()
    }
}

fn rms_norm(gamma: Tensor<1>, eps: f64) -> RmsNorm {
    RmsNorm {
        gamma: Param::from_tensor(gamma),
        epsilon: eps,
    }
}

/// Undoes llama.cpp's q/k row permutation for one projection of `n_heads` heads: GGUF row
/// `h*d + 2i + j` is Hugging Face row `h*d + j*d/2 + i`.
fn unpermute_rows(values: &[f32], rows: usize, cols: usize, n_heads: usize) -> Vec<f32> {
    let d = rows / n_heads;
    let mut out = vec![0f32; values.len()];
    for h in 0..n_heads {
        for i in 0..d / 2 {
            for j in 0..2 {
                let src = (h * d + 2 * i + j) * cols;
                let dst = (h * d + j * d / 2 + i) * cols;
                out[dst..dst + cols].copy_from_slice(&values[src..src + cols]);
            }
        }
    }
    out
}

impl Llama {
    /// Loads config and weights from a parsed GGUF onto `device`.
    pub fn from_gguf(g: &Gguf<'_>, device: &Device) -> Result<Self> {
        let config = LlamaConfig::from_gguf(g)?;
        let (d, hd) = (config.hidden_size, config.head_dim());
        let tensor = |name: &str, expect: &[usize]| -> Result<Vec<f32>> {
            let (values, shape) = g.tensor_f32(name)?;
            if shape != expect {
                return Err(Error::Model(format!(
                    "tensor {name:?} has shape {shape:?}, expected {expect:?}"
                )));
            }
            Ok(values)
        };
        let t2 = |v: Vec<f32>, s: [usize; 2]| Tensor::<2>::from_data(TensorData::new(v, s), device);
        let t1 = |v: Vec<f32>| {
            let n = v.len();
            Tensor::<1>::from_data(TensorData::new(v, [n]), device)
        };
        let norm = |name: &str| -> Result<RmsNorm> {
            Ok(rms_norm(t1(tensor(name, &[d])?), config.rms_eps))
        };
        let proj = |name: &str, out: usize, inp: usize| -> Result<Linear> {
            Ok(linear(&tensor(name, &[out, inp])?, out, inp, device))
        };
        let qk = |name: &str, heads: usize| -> Result<Linear> {
            let rows = heads * hd;
            let v = unpermute_rows(&tensor(name, &[rows, d])?, rows, d, heads);
            Ok(linear(&v, rows, d, device))
        };

        let embed = tensor("token_embd.weight", &[config.vocab_size, d])?;
        if g.tensor_info("output.weight").is_ok() {
            return Err(Error::Model(
                "the model has an untied output.weight; recalign supports tied embeddings only \
                 (SmolLM2-style)"
                    .into(),
            ));
        }
        let mut layers = Vec::with_capacity(config.n_layers);
        for i in 0..config.n_layers {
            let p = |s: &str| format!("blk.{i}.{s}.weight");
            let kv = config.n_kv_heads * hd;
            layers.push(DecoderLayer {
                input_layernorm: norm(&p("attn_norm"))?,
                self_attn: Attention {
                    q_proj: qk(&p("attn_q"), config.n_heads)?,
                    k_proj: qk(&p("attn_k"), config.n_kv_heads)?,
                    v_proj: proj(&p("attn_v"), kv, d)?,
                    o_proj: proj(&p("attn_output"), d, d)?,
                },
                post_attention_layernorm: norm(&p("ffn_norm"))?,
                mlp: Mlp {
                    gate_proj: proj(&p("ffn_gate"), config.intermediate_size, d)?,
                    up_proj: proj(&p("ffn_up"), config.intermediate_size, d)?,
                    down_proj: proj(&p("ffn_down"), d, config.intermediate_size)?,
                },
            });
        }
        let weights = LlamaWeights {
            embed_tokens: Embedding {
                weight: Param::from_tensor(t2(embed, [config.vocab_size, d])),
            },
            layers,
            norm: norm("output_norm.weight")?,
            projector: None,
        };
        Ok(Self::new(config, weights, device))
    }

    /// Wraps weights with freshly computed RoPE tables.
    pub fn new(config: LlamaConfig, weights: LlamaWeights, device: &Device) -> Self {
        let hd = config.head_dim();
        let half = hd / 2;
        let n = config.context_length;
        let mut cos = Vec::with_capacity(n * hd);
        let mut sin = Vec::with_capacity(n * hd);
        let inv_freq: Vec<f64> = (0..half)
            .map(|i| config.rope_theta.powf(-(2.0 * i as f64) / hd as f64))
            .collect();
        for pos in 0..n {
            // Hugging Face's layout: frequencies repeated for the two halves of the head.
            for f in inv_freq.iter().chain(&inv_freq) {
                let angle = pos as f64 * f;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [n, hd]), device),
            sin: Tensor::from_data(TensorData::new(sin, [n, hd]), device),
            config,
            weights,
            device: device.clone(),
        }
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Token ids `[batch, len]` as a tensor.
    pub fn tokens(&self, ids: Vec<i64>, batch: usize, len: usize) -> Tensor<2, Int> {
        Tensor::from_data(TensorData::new(ids, [batch, len]), &self.device)
    }

    /// Rotary embedding of `x` `[b, heads, t, hd]` at positions `start..start + t`, or at each
    /// token's own position when packed.
    fn rope(&self, x: Tensor<4>, start: usize, packed: Option<&Packed>) -> Tensor<4> {
        let [_, _, t, hd] = x.dims();
        let half = hd / 2;
        let (cos, sin) = match packed {
            Some(p) => (
                self.cos.clone().select(0, p.positions.clone()),
                self.sin.clone().select(0, p.positions.clone()),
            ),
            None => (
                self.cos.clone().narrow(0, start, t),
                self.sin.clone().narrow(0, start, t),
            ),
        };
        let (cos, sin) = (cos.unsqueeze::<4>(), sin.unsqueeze::<4>());
        let x1 = x.clone().narrow(3, 0, half);
        let x2 = x.clone().narrow(3, half, half);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos + rotated * sin
    }

    /// Runs `tokens` `[batch, len]` after what `cache` holds, appends their keys and values to
    /// `cache`, and returns the final-norm hidden states `[batch, len, hidden]`.
    ///
    /// A cache of batch 1 is broadcast to the batch of `tokens`. Positions continue from the
    /// cache's length; padding must come at the end of a row (causal attention keeps it from
    /// influencing the real tokens before it).
    pub fn forward(&self, tokens: Tensor<2, Int>, cache: &mut KvCache) -> Result<Tensor<3>> {
        let x = self.embed(tokens);
        let x = self.forward_layers(x, 0..self.weights.layers.len(), cache)?;
        Ok(self.final_norm(x))
    }

    /// Token embeddings `[batch, len, hidden]`: the input of layer 0.
    pub fn embed(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.weights.embed_tokens.forward(tokens)
    }

    /// The final norm, applied to the output of the last layer.
    pub fn final_norm(&self, x: Tensor<3>) -> Tensor<3> {
        self.weights.norm.forward(x)
    }

    /// Runs the residual stream `x` `[batch, len, hidden]` (the input of layer `layers.start`)
    /// through `layers` after what `cache` holds for those layers, appends their keys and
    /// values to `cache`, and returns the residual stream after the last of them (no final
    /// norm). `forward` is this over every layer; a split at the first adapted layer lets the
    /// frozen layers below run once and their output be reused ([`crate::lm::FrozenAnswers`]).
    pub fn forward_layers(
        &self,
        x: Tensor<3>,
        layers: std::ops::Range<usize>,
        cache: &mut KvCache,
    ) -> Result<Tensor<3>> {
        self.forward_layers_with(x, layers, cache, None)
    }

    /// [`Self::forward_layers`] for a hybrid prompt: where `layers` include the projector's
    /// layer, the projected item vectors of `slots` are added to the residual stream entering
    /// it ([`Projector::add_to`]). A model without a projector reads the slots as the plain
    /// tokens they hold (text-only).
    pub fn forward_layers_with(
        &self,
        x: Tensor<3>,
        layers: std::ops::Range<usize>,
        cache: &mut KvCache,
        slots: Option<&SlotTensors>,
    ) -> Result<Tensor<3>> {
        self.forward_layers_inner(x, layers, cache, slots, None)
    }

    /// [`Self::forward_layers_with`] for sequences packed end to end after the cached prefix
    /// (`x` `[1, packed.total(), hidden]`). It adds nothing to `cache`: positions after a packed
    /// pass do not continue.
    pub fn forward_layers_packed(
        &self,
        x: Tensor<3>,
        layers: std::ops::Range<usize>,
        cache: &mut KvCache,
        slots: Option<&SlotTensors>,
        packed: &Packed,
    ) -> Result<Tensor<3>> {
        let [b, t, _] = x.dims();
        if b != 1 || t != packed.total || packed.mask.dims()[1] != cache.len + t {
            return Err(Error::Model(format!(
                "a packed pass takes [1, {}] tokens after {} cached, not [{b}, {t}] after {}",
                packed.total,
                packed.mask.dims()[1] - packed.total,
                cache.len
            )));
        }
        cache.last_pass();
        self.forward_layers_inner(x, layers, cache, slots, Some(packed))
    }

    fn forward_layers_inner(
        &self,
        mut x: Tensor<3>,
        layers: std::ops::Range<usize>,
        cache: &mut KvCache,
        slots: Option<&SlotTensors>,
        packed: Option<&Packed>,
    ) -> Result<Tensor<3>> {
        let [b, t, _] = x.dims();
        let start = cache.len;
        let c = &self.config;
        // A packed pass reaches its highest position, not start + t.
        let reach = packed.map_or(start + t, |p| p.reach);
        if reach > c.context_length {
            return Err(Error::PromptTooLong {
                tokens: start,
                needed: reach - start,
                context: c.context_length,
            });
        }
        let Some(blocks) = self.weights.layers.get(layers.clone()) else {
            return Err(Error::Model(format!(
                "layers {layers:?} are outside the model's {}",
                self.weights.layers.len()
            )));
        };
        if !cache.layers.is_empty() && cache.layers.len() != blocks.len() {
            return Err(Error::Model(format!(
                "the key/value cache holds {} layers, not the {} asked for",
                cache.layers.len(),
                blocks.len()
            )));
        }
        let (h, kvh, hd) = (c.n_heads, c.n_kv_heads, c.head_dim());
        let total = start + t;
        let group = h / kvh;
        // Rows are the `group` query heads of one key/value head, each `t` positions long (the
        // layout below). Unpacked, the `t` tokens are one sequence after the cache: query i
        // (absolute position start+i) may see keys 0..=start+i, which is that packing's mask.
        let mask = match packed {
            Some(p) => p.mask.clone(),
            None => Packed::new(start, &[t], &self.device).mask,
        }
        .repeat_dim(0, group)
        .unsqueeze::<4>();
        let scale = (hd as f64).powf(-0.5);

        let mut new_layers = Vec::with_capacity(blocks.len());
        let inject = match (&self.weights.projector, slots) {
            (Some(p), Some(s)) if layers.contains(&p.layer) => Some((p, p.layer - layers.start, s)),
            _ => None,
        };
        for (i, layer) in blocks.iter().enumerate() {
            if let Some((p, at, (place, rows))) = inject
                && at == i
            {
                x = p.add_to(x, place.clone(), rows.clone());
            }
            let a = &layer.self_attn;
            let normed = layer.input_layernorm.forward(x.clone());
            let heads = |y: Tensor<3>, n: usize| y.reshape([b, t, n, hd]).swap_dims(1, 2);
            let q = self.rope(heads(project(&a.q_proj, normed.clone()), h), start, packed);
            let k = self.rope(
                heads(project(&a.k_proj, normed.clone()), kvh),
                start,
                packed,
            );
            let v = heads(project(&a.v_proj, normed), kvh);
            let (k, v) = match cache.layers.get(i) {
                Some((pk, pv)) => {
                    let pb = pk.dims()[0];
                    let (pk, pv) = if pb == b {
                        (pk.clone(), pv.clone())
                    } else {
                        (
                            pk.clone().expand([b, kvh, start, hd]),
                            pv.clone().expand([b, kvh, start, hd]),
                        )
                    };
                    (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2))
                }
                None => (k, v),
            };
            if !cache.last {
                new_layers.push((k.clone(), v.clone()));
            }
            // Grouped-query attention: each key/value head serves `group` query heads. Query
            // head n is kv head n / group, so [b, h, t, hd] is [b, kvh, group * t, hd] as is,
            // and every kv head meets its queries in one matmul, with no copy of K or V per
            // query head.
            // The scale goes on the queries, a head dimension's worth per token, not on the
            // scores, a key's worth (t + cached of them): in training both passes touch it.
            let q = (q * scale).reshape([b, kvh, group * t, hd]);
            let scores = q.matmul(k.swap_dims(2, 3)) + mask.clone();
            let attn = softmax(scores, 3).matmul(v).reshape([b, h, t, hd]);
            let attn = attn.swap_dims(1, 2).reshape([b, t, h * hd]);
            x = x + project(&a.o_proj, attn);

            let normed = layer.post_attention_layernorm.forward(x.clone());
            let m = &layer.mlp;
            let gated = silu(project(&m.gate_proj, normed.clone())) * project(&m.up_proj, normed);
            x = x + project(&m.down_proj, gated);
        }
        if !cache.last {
            cache.layers = new_layers;
            cache.len = total;
        }
        Ok(x)
    }

    /// The index of the lowest layer with a LoRA adapter (the number of layers when none has
    /// one): every layer below it is frozen, so its output depends on the tokens alone.
    pub fn first_adapted_layer(&self) -> usize {
        self.weights
            .layers
            .iter()
            .position(|l| {
                let a = &l.self_attn;
                let m = &l.mlp;
                [
                    &a.q_proj,
                    &a.k_proj,
                    &a.v_proj,
                    &a.o_proj,
                    &m.gate_proj,
                    &m.up_proj,
                    &m.down_proj,
                ]
                .iter()
                .any(|p| p.weight.adapter().is_some())
            })
            .unwrap_or(self.weights.layers.len())
    }

    /// Logits `[rows, vocab]` of hidden states `[rows, hidden]` through the tied embedding.
    pub fn logits(&self, hidden: Tensor<2>) -> Tensor<2> {
        hidden.matmul(self.weights.embed_tokens.weight.val().transpose())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packing's positions, and its mask as one string per token ('1': may attend).
    fn layout(p: &Packed) -> (Vec<i64>, Vec<String>) {
        let positions = p.positions.clone().into_data().convert::<i64>();
        let mask: Vec<f32> = p.mask.clone().into_data().try_to_vec().unwrap();
        let seen = mask
            .chunks(p.mask.dims()[1])
            .map(|row| {
                row.iter()
                    .map(|&m| if m == 0.0 { '1' } else { '.' })
                    .collect()
            })
            .collect();
        (positions.try_to_vec().unwrap(), seen)
    }

    #[test]
    fn a_packed_token_sees_the_prefix_and_its_own_sequence_up_to_itself() {
        let device = Device::flex();
        let p = Packed::new(2, &[2, 1, 3], &device);
        assert_eq!(p.total(), 6);
        let (positions, seen) = layout(&p);
        assert_eq!(positions, vec![2, 3, 2, 2, 3, 4]);
        // Columns: 2 prefix keys, then the 6 packed tokens.
        assert_eq!(
            seen,
            [
                "111.....", "1111....", "11..1...", "11...1..", "11...11.", "11...111"
            ]
        );
    }

    #[test]
    fn a_grouped_token_sees_its_prompt_and_its_own_answer_never_another_group() {
        let device = Device::flex();
        // Group 0: a 2-token prompt, answers of 1 and 2; group 1: a 1-token prompt, answer of 1.
        let p = Packed::groups(
            &[
                Group {
                    prompt: 2,
                    answers: &[1, 2],
                },
                Group {
                    prompt: 1,
                    answers: &[1],
                },
            ],
            &device,
        );
        assert_eq!((p.total(), p.reach), (7, 4));
        let (positions, seen) = layout(&p);
        assert_eq!(positions, vec![0, 1, 2, 2, 3, 0, 1]);
        assert_eq!(
            seen,
            [
                "1......", "11.....", "111....", "11.1...", "11.11..", ".....1.", ".....11"
            ]
        );
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        // llama.cpp: reshape(n_head, 2, d/2, cols).swapaxes(1, 2): HF row (h, j, i) -> (h, i, j).
        let (heads, d, cols) = (2, 4, 1);
        let hf: Vec<f32> = (0..heads * d).map(|r| r as f32).collect();
        let mut gguf = vec![0f32; hf.len()];
        for h in 0..heads {
            for j in 0..2 {
                for i in 0..d / 2 {
                    gguf[h * d + 2 * i + j] = hf[h * d + j * d / 2 + i];
                }
            }
        }
        assert_eq!(unpermute_rows(&gguf, heads * d, cols, heads), hf);
    }
}
