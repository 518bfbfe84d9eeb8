//! The `recalign` binary end to end on the tiny model: JSON ranking, and clear errors (exit code 1,
//! a message naming the problem) for bad model files and bad requests.

use std::path::PathBuf;
use std::process::{Command, Output};

fn recalign(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recalign"))
        .args(args)
        .output()
        .expect("run recalign")
}

fn tiny_model(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("recalign-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    let out = recalign(&[
        "write-fixture",
        "--out",
        path.to_str().expect("UTF-8 temp path"),
    ]);
    assert!(out.status.success());
    path
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn rank_prints_every_candidate_as_json() {
    let model = tiny_model("good.gguf");
    let out = recalign(&[
        "rank",
        "--model",
        model.to_str().unwrap(),
        "--history",
        "Heat; Fargo",
        "--candidates",
        "Babe; Casino; Amélie",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ranked = v["ranked"].as_array().unwrap();
    assert_eq!(ranked.len(), 3);
    assert_eq!(ranked[0]["rank"], 1);
    let p: f64 = ranked
        .iter()
        .map(|r| r["probability"].as_f64().unwrap())
        .sum();
    assert!((p - 1.0).abs() < 1e-5);
}

#[test]
fn a_truncated_model_is_a_clear_error() {
    let model = tiny_model("cut.gguf");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 3]).unwrap();
    let out = recalign(&["chat", "hi", "--model", model.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
}

#[test]
fn a_missing_model_says_how_to_get_one() {
    let out = recalign(&["chat", "hi", "--model", "/nonexistent/model.gguf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("recalign fetch"), "{}", stderr(&out));
}

#[test]
fn an_empty_candidate_list_is_a_clear_error() {
    let model = tiny_model("empty.gguf");
    let out = recalign(&[
        "rank",
        "--model",
        model.to_str().unwrap(),
        "--history",
        "Heat",
        "--candidates",
        " ; ",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("candidate list is empty"),
        "{}",
        stderr(&out)
    );
}
