//! Malformed dataset files: each is a typed [`DataError`] naming the file, line and reason, or a
//! documented skip with a count; never a panic.

use recalign_core::data::formats::{self, DatasetFormat};
use recalign_core::data::split::{SplitConfig, split};
use recalign_core::data::{DataErrorKind, Domain, pairs};

const ITEMS: &[u8] = b"id,title\n1,Heat\n2,Casino\n3,Fargo\n4,Babe\n5,Clue\n6,Ran\n7,Big\n";

fn table(
    inter: &str,
) -> Result<recalign_core::data::InteractionLog, recalign_core::data::DataError> {
    formats::interactions_table(inter.as_bytes(), ITEMS, Domain::Movies)
}

#[test]
fn missing_columns_are_named() {
    let e = table("user,item\nu,1\n").unwrap_err();
    assert_eq!(e.kind, DataErrorKind::MissingColumn("timestamp".into()));
    assert_eq!(e.line, Some(1));
    assert!(
        e.to_string()
            .contains("interactions, line 1: missing column \"timestamp\""),
        "{e}"
    );
    let e = formats::interactions_table(
        b"user,item,timestamp\nu,1,5\n",
        b"id,name_of_thing\n1,x\n",
        Domain::Movies,
    )
    .unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.kind),
        ("items", DataErrorKind::MissingColumn("title".into()))
    );
    // A short row is a missing column on that row.
    let e = table("user,item,timestamp\nu,1,5\nu,2\n").unwrap_err();
    assert_eq!(e.line, Some(3));
}

#[test]
fn non_numeric_fields_are_errors_with_line() {
    let e = table("user,item,timestamp\nu,1,5\nu,2,yesterday\n").unwrap_err();
    assert_eq!(e.line, Some(3));
    assert!(
        matches!(e.kind, DataErrorKind::NotANumber { ref field, ref value } if field == "timestamp" && value == "yesterday")
    );
    let e = table("user,item,timestamp,rating\nu,1,5,great\n").unwrap_err();
    assert!(matches!(e.kind, DataErrorKind::NotANumber { ref field, .. } if field == "rating"));
    // GroupLens ids are integers by definition.
    let e = formats::grouplens(b"7\tabc\t4\t100\n", b"1|Heat (1995)|x\n").unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("u.data", Some(1)));
    assert!(matches!(e.kind, DataErrorKind::NotANumber { ref field, .. } if field == "item id"));
    let e = formats::grouplens(b"7\t1\t4\t100\n", b"x|Heat (1995)|x\n").unwrap_err();
    assert_eq!(e.file, "u.item");
    let e = formats::llara_jsonl(
        br#"{"seq": ["a"], "len_seq": 1, "next": 0}"#,
        b"0\tA\n",
        Domain::Movies,
    )
    .unwrap_err();
    assert!(matches!(e.kind, DataErrorKind::Json(_)));
}

#[test]
fn unknown_items_and_duplicates_are_counted_skips() {
    let log = table("user,item,timestamp\nu,1,5\nu,1,5\nu,99,6\nu,2,7\n").unwrap();
    assert_eq!(
        (
            log.report.rows,
            log.report.duplicate_rows,
            log.report.unknown_items
        ),
        (4, 1, 1)
    );
    assert_eq!(log.interactions.len(), 2);
    // When every row is unknown there is nothing to use: an error that says why.
    let e = table("user,item,timestamp\nu,98,5\nu,99,6\n").unwrap_err();
    assert!(
        matches!(e.kind, DataErrorKind::NoInteractions(ref why) if why.contains("2 name items missing")),
        "{e}"
    );
}

