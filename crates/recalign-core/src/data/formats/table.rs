//! Delimited tables: RecBole's atomic files (`.inter`, `.item`) and any CSV/TSV with a header
//! naming its user, item, rating, time and title columns (several spellings of each accepted).

use std::borrow::Cow;

use crate::data::{
    Catalogue, DataError, DataErrorKind, Domain, InteractionLog, LoadReport, natural_title,
};

use super::*;

/// A header-led table (CSV, TSV or a RecBole atomic file), with columns found by name.
struct Table<'a> {
    file: &'a str,
    header: Vec<String>,
    rows: Vec<(usize, Vec<Cow<'a, str>>)>,
}

impl<'a> Table<'a> {
    /// Splits `text` into rows. Tab-separated files are split verbatim (RecBole titles may hold
    /// quotes); comma-separated ones follow RFC 4180 quoting via the `csv` crate.
    fn parse(file: &'a str, text: &'a str) -> Result<Self, DataError> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((_, header_line)) = lines.next() else {
            return Err(DataError::file(file, DataErrorKind::Empty));
        };
        let tab = header_line.contains('\t');
        let header: Vec<String> = if tab {
            header_line.split('\t').map(column_name).collect()
        } else {
            split_csv_line(file, 1, header_line)?
                .iter()
                .map(|c| column_name(c))
                .collect()
        };
        let mut rows = Vec::new();
        for (i, line) in lines {
            let fields: Vec<Cow<'a, str>> = if tab {
                line.split('\t').map(Cow::Borrowed).collect()
            } else if line.contains('"') {
                split_csv_line(file, i + 1, line)?
                    .into_iter()
                    .map(Cow::Owned)
                    .collect()
            } else {
                line.split(',').map(Cow::Borrowed).collect()
            };
            rows.push((i + 1, fields));
        }
        if rows.is_empty() {
            return Err(DataError::file(file, DataErrorKind::Empty));
        }
        Ok(Self { file, header, rows })
    }

    fn column(&self, aliases: &[&str]) -> Option<usize> {
        aliases
            .iter()
            .find_map(|a| self.header.iter().position(|h| h == a))
    }

    fn require(&self, aliases: &[&str]) -> Result<usize, DataError> {
        self.column(aliases).ok_or_else(|| {
            DataError::at(
                self.file,
                1,
                DataErrorKind::MissingColumn(aliases[0].to_string()),
            )
        })
    }

    fn field<'b>(
        &self,
        line: usize,
        fields: &'b [Cow<'a, str>],
        col: usize,
    ) -> Result<&'b str, DataError> {
        fields.get(col).map(|f| f.as_ref()).ok_or_else(|| {
            DataError::at(
                self.file,
                line,
                DataErrorKind::MissingColumn(self.header[col].clone()),
            )
        })
    }
}

/// `"user_id:token"` -> `"user_id"`, lower-cased and trimmed (RecBole annotates types).
fn column_name(raw: &str) -> String {
    let raw = raw.trim().trim_start_matches('\u{feff}');
    raw.split(':').next().unwrap_or(raw).trim().to_lowercase()
}

fn split_csv_line(file: &str, line: usize, text: &str) -> Result<Vec<String>, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    match reader.records().next() {
        Some(Ok(record)) => Ok(record.iter().map(String::from).collect()),
        Some(Err(e)) => Err(DataError::at(
            file,
            line,
            DataErrorKind::Json(e.to_string()),
        )),
        None => Ok(Vec::new()),
    }
}

const USER: &[&str] = &["user_id", "user", "userid", "uid"];

const ITEM: &[&str] = &[
    "item_id",
    "item",
    "itemid",
    "iid",
    "movie_id",
    "artist_id",
    "id",
];

const TIME: &[&str] = &["timestamp", "time", "ts", "datetime"];

const RATING: &[&str] = &["rating", "score", "weight"];

const TITLE: &[&str] = &[
    "title",
    "movie_title",
    "name",
    "item_name",
    "artist_name",
    "app_name",
];

/// Reads an items table (`id`, `title` columns; extra columns ignored) into a catalogue.
fn items_table(file: &str, bytes: &[u8], report: &mut LoadReport) -> Result<Catalogue, DataError> {
    let text = utf8(file, bytes)?;
    let table = Table::parse(file, text)?;
    let id = table.require(ITEM)?;
    let title = table.require(TITLE)?;
    let mut catalogue = Catalogue::new();
    for (line, fields) in &table.rows {
        let key = table.field(*line, fields, id)?.trim();
        let name = natural_title(table.field(*line, fields, title)?);
        if key.is_empty() || is_placeholder(&name) {
            report.untitled_items += 1;
            continue;
        }
        catalogue.insert(key, &name);
    }
    if catalogue.is_empty() {
        return Err(DataError::file(file, DataErrorKind::Empty));
    }
    Ok(catalogue)
}

/// A generic interactions table plus an items table, comma- or tab-separated, with a header.
///
/// Interactions need `user`, `item` and `timestamp` columns (RecBole's `user_id:token` style
/// names work too) and may have `rating`; items need `id` (or `item_id`) and `title`. Ids are
/// opaque strings; timestamps must be numbers. This one reader also reads RecBole's atomic
/// `.inter`/`.item` files, which are such tables.
pub fn interactions_table(
    interactions: &[u8],
    items: &[u8],
    domain: Domain,
) -> Result<InteractionLog, DataError> {
    let mut report = LoadReport::default();
    let catalogue = items_table("items", items, &mut report)?;
    let file = "interactions";
    let text = utf8(file, interactions)?;
    let table = Table::parse(file, text)?;
    let user = table.require(USER)?;
    let item = table.require(ITEM)?;
    let time = table.require(TIME)?;
    let rating = table.column(RATING);
    let mut log = LogBuilder::new(file, catalogue, report);
    for (line, fields) in &table.rows {
        let u = table.field(*line, fields, user)?.trim();
        let i = table.field(*line, fields, item)?.trim();
        let t = timestamp(
            file,
            *line,
            &table.header[time],
            table.field(*line, fields, time)?,
        )?;
        let r = match rating {
            Some(col) => Some(number::<f32>(
                file,
                *line,
                &table.header[col],
                table.field(*line, fields, col)?,
            )?),
            None => None,
        };
        log.push(u, i, t, r);
    }
    log.finish(domain)
}

/// RecBole atomic files (`ml-100k.inter`, `ml-100k.item` as shipped in the `recbole` wheel).
pub fn recbole_atomic(
    inter: &[u8],
    item: &[u8],
    domain: Domain,
) -> Result<InteractionLog, DataError> {
    interactions_table(inter, item, domain)
}
