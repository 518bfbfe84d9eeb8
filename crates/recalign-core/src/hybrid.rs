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
//! - The oracle's item table travels inside the adapter file, frozen, with the catalogue its
//!   rows stand for ([`ItemCatalogue`]), so an adapter is self-contained: it ranks titles without
//!   its dataset loaded and cannot be paired with another oracle's vectors by mistake.
//! - A title the catalogue does not hold (one a user typed) is read as text alone, without a
//!   slot: in the compact prompt that is exactly the text-only reading of that line, so a hybrid
//!   adapter still ranks free text, with the item knowledge where it has it.

use std::sync::Arc;

use burn::module::{Param, ParamId};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::data::ItemId;
use crate::data::{Domain, InteractionLog};
use crate::error::{Error, Result};
use crate::lm::LanguageModel;
use crate::model::Projector;
use crate::prompt;

mod prompts;

pub use crate::model::Slots;
pub(crate) use prompts::compact_history_ids;
use prompts::{compact_free_ids, llara_prompt_rows, row};
pub use prompts::{compact_ids, compact_prompt_ids, llara_prompt, llara_request_ids};

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
    /// The items the table's rows stand for (`None` in files written before it was saved).
    pub catalogue: Option<Arc<ItemCatalogue>>,
}

/// The catalogue an item table was built over: row `i + 1` is the item whose title has key
/// `keys[i]` ([`title_key`]), and `domain` words the prompt. Keys, not titles: an adapter file
/// then holds no part of its dataset (MovieLens' terms forbid redistributing it), yet can tell a
/// catalogue title from one typed by hand.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemCatalogue {
    /// The kind of items.
    pub domain: Domain,
    /// Title keys in item order.
    pub keys: Vec<String>,
}

/// A title's key: FNV-1a (64-bit) of its trimmed UTF-8, in hex. Collisions among a catalogue's
/// few thousand titles have odds of about 1 in 10^12.
pub fn title_key(title: &str) -> String {
    let hash = title.trim().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

impl ItemCatalogue {
    /// The catalogue of `log`.
    pub fn of(log: &InteractionLog) -> Self {
        Self::from_titles(
            log.domain,
            log.catalogue.items().iter().map(|i| i.title.as_str()),
        )
    }

    /// The catalogue of `titles` in item order.
    pub fn from_titles<'a>(domain: Domain, titles: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            domain,
            keys: titles.into_iter().map(title_key).collect(),
        }
    }

    /// Items in it.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it has no item.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `title` is one of its items.
    pub fn contains(&self, title: &str) -> bool {
        self.keys.contains(&title_key(title))
    }

    /// Table rows by title key (the last item of a repeated title wins).
    fn rows(&self) -> std::collections::HashMap<&str, u32> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), row(ItemId(i as u32))))
            .collect()
    }
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
            catalogue: None,
        })
    }

    /// The same weights, recording that the table's rows are `catalogue`'s items (checked
    /// against the table's size).
    pub fn with_catalogue(mut self, catalogue: ItemCatalogue) -> Result<Self> {
        if catalogue.len() + 1 != self.rows() {
            return Err(Error::Adapter(format!(
                "an item table of {} rows cannot stand for {} items (row 0 is padding)",
                self.rows(),
                catalogue.len()
            )));
        }
        self.catalogue = Some(Arc::new(catalogue));
        Ok(self)
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
            catalogue: self.catalogue.clone(),
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
            catalogue: projector.catalogue.clone(),
        })
    }
}

