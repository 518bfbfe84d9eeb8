//! LLaRA's hybrid item representation: every title in the LLaRA prompt (history and candidate
//! list) is followed by one slot whose input is the SASRec oracle's vector of that item through
//! a trained projector ([`crate::model::Projector`]). The language model then reads what the
//! collaborative model knows about each item next to its title, which text alone cannot give a
//! 135M model in minutes of training.
//!
//! Choices (docs/alignment.md, "Hybrid item tokens"):
//! - The slot is a real token position (a space token, [`placeholder_id`]) after `- Title`; the
//!   projected vector is *added* to the residual stream entering the adapter's lowest adapted
//!   layer ([`crate::model::Projector::layer`]), not to the input embedding. The frozen layers
//!   below then depend on the tokens alone, so their outputs stay cacheable and backward stops
//!   at the same layer as without a projector; with LoRA on every layer this is LLaRA's input
//!   injection.
//! - The projector's second matrix starts at zero, so a fresh hybrid model scores exactly as
//!   the text-only model with the same prompt: training moves it from text-only to hybrid.
//! - The oracle's item table travels inside the adapter file, frozen, so an adapter is
//!   self-contained and cannot be paired with another oracle's vectors by mistake.

use burn::module::{Param, ParamId};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::data::ItemId;
use crate::data::{Domain, InteractionLog};
use crate::error::{Error, Result};
use crate::lm::LanguageModel;
use crate::model::Projector;
use crate::prompt;
use crate::tokenizer::{TextTokenizer, chatml_user};

/// A projector and its frozen item table, off the device (what an adapter file holds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HybridWeights {
    /// Width of an item vector (the oracle's hidden size).
    pub d_item: usize,
    /// The decoder's hidden size.
    pub hidden: usize,
    /// The layer whose input receives the projected vectors.
    pub layer: usize,
    /// Item vectors `[rows, d_item]`, row `i + 1` for item `i` (row 0: SASRec's padding).
    pub items: Vec<f32>,
    /// `[d_item, hidden]`.
    pub up: Vec<f32>,
    /// `[hidden, hidden]`.
    pub down: Vec<f32>,
}

/// Tensor names in an adapter file (not PEFT's: PEFT cannot hold them, and export says so).
pub const ITEMS_TENSOR: &str = "recalign.hybrid.items";
/// The projector's first matrix.
pub const UP_TENSOR: &str = "recalign.hybrid.up";
/// The projector's second matrix.
pub const DOWN_TENSOR: &str = "recalign.hybrid.down";

impl HybridWeights {
    /// A fresh projector over `items` (`[rows, d_item]`): its first matrix drawn as PEFT draws
    /// LoRA's A (Kaiming-uniform, seeded on the host), its second zero.
    pub fn fresh(
        items: Vec<f32>,
        d_item: usize,
        hidden: usize,
        layer: usize,
        seed: u64,
    ) -> Result<Self> {
        use rand::{Rng, SeedableRng};
        if d_item == 0 || items.is_empty() || !items.len().is_multiple_of(d_item) {
            return Err(Error::Adapter(format!(
                "an item table of {} values is not rows of {d_item}",
                items.len()
            )));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x6879_6272_6964);
        let bound = 1.0 / (d_item as f64).sqrt();
        let up = (0..d_item * hidden)
            .map(|_| rng.random_range(-bound..bound) as f32)
            .collect();
        Ok(Self {
            d_item,
            hidden,
            layer,
            items,
            up,
            down: vec![0.0; hidden * hidden],
        })
    }

    /// Rows of the item table.
    pub fn rows(&self) -> usize {
        self.items.len() / self.d_item.max(1)
    }

    /// Checks the shapes against each other and against a decoder of `hidden` and `layers`.
    pub fn validate(&self, hidden: usize, layers: usize) -> Result<()> {
        self.validate_shapes()?;
        if self.hidden != hidden {
            return Err(Error::Adapter(format!(
                "the projector writes vectors of {}, the model's hidden size is {hidden}",
                self.hidden
            )));
        }
        if self.layer >= layers {
            return Err(Error::Adapter(format!(
                "the projector feeds layer {}, the model has {layers}",
                self.layer
            )));
        }
        Ok(())
    }

