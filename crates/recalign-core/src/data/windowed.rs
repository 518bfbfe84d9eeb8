//! Splits from files that arrive already windowed: LLaRA's JSONL rows (with `id2name`) and
//! S-DPO's prompt-ready JSON. The papers publish their windows and (S-DPO) their 20 candidates
//! rather than an interaction log, and a figure comparable with theirs has to be computed on
//! those very rows; so the training file's rows become the training windows and the held-out
//! file's rows the validation examples, and every command that trains or evaluates on a split
//! of a log runs on them unchanged.
//!
//! What a log's split has and windows do not is rebuilt from the rows: each training user's
//! sequence (for sequence SFT and the SASRec oracle) by chaining the sliding windows, and item
//! popularity by counting those sequences, as [`super::split::split`] counts training users'
//! positives. Rows without candidates get seeded ones ([`super::split::attach_candidates`]);
//! rows with candidates keep them, after a check (the target among them, no duplicates, the
//! configured count). Held-out items are matched to the training catalogue by id when the two
//! files share one (LLaRA's `id2name`) and by title otherwise (S-DPO names items by title);
//! an item the training file never names joins the catalogue with popularity 0.
//!
//! Skips, counted in the [`LoadReport`]: training rows with an empty history (LLaRA's
//! cold-start rows, which still start a new sequence).

use std::collections::HashMap;

use super::formats::{Dataset, ExampleSet};
use super::split::{Example, SplitConfig, Splits, attach_candidates};
use super::{DataError, DataErrorKind, InteractionLog, ItemId};

/// The split of any parsed dataset: a log's seeded user split ([`super::split::split`]), or
/// pre-windowed rows as they are with `held_out`'s rows as validation ([`from_windows`]). A
/// held-out file goes only with pre-windowed rows, and must hold such rows itself.
pub fn split_dataset(
    main: Dataset,
    held_out: Option<Dataset>,
    config: &SplitConfig,
) -> Result<(InteractionLog, Splits), DataError> {
    match (main, held_out) {
        (Dataset::Log(log), None) => {
            let splits = super::split::split(&log, config)?;
            Ok((log, splits))
        }
        (Dataset::Log(_), Some(_)) => Err(DataError::setting(
            "a held-out file is for pre-windowed rows (LLaRA, S-DPO); an interaction log is \
             split into held-out users by itself",
        )),
        (Dataset::Examples(_), Some(Dataset::Log(_))) => Err(DataError::setting(
            "the held-out file is an interaction log; it must hold pre-windowed rows (LLaRA \
             .jsonl or S-DPO .json)",
        )),
        (Dataset::Examples(train), Some(Dataset::Examples(held))) => {
            from_windows(train, Some(held), config)
        }
        (Dataset::Examples(train), None) => from_windows(train, None, config),
    }
}

