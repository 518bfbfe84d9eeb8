//! Parsers for every dataset layout the project reads: each takes bytes (the page has no file
//! system) and returns an [`InteractionLog`] or an [`ExampleSet`], or a [`DataError`] naming the
//! file, the line and the reason.
//!
//! Skips, each counted in the [`LoadReport`]: exact duplicate rows (same user, item and
//! timestamp), interactions with items the items file does not list, items with an empty title,
//! and LLaRA's padding entries. Everything else that is malformed is an error.

use std::collections::HashSet;

use super::split::Example;
use super::{
    Catalogue, DataError, DataErrorKind, Domain, Interaction, InteractionLog, ItemId, LoadReport,
    natural_title,
};

mod papers;
mod table;

pub use papers::{llara_id2name, llara_jsonl, sdpo_json};
pub use table::{interactions_table, recbole_atomic};

/// Examples that arrive already windowed (LLaRA, S-DPO), with their catalogue.
#[derive(Clone, Debug)]
pub struct ExampleSet {
    /// Which prompt wording fits.
    pub domain: Domain,
    /// Items with titles.
    pub catalogue: Catalogue,
    /// One per row; LLaRA rows have no candidates until [`super::split::attach_candidates`].
    pub examples: Vec<Example>,
    /// What was skipped.
    pub report: LoadReport,
}

fn utf8<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, DataError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        DataError::at(file, line, DataErrorKind::InvalidUtf8)
    })?;
    if text.trim().is_empty() {
        return Err(DataError::file(file, DataErrorKind::Empty));
    }
    Ok(text)
}

fn short(value: &str) -> String {
    value.chars().take(40).collect()
}

fn number<T: std::str::FromStr>(
    file: &str,
    line: usize,
    field: &str,
    value: &str,
) -> Result<T, DataError> {
    value.trim().parse().map_err(|_| {
        DataError::at(
            file,
            line,
            DataErrorKind::NotANumber {
                field: field.into(),
                value: short(value),
            },
        )
    })
}

/// Timestamps may be written as floats (RecBole's `timestamp:float`); they are whole seconds.
fn timestamp(file: &str, line: usize, field: &str, value: &str) -> Result<i64, DataError> {
    let t: f64 = number(file, line, field, value)?;
    if !t.is_finite() {
        return Err(DataError::at(
            file,
            line,
            DataErrorKind::NotANumber {
                field: field.into(),
                value: short(value),
            },
        ));
    }
    Ok(t as i64)
}

/// Accumulates interactions, interning users and dropping exact duplicates.
struct LogBuilder {
    file: String,
    catalogue: Catalogue,
    users: Vec<String>,
    user_index: std::collections::HashMap<String, u32>,
    interactions: Vec<Interaction>,
    seen: HashSet<(u32, ItemId, i64)>,
    report: LoadReport,
}

impl LogBuilder {
    fn new(file: &str, catalogue: Catalogue, report: LoadReport) -> Self {
        Self {
            file: file.into(),
            catalogue,
            users: Vec::new(),
            user_index: Default::default(),
            interactions: Vec::new(),
            seen: HashSet::new(),
            report,
        }
    }

    fn push(&mut self, user: &str, item: &str, timestamp: i64, rating: Option<f32>) {
        self.report.rows += 1;
        let Some(item) = self.catalogue.get(item) else {
            self.report.unknown_items += 1;
            return;
        };
        let next = self.users.len() as u32;
        let user = *self.user_index.entry(user.to_string()).or_insert_with(|| {
            self.users.push(user.to_string());
            next
        });
        if !self.seen.insert((user, item, timestamp)) {
            self.report.duplicate_rows += 1;
            return;
        }
        self.interactions.push(Interaction {
            user,
            item,
            timestamp,
            rating,
        });
    }

    fn finish(self, domain: Domain) -> Result<InteractionLog, DataError> {
        if self.interactions.is_empty() {
            let why = format!(
                "{} rows read, {} name items missing from the items file",
                self.report.rows, self.report.unknown_items
            );
            return Err(DataError::file(
                &self.file,
                DataErrorKind::NoInteractions(why),
            ));
        }
        Ok(InteractionLog {
            domain,
            catalogue: self.catalogue,
            users: self.users,
            interactions: self.interactions,
            report: self.report,
        })
    }
}

