//! The `recalign` binary end to end on the tiny model: JSON ranking, and clear errors (exit code 1,
//! a message naming the problem) for bad model files and bad requests.

// Helpers outside #[test] functions are not covered by clippy's test exemption.
#![allow(clippy::unwrap_used)]

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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
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

/// A small synthetic dataset (50 titled items, 30 users with 12 positives each) as CSV files.
fn synthetic_dataset(dir_name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("recalign-cli-{dir_name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let items: String = std::iter::once("id,title\n".to_string())
        .chain((0..50).map(|i| format!("{i},Film number {i}\n")))
        .collect();
    let mut rows = String::from("user,item,timestamp,rating\n");
    for u in 0..30 {
        for k in 0..12 {
            rows.push_str(&format!("user{u},{},{k},4\n", (u * 7 + k * 3) % 50));
        }
    }
    let (inter, item) = (dir.join("ratings.csv"), dir.join("items.csv"));
    std::fs::write(&inter, rows).expect("write ratings");
    std::fs::write(&item, items).expect("write items");
    (inter, item)
}

#[test]
fn data_oracle_and_pairs_end_to_end_on_csv() {
    let (inter, items) = synthetic_dataset("e2e");
    let (inter, items) = (inter.to_str().unwrap(), items.to_str().unwrap());
    let out = recalign(&[
        "data",
        "stats",
        "--interactions",
        inter,
        "--items",
        items,
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        stats["stats"]["users_per_split"],
        serde_json::json!([24, 3, 3])
    );
    assert_eq!(stats["stats"]["examples"][0], 24 * 9);

    let oracle = std::env::temp_dir().join(format!(
        "recalign-cli-oracle-{}.safetensors",
        std::process::id()
    ));
    let oracle = oracle.to_str().unwrap();
    let out = recalign(&[
        "oracle",
        "train",
        "--interactions",
        inter,
        "--items",
        items,
        "--epochs",
        "2",
        "--out",
        oracle,
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["splits"][1]["scorers"][0]["scorer"], "sasrec");

    let pairs =
        std::env::temp_dir().join(format!("recalign-cli-pairs-{}.jsonl", std::process::id()));
    let out = recalign(&[
        "pairs",
        "build",
        "--interactions",
        inter,
        "--items",
        items,
        "--oracle",
        oracle,
        "--strategies",
        "popular,semantic-similar",
        "--negatives",
        "2",
        "--max-examples",
        "10",
        "--out",
        pairs.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&pairs).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows.len(),
        20,
        "one pair per strategy for each of 10 prompts"
    );
    for r in &rows {
        let eps = r["eps"].as_f64().unwrap();
        assert!((0.0..=0.4).contains(&eps));
        assert_eq!(r["more_rejected"].as_array().unwrap().len(), 1);
        assert_ne!(r["chosen"], r["rejected"]);
    }
    let out = recalign(&["pairs", "check", pairs.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("pairs: 20"));

    // `--train-seed` draws other pairs from the same split; the split's seed is its default.
    let build = |seed: &str, out: &std::path::Path| {
        let mut args = vec![
            "pairs",
            "build",
            "--interactions",
            inter,
            "--items",
            items,
            "--no-smoothing",
            "--max-examples",
            "10",
            "--out",
            out.to_str().unwrap(),
        ];
        if !seed.is_empty() {
            args.extend(["--train-seed", seed]);
        }
        let o = recalign(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read_to_string(out).unwrap()
    };
    let p = |n: &str| {
        std::env::temp_dir().join(format!("recalign-cli-{n}-{}.jsonl", std::process::id()))
    };
    let default = build("", &p("seed-default"));
    assert_eq!(build("2024", &p("seed-2024")), default);
    assert_ne!(build("7", &p("seed-7")), default);
}

#[test]
fn malformed_datasets_exit_1_with_the_line() {
    let dir = std::env::temp_dir().join(format!("recalign-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (inter, items) = (dir.join("r.csv"), dir.join("i.csv"));
    std::fs::write(&inter, "user,item,timestamp\nu,1,5\nu,2,soon\n").unwrap();
    std::fs::write(&items, "id,title\n1,A\n2,B\n").unwrap();
    let out = recalign(&[
        "data",
        "stats",
        "--interactions",
        inter.to_str().unwrap(),
        "--items",
        items.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("interactions, line 3: field \"timestamp\" is not a number: \"soon\""),
        "{}",
        stderr(&out)
    );
    let out = recalign(&[
        "data",
        "stats",
        "--interactions",
        dir.join("missing.inter").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
    let out = recalign(&["pairs", "check", inter.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
}

/// Pairs over made-up titles for the tiny model.
fn tiny_pairs(dir: &std::path::Path) -> PathBuf {
    let titles = ["Alien", "Heat", "Fargo", "Casino", "Babe"];
    let mut lines = String::new();
    for i in 0..5 {
        lines.push_str(
            &serde_json::json!({
                "prompt": format!("liked {}; pick one of {}", titles[i], titles.join(", ")),
                "chosen": titles[(i + 1) % 5],
                "rejected": titles[(i + 2) % 5],
                "eps": 0.1,
            })
            .to_string(),
        );
        lines.push('\n');
    }
    let path = dir.join("pairs.jsonl");
    std::fs::write(&path, lines).unwrap();
    path
}

fn adapter_values(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| {
            st.tensor(n)
                .unwrap()
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_killed_training_run_resumes_to_the_same_adapter() {
    let model = tiny_model("train.gguf");
    let dir = model.parent().unwrap().join("resume");
    std::fs::create_dir_all(&dir).unwrap();
    let pairs = tiny_pairs(&dir);
    let args = |out: &std::path::Path| -> Vec<String> {
        [
            "train",
            "pref",
            "--model",
            model.to_str().unwrap(),
            "--pairs",
            pairs.to_str().unwrap(),
            "--type",
            "rosepo",
            "--steps",
            "300",
            "--batch",
            "2",
            "--lr",
            "1e-3",
            "--checkpoint-every",
            "20",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let straight = dir.join("straight.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_recalign"))
        .args(args(&straight))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // The same run, killed (SIGKILL) once a checkpoint exists, then resumed from it.
    let killed = dir.join("killed.safetensors");
    let ckpt = killed.with_extension("ckpt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_recalign"))
        .args(args(&killed))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !ckpt.exists() {
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !killed.exists(),
        "killed before the end, so no final adapter"
    );
    let mut resume = args(&killed);
    resume.extend(["--resume".to_string(), ckpt.to_str().unwrap().to_string()]);
    let out = Command::new(env!("CARGO_BIN_EXE_recalign"))
        .args(&resume)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resuming from step"),
        "{}",
        stderr(&out)
    );
    let (a, b) = (adapter_values(&straight), adapter_values(&killed));
    assert_eq!(a.len(), b.len());
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    // Same process kind, same kernels, same values restored from the checkpoint: the resumed
    // run is exact (0 measured); a lost optimiser state would move factors by about the
    // learning rate.
    assert!(d <= 1e-6, "resumed adapter differs by {d}");
}

#[test]
fn loss_eval_prints_losses_and_refuses_bad_batches() {
    use std::io::Write;
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_recalign"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let batch = r#"{"policy_chosen": [-3.0], "policy_rejected": [[-5.0]],
                    "ref_chosen": [-4.0], "ref_rejected": [[-5.5]]}"#;
    let out = run(&["loss", "eval", "--type", "dpo", "--beta", "1"], batch);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // h = (-3 + 4) - (-5 + 5.5) = 0.5; DPO = -ln sigmoid(0.5).
    let expected = (1.0 + (-0.5f64).exp()).ln();
    assert!((v["mean"].as_f64().unwrap() - expected).abs() < 1e-12);
    assert_eq!(v["losses"].as_array().unwrap().len(), 1);
    let out = run(&["loss", "eval", "--type", "rosepo"], batch);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("eps"), "{}", stderr(&out));
    let out = run(&["loss", "eval", "--type", "dpo"], "not json");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a loss batch"),
        "{}",
        stderr(&out)
    );
}

/// Sequence SFT with one-target examples mixed in, then the base model and the adapter
/// evaluated together on the held-out users (validation then test) with the paired test
/// against the first; a bad `--against-model`, share or weight is a clear error.
#[test]
fn mixed_sft_then_several_models_on_the_held_out_users() {
    let model = tiny_model("mixed.gguf");
    let model = model.to_str().unwrap();
    let (inter, items) = synthetic_dataset("mixed");
    let (inter, items) = (inter.to_str().unwrap(), items.to_str().unwrap());
    let adapter = std::env::temp_dir().join(format!(
        "recalign-cli-mixed-{}.safetensors",
        std::process::id()
    ));
    let adapter = adapter.to_str().unwrap();
    let data = ["--interactions", inter, "--items", items, "--model", model];
    let sft = |share: &str, weight: &str| {
        let mut args = vec![
            "train",
            "sft",
            "--recipe",
            "sequence",
            "--chunk",
            "6",
            "--context",
            "2",
            "--one-target-share",
            share,
            "--one-target-weight",
            weight,
            "--steps",
            "2",
            "--batch",
            "2",
            "--out",
            adapter,
        ];
        args.extend(data);
        recalign(&args)
    };
    let out = sft("0.25", "4");
    assert!(out.status.success(), "{}", stderr(&out));
    // 24 training users of 12 positives in documents of 6 with 2 of context: 3 each.
    assert!(
        stderr(&out).contains("72 documents and 24 LLaRA one-target examples"),
        "{}",
        stderr(&out)
    );
    let out = sft("1", "1");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("one-target share must be in [0, 1)"));
    let out = sft("0.25", "0");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("one-target weight must be a positive number, not 0"));

    let eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--split",
            "held-out",
            "--prompt",
            "compact",
            "--json",
            "--adapter",
            "none",
            "--adapter",
            adapter,
        ];
        args.extend(extra);
        args.extend(data);
        recalign(&args)
    };
    let out = eval(&["--against-model", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reports: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 2, "one line per model");
    for r in &reports {
        assert_eq!(r["split"], "held-out");
        assert_eq!(
            r["examples"], 6,
            "3 validation and 3 test users, one window each"
        );
        assert_eq!(r["report"]["hits_at_1"].as_array().unwrap().len(), 6);
        assert_eq!(
            r["parts"],
            serde_json::json!([
                {"split": "validation", "examples": 3},
                {"split": "test", "examples": 3}
            ])
        );
    }
    assert!(reports[0]["adapter"].is_null());
    assert!(reports[0]["paired"]["vs_against"].is_null());
    assert!(reports[1]["paired"]["vs_against"]["p_value"].is_number());
    let out = eval(&["--against-model", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--against-model 3: there are 2 models"));

    // A second phase on LLaRA one-target prompts goes on from the first adapter and keeps
    // ranking in its compact format (eval refuses adapters of two formats in one pass).
    let second = adapter.replace(".safetensors", "-phase2.safetensors");
    let mut args = vec![
        "train",
        "sft",
        "--init",
        adapter,
        "--recipe",
        "one-target",
        "--max-examples",
        "8",
        "--steps",
        "2",
        "--batch",
        "2",
        "--lr",
        "1e-2",
        "--out",
        &second,
    ];
    args.extend(data);
    let out = recalign(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(
        adapter_values(std::path::Path::new(adapter)),
        adapter_values(std::path::Path::new(&second)),
        "the second phase trained the adapter"
    );
    let mut args = vec![
        "eval",
        "--split",
        "validation",
        "--json",
        "--generate",
        "3",
        "--adapter",
        adapter,
        "--adapter",
        &second,
    ];
    args.extend(data);
    let out = recalign(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["prompt"], "compact", "{line}");
        let g = &r["report"]["generation"];
        assert_eq!(
            g["answers"].as_array().unwrap().len(),
            3,
            "one answer per example"
        );
        assert!(g["valid_ratio"].as_f64().unwrap() <= 1.0);
    }
}

/// The shared data folder next to the checkout (`../shared/data`), where the papers' files are.
fn shared_data() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    [here, PathBuf::from("/work/shared/data")]
        .into_iter()
        .find(|p| p.join("llara-lastfm/train_data.jsonl").exists())
        .expect("the papers' files in ../shared/data (see shared/data/README.md)")
}

/// LLaRA's LastFM rows and S-DPO's LastFM validation entries, sliced but otherwise as published:
/// SFT, pairs, preference training and evaluation on them end to end; and bad rows named.
#[test]
fn the_papers_lastfm_files_train_and_evaluate_as_they_are() {
    let shared = shared_data();
    let dir = std::env::temp_dir().join(format!("recalign-cli-lastfm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rows = std::fs::read_to_string(shared.join("llara-lastfm/train_data.jsonl")).unwrap();
    let slice: String = rows.lines().take(120).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("train_data.jsonl"), slice).unwrap();
    std::fs::copy(
        shared.join("llara-lastfm/id2name.txt"),
        dir.join("id2name.txt"),
    )
    .unwrap();
    let val: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(shared.join("sdpo-lastfm/lastfm-val.json")).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("val.json"),
        serde_json::to_string(&val[..4]).unwrap(),
    )
    .unwrap();
    let model = tiny_model("lastfm.gguf");
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let (train, held, model) = (
        p("train_data.jsonl"),
        p("val.json"),
        model.to_str().unwrap().to_string(),
    );
    let data = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend(
            [
                "--interactions",
                &train,
                "--domain",
                "music",
                "--model",
                &model,
            ]
            .map(String::from),
        );
        v
    };
    let run = |args: Vec<String>| recalign(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let out = run(data(&[
        "train",
        "sft",
        "--recipe",
        "sequence",
        "--chunk",
        "6",
        "--context",
        "2",
        "--steps",
        "2",
        "--batch",
        "2",
        "--out",
        &p("sft.safetensors"),
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut args = data(&[
        "eval",
        "--split",
        "validation",
        "--json",
        "--adapter",
        &p("sft.safetensors"),
    ]);
    args.extend(["--held-out".to_string(), held.clone()]);
    let out = run(args);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        r["examples"], 4,
        "S-DPO's entries with their own candidates"
    );
    assert!(r["report"]["baselines"]["popularity"]["ranking"]["hr"][0].is_number());

    let out = run(data(&[
        "pairs",
        "build",
        "--prompt",
        "compact",
        "--no-smoothing",
        "--max-examples",
        "6",
        "--out",
        &p("pairs.jsonl"),
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = recalign(&[
        "train",
        "pref",
        "--type",
        "dpo",
        "--pairs",
        &p("pairs.jsonl"),
        "--init",
        &p("sft.safetensors"),
        "--steps",
        "1",
        "--batch",
        "2",
        "--model",
        &model,
        "--out",
        &p("dpo.safetensors"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The default split is test, which pre-windowed files do not have.
    let out = run(data(&["eval"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the test split has no examples"),
        "{}",
        stderr(&out)
    );
    // A held-out entry with 19 candidates, and a row naming an id id2name lacks.
    let mut short = val[0].clone();
    short["itemList"]
        .as_array_mut()
        .unwrap()
        .retain(|t| *t != val[0]["itemList"][0] || *t == val[0]["trueSelection"]);
    let short_list = short["itemList"].as_array().unwrap().len();
    std::fs::write(
        dir.join("short.json"),
        serde_json::to_string(&[short]).unwrap(),
    )
    .unwrap();
    let mut args = data(&["eval", "--split", "validation"]);
    args.extend(["--held-out".to_string(), p("short.json")]);
    let out = run(args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "entry 1: {short_list} candidates, but the protocol ranks 20"
        )),
        "{}",
        stderr(&out)
    );
    let mut bad = std::fs::read_to_string(&train).unwrap();
    bad.push_str("{\"seq\": [1, 99999, 4606, 4606, 4606, 4606, 4606, 4606, 4606, 4606], \"len_seq\": 2, \"next\": 3}\n");
    std::fs::write(&train, bad).unwrap();
    let out = recalign(&["data", "stats", "--interactions", &train]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("line 121: invalid JSON: history item 99999 is not in id2name"),
        "{}",
        stderr(&out)
    );
}

/// LLaRA's hybrid item slots from the command line: an oracle, `train sft --hybrid`, the adapter
/// evaluated (it reads its slots), ranking titles with `rank` (it carries its catalogue),
/// exported with the projector beside PEFT's file, and preference training on compact pairs
/// from it, whose adapter still carries the catalogue.
#[test]
fn a_hybrid_adapter_trains_evaluates_exports_and_goes_on_to_preference() {
    let model = tiny_model("hybrid.gguf");
    let model = model.to_str().unwrap();
    let (inter, items) = synthetic_dataset("hybrid");
    let (inter, items) = (inter.to_str().unwrap(), items.to_str().unwrap());
    let tmp =
        |n: &str| std::env::temp_dir().join(format!("recalign-cli-hy-{n}-{}", std::process::id()));
    let (oracle, adapter, pairs, pref, peft) = (
        tmp("oracle.safetensors"),
        tmp("sft.safetensors"),
        tmp("pairs.jsonl"),
        tmp("pref.safetensors"),
        tmp("peft"),
    );
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let (oracle_s, adapter_s, pairs_s, pref_s, peft_s) =
        (s(&oracle), s(&adapter), s(&pairs), s(&pref), s(&peft));
    let data = ["--interactions", inter, "--items", items];
    let run = |args: &[&str], with_model: bool| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(data);
        if with_model {
            all.extend(["--model", model]);
        }
        recalign(&all)
    };
    let out = run(
        &["oracle", "train", "--epochs", "2", "--out", &oracle_s],
        false,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let sft = [
        "train",
        "sft",
        "--chunk",
        "6",
        "--context",
        "2",
        "--steps",
        "2",
        "--batch",
        "2",
        "--hybrid",
        &oracle_s,
        "--out",
        &adapter_s,
    ];
    let out = run(&sft, true);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("hybrid: item vectors of"),
        "{}",
        stderr(&out)
    );
    // --init and --hybrid together are refused, naming both.
    let mut both = sft.to_vec();
    both.extend(["--init", &adapter_s]);
    let out = run(&both, true);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--hybrid") && stderr(&out).contains("--init"));

    let out = run(
        &[
            "eval",
            "--split",
            "validation",
            "--json",
            "--adapter",
            &adapter_s,
        ],
        true,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["examples"], 3);
    // A hybrid and a text-only model cannot share one evaluation pass.
    let out = run(
        &[
            "eval",
            "--split",
            "validation",
            "--json",
            "--adapter",
            "none",
            "--adapter",
            &adapter_s,
        ],
        true,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("separate runs"), "{}", stderr(&out));
    let out = recalign(&[
        "rank",
        "--history",
        "Film number 1",
        "--candidates",
        "Film number 2; Film number 3",
        "--adapter",
        &adapter_s,
        "--model",
        model,
    ]);
    // The adapter carries its catalogue: `rank` takes its titles (with their items) and
    // typed ones (as text) alike.
    assert!(out.status.success(), "{}", stderr(&out));
    let ranked = stdout(&out);
    assert!(
        ranked.contains("Film number 2") && ranked.contains("Film number 3"),
        "{ranked}"
    );

    let out = recalign(&["adapter", "export", &adapter_s, "--out", &peft_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("PEFT cannot"), "{}", stderr(&out));
    assert!(peft.join("adapter_model.safetensors").exists());
    assert!(peft.join("recalign_adapter.safetensors").exists());

    let out = run(
        &[
            "pairs",
            "build",
            "--oracle",
            &oracle_s,
            "--prompt",
            "compact",
            "--max-examples",
            "4",
            "--out",
            &pairs_s,
        ],
        false,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&pairs)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(!first["history_items"].as_array().unwrap().is_empty());
    let out = recalign(&[
        "train", "pref", "--type", "rosepo", "--pairs", &pairs_s, "--init", &adapter_s, "--steps",
        "1", "--batch", "2", "--out", &pref_s, "--model", model,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = recalign(&[
        "rank",
        "--history",
        "Film number 1; Film number 4",
        "--candidates",
        "Film number 2; A film typed by hand",
        "--adapter",
        &pref_s,
        "--model",
        model,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("A film typed by hand"),
        "{}",
        stdout(&out)
    );
}

/// `recommend` from the whole catalogue: one history (its own titles left out), and a split,
/// where every example's real next title is looked for in the list next to popularity's.
#[test]
fn recommend_lists_the_catalogue_for_a_history_and_measures_a_split() {
    let model = tiny_model("recommend.gguf");
    let model = model.to_str().unwrap();
    let (inter, items) = synthetic_dataset("recommend");
    let (inter, items) = (inter.to_str().unwrap(), items.to_str().unwrap());
    let data = ["--interactions", inter, "--items", items, "--model", model];
    let recommend = |args: &[&str]| {
        let mut all = vec!["recommend"];
        all.extend(args);
        all.extend(data);
        recalign(&all)
    };
    let out = recommend(&[
        "--history",
        "Film number 1; Film number 2",
        "--top",
        "5",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let titles: Vec<&str> = v["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles.len(), 5);
    assert!(!titles.contains(&"Film number 1") && !titles.contains(&"Film number 2"));

    let out = recommend(&[
        "--split",
        "validation",
        "--top",
        "5",
        "--max-examples",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["examples"], 2);
    for k in ["hr_at_top", "popularity_hr_at_top"] {
        let hr = v[k]["mean"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&hr), "{k} {hr}");
    }
    assert!(v["vs_popularity"]["p_value"].as_f64().is_some());
    // Neither a history nor a split: a clear error, not a panic.
    let out = recommend(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--history"), "{}", stderr(&out));
}