    /// Checks the tensors' sizes against the recorded shape.
    pub fn validate_shapes(&self) -> Result<()> {
        if self.d_item == 0
            || !self.items.len().is_multiple_of(self.d_item)
            || self.up.len() != self.d_item * self.hidden
            || self.down.len() != self.hidden * self.hidden
        {
            return Err(Error::Adapter(format!(
                "projector shapes disagree: items {} values in rows of {}, up {} values, down {} \
                 (hidden {})",
                self.items.len(),
                self.d_item,
                self.up.len(),
                self.down.len(),
                self.hidden
            )));
        }
        Ok(())
    }

    /// The projector as a module on `device`; `ids` give its trainable matrices their
    /// parameter ids (a resumed optimiser's), `trainable` marks them for autodiff.
    pub fn projector(&self, device: &Device, ids: [Option<u64>; 2], trainable: bool) -> Projector {
        let t = |v: &[f32], shape: [usize; 2]| {
            Tensor::<2>::from_data(TensorData::new(v.to_vec(), shape), device)
        };
        let param = |value: Tensor<2>, id: Option<u64>| {
            let value = if trainable {
                value.require_grad()
            } else {
                value
            };
            Param::initialized(id.map_or_else(ParamId::new, ParamId::from), value)
        };
        Projector {
            items: Param::from_tensor(t(&self.items, [self.rows(), self.d_item]))
                .set_require_grad(false),
            up: param(t(&self.up, [self.d_item, self.hidden]), ids[0]),
            down: param(t(&self.down, [self.hidden, self.hidden]), ids[1]),
            layer: self.layer,
        }
    }

    /// Reads a projector's current matrices back (async: WebGPU cannot read synchronously).
    pub async fn read(projector: &Projector) -> Result<Self> {
        let [_, d_item] = projector.items.val().dims();
        let [_, hidden] = projector.up.val().dims();
        Ok(Self {
            d_item,
            hidden,
            layer: projector.layer,
            items: crate::lm::read_f32(projector.items.val()).await?,
            up: crate::lm::read_f32(projector.up.val()).await?,
            down: crate::lm::read_f32(projector.down.val()).await?,
        })
    }
}

/// The token a slot holds in the layers below the projector: a lone space, which every
/// byte-level vocabulary has and which carries little meaning of its own.
pub fn placeholder_id(tok: &TextTokenizer) -> Result<u32> {
    match tok.encode(" ")?.as_slice() {
        [id] => Ok(*id),
        other => Err(Error::Tokenizer(format!(
            "a space is {} tokens in this vocabulary, not one",
            other.len()
        ))),
    }
}

pub use crate::model::Slots;

/// A compact document (the compact prompt's header, then one line per title) whose slots are
/// the newlines that end the titles' lines: no extra token, so the text is exactly the
/// text-only document (a fresh projector gives the text-only model's log-probs), and the
/// position that predicts the next title holds the item just read. A ranking prompt is this
/// over the history (its last newline holds the last item) and each candidate is scored as the
/// next line, as in the text-only compact format.
pub fn compact_ids(
    tok: &TextTokenizer,
    domain: Domain,
    items: &[ItemId],
    title: impl Fn(ItemId) -> String,
) -> Result<(Vec<u32>, Slots)> {
    compact_ids_after(tok, &prompt::compact_header(domain), items, title)
}

/// [`compact_ids`] of a compact prompt already written out (a preference pair's `prompt`:
/// its header line, then one title per line), with `items` the titles' catalogue items in
/// order; the line count must match.
pub fn compact_prompt_ids(
    tok: &TextTokenizer,
    text: &str,
    items: &[ItemId],
) -> Result<(Vec<u32>, Slots)> {
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.is_empty() || lines.len() != items.len() + 1 {
        return Err(Error::Tokenizer(format!(
            "a compact prompt of {} lines cannot hold a header and {} item titles",
            lines.len(),
            items.len()
        )));
    }
    let header = lines.remove(0);
    let titles: Vec<String> = lines
        .iter()
        .map(|l| l.strip_suffix('\n').unwrap_or(l).to_string())
        .collect();
    let at = |i: ItemId| items.iter().position(|&x| x == i).unwrap_or(0);
    compact_ids_after(tok, header, items, |i| titles[at(i)].clone())
}

