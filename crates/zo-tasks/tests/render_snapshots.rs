//! Snapshot of every fixture row's MeZO strings and option spans (reviewed by hand against
//! docs/PROTOCOL.md 1.1–1.6). Strings are shown with `{:?}` so `\n`, `\t` and trailing spaces
//! are visible. Option spans are computed twice: from the template (`option_text`) and from
//! the toy byte tokenizer's last `option_len` ids; the test asserts they agree.

mod common;

use std::fmt::Write;

use common::{decode, load_fixture, ByteEncoder};
use zo_tasks::{encode_example, encode_train, render, EncodedEval, Task, TrainFeature};

fn tail(ids: &[u32], n: usize) -> String {
    decode(&ids[ids.len() - n..])
}

fn snapshot_text(task: Task) -> String {
    let spec = task.spec();
    let mut out = String::new();
    for ex in load_fixture(task, "jsonl") {
        let r = render(&ex).unwrap();
        writeln!(out, "== row {} ==", r.row).unwrap();
        writeln!(out, "unverbalized: {:?}", r.unverbalized).unwrap();
        match encode_example(&ByteEncoder, &r, spec.max_length).unwrap() {
            EncodedEval::Candidates { options, correct } => {
                for (c, seq) in options.iter().enumerate() {
                    let mark = if correct.contains(&c) {
                        " [correct]"
                    } else {
                        ""
                    };
                    writeln!(out, "candidate {c}{mark}: {:?}", r.candidates[c]).unwrap();
                    let span = tail(&seq.ids, seq.option_len);
                    let from_template = r.option_text(c).unwrap();
                    assert_eq!(span, from_template, "{task} row {} candidate {c}", r.row);
                    assert_eq!(decode(&seq.ids), r.candidates[c]);
                    writeln!(out, "  option ({} bytes): {span:?}", seq.option_len).unwrap();
                }
                writeln!(out, "correct: {correct:?}").unwrap();
            }
            EncodedEval::Generation {
                prompt,
                gold_answers,
            } => {
                writeln!(out, "prompt: {:?}", r.prompt.as_deref().unwrap()).unwrap();
                assert_eq!(decode(&prompt.ids), r.prompt.clone().unwrap());
                writeln!(out, "gold answers: {gold_answers:?}").unwrap();
            }
        }
        match encode_train(&ByteEncoder, &r, spec.objective, spec.max_length).unwrap() {
            TrainFeature::Classification { options, correct } => {
                writeln!(
                    out,
                    "train: classification over {} options, target {correct}",
                    options.len()
                )
                .unwrap();
            }
            TrainFeature::Lm(seq) => {
                assert_eq!(decode(&seq.ids), r.train.text);
                writeln!(out, "train text: {:?}", r.train.text).unwrap();
                writeln!(
                    out,
                    "  trained option ({} bytes): {:?}",
                    seq.option_len,
                    tail(&seq.ids, seq.option_len)
                )
                .unwrap();
            }
            TrainFeature::Generation { .. } => {
                unreachable!("no task trains with the non-differentiable objective by default")
            }
        }
    }
    out
}

#[test]
fn sst2_prompts() {
    insta::assert_snapshot!(snapshot_text(Task::Sst2));
}

#[test]
fn rte_prompts() {
    insta::assert_snapshot!(snapshot_text(Task::Rte));
}

#[test]
fn copa_prompts() {
    insta::assert_snapshot!(snapshot_text(Task::Copa));
}

#[test]
fn record_prompts() {
    insta::assert_snapshot!(snapshot_text(Task::Record));
}

#[test]
fn squad_prompts() {
    insta::assert_snapshot!(snapshot_text(Task::Squad));
}

#[test]
fn drop_prompts() {
    insta::assert_snapshot!(snapshot_text(Task::Drop));
}
