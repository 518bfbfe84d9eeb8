//! Interaction logs, splits, candidate sets and preference pairs: everything that turns a
//! dataset file into the examples every recommender and every loss trains on (method.md §1, §4).
//!
//! - [`formats`]: parsers for RecBole atomic files, GroupLens `u.data`/`u.item`, a generic
//!   CSV/TSV, LLaRA JSONL splits, S-DPO JSON and TRL preference JSONL.
//! - [`split`]: positive filter, chronological sort, the seeded 8:1:1 user split, sliding
//!   windows and seeded 20-item candidate sets.
//! - [`windowed`]: the same splits from pre-windowed files (LLaRA, S-DPO): their rows, their
//!   candidates, sequences and popularity rebuilt from the training rows.
//! - [`stats`]: counts and distributions of a split.
//! - [`pairs`]: rejected-item strategies, their mixture and the oracle's smoothing factor.
//!
//! Parsers take bytes (the page has no file system) and never panic: a malformed input is a
//! [`DataError`] naming the file, the line and what was wrong; rows the protocol deliberately
//! drops are counted in a [`LoadReport`] instead.

pub mod formats;
pub mod pairs;
pub mod split;
pub mod stats;
pub mod windowed;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Dense index of an item in a [`Catalogue`] (0-based, contiguous).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemId(pub u32);

impl ItemId {
    /// The index as `usize`, for slices.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One catalogue entry: the dataset's own id for it and the title the prompts show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The id as written in the dataset files (`"242"`, `"Morcheeba"`...).
    pub key: String,
    /// Human-readable title.
    pub title: String,
}

/// The item universe of a dataset, indexed densely.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Catalogue {
    items: Vec<Item>,
    #[serde(skip)]
    by_key: HashMap<String, ItemId>,
}

impl Catalogue {
    /// An empty catalogue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an item, or returns the existing id if `key` is already present (the first title wins).
    pub fn insert(&mut self, key: &str, title: &str) -> ItemId {
        if let Some(&id) = self.by_key.get(key) {
            return id;
        }
        let id = ItemId(self.items.len() as u32);
        self.items.push(Item {
            key: key.to_string(),
            title: title.to_string(),
        });
        self.by_key.insert(key.to_string(), id);
        id
    }

    /// The item with dataset id `key`.
    pub fn get(&self, key: &str) -> Option<ItemId> {
        self.by_key.get(key).copied()
    }

    /// The entry for `id` (None when out of range).
    pub fn item(&self, id: ItemId) -> Option<&Item> {
        self.items.get(id.index())
    }

    /// The title of `id`, or `""` when out of range (ids come from this catalogue, so only a bug
    /// could get there; an empty title is a visible, non-fatal symptom).
    pub fn title(&self, id: ItemId) -> &str {
        self.items.get(id.index()).map_or("", |i| i.title.as_str())
    }

    /// Titles of several items.
    pub fn titles(&self, ids: &[ItemId]) -> Vec<String> {
        ids.iter().map(|&i| self.title(i).to_string()).collect()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// All entries in id order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Rebuilds the key index after deserialisation.
    pub fn reindex(&mut self) {
        self.by_key = self
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| (item.key.clone(), ItemId(i as u32)))
            .collect();
    }
}

/// The kind of items, which picks the prompt wording.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    /// Films (MovieLens).
    #[default]
    Movies,
    /// Artists or tracks (Last.fm).
    Music,
    /// Video games (Steam).
    Games,
    /// Books.
    Books,
}

impl Domain {
    /// All domains, in display order.
    pub const ALL: [Domain; 4] = [Domain::Movies, Domain::Music, Domain::Games, Domain::Books];

    /// Lower-case name, as in the CLI and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Domain::Movies => "movies",
            Domain::Music => "music",
            Domain::Games => "games",
            Domain::Books => "books",
        }
    }
}

/// One user-item event.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// Dense user index into [`InteractionLog::users`].
    pub user: u32,
    /// The item.
    pub item: ItemId,
    /// Seconds (or any monotone clock); ties are broken by item id.
    pub timestamp: i64,
    /// Explicit rating, if the dataset has one.
    pub rating: Option<f32>,
}