fn compact_ids_after(
    tok: &TextTokenizer,
    header: &str,
    items: &[ItemId],
    title: impl Fn(ItemId) -> String,
) -> Result<(Vec<u32>, Slots)> {
    let mut ids = tok.encode(header)?;
    let mut slots = Slots::default();
    for &item in items {
        ids.extend(prompt::compact_line_ids(tok, &title(item))?);
        slots.positions.push(ids.len() as u32 - 1);
        slots.rows.push(row(item));
    }
    Ok((ids, slots))
}

/// Ranks `candidates` for `history` (titles, as the playground takes them) with a hybrid
/// model: each title is looked up in `log`'s catalogue for its item slot, and a title the
/// catalogue does not hold is an error naming it (a slot cannot be left out without changing
/// what the adapter reads). Compact format as [`compact_ids`]; LLaRA's as [`llara_prompt`]
/// with the playground's template 0.
pub async fn rank(
    lm: &LanguageModel,
    log: &InteractionLog,
    format: prompt::PromptFormat,
    history: &[String],
    candidates: &[String],
    options: crate::lm::ScoreOptions,
) -> Result<crate::lm::Ranking> {
    if candidates.is_empty() {
        return Err(Error::EmptyCandidates);
    }
    let lookup: std::collections::HashMap<&str, ItemId> = log
        .catalogue
        .items()
        .iter()
        .enumerate()
        .map(|(i, item)| (item.title.as_str(), ItemId(i as u32)))
        .collect();
    let item = |t: &String| {
        lookup.get(t.trim()).copied().ok_or_else(|| {
            Error::Tokenizer(format!(
                "{t:?} is not a title of the loaded dataset: a hybrid adapter reads each title's \
                 catalogue item, so pick titles from the dataset (or rank with a text-only \
                 adapter)"
            ))
        })
    };
    let h: Vec<ItemId> = history.iter().map(item).collect::<Result<_>>()?;
    let c: Vec<ItemId> = candidates.iter().map(item).collect::<Result<_>>()?;
    let tok = &lm.tokenizer;
    let title = |i: ItemId| log.catalogue.title(i).to_string();
    let (ids, slots, answers) = match format {
        prompt::PromptFormat::Compact => {
            let (ids, slots) = compact_ids(tok, log.domain, &h, title)?;
            let answers = c
                .iter()
                .map(|&i| prompt::compact_line_ids(tok, &title(i)))
                .collect::<Result<Vec<_>>>()?;
            (ids, slots, answers)
        }
        prompt::PromptFormat::Llara => {
            let (ids, slots) = llara_prompt(lm, log, 0, &h, &c)?;
            (ids, slots, lm.candidate_ids(candidates)?)
        }
    };
    lm.check_fits(ids.len(), answers.iter().map(Vec::len).max().unwrap_or(0))?;
    let sums = lm
        .score_hybrid_with(&[], &ids, &slots, &answers)
        .await?
        .remove(0);
    let scores = lm.to_scores(candidates, &answers, &sums, options);
    Ok(crate::lm::Ranking {
        prompt_tokens: ids.len(),
        ranked: crate::lm::rank_scores(scores),
    })
}

/// The table row of `item`.
pub fn row(item: ItemId) -> u32 {
    item.0 + 1
}

/// LLaRA's prompt (`template` of `domain`) for `history` and `candidates` with a slot after
/// each listed title: ChatML ids and the slots. Each `- Title` line is tokenised as a piece, so
/// a title reads the same in the history, in the list, and (with its leading space dropped) as
/// close as the vocabulary allows to the answer.
pub fn llara_prompt(
    lm: &LanguageModel,
    log: &InteractionLog,
    template: usize,
    history: &[ItemId],
    candidates: &[ItemId],
) -> Result<(Vec<u32>, Slots)> {
    llara_prompt_with(
        &lm.tokenizer,
        log.domain,
        template,
        history,
        candidates,
        |i| log.catalogue.title(i).to_string(),
    )
}

