//! Every fixture row rendered and encoded (toy byte tokenizer) must equal what a CPython
//! transcription of MeZO's templates + `encode_prompt` produces (tools/render_reference.py →
//! data/render_reference.json): this pins Python's strip/lower/split semantics, not just our
//! reading of them.

mod common;

use common::{load_fixture, ByteEncoder};
use serde_json::Value;
use zo_tasks::{encode_example, encode_train, render, EncodedEval, Task, TrainFeature};

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

#[test]
fn rendering_matches_the_python_reference() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/render_reference.json"
    );
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for task in Task::ALL {
        let spec = task.spec();
        let rows = reference[task.name()].as_array().unwrap();
        let examples = load_fixture(task, "jsonl");
        assert_eq!(rows.len(), examples.len(), "{task}");
        for (ex, want) in examples.iter().zip(rows) {
            let ctx = format!("{task} row {}", ex.row);
            let r = render(ex).unwrap();
            assert_eq!(
                r.unverbalized,
                want["unverbalized"].as_str().unwrap(),
                "{ctx}"
            );
            let finals: Vec<String> = want["finals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            let lens = usizes(&want["option_lens"]);
            match encode_example(&ByteEncoder, &r, spec.max_length).unwrap() {
                EncodedEval::Candidates { options, correct } => {
                    assert_eq!(r.candidates, finals, "{ctx}");
                    let got: Vec<usize> = options.iter().map(|o| o.option_len).collect();
                    assert_eq!(got, lens, "{ctx}");
                    assert_eq!(correct, usizes(&want["correct"]), "{ctx}");
                }
                EncodedEval::Generation { prompt, .. } => {
                    assert_eq!(vec![r.prompt.clone().unwrap()], finals, "{ctx}");
                    assert_eq!(prompt.option_len, lens[0], "{ctx}");
                }
            }
            assert_eq!(
                r.train.correct as u64,
                want["train_id"].as_u64().unwrap(),
                "{ctx}"
            );
            assert_eq!(r.train.text, want["train_final"].as_str().unwrap(), "{ctx}");
            let train = encode_train(
                &ByteEncoder,
                &r,
                zo_tasks::Objective::LmOption,
                spec.max_length,
            );
            let TrainFeature::Lm(seq) = train.unwrap() else {
                panic!("{ctx}")
            };
            assert_eq!(
                seq.option_len as u64,
                want["train_option_len"].as_u64().unwrap(),
                "{ctx}"
            );
        }
    }
}