/// GroupLens' original ML-100K layout: `u.data` (user, item, rating, timestamp; tab-separated,
/// no header) and `u.item` (`|`-separated, Latin-1, titles ending in " (YYYY)").
///
/// `u.item` is decoded as UTF-8 when it is valid UTF-8 and as Latin-1 otherwise, which is the
/// encoding GroupLens ships (a documented fallback, not a silent repair).
pub fn grouplens(u_data: &[u8], u_item: &[u8]) -> Result<InteractionLog, DataError> {
    let file = "u.data";
    let text = utf8(file, u_data)?;
    let items_text: String = match std::str::from_utf8(u_item) {
        Ok(s) => s.to_string(),
        Err(_) => u_item.iter().map(|&b| b as char).collect(),
    };
    if items_text.trim().is_empty() {
        return Err(DataError::file("u.item", DataErrorKind::Empty));
    }
    let mut report = LoadReport::default();
    let mut catalogue = Catalogue::new();
    for (i, line) in items_text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let mut fields = line.split('|');
        let (Some(id), Some(title)) = (fields.next(), fields.next()) else {
            return Err(DataError::at(
                "u.item",
                i + 1,
                DataErrorKind::MissingColumn("title".into()),
            ));
        };
        let id: u32 = number("u.item", i + 1, "movie id", id)?;
        let title = strip_year(title.trim());
        if is_placeholder(title) {
            report.untitled_items += 1;
            continue;
        }
        catalogue.insert(&id.to_string(), &natural_title(title));
    }
    let mut log = LogBuilder::new(file, catalogue, report);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line_no = i + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [u, it, r, t] = fields[..] else {
            return Err(DataError::at(
                file,
                line_no,
                DataErrorKind::MissingColumn("user item rating timestamp".into()),
            ));
        };
        let user: u32 = number(file, line_no, "user id", u)?;
        let item: u32 = number(file, line_no, "item id", it)?;
        let rating: f32 = number(file, line_no, "rating", r)?;
        let ts = timestamp(file, line_no, "timestamp", t)?;
        log.push(&user.to_string(), &item.to_string(), ts, Some(rating));
    }
    log.finish(Domain::Movies)
}

/// An empty title or ML-100K's placeholder for its one untitled movie (item 267, spelled
/// "unknown" by GroupLens and "unkonwn" by RecBole): showing it to a model would be noise.
fn is_placeholder(title: &str) -> bool {
    let t = title.trim();
    t.is_empty() || t.eq_ignore_ascii_case("unknown") || t.eq_ignore_ascii_case("unkonwn")
}

