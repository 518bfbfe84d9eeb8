//! The papers' pre-windowed files as published: LLaRA's `*_data.jsonl` rows with `id2name`, and
//! S-DPO's prompt-ready JSON with its own candidates.

use serde::Deserialize;

use crate::data::split::Example;
use crate::data::{Catalogue, DataError, DataErrorKind, Domain, ItemId, LoadReport};

use super::*;

/// LLaRA's `id2name` file: `id<TAB>title` (`.tsv`) or `id::title` (`.txt`), ids 0-based.
pub fn llara_id2name(bytes: &[u8]) -> Result<Catalogue, DataError> {
    let file = "id2name";
    let text = utf8(file, bytes)?;
    let mut catalogue = Catalogue::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let split = line.split_once('\t').or_else(|| line.split_once("::"));
        let Some((id, title)) = split else {
            return Err(DataError::at(
                file,
                i + 1,
                DataErrorKind::MissingColumn("title".into()),
            ));
        };
        let id: u32 = number(file, i + 1, "id", id)?;
        catalogue.insert(&id.to_string(), title.trim());
    }
    Ok(catalogue)
}

#[derive(Deserialize)]
struct LlaraRow {
    seq: Vec<i64>,
    len_seq: usize,
    next: i64,
}

/// LLaRA's JSONL rows (`{"seq": [...], "len_seq": n, "next": id}`) over an `id2name` catalogue.
///
/// The first `len_seq` entries of `seq` are the history; the rest, and the padding id (one past
/// the largest id) anywhere, is padding (counted). A target or a history entry that is neither
/// in the catalogue nor padding is an error naming the line.
/// LLaRA rows carry no candidate lists: attach them with [`super::split::attach_candidates`].
pub fn llara_jsonl(rows: &[u8], id2name: &[u8], domain: Domain) -> Result<ExampleSet, DataError> {
    let file = "llara rows";
    let text = utf8(file, rows)?;
    let catalogue = llara_id2name(id2name)?;
    // LLaRA pads `seq` with one past the largest id (its catalogue size); its cold-start rows
    // have `len_seq` 1 over padding alone.
    let padding = catalogue
        .items()
        .iter()
        .filter_map(|i| i.key.parse::<i64>().ok())
        .max()
        .map_or(0, |m| m + 1);
    let mut report = LoadReport::default();
    let mut examples = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let row: LlaraRow = serde_json::from_str(line)
            .map_err(|e| DataError::at(file, i + 1, DataErrorKind::Json(e.to_string())))?;
        report.rows += 1;
        let item = |id: i64| catalogue.get(&id.to_string());
        let Some(target) = item(row.next) else {
            return Err(DataError::at(
                file,
                i + 1,
                DataErrorKind::Json(format!("target {} is not in id2name", row.next)),
            ));
        };
        let mut history = Vec::new();
        for (pos, &id) in row.seq.iter().enumerate() {
            match item(id) {
                Some(it) if pos < row.len_seq => history.push(it),
                None if pos < row.len_seq && id != padding => {
                    return Err(DataError::at(
                        file,
                        i + 1,
                        DataErrorKind::Json(format!(
                            "history item {id} is not in id2name (padding is {padding})"
                        )),
                    ));
                }
                _ => report.padding += 1,
            }
        }
        examples.push(Example {
            user: examples.len() as u32,
            history,
            target,
            candidates: vec![],
        });
    }
    Ok(ExampleSet {
        domain,
        catalogue,
        examples,
        report,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SdpoRow {
    history_list: String,
    item_list: Vec<String>,
    true_selection: String,
}

/// S-DPO's prompt-ready JSON: an array of `{"historyList": "A::B", "itemList": [titles],
/// "trueSelection": title}`. Titles are the keys (the file has no ids).
pub fn sdpo_json(bytes: &[u8], domain: Domain) -> Result<ExampleSet, DataError> {
    let file = "s-dpo json";
    let text = utf8(file, bytes)?;
    let rows: Vec<SdpoRow> = serde_json::from_str(text)
        .map_err(|e| DataError::at(file, e.line(), DataErrorKind::Json(e.to_string())))?;
    let mut catalogue = Catalogue::new();
    let mut examples = Vec::new();
    let mut report = LoadReport::default();
    for (n, row) in rows.iter().enumerate() {
        report.rows += 1;
        let mut id = |t: &str| catalogue.insert(t.trim(), t.trim());
        let history = row
            .history_list
            .split("::")
            .filter(|t| !t.trim().is_empty())
            .map(&mut id)
            .collect();
        let candidates: Vec<ItemId> = row.item_list.iter().map(|t| id(t)).collect();
        let target = id(&row.true_selection);
        if !candidates.contains(&target) {
            return Err(DataError::file(
                file,
                DataErrorKind::Json(format!("entry {}: trueSelection is not in itemList", n + 1)),
            ));
        }
        examples.push(Example {
            user: n as u32,
            history,
            target,
            candidates,
        });
    }
    if examples.is_empty() {
        return Err(DataError::file(file, DataErrorKind::Empty));
    }
    Ok(ExampleSet {
        domain,
        catalogue,
        examples,
        report,
    })
}
