//! Hybrid prompts: LLaRA's prompt and the compact document with an item slot after each title
//! the catalogue knows, the slot's position recorded for the projector.

use crate::data::ItemId;
use crate::data::{Domain, InteractionLog};
use crate::error::{Error, Result};
use crate::lm::LanguageModel;
use crate::prompt;
use crate::tokenizer::{TextTokenizer, chatml_user};

use super::*;

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

use crate::model::Slots;

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

pub(super) fn compact_ids_after(
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

/// The compact prompt over titles as typed, each with its table row when it has one: a slot
/// after the line of each title that has, text alone for the others.
pub(crate) fn compact_free_ids(
    tok: &TextTokenizer,
    domain: Domain,
    history: &[(String, Option<u32>)],
) -> Result<(Vec<u32>, Slots)> {
    let mut ids = tok.encode(&prompt::compact_header(domain))?;
    let mut slots = Slots::default();
    for (title, at) in history {
        ids.extend(prompt::compact_line_ids(tok, title)?);
        if let Some(r) = at {
            slots.positions.push(ids.len() as u32 - 1);
            slots.rows.push(*r);
        }
    }
    Ok((ids, slots))
}

/// [`compact_free_ids`] over `history`, rows looked up in `catalogue` (none without one).
pub(crate) fn compact_history_ids(
    tok: &TextTokenizer,
    domain: Domain,
    history: &[String],
    catalogue: Option<&ItemCatalogue>,
) -> Result<(Vec<u32>, Slots)> {
    let lookup = catalogue.map(ItemCatalogue::rows).unwrap_or_default();
    let h: Vec<(String, Option<u32>)> = history
        .iter()
        .map(|t| {
            (
                t.trim().to_string(),
                lookup.get(title_key(t).as_str()).copied(),
            )
        })
        .collect();
    compact_free_ids(tok, domain, &h)
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

pub(crate) fn llara_prompt_with(
    tok: &TextTokenizer,
    domain: Domain,
    template: usize,
    history: &[ItemId],
    candidates: &[ItemId],
    title: impl Fn(ItemId) -> String,
) -> Result<(Vec<u32>, Slots)> {
    let entry = |&i: &ItemId| (title(i), Some(row(i)));
    let h: Vec<_> = history.iter().map(entry).collect();
    let c: Vec<_> = candidates.iter().map(entry).collect();
    llara_prompt_rows(tok, domain, template, &h, &c)
}

/// [`llara_prompt_with`] over (title, table row) entries: an entry without a row is listed as
/// text alone, with no slot.
pub(super) fn llara_prompt_rows(
    tok: &TextTokenizer,
    domain: Domain,
    template: usize,
    history: &[(String, Option<u32>)],
    candidates: &[(String, Option<u32>)],
) -> Result<(Vec<u32>, Slots)> {
    // Each title becomes a marker that no title or template contains.
    let entries: Vec<&(String, Option<u32>)> = history.iter().chain(candidates).collect();
    let marker = |k: usize| format!("{MARK}{k}{MARK}");
    let h: Vec<String> = (0..history.len()).map(marker).collect();
    let c: Vec<String> = (history.len()..entries.len()).map(marker).collect();
    let text = chatml_user(&prompt::request(domain, template, &h, &c));
    marked_ids(tok, &text, &entries)
}

/// Marks title `k` of a prompt's entries in [`marked_ids`].
const MARK: char = '\u{1}';

/// LLaRA's request as a preference pair stores it (`text`: its `- Title` lines are the
/// history's titles, then the candidates', in order) with a slot after each listed title, as
/// [`llara_prompt`] writes it: what a hybrid adapter reads in a LLaRA-format pair.
pub fn llara_request_ids(
    tok: &TextTokenizer,
    text: &str,
    history: &[ItemId],
    candidates: &[ItemId],
) -> Result<(Vec<u32>, Slots)> {
    let items: Vec<ItemId> = history.iter().chain(candidates).copied().collect();
    let mut entries: Vec<(String, Option<u32>)> = Vec::with_capacity(items.len());
    let mut marked = String::with_capacity(text.len());
    let mut listed = 0;
    for line in text.split_inclusive('\n') {
        listed += usize::from(line.starts_with("- "));
        match line.strip_prefix("- ") {
            Some(rest) if entries.len() < items.len() => {
                let (title, end) = match rest.strip_suffix('\n') {
                    Some(t) => (t, "\n"),
                    None => (rest, ""),
                };
                marked.push_str(&format!("- {MARK}{}{MARK}{end}", entries.len()));
                entries.push((title.to_string(), Some(row(items[entries.len()]))));
            }
            _ => marked.push_str(line),
        }
    }
    if listed != items.len() {
        return Err(Error::Tokenizer(format!(
            "a LLaRA prompt listing {listed} titles cannot hold {} history and {} candidate items",
            history.len(),
            candidates.len()
        )));
    }
    let entries: Vec<&(String, Option<u32>)> = entries.iter().collect();
    marked_ids(tok, &chatml_user(&marked), &entries)
}

/// Token ids of a prompt `text` whose titles are marked (`MARK k MARK` for `entries[k]`):
/// the text between marks is tokenised as it is, each `- Title` on its own, then its slot.
fn marked_ids(
    tok: &TextTokenizer,
    text: &str,
    entries: &[&(String, Option<u32>)],
) -> Result<(Vec<u32>, Slots)> {
    let placeholder = placeholder_id(tok)?;
    let mut ids = Vec::new();
    let mut slots = Slots::default();
    let mut pieces = text.split(MARK);
    let mut before = pieces.next().unwrap_or_default().to_string();
    while let (Some(k), Some(after)) = (pieces.next(), pieces.next()) {
        let (title, at) = k
            .parse::<usize>()
            .ok()
            .and_then(|k| entries.get(k))
            .ok_or_else(|| {
                Error::Tokenizer("a title contains the marker character U+0001".into())
            })?;
        let lead = before.strip_suffix("- ").unwrap_or(&before);
        ids.extend(tok.encode(lead)?);
        ids.extend(tok.encode(&format!("- {title}"))?);
        if let Some(r) = at {
            slots.positions.push(ids.len() as u32);
            slots.rows.push(*r);
            ids.push(placeholder);
        }
        before = after.to_string();
    }
    ids.extend(tok.encode(&before)?);
    Ok((ids, slots))
}