#[test]
fn invalid_utf8_names_the_line() {
    let e = formats::interactions_table(
        b"user,item,timestamp\nu,1,5\n",
        b"id,title\n1,Heat\n2,Ca\xffsino\n",
        Domain::Movies,
    )
    .unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.line, e.kind),
        ("items", Some(3), DataErrorKind::InvalidUtf8)
    );
    let e = formats::interactions_table(
        b"user,item,timestamp\n\xc3\x28,1,5\n",
        ITEMS,
        Domain::Movies,
    )
    .unwrap_err();
    assert_eq!((e.line, e.kind), (Some(2), DataErrorKind::InvalidUtf8));
    // GroupLens' u.item is Latin-1 by design: decoded, not refused.
    let log = formats::grouplens(b"7\t1\t4\t100\n", b"1|Am\xe9lie (2001)|x\n").unwrap();
    assert_eq!(log.catalogue.items()[0].title, "Am\u{e9}lie");
    let e = pairs::read_jsonl(b"{\"prompt\": \"\xff\"}\n").unwrap_err();
    assert_eq!(e.kind, DataErrorKind::InvalidUtf8);
}

#[test]
fn users_with_too_few_positives_are_dropped_and_counted() {
    let mut rows = String::from("user,item,timestamp,rating\n");
    for (k, item) in [1, 2, 3, 4, 5].iter().enumerate() {
        rows.push_str(&format!("long,{item},{k},5\n"));
    }
    for (k, item) in [1, 2, 3].iter().enumerate() {
        rows.push_str(&format!("short,{item},{k},5\n"));
    }
    // Four interactions, but one is rated 2: three positives, too few for a history of 3 + target.
    for (k, (item, r)) in [(1, 5), (2, 2), (3, 5), (4, 5)].iter().enumerate() {
        rows.push_str(&format!("lowrated,{item},{k},{r}\n"));
    }
    let log = table(&rows).unwrap();
    let err = split(
        &log,
        &SplitConfig {
            candidates: 1,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err.kind, DataErrorKind::Setting(_)),
        "1 candidate is refused as a setting"
    );
    let s = split(
        &log,
        &SplitConfig {
            candidates: 2,
            ratios: [1, 0, 0],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.short_users, 2);
    assert_eq!(s.users[0].len(), 1);
    // Nobody long enough: an error, not an empty split.
    let e = split(
        &table("user,item,timestamp\nu,1,1\nu,2,2\n").unwrap(),
        &SplitConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(e.kind, DataErrorKind::NoInteractions(_)), "{e}");
}

#[test]
fn empty_files_are_errors_in_every_format() {
    for format in [
        DatasetFormat::Recbole,
        DatasetFormat::Grouplens,
        DatasetFormat::Table,
        DatasetFormat::Llara,
        DatasetFormat::Sdpo,
    ] {
        let e = formats::load(format, b"", Some(ITEMS), Domain::Movies).unwrap_err();
        assert_eq!(e.kind, DataErrorKind::Empty, "{format:?}: {e}");
        let e = formats::load(format, b"  \n\n", Some(ITEMS), Domain::Movies).unwrap_err();
        assert_eq!(e.kind, DataErrorKind::Empty, "{format:?}: {e}");
    }
    // A header and nothing else is empty too.
    assert_eq!(
        table("user,item,timestamp\n").unwrap_err().kind,
        DataErrorKind::Empty
    );
    assert!(
        formats::load(
            DatasetFormat::Table,
            b"user,item,timestamp\nu,1,5\n",
            None,
            Domain::Movies
        )
        .is_err()
    );
}

#[test]
fn too_small_catalogues_and_bad_s_dpo_rows() {
    let log = table("user,item,timestamp\nu,1,1\nu,2,2\nu,3,3\nu,4,4\n").unwrap();
    let e = split(
        &log,
        &SplitConfig {
            ratios: [1, 0, 0],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(e.kind, DataErrorKind::CatalogueTooSmall { needed: 19, .. }),
        "{e}"
    );
    let json = br#"[{"historyList": "A", "itemList": ["B"], "trueSelection": "C"}]"#;
    let e = formats::sdpo_json(json, Domain::Music).unwrap_err();
    assert!(
        e.to_string()
            .contains("entry 1: trueSelection is not in itemList"),
        "{e}"
    );
    let e = formats::sdpo_json(b"[{\"historyList\": 3}]", Domain::Music).unwrap_err();
    assert!(matches!(e.kind, DataErrorKind::Json(_)));
}