/// The split of a pre-windowed training file and an optional held-out file (its rows are the
/// validation examples; the test split stays empty), with an interaction log that carries the
/// merged catalogue and domain (it has no interactions: the rows are the data).
pub fn from_windows(
    train: ExampleSet,
    held_out: Option<ExampleSet>,
    config: &SplitConfig,
) -> Result<(InteractionLog, Splits), DataError> {
    config.check()?;
    let mut catalogue = train.catalogue;
    let mut report = train.report;
    let mut sequences: Vec<Vec<ItemId>> = Vec::new();
    let mut windows = Vec::new();
    let longest = train
        .examples
        .iter()
        .map(|e| e.history.len())
        .max()
        .unwrap_or(0);
    for e in train.examples {
        let continues = sequences.last().is_some_and(|s| {
            !e.history.is_empty()
                && e.history.len() == s.len().min(longest)
                && s.ends_with(&e.history)
        });
        match sequences.last_mut() {
            Some(s) if continues => s.push(e.target),
            _ => {
                let mut s = e.history.clone();
                s.push(e.target);
                sequences.push(s);
            }
        }
        if e.history.is_empty() {
            report.empty_histories += 1;
            continue;
        }
        windows.push(Example {
            user: (sequences.len() - 1) as u32,
            ..e
        });
    }
    if windows.is_empty() {
        return Err(DataError::file(
            "training rows",
            DataErrorKind::NoInteractions("no row has a history item".into()),
        ));
    }
    let n_sequences = sequences.len();
    let mut validation = Vec::new();
    if let Some(held) = held_out {
        report.rows += held.report.rows;
        report.padding += held.report.padding;
        let ids = remap(&mut catalogue, &held.catalogue);
        for (n, e) in held.examples.into_iter().enumerate() {
            let map = |i: ItemId| ids[i.index()];
            validation.push(Example {
                user: (n_sequences + n) as u32,
                history: e.history.into_iter().map(map).collect(),
                target: map(e.target),
                candidates: e.candidates.into_iter().map(map).collect(),
            });
        }
    }
    let n_items = catalogue.len();
    for (name, examples) in [
        ("training rows", &mut windows),
        ("held-out rows", &mut validation),
    ] {
        let given: Vec<bool> = examples.iter().map(|e| !e.candidates.is_empty()).collect();
        for (n, e) in examples.iter().enumerate().filter(|(n, _)| given[*n]) {
            check_candidates(name, n + 1, e, config.candidates)?;
        }
        if given.iter().all(|&g| !g) {
            attach_candidates(examples, n_items, config.seed, config.candidates)?;
        } else if given.iter().any(|&g| !g) {
            let n = given.iter().position(|&g| !g).unwrap_or(0);
            return Err(DataError::file(
                name,
                DataErrorKind::Json(format!(
                    "entry {} has no candidates while others have theirs; one file gives them all \
                     or none",
                    n + 1
                )),
            ));
        }
    }
    let mut popularity = vec![0u32; n_items];
    for &i in sequences.iter().flatten() {
        popularity[i.index()] += 1;
    }
    let positives = sequences.iter().map(Vec::len).sum();
    let users = (0..n_sequences)
        .map(|k| format!("training sequence {}", k + 1))
        .chain((0..validation.len()).map(|n| format!("held-out row {}", n + 1)))
        .collect();
    let splits = Splits {
        config: config.clone(),
        users: [
            (0..n_sequences as u32).collect(),
            validation.iter().map(|e| e.user).collect(),
            Vec::new(),
        ],
        train: windows,
        validation,
        test: Vec::new(),
        train_sequences: sequences,
        popularity,
        short_users: 0,
        positives,
        repeats: 0,
    };
    let log = InteractionLog {
        domain: train.domain,
        catalogue,
        users,
        interactions: Vec::new(),
        report,
    };
    Ok((log, splits))
}

/// Where each of `other`'s items sits in `catalogue`: the same key with the same title (files
/// that share an `id2name`), else the first item with that title, else a new item.
fn remap(catalogue: &mut super::Catalogue, other: &super::Catalogue) -> Vec<ItemId> {
    let mut by_title: HashMap<String, ItemId> = HashMap::new();
    for (i, item) in catalogue.items().iter().enumerate() {
        by_title
            .entry(item.title.trim().to_lowercase())
            .or_insert(ItemId(i as u32));
    }
    other
        .items()
        .iter()
        .map(|item| {
            if let Some(id) = catalogue.get(&item.key)
                && catalogue.title(id) == item.title
            {
                return id;
            }
            let title = item.title.trim().to_lowercase();
            if let Some(&id) = by_title.get(&title) {
                return id;
            }
            // A key the training catalogue already uses for another title gets a distinct one.
            let key = if catalogue.get(&item.key).is_some() {
                format!("held-out:{}", item.key)
            } else {
                item.key.clone()
            };
            let id = catalogue.insert(&key, &item.title);
            by_title.insert(title, id);
            id
        })
        .collect()
}

