//! Encoding with a toy byte tokenizer: option lengths, MeZO's left truncation, training
//! features, and the encoding errors.

mod common;

use common::{load_fixture, ByteEncoder, BOS};
use zo_tasks::{
    encode_example, encode_train, render, EncodedEval, Objective, Task, TaskError, TextEncoder,
    TrainFeature,
};

fn rendered(task: Task, row: usize) -> zo_tasks::Rendered {
    render(&load_fixture(task, "jsonl")[row]).unwrap()
}

#[test]
fn option_len_counts_what_the_verbalizer_adds() {
    let r = rendered(Task::Sst2, 0);
    let EncodedEval::Candidates { options, correct } =
        encode_example(&ByteEncoder, &r, 2048).unwrap()
    else {
        panic!()
    };
    assert_eq!(correct, [1]);
    assert_eq!(options[0].option_len, " terrible".len());
    assert_eq!(options[1].option_len, " great".len());
    assert_eq!(options[1].ids[0], BOS);
    assert!(!options[1].truncated);
}

#[test]
fn option_len_uses_verbalized_while_ids_use_the_lstripped_final_string() {
    // RTE row 2's premise starts with "\n\t": the tokenized string loses them, the option
    // length (measured on the un-lstripped strings) is still that of "Yes".
    let r = rendered(Task::Rte, 2);
    assert!(r.verbalized[0].starts_with("\n\t"));
    assert!(!r.candidates[0].starts_with('\n'));
    let EncodedEval::Candidates { options, .. } = encode_example(&ByteEncoder, &r, 2048).unwrap()
    else {
        panic!()
    };
    assert_eq!(options[0].option_len, 3);
    assert_eq!(options[0].ids.len(), 1 + r.candidates[0].len());
}

#[test]
fn left_truncation_keeps_bos_and_the_option() {
    let r = rendered(Task::Copa, 0);
    let full = ByteEncoder.encode(&r.candidates[0]).unwrap();
    let EncodedEval::Candidates { options, .. } = encode_example(&ByteEncoder, &r, 12).unwrap()
    else {
        panic!()
    };
    let o = &options[0];
    assert!(o.truncated);
    assert_eq!(o.ids.len(), 12);
    assert_eq!(o.ids[0], BOS);
    assert_eq!(o.ids[1..], full[full.len() - 11..]);
    // " the sun was rising." is 20 bytes > 11 kept tokens: clamped to the predicted positions.
    assert_eq!(o.option_len, 11);
    assert!(matches!(
        encode_example(&ByteEncoder, &r, 1),
        Err(TaskError::MaxLength(1))
    ));
}

#[test]
fn training_features_follow_the_objective() {
    // SST-2 trains as classification over both candidates.
    let r = rendered(Task::Sst2, 1);
    match encode_train(&ByteEncoder, &r, Objective::Classification, 2048).unwrap() {
        TrainFeature::Classification { options, correct } => {
            assert_eq!((options.len(), correct), (2, 0));
        }
        other => panic!("{other:?}"),
    }
    // ...and may train with the LM loss on the gold candidate instead.
    match encode_train(&ByteEncoder, &r, Objective::LmOption, 2048).unwrap() {
        TrainFeature::Lm(seq) => assert_eq!(seq.option_len, " terrible".len()),
        other => panic!("{other:?}"),
    }
    // ReCoRD trains on the first gold answer ("U.S.", candidate 2), evaluates on all golds.
    let r = rendered(Task::Record, 2);
    assert_eq!(r.correct, [2, 0]);
    assert_eq!(r.train.correct, 2);
    let TrainFeature::Lm(seq) = encode_train(&ByteEncoder, &r, Objective::LmOption, 2048).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        seq.option_len,
        " The U.S. delegation apologised for the delay.".len()
    );
    // SQuAD trains on " {answers[0]}\n", cannot train as classification.
    let r = rendered(Task::Squad, 0);
    let TrainFeature::Lm(seq) = encode_train(&ByteEncoder, &r, Objective::LmOption, 1998).unwrap()
    else {
        panic!()
    };
    assert_eq!(seq.option_len, " Denver Broncos\n".len());
    let e = encode_train(&ByteEncoder, &r, Objective::Classification, 1998).unwrap_err();
    assert!(matches!(e, TaskError::ObjectiveMismatch { .. }), "{e}");
}

#[test]
fn generation_prompt_has_no_option() {
    let r = rendered(Task::Drop, 1);
    let EncodedEval::Generation {
        prompt,
        gold_answers,
    } = encode_example(&ByteEncoder, &r, 1998).unwrap()
    else {
        panic!()
    };
    assert_eq!(prompt.option_len, 0);
    assert_eq!(gold_answers, ["Jason Campbell", "Chaz Schilens"]);
    assert_eq!(common::decode(&prompt.ids), r.prompt.unwrap());
}

#[test]
fn closures_are_encoders() {
    let r = rendered(Task::Sst2, 0);
    let enc = |t: &str| ByteEncoder.encode(t);
    assert_eq!(
        encode_example(&enc, &r, 2048).unwrap(),
        encode_example(&ByteEncoder, &r, 2048).unwrap()
    );
}

struct Constant;
impl TextEncoder for Constant {
    fn encode(&self, _: &str) -> Result<Vec<u32>, String> {
        Ok(vec![0, 1])
    }
}

struct Failing;
impl TextEncoder for Failing {
    fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        Err(format!("cannot encode {} bytes", text.len()))
    }
}

#[test]
fn encoding_errors_are_named() {
    let r = rendered(Task::Copa, 3);
    match encode_example(&Constant, &r, 2048).unwrap_err() {
        TaskError::EmptyOption {
            task,
            row,
            candidate,
            option_len,
        } => {
            assert_eq!(
                (task.as_str(), row, candidate, option_len),
                ("copa", 3, 0, 0)
            );
        }
        other => panic!("{other:?}"),
    }
    let e = encode_example(&Failing, &r, 2048).unwrap_err();
    assert!(matches!(e, TaskError::Encode { row: 3, .. }), "{e}");
    assert!(
        e.to_string().contains("copa") && e.to_string().contains("cannot encode"),
        "{e}"
    );
}