/// Ranks `candidates` for `history` (titles, as the playground takes them) with a hybrid
/// model: each title found in `catalogue` gets its item slot, and one it does not hold (typed
/// by a user) is read as text alone. Compact format as [`compact_ids`]; LLaRA's as
/// [`llara_prompt`] with the playground's template 0.
pub async fn rank(
    lm: &LanguageModel,
    catalogue: &ItemCatalogue,
    format: prompt::PromptFormat,
    history: &[String],
    candidates: &[String],
    options: crate::lm::ScoreOptions,
) -> Result<crate::lm::Ranking> {
    if candidates.is_empty() {
        return Err(Error::EmptyCandidates);
    }
    let lookup = catalogue.rows();
    let entry = |t: &String| {
        let at = lookup.get(title_key(t).as_str()).copied();
        (t.trim().to_string(), at)
    };
    let h: Vec<(String, Option<u32>)> = history.iter().map(entry).collect();
    let tok = &lm.tokenizer;
    let (ids, slots, answers) = match format {
        prompt::PromptFormat::Compact => {
            let (ids, slots) = compact_free_ids(tok, catalogue.domain, &h)?;
            let answers = candidates
                .iter()
                .map(|t| prompt::compact_line_ids(tok, t.trim()))
                .collect::<Result<Vec<_>>>()?;
            (ids, slots, answers)
        }
        prompt::PromptFormat::Llara => {
            let c: Vec<(String, Option<u32>)> = candidates.iter().map(entry).collect();
            let (ids, slots) = llara_prompt_rows(tok, catalogue.domain, 0, &h, &c)?;
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

/// The catalogue a hybrid model's item table stands for, when its adapter recorded it.
pub fn model_catalogue(lm: &LanguageModel) -> Option<Arc<ItemCatalogue>> {
    lm.model
        .weights
        .projector
        .as_ref()
        .and_then(|p| p.catalogue.clone())
}

/// Checks that a hybrid model's item table stands for `log`'s catalogue (an adapter trained on
/// one dataset would read another's item ids as the wrong items); models without a recorded
/// catalogue pass.
pub fn check_catalogue(lm: &LanguageModel, log: &InteractionLog) -> Result<()> {
    let Some(c) = model_catalogue(lm) else {
        return Ok(());
    };
    let here = ItemCatalogue::of(log);
    if *c == here {
        return Ok(());
    }
    Err(Error::Adapter(format!(
        "this hybrid adapter's item table stands for another catalogue ({} {:?} items; the \
         loaded dataset has {} {:?} items): use it with the dataset it was trained on",
        c.len(),
        c.domain,
        here.len(),
        log.domain
    )))
}

#[cfg(test)]
mod tests {
    use super::prompts::{llara_prompt_with, placeholder_id};
    use super::*;

    fn tiny() -> LanguageModel {
        LanguageModel::from_gguf_bytes(&crate::fixtures::tiny_model_gguf(7), &Device::flex())
            .unwrap()
    }

    #[test]
    fn every_listed_title_is_followed_by_its_slot() {
        let lm = tiny();
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
    fn a_written_llara_request_reads_as_the_prompt_built_from_its_items() {
        let lm = tiny();
        let tok = &lm.tokenizer;
        let titles = ["Heat", "Fargo", "Alien", "Casino"];
        let title = |i: ItemId| titles[i.index()].to_string();
        let (history, candidates) = ([ItemId(0), ItemId(1)], [ItemId(2), ItemId(3), ItemId(0)]);
        let names = |ids: &[ItemId]| ids.iter().map(|&i| title(i)).collect::<Vec<_>>();
        for template in 0..prompt::TEMPLATE_COUNT {
            let text = prompt::request(
                Domain::Movies,
                template,
                &names(&history),
                &names(&candidates),
            );
            let built =
                llara_prompt_with(tok, Domain::Movies, template, &history, &candidates, title)
                    .unwrap();
            let read = llara_request_ids(tok, &text, &history, &candidates).unwrap();
            assert_eq!(read, built, "template {template}");
        }
        // A pair whose items do not match its listed titles is refused.
        let text = prompt::request(Domain::Movies, 0, &names(&history), &names(&candidates));
        assert!(llara_request_ids(tok, &text, &history, &candidates[..2]).is_err());
    }

    #[test]
    fn a_written_compact_prompt_gets_the_slots_of_its_items() {
        let lm = tiny();
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

    /// The tiny model, r-2 LoRA settings on its top layer, a fresh adapter of them and a fresh
    /// projector over a 4-item table (d_item 4) feeding the top layer.
    fn tiny_hybrid() -> (
        LanguageModel,
        crate::train::LoraSettings,
        crate::train::Adapter,
        HybridWeights,
    ) {
        use crate::train::{Adapter, LoraSettings};
        let lm = tiny();
        let c = &lm.model.config;
        let settings = LoraSettings {
            rank: 2,
            alpha: 4.0,
            top_layers: 1,
            ..LoraSettings::default()
        };
        let adapter = Adapter::fresh(&settings, c, 3).unwrap();
        let items: Vec<f32> = (0..5 * 4).map(|i| (i as f32 * 0.37).sin()).collect();
        let h = HybridWeights::fresh(items, 4, c.hidden_size, c.n_layers - 1, 3).unwrap();
        (lm, settings, adapter, h)
    }

    #[test]
    fn a_hybrid_adapter_saves_and_loads_and_a_fresh_one_changes_nothing() {
        use crate::train::Adapter;
        let (lm, settings, mut adapter, h) = tiny_hybrid();
        let c = &lm.model.config;
        // The catalogue must name one item per table row past the padding row.
        let titles = |n: usize| {
            let t: Vec<String> = (0..n).map(|i| format!("Film {i}")).collect();
            ItemCatalogue::from_titles(Domain::Movies, t.iter().map(String::as_str))
        };
        assert!(h.clone().with_catalogue(titles(5)).is_err());
        let mut h = h.with_catalogue(titles(4)).unwrap();
        adapter.hybrid = Some(h.clone());
        let bytes = adapter.to_safetensors().unwrap();
        assert_eq!(Adapter::from_safetensors(&bytes, None).unwrap(), adapter);
        // f16 factors keep the catalogue too.
        let half = Adapter::from_safetensors(
            &adapter
                .to_safetensors_as(crate::train::lora::FactorType::F16)
                .unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(half.hybrid.as_ref().unwrap().catalogue, h.catalogue);
        // Int8 projector and table: each value within half a step of its row's scale, the
        // catalogue and the f16 LoRA factors as in the f16 file.
        let int8 = adapter
            .to_safetensors_as(crate::train::lora::FactorType::F16Int8Hybrid)
            .unwrap();
        let q = Adapter::from_safetensors(&int8, None).unwrap();
        let qh = q.hybrid.as_ref().unwrap();
        assert_eq!(qh.catalogue, h.catalogue);
        for (got, want, cols) in [
            (&qh.items, &h.items, h.d_item),
            (&qh.up, &h.up, h.hidden),
            (&qh.down, &h.down, h.hidden),
        ] {
            assert_eq!(got.len(), want.len());
            for (g, w) in got.chunks(cols).zip(want.chunks(cols)) {
                let step = w.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                for (a, b) in g.iter().zip(w) {
                    assert!((a - b).abs() <= step * 0.5 + 1e-7, "{a} vs {b}");
                }
            }
        }
        assert_eq!(q.layers, half.layers);
        assert!(int8.len() < adapter.to_safetensors().unwrap().len());
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

    /// The playground's ranking: a title of the adapter's catalogue gets its item, a typed one
    /// is read as text alone (with no known title at all, exactly the text-only ranking).
    #[test]
    fn free_titles_rank_as_text_and_catalogue_titles_with_their_items() {
        use crate::prompt::PromptFormat;
        let (lm, _, mut adapter, mut h) = tiny_hybrid();
        h.down
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = ((i as f32) * 0.11).cos() * 0.05);
        let catalogue =
            ItemCatalogue::from_titles(Domain::Movies, ["Heat", "Fargo", "Alien", "Casino"]);
        // Keys, not titles, and a typed title is found with its spaces trimmed.
        assert!(!catalogue.keys.iter().any(|k| k.contains("Heat")));
        assert!(catalogue.contains(" Fargo ") && !catalogue.contains("Ran"));
        adapter.hybrid = Some(h.with_catalogue(catalogue.clone()).unwrap());
        let hybrid = crate::train::with_adapter(&lm, &adapter).unwrap();
        assert_eq!(model_catalogue(&hybrid).as_deref(), Some(&catalogue));
        // Its dataset passes the catalogue check; another with as many items does not.
        let log = |titles: &[&str]| {
            let mut c = crate::data::Catalogue::new();
            for (i, t) in titles.iter().enumerate() {
                c.insert(&i.to_string(), t);
            }
            InteractionLog {
                domain: Domain::Movies,
                catalogue: c,
                users: vec![],
                interactions: vec![],
                report: Default::default(),
            }
        };
        check_catalogue(&hybrid, &log(&["Heat", "Fargo", "Alien", "Casino"])).unwrap();
        let other = check_catalogue(&hybrid, &log(&["Heat", "Fargo", "Ran", "Casino"]));
        assert!(
            other
                .unwrap_err()
                .to_string()
                .contains("stands for another catalogue")
        );
        let titles = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let candidates = titles(&["Alien", "Casino", "Ran"]);
        let options = crate::lm::ScoreOptions::default();
        let scores = |r: crate::lm::Ranking| {
            let mut r = r.ranked;
            r.sort_by(|a, b| a.candidate.title.cmp(&b.candidate.title));
            r.iter().map(|s| s.candidate.score).collect::<Vec<_>>()
        };
        for format in [PromptFormat::Compact, PromptFormat::Llara] {
            let known = pollster::block_on(rank(
                &hybrid,
                &catalogue,
                format,
                &titles(&["Heat", "Fargo"]),
                &candidates,
                options,
            ))
            .unwrap();
            let unknown = ItemCatalogue::from_titles(Domain::Movies, []);
            let free = pollster::block_on(rank(
                &hybrid,
                &unknown,
                format,
                &titles(&["Heat", "Fargo"]),
                &candidates,
                options,
            ))
            .unwrap();
            let text = pollster::block_on(lm.rank_as(
                format,
                Domain::Movies,
                &titles(&["Heat", "Fargo"]),
                &candidates,
                options,
            ))
            .unwrap();
            let (k, f, t) = (scores(known), scores(free), scores(text));
            assert!(
                k.iter().zip(&f).any(|(a, b)| (a - b).abs() > 1e-3),
                "{format:?}: the items change the scores: {k:?} vs {f:?}"
            );
            if format == PromptFormat::Compact {
                // Same prompt tokens and a fresh LoRA: the text-only model's scores.
                for (a, b) in f.iter().zip(&t) {
                    assert!((a - b).abs() < 1e-4, "{f:?} vs {t:?}");
                }
            }
        }
    }
}