fn check_candidates(file: &str, entry: usize, e: &Example, n: usize) -> Result<(), DataError> {
    let fail = |why: String| {
        Err(DataError::file(
            file,
            DataErrorKind::Json(format!("entry {entry}: {why}")),
        ))
    };
    if e.candidates.len() != n {
        return fail(format!(
            "{} candidates, but the protocol ranks {n}",
            e.candidates.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(d) = e.candidates.iter().find(|c| !seen.insert(**c)) {
        return fail(format!("candidate {} is listed twice", d.0));
    }
    if !e.candidates.contains(&e.target) {
        return fail("the target is not among the candidates".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Domain;
    use crate::data::formats::{llara_jsonl, sdpo_json};

    const ID2NAME: &str = "0::A\n1::B\n2::C\n3::D\n4::E\n5::F\n";

    fn rows(lines: &[&str]) -> Vec<u8> {
        lines.join("\n").into_bytes()
    }

    fn config() -> SplitConfig {
        SplitConfig {
            candidates: 3,
            ..SplitConfig::default()
        }
    }

    /// Two users' sliding windows, LLaRA-style (padding id 6, windows of at most 2).
    fn train() -> ExampleSet {
        llara_jsonl(
            &rows(&[
                r#"{"seq":[6,6],"len_seq":1,"next":0}"#,
                r#"{"seq":[0,6],"len_seq":1,"next":1}"#,
                r#"{"seq":[0,1],"len_seq":2,"next":2}"#,
                r#"{"seq":[1,2],"len_seq":2,"next":3}"#,
                r#"{"seq":[6,6],"len_seq":1,"next":3}"#,
                r#"{"seq":[3,6],"len_seq":1,"next":4}"#,
            ]),
            ID2NAME.as_bytes(),
            Domain::Music,
        )
        .unwrap()
    }

    #[test]
    fn windows_chain_into_sequences_and_count_popularity() {
        let (log, s) = from_windows(train(), None, &config()).unwrap();
        assert_eq!(
            s.train_sequences,
            vec![
                vec![ItemId(0), ItemId(1), ItemId(2), ItemId(3)],
                vec![ItemId(3), ItemId(4)]
            ]
        );
        assert_eq!(s.popularity, vec![1, 1, 1, 2, 1, 0]);
        assert_eq!(s.train.len(), 4, "the two cold-start rows are skipped");
        assert_eq!(log.report.empty_histories, 2);
        assert_eq!(
            s.train.iter().map(|e| e.user).collect::<Vec<_>>(),
            [0, 0, 0, 1]
        );
        for e in &s.train {
            assert_eq!(e.candidates.len(), 3);
            assert!(e.candidates.contains(&e.target));
        }
        assert!(s.validation.is_empty() && s.test.is_empty());
    }

    #[test]
    fn held_out_titles_join_the_training_catalogue() {
        let held = sdpo_json(
            br#"[{"historyList":"A::B","itemList":["C","Z","F"],"trueSelection":"C"}]"#,
            Domain::Music,
        )
        .unwrap();
        let (log, s) = from_windows(train(), Some(held), &config()).unwrap();
        let e = &s.validation[0];
        assert_eq!(e.history, vec![ItemId(0), ItemId(1)]);
        assert_eq!(e.target, ItemId(2));
        assert_eq!(log.catalogue.titles(&e.candidates), ["C", "Z", "F"]);
        assert_eq!(log.catalogue.len(), 7, "Z is new");
        assert_eq!(s.popularity[6], 0);
    }

    #[test]
    fn bad_candidate_lists_name_the_entry() {
        let bad = |list: &str| {
            let held = sdpo_json(
                format!(r#"[{{"historyList":"A","itemList":{list},"trueSelection":"C"}}]"#)
                    .as_bytes(),
                Domain::Music,
            )
            .unwrap();
            from_windows(train(), Some(held), &config())
                .unwrap_err()
                .to_string()
        };
        assert!(bad(r#"["C","D"]"#).contains("entry 1: 2 candidates, but the protocol ranks 3"));
        assert!(bad(r#"["C","D","D"]"#).contains("entry 1: candidate 3 is listed twice"));
    }
}