fn llara_prompt_with(
    tok: &TextTokenizer,
    domain: Domain,
    template: usize,
    history: &[ItemId],
    candidates: &[ItemId],
    title: impl Fn(ItemId) -> String,
) -> Result<(Vec<u32>, Slots)> {
    // Each title becomes a marker that no title or template contains; the text between markers
    // is tokenised as it is, each `- Title` on its own, then the slot.
    const MARK: char = '\u{1}';
    let items: Vec<ItemId> = history.iter().chain(candidates).copied().collect();
    let marker = |k: usize| format!("{MARK}{k}{MARK}");
    let h: Vec<String> = (0..history.len()).map(marker).collect();
    let c: Vec<String> = (history.len()..items.len()).map(marker).collect();
    let text = chatml_user(&prompt::request(domain, template, &h, &c));
    let placeholder = placeholder_id(tok)?;
    let mut ids = Vec::new();
    let mut slots = Slots::default();
    let mut pieces = text.split(MARK);
    let mut before = pieces.next().unwrap_or_default().to_string();
    while let (Some(k), Some(after)) = (pieces.next(), pieces.next()) {
        let k: usize = k
            .parse()
            .map_err(|_| Error::Tokenizer("a title contains the marker character U+0001".into()))?;
        let item = *items.get(k).ok_or_else(|| {
            Error::Tokenizer("a title contains the marker character U+0001".into())
        })?;
        let lead = before.strip_suffix("- ").unwrap_or(&before);
        ids.extend(tok.encode(lead)?);
        ids.extend(tok.encode(&format!("- {}", title(item)))?);
        slots.positions.push(ids.len() as u32);
        slots.rows.push(row(item));
        ids.push(placeholder);
        before = after.to_string();
    }
    ids.extend(tok.encode(&before)?);
    Ok((ids, slots))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_title_is_followed_by_its_slot() {
        let lm =
            LanguageModel::from_gguf_bytes(&crate::fixtures::tiny_model_gguf(7), &Device::flex())
                .unwrap();
        let tok = &lm.tokenizer;
        let titles = ["Heat", "Fargo", "Alien", "Casino"];
        let title = |i: ItemId| titles[i.index()].to_string();
        let (ids, slots) = llara_prompt_with(
            tok,
            Domain::Movies,
            0,
            &[ItemId(0), ItemId(1)],
            &[ItemId(2), ItemId(3), ItemId(0)],
            title,
        )
        .unwrap();
        assert_eq!(slots.rows, [1, 2, 3, 4, 1]);
        let space = placeholder_id(tok).unwrap();
        for (k, &p) in slots.positions.iter().enumerate() {
            assert_eq!(ids[p as usize], space);
            // The tokens just before the slot spell the title.
            let want = tok
                .encode(&format!("- {}", titles[slots.rows[k] as usize - 1]))
                .unwrap();
            let start = p as usize - want.len();
            assert_eq!(&ids[start..p as usize], &want[..], "slot {k}");
        }
        // Without the slots, the text is the LLaRA prompt with a space after each title.
        let text = tok.decode(&ids, true).unwrap();
        assert!(text.contains("- Heat \n- Fargo \n"), "{text}");
        assert!(text.starts_with("<|im_start|>user\n"), "{text}");
    }

    #[test]
    fn a_written_compact_prompt_gets_the_slots_of_its_items() {
        let lm =
            LanguageModel::from_gguf_bytes(&crate::fixtures::tiny_model_gguf(7), &Device::flex())
                .unwrap();
        let tok = &lm.tokenizer;
        let titles = ["Heat", "Fargo", "Alien"];
        let items = [ItemId(2), ItemId(0), ItemId(1)];
        let title = |i: ItemId| titles[i.index()].to_string();
        let (ids, slots) = compact_ids(tok, Domain::Movies, &items, title).unwrap();
        // The newlines are the slots, and the text is the text-only document's.
        let text: Vec<String> = items.iter().map(|&i| title(i)).collect();
        assert_eq!(
            ids,
            prompt::compact_ids(tok, Domain::Movies, &text).unwrap()
        );
        let newline = tok.encode("\n").unwrap();
        for &p in &slots.positions {
            assert_eq!(ids[p as usize], *newline.last().unwrap());
        }
        assert_eq!(slots.rows, [3, 1, 2]);
        // A pair's prompt, written out, reads back to the same ids and slots.
        let written = prompt::compact_text(Domain::Movies, &text);
        assert_eq!(
            compact_prompt_ids(tok, &written, &items).unwrap(),
            (ids, slots)
        );
        let err = compact_prompt_ids(tok, &written, &items[..2]).unwrap_err();
        assert!(err.to_string().contains("4 lines"), "{err}");
    }

    #[test]
    fn slots_place_their_rows() {
        let device = Device::flex();
        let slots = Slots {
            positions: vec![1, 3],
            rows: vec![5, 2],
        };
        let (place, rows) = slots.tensors(4, &device).unwrap().unwrap();
        let place: Vec<f32> = place.into_data().try_to_vec().unwrap();
        assert_eq!(place, [0., 0., 1., 0., 0., 0., 0., 1.]);
        let rows: Vec<i64> = rows.into_data().convert::<i64>().try_to_vec().unwrap();
        assert_eq!(rows, [5, 2]);
        assert!(slots.tensors(3, &device).is_err(), "a slot past the prompt");
        assert!(Slots::default().tensors(3, &device).unwrap().is_none());
    }

    #[test]
    fn a_hybrid_adapter_saves_and_loads_and_a_fresh_one_changes_nothing() {
        use crate::train::{Adapter, LoraSettings};
        let lm =
            LanguageModel::from_gguf_bytes(&crate::fixtures::tiny_model_gguf(7), &Device::flex())
                .unwrap();
        let c = &lm.model.config;
        let settings = LoraSettings {
            rank: 2,
            alpha: 4.0,
            top_layers: 1,
            ..LoraSettings::default()
        };
        let mut adapter = Adapter::fresh(&settings, c, 3).unwrap();
        let items: Vec<f32> = (0..5 * 4).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut h = HybridWeights::fresh(items, 4, c.hidden_size, c.n_layers - 1, 3).unwrap();
        adapter.hybrid = Some(h.clone());
        let bytes = adapter.to_safetensors().unwrap();
        assert_eq!(Adapter::from_safetensors(&bytes, None).unwrap(), adapter);
        // Applied to the model: the projector is there, and reads back as saved.
        let weights = crate::train::lora::attach(lm.model.weights.clone(), &settings).unwrap();
        let weights = adapter.apply(weights, &Device::flex()).unwrap();
        let projector = weights.projector.as_ref().expect("projector installed");
        assert_eq!(
            pollster::block_on(HybridWeights::read(projector)).unwrap(),
            h
        );
        // A fresh projector adds zero; a trained one does not (in units of the stream's RMS,
        // so the stream must not be zero).
        let x = Tensor::<3>::ones([1, 3, c.hidden_size], &Device::flex());
        let slots = Slots {
            positions: vec![1],
            rows: vec![2],
        };
        let (place, rows) = slots.tensors(3, &Device::flex()).unwrap().unwrap();
        let sum = |p: &Projector| {
            (p.add_to(x.clone(), place.clone(), rows.clone()) - x.clone())
                .abs()
                .sum()
                .into_scalar::<f32>()
        };
        assert_eq!(sum(projector), 0.0);
        h.down.iter_mut().for_each(|v| *v = 0.01);
        let trained = h.projector(&Device::flex(), [None, None], false);
        assert!(sum(&trained) > 0.0);
        // A wrong shape is refused with the reason.
        h.up.pop();
        assert!(h.validate_shapes().is_err());
    }
}