/// "Toy Story (1995)" -> "Toy Story".
fn strip_year(title: &str) -> &str {
    let bytes = title.as_bytes();
    let n = bytes.len();
    if n >= 7
        && bytes[n - 1] == b')'
        && bytes[n - 6] == b'('
        && bytes[n - 7] == b' '
        && bytes[n - 5..n - 1].iter().all(u8::is_ascii_digit)
    {
        &title[..n - 7]
    } else {
        title
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ITEMS: &str =
        "item_id:token\tmovie_title:token_seq\n1\tToy Story\n2\tUsual Suspects, The\n3\tHeat\n";

    #[test]
    fn recbole_files_parse_with_typed_headers() {
        let inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\t1\t4\t100\n7\t2\t5\t90\n8\t3\t2\t50\n";
        let log = recbole_atomic(inter.as_bytes(), ITEMS.as_bytes(), Domain::Movies).unwrap();
        assert_eq!(log.interactions.len(), 3);
        assert_eq!(log.users, ["7", "8"]);
        assert_eq!(log.catalogue.title(ItemId(1)), "The Usual Suspects");
        assert_eq!(log.interactions[1].rating, Some(5.0));
    }

    #[test]
    fn csv_with_quotes_and_no_rating() {
        let items = "id,title\n1,\"Crouching Tiger, Hidden Dragon\"\n2,Heat\n";
        let inter = "user,item,timestamp\nu1,1,5\nu1,2,6\n";
        let log = interactions_table(inter.as_bytes(), items.as_bytes(), Domain::Movies).unwrap();
        assert_eq!(
            log.catalogue.title(ItemId(0)),
            "Crouching Tiger, Hidden Dragon"
        );
        assert_eq!(log.interactions[0].rating, None);
    }

    #[test]
    fn skips_are_counted() {
        let inter = "user,item,timestamp\nu,1,5\nu,1,5\nu,9,6\nu,2,7\n";
        let items = "id,title\n1,A\n2,B\n3,\n";
        let log = interactions_table(inter.as_bytes(), items.as_bytes(), Domain::Movies).unwrap();
        assert_eq!(
            log.report,
            LoadReport {
                rows: 4,
                duplicate_rows: 1,
                unknown_items: 1,
                untitled_items: 1,
                padding: 0,
                empty_histories: 0,
            }
        );
    }

    #[test]
    fn grouplens_strips_years_and_reads_latin1() {
        let items = b"1|Toy Story (1995)|x\n2|Am\xe9lie (2001)|x\n";
        let data = b"5\t1\t4\t10\n5\t2\t3\t11\n";
        let log = grouplens(data, items).unwrap();
        assert_eq!(log.catalogue.title(ItemId(0)), "Toy Story");
        assert_eq!(log.catalogue.title(ItemId(1)), "Am\u{e9}lie");
    }

    #[test]
    fn llara_rows_drop_padding() {
        let names = "0\tA\n1\tB\n2\tC\n";
        let rows = "{\"seq\": [0, 1, 3, 3], \"len_seq\": 2, \"next\": 2}\n";
        let set = llara_jsonl(rows.as_bytes(), names.as_bytes(), Domain::Movies).unwrap();
        assert_eq!(set.examples[0].history, [ItemId(0), ItemId(1)]);
        assert_eq!(set.examples[0].target, ItemId(2));
        assert_eq!(set.report.padding, 2);
        let unknown = "{\"seq\": [0, 1], \"len_seq\": 2, \"next\": 2}\n{\"seq\": [0, 7], \"len_seq\": 2, \"next\": 2}\n";
        let err = llara_jsonl(unknown.as_bytes(), names.as_bytes(), Domain::Movies).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(
            err.to_string()
                .contains("history item 7 is not in id2name (padding is 3)")
        );
    }

    #[test]
    fn sdpo_rows_keep_their_candidates() {
        let json = r#"[{"historyList": "A::B", "itemList": ["C", "D"], "trueSelection": "D"}]"#;
        let set = sdpo_json(json.as_bytes(), Domain::Music).unwrap();
        let e = &set.examples[0];
        assert_eq!(set.catalogue.titles(&e.history), ["A", "B"]);
        assert_eq!(set.catalogue.title(e.target), "D");
        assert_eq!(e.candidates.len(), 2);
    }
}

/// The file layouts [`load`] reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetFormat {
    /// RecBole atomic files: `.inter` + `.item`.
    Recbole,
    /// GroupLens ML-100K: `u.data` + `u.item`.
    Grouplens,
    /// Generic CSV/TSV interactions + items tables.
    Table,
    /// LLaRA JSONL rows + `id2name`.
    Llara,
    /// S-DPO prompt-ready JSON (no second file).
    Sdpo,
}

impl DatasetFormat {
    /// Guesses the layout from the main file's name.
    pub fn guess(file_name: &str) -> Self {
        let name = file_name
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(file_name)
            .to_lowercase();
        if name.ends_with(".inter") {
            Self::Recbole
        } else if name == "u.data" {
            Self::Grouplens
        } else if name.ends_with(".jsonl") {
            Self::Llara
        } else if name.ends_with(".json") {
            Self::Sdpo
        } else {
            Self::Table
        }
    }

    /// Whether the layout has a second file (items or id2name).
    pub fn needs_items(self) -> bool {
        !matches!(self, Self::Sdpo)
    }
}

/// A parsed dataset: an interaction log to split, or examples that come already windowed.
#[derive(Clone, Debug)]
pub enum Dataset {
    /// Raw interactions (RecBole, GroupLens, tables).
    Log(InteractionLog),
    /// Pre-windowed examples (LLaRA, S-DPO).
    Examples(ExampleSet),
}

/// Parses `main` (interactions or rows) and `items` (items table or id2name) in `format`.
pub fn load(
    format: DatasetFormat,
    main: &[u8],
    items: Option<&[u8]>,
    domain: Domain,
) -> Result<Dataset, DataError> {
    let items = || {
        items.ok_or_else(|| {
            DataError::file(
                "items",
                DataErrorKind::MissingColumn("an items file is required for this format".into()),
            )
        })
    };
    Ok(match format {
        DatasetFormat::Recbole => Dataset::Log(recbole_atomic(main, items()?, domain)?),
        DatasetFormat::Grouplens => Dataset::Log(grouplens(main, items()?)?),
        DatasetFormat::Table => Dataset::Log(interactions_table(main, items()?, domain)?),
        DatasetFormat::Llara => Dataset::Examples(llara_jsonl(main, items()?, domain)?),
        DatasetFormat::Sdpo => Dataset::Examples(sdpo_json(main, domain)?),
    })
}
