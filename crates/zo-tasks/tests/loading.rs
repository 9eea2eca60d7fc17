//! Loading rows: parquet vs JSONL equality, every bad-row error, skip policy, the hub cache
//! (a fake one: tests never touch the network), local directories.

mod common;

use std::path::{Path, PathBuf};

use common::{fixture, load_fixture};
use zo_tasks::{
    load_files, load_rows, BadRowPolicy, DataSource, HubOptions, RowErrorKind, Split, Task,
    TaskError,
};

#[test]
fn parquet_and_jsonl_give_identical_examples() {
    for task in Task::ALL {
        let from_jsonl = load_fixture(task, "jsonl");
        let from_parquet = load_fixture(task, "parquet");
        assert!(from_jsonl.len() >= 3, "{task}");
        assert_eq!(from_jsonl, from_parquet, "{task}");
        for (i, ex) in from_jsonl.iter().enumerate() {
            assert_eq!(ex.row, i);
            assert_eq!(ex.task(), task);
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Load one JSONL line (after one good row) and return the error kind of row 1.
fn bad(task: Task, good: &str, line: &str) -> RowErrorKind {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "rows.jsonl", &format!("{good}\n{line}\n"));
    match load_files(task, std::slice::from_ref(&p), BadRowPolicy::Fail) {
        Err(TaskError::BadRow {
            location,
            row,
            kind,
        }) => {
            assert_eq!(row, 1);
            assert_eq!(location, format!("{}, line 2", p.display()));
            kind
        }
        other => panic!("{task} {line}: expected a bad row, got {other:?}"),
    }
}

const SST2: &str = r#"{"sentence": "fine . ", "label": 1, "idx": 0}"#;
const COPA: &str = r#"{"premise": "P.", "choice1": "A.", "choice2": "B.", "question": "cause", "label": 0, "idx": 0}"#;
const RECORD: &str = r#"{"passage": "X met Y.", "query": "@placeholder won.", "entities": ["X", "Y"], "answers": ["X"]}"#;
const SQUAD: &str = r#"{"id": "1", "title": "T", "context": "C", "question": "Q?", "answers": {"text": ["a"], "answer_start": [0]}}"#;
const DROP: &str = r#"{"query_id": "1", "passage": "P", "question": "Q?", "answers_spans": {"spans": ["a"], "types": ["span"]}}"#;

#[test]
fn every_bad_row_case_has_its_named_error() {
    use RowErrorKind::*;
    let k = bad(Task::Sst2, SST2, r#"{"sentence": "x", "idx": 1}"#);
    assert_eq!(k, MissingField("label".into()));
    let k = bad(Task::Sst2, SST2, r#"{"sentence": "x", "label": null}"#);
    assert_eq!(k, MissingField("label".into()));
    let k = bad(Task::Sst2, SST2, r#"{"sentence": "x", "label": "1"}"#);
    assert!(
        matches!(k, WrongType { ref field, .. } if field == "label"),
        "{k}"
    );
    let k = bad(Task::Sst2, SST2, r#"{"sentence": 3, "label": 1}"#);
    assert!(
        matches!(k, WrongType { ref field, .. } if field == "sentence"),
        "{k}"
    );
    // The HF test splits carry label -1: not a candidate.
    let k = bad(
        Task::Rte,
        r#"{"premise": "p", "hypothesis": "h", "label": 0}"#,
        r#"{"premise": "p", "hypothesis": "h", "label": -1}"#,
    );
    assert_eq!(
        k,
        LabelOutOfRange {
            label: -1,
            num_candidates: 2
        }
    );
    let k = bad(Task::Sst2, SST2, r#"{"sentence": "x", "label": 2}"#);
    assert_eq!(
        k,
        LabelOutOfRange {
            label: 2,
            num_candidates: 2
        }
    );
    let k = bad(
        Task::Copa,
        COPA,
        r#"{"premise": "P.", "choice1": "A.", "choice2": "B.", "question": "reason", "label": 0}"#,
    );
    assert_eq!(k, BadCopaQuestion("reason".into()));
    let k = bad(
        Task::Record,
        RECORD,
        r#"{"passage": "p", "query": "@placeholder", "entities": [], "answers": ["X"]}"#,
    );
    assert_eq!(k, NoCandidates("entities"));
    let k = bad(
        Task::Record,
        RECORD,
        r#"{"passage": "p", "query": "@placeholder", "entities": ["X"], "answers": []}"#,
    );
    assert_eq!(k, EmptyAnswers("answers"));
    let k = bad(
        Task::Record,
        RECORD,
        r#"{"passage": "p", "query": "@placeholder", "entities": ["X"], "answers": ["Z"]}"#,
    );
    assert_eq!(
        k,
        GoldNotAmongCandidates {
            gold: "Z".into(),
            field: "entities"
        }
    );
    let k = bad(
        Task::Record,
        RECORD,
        r#"{"passage": "p", "query": "no slot", "entities": ["X"], "answers": ["X"]}"#,
    );
    assert_eq!(k, NoPlaceholder);
    let k = bad(
        Task::Record,
        RECORD,
        r#"{"passage": "p", "query": "@placeholder", "entities": ["X", 1], "answers": ["X"]}"#,
    );
    assert!(
        matches!(k, WrongType { ref field, .. } if field == "entities"),
        "{k}"
    );
    let k = bad(
        Task::Squad,
        SQUAD,
        r#"{"title": "T", "context": "C", "question": "Q", "answers": {"text": [], "answer_start": []}}"#,
    );
    assert_eq!(k, EmptyAnswers("answers.text"));
    let k = bad(
        Task::Squad,
        SQUAD,
        r#"{"title": "T", "context": "C", "question": "Q", "answers": {"answer_start": [1]}}"#,
    );
    assert_eq!(k, MissingField("answers.text".into()));
    let k = bad(
        Task::Squad,
        SQUAD,
        r#"{"title": "T", "context": "C", "question": "Q", "answers": ["a"]}"#,
    );
    assert!(
        matches!(k, WrongType { ref field, .. } if field == "answers"),
        "{k}"
    );
    let k = bad(
        Task::Drop,
        DROP,
        r#"{"passage": "P", "question": "Q", "answers_spans": {"spans": [], "types": []}}"#,
    );
    assert_eq!(k, EmptyAnswers("answers_spans.spans"));
    let k = bad(
        Task::Drop,
        DROP,
        r#"{"passage": "P", "answers_spans": {"spans": ["a"]}}"#,
    );
    assert_eq!(k, MissingField("question".into()));
    let k = bad(Task::Sst2, SST2, r#"{"sentence": "x", "label": 1"#);
    assert!(matches!(k, InvalidJson(_)), "{k}");
    let k = bad(Task::Sst2, SST2, r#"[1, 2]"#);
    assert!(matches!(k, NotAnObject(_)), "{k}");
}

#[test]
fn error_messages_name_file_row_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "bad.jsonl",
        &format!("{SST2}\n\n{{\"sentence\": \"x\"}}\n"),
    );
    let e = load_files(Task::Sst2, &[p], BadRowPolicy::Fail)
        .unwrap_err()
        .to_string();
    // The position is the file's line as an editor numbers it (the blank line counted).
    assert!(
        e.contains("bad.jsonl, line 3: ") && e.contains("`label`"),
        "{e}"
    );
}

#[test]
fn skip_policy_keeps_good_rows_with_their_original_index() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.jsonl",
        &format!("{SST2}\n{{\"sentence\": \"x\", \"label\": 7}}\n"),
    );
    let b = fixture(Task::Sst2, "parquet");
    let out = load_files(Task::Sst2, &[a, b], BadRowPolicy::Skip).unwrap();
    assert_eq!(out.skipped.len(), 1);
    assert!(matches!(out.skipped[0], TaskError::BadRow { row: 1, .. }));
    assert!(out.skipped[0].to_string().contains("a.jsonl, line 2: "));
    // Row indices run across files: the parquet's rows are 2.. .
    let rows: Vec<usize> = out.examples.iter().map(|e| e.row).collect();
    assert_eq!(rows, [0, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn file_level_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.jsonl");
    let e = load_files(Task::Sst2, &[missing], BadRowPolicy::Skip).unwrap_err();
    assert!(matches!(e, TaskError::Io { .. }), "{e}");
    let txt = write(dir.path(), "rows.csv", "a,b\n");
    assert!(matches!(
        load_files(Task::Sst2, &[txt], BadRowPolicy::Fail),
        Err(TaskError::Io { .. })
    ));
    let junk = write(dir.path(), "junk.parquet", "not parquet at all");
    let e = load_files(Task::Sst2, &[junk], BadRowPolicy::Skip).unwrap_err();
    assert!(matches!(e, TaskError::Parquet { .. }), "{e}");
    let src = DataSource::Files {
        train: vec![],
        validation: vec![],
    };
    let e = load_rows(Task::Sst2, &src, Split::Train, BadRowPolicy::Fail).unwrap_err();
    assert!(matches!(e, TaskError::NoFiles { .. }), "{e}");
}

/// A hub cache laid out as `huggingface_hub` writes it.
fn fake_cache(root: &Path) {
    let repo = root.join("datasets--nyu-mll--glue");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs/refs/convert")).unwrap();
    std::fs::write(repo.join("refs/refs/convert/parquet"), commit).unwrap();
    let train = repo.join("snapshots").join(commit).join("sst2/train");
    std::fs::create_dir_all(&train).unwrap();
    std::fs::copy(fixture(Task::Sst2, "parquet"), train.join("0000.parquet")).unwrap();
}

#[test]
fn hub_source_reads_the_cache_offline() {
    let dir = tempfile::tempdir().unwrap();
    fake_cache(dir.path());
    let mut opts = HubOptions::from_env_vars(|_| None);
    opts.cache_dir = dir.path().to_path_buf();
    opts.offline = true;
    let src = DataSource::Hub(opts);
    let rows = load_rows(Task::Sst2, &src, Split::Train, BadRowPolicy::Fail).unwrap();
    assert_eq!(rows.examples, load_fixture(Task::Sst2, "jsonl"));
    assert!(rows.files[0].ends_with("sst2/train/0000.parquet"));
    // The fixture is not the real 67,349-row split: flagged for the runner.
    assert_eq!((rows.expected_rows, rows.rows_read()), (Some(67349), 6));
    // The validation file is not cached: offline, that is a named error, not a download.
    let e = load_rows(Task::Sst2, &src, Split::Validation, BadRowPolicy::Fail).unwrap_err();
    match e {
        TaskError::Hub {
            repo,
            file,
            message,
            ..
        } => {
            assert_eq!(repo, "nyu-mll/glue");
            assert_eq!(file, "sst2/validation/0000.parquet");
            assert!(message.contains("HF_HUB_OFFLINE"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dir_source_accepts_hub_layout_or_split_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture(Task::Copa, "jsonl"), dir.path().join("train.jsonl")).unwrap();
    std::fs::create_dir_all(dir.path().join("copa/validation")).unwrap();
    std::fs::copy(
        fixture(Task::Copa, "parquet"),
        dir.path().join("copa/validation/0000.parquet"),
    )
    .unwrap();
    let src = DataSource::Dir(dir.path().to_path_buf());
    let train = load_rows(Task::Copa, &src, Split::Train, BadRowPolicy::Fail).unwrap();
    let valid = load_rows(Task::Copa, &src, Split::Validation, BadRowPolicy::Fail).unwrap();
    assert_eq!(train.examples, valid.examples);
    assert!(valid.files[0].ends_with("copa/validation/0000.parquet"));
    // Only the hub layout is the task's dataset; train.jsonl is "some rows".
    assert_eq!(valid.expected_rows, Some(100));
    assert_eq!(train.expected_rows, None);
    let e = load_rows(Task::Rte, &src, Split::Validation, BadRowPolicy::Fail).unwrap_err();
    assert!(matches!(e, TaskError::NoFiles { .. }), "{e}");
}

#[test]
fn manifests_agree_with_the_specs() {
    for task in Task::ALL {
        let m = task.manifest().unwrap();
        assert_eq!(m.task, task);
        assert_eq!(m.sizes, task.spec().default_sizes, "{task}");
        assert_eq!(m.dataset.revision, "refs/convert/parquet");
        for f in m.dataset.train.iter().chain(&m.dataset.validation) {
            assert!(
                f.starts_with(&format!("{}/", m.dataset.config)) && f.ends_with(".parquet"),
                "{f}"
            );
        }
        let dir = task.source_dir();
        assert!(dir.join(&m.fixture.jsonl).is_file(), "{task}");
        if let Some(p) = &m.fixture.parquet {
            assert!(dir.join(p).is_file(), "{task}");
        }
        if let Some(q) = &m.quickstart {
            assert!(
                dir.join(&q.train).is_file() && dir.join(&q.dev).is_file(),
                "{task}"
            );
        }
        assert_eq!(m.quickstart.is_some(), task == Task::Sst2);
        // The on-disk copy parses to the same thing as the compiled-in one.
        assert_eq!(
            zo_tasks::TaskManifest::load(&dir.join("task.toml")).unwrap(),
            m
        );
    }
}

#[test]
fn quickstart_rows_are_sst2_format_and_balanced() {
    use zo_tasks::ExampleData;
    let q = Task::Sst2.manifest().unwrap().quickstart.unwrap();
    for (name, n) in [(q.train, 240), (q.dev, 200)] {
        let path = Task::Sst2.source_dir().join(&name);
        let rows = load_files(Task::Sst2, &[path], BadRowPolicy::Fail)
            .unwrap()
            .examples;
        assert_eq!(rows.len(), n, "{name}");
        let mut positives = 0;
        for ex in &rows {
            let ExampleData::Sst2(r) = &ex.data else {
                panic!()
            };
            assert!(r.sentence.ends_with(" . "), "{:?}", r.sentence);
            assert_eq!(r.sentence, r.sentence.to_lowercase());
            positives += r.label;
        }
        assert_eq!(positives * 2, n, "{name}: labels balanced");
    }
}

#[test]
fn load_splits_samples_both_pools() {
    let q = Task::Sst2.manifest().unwrap().quickstart.unwrap();
    let dir = Task::Sst2.source_dir();
    let src = DataSource::Files {
        train: vec![dir.join(&q.train)],
        validation: vec![dir.join(&q.dev)],
    };
    let sizes = zo_tasks::SplitSizes {
        num_train: 200,
        num_dev: 40,
        num_eval: 1000,
    };
    let s = zo_tasks::load_splits(Task::Sst2, &src, 0, sizes, BadRowPolicy::Fail).unwrap();
    assert_eq!((s.train.len(), s.dev.len(), s.test.len()), (200, 40, 200));
    let idx = zo_tasks::split_indices(240, 200, 0, sizes).unwrap();
    assert_eq!(idx, s.indices);
    assert_eq!(s.train[0].row, idx.train[0]);
    assert_eq!(s.test[5].row, idx.test[5]);
}