/// A parsed interaction dataset: the catalogue, the users and every kept event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InteractionLog {
    /// Which prompt wording fits.
    pub domain: Domain,
    /// Items with titles.
    pub catalogue: Catalogue,
    /// Dataset user ids, indexed by [`Interaction::user`].
    pub users: Vec<String>,
    /// Events in file order.
    pub interactions: Vec<Interaction>,
    /// What the parser dropped, with counts.
    pub report: LoadReport,
}

/// Rows a parser deliberately skipped (each a documented rule, not an error), with counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Data rows read (header and blank lines excluded).
    pub rows: usize,
    /// Rows that repeat an earlier (user, item, timestamp) exactly.
    pub duplicate_rows: usize,
    /// Interactions naming an item absent from the items file.
    pub unknown_items: usize,
    /// Items-file rows whose title is empty (the item is kept out of the catalogue).
    pub untitled_items: usize,
    /// Padding entries (LLaRA's `seq` pads with the catalogue size).
    pub padding: usize,
    /// Pre-windowed training rows with no history item (LLaRA's cold-start rows), skipped.
    #[serde(default)]
    pub empty_histories: usize,
}

/// What was wrong with an input file, specifically enough to fix it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{file}{}: {kind}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct DataError {
    /// The file (or role, "interactions"/"items") the problem is in.
    pub file: String,
    /// 1-based line, when the problem is on one line.
    pub line: Option<usize>,
    /// What is wrong.
    pub kind: DataErrorKind,
}

/// The reasons an input is refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DataErrorKind {
    /// Nothing to read.
    #[error("the file is empty")]
    Empty,
    /// A required column is absent from the header (or a row is too short).
    #[error("missing column {0:?}")]
    MissingColumn(String),
    /// A field that must be a number is not.
    #[error("field {field:?} is not a number: {value:?}")]
    NotANumber {
        /// Column name.
        field: String,
        /// The text found (truncated to 40 characters).
        value: String,
    },
    /// Text that is not valid UTF-8.
    #[error("invalid UTF-8 text")]
    InvalidUtf8,
    /// A JSON document or line that does not parse or lacks a field.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// Every interaction was dropped (unknown items, no positives...).
    #[error("no usable interactions: {0}")]
    NoInteractions(String),
    /// The catalogue cannot provide the requested number of distinct negatives.
    #[error(
        "the catalogue has {available} items outside the history, fewer than the {needed} candidates needed"
    )]
    CatalogueTooSmall {
        /// Items that could be sampled.
        available: usize,
        /// Items needed.
        needed: usize,
    },
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Setting(String),
}

impl DataError {
    /// An error in `file` at `line` (1-based).
    pub fn at(file: &str, line: usize, kind: DataErrorKind) -> Self {
        Self {
            file: file.to_string(),
            line: Some(line),
            kind,
        }
    }

    /// An error about `file` as a whole.
    pub fn file(file: &str, kind: DataErrorKind) -> Self {
        Self {
            file: file.to_string(),
            line: None,
            kind,
        }
    }

    /// An invalid setting (not tied to a file).
    pub fn setting(msg: impl Into<String>) -> Self {
        Self::file("settings", DataErrorKind::Setting(msg.into()))
    }
}

/// Puts a trailing English article back in front: "Usual Suspects, The" -> "The Usual Suspects"
/// (MovieLens files sort titles that way; prompts read better, and LLaRA does the same).
pub fn natural_title(title: &str) -> String {
    let title = title.trim();
    for article in [
        "The", "A", "An", "Les", "La", "Le", "L'", "Il", "Das", "Der", "Die", "El",
    ] {
        let suffix = format!(", {article}");
        if let Some(stem) = title.strip_suffix(&suffix) {
            let sep = if article.ends_with('\'') { "" } else { " " };
            return format!("{article}{sep}{stem}");
        }
    }
    title.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn articles_move_to_the_front() {
        assert_eq!(natural_title("Usual Suspects, The"), "The Usual Suspects");
        assert_eq!(natural_title("Few Good Men, A "), "A Few Good Men");
        assert_eq!(natural_title("Toy Story"), "Toy Story");
        assert_eq!(natural_title("Thing, Theory"), "Thing, Theory");
    }

    #[test]
    fn catalogue_keeps_the_first_title() {
        let mut c = Catalogue::new();
        let a = c.insert("1", "A");
        assert_eq!(c.insert("1", "B"), a);
        assert_eq!(c.title(a), "A");
        assert_eq!(c.get("2"), None);
        assert_eq!(c.title(ItemId(9)), "");
    }
}
