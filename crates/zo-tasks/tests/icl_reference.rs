//! In-context prompts, demonstration sets, truncation under a small `max_length` and the
//! prompts of the non-differentiable objective, against vectors made by MeZO's own code
//! (tools/icl_reference.py → data/icl_reference.json; toy byte tokenizer, the fixture rows as
//! both the train pool and the evaluation examples).

mod common;

use common::{load_fixture, ByteEncoder};
use serde_json::Value;
use zo_tasks::{
    demo_seeds, demo_sets, encode_example, encode_train, render, EncodedEval, Objective, Task,
    TrainFeature, MAX_NEW_TOKENS,
};

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/icl_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    usizes(v).into_iter().map(|x| x as u32).collect()
}

/// MeZO's encode budget: `max_length`, less `max_new_tokens` for generation tasks.
fn budget(task: Task, max_length: usize) -> usize {
    if task.spec().max_new_tokens > 0 {
        max_length - MAX_NEW_TOKENS
    } else {
        max_length
    }
}

#[test]
fn demonstration_seeds_and_sets_match_numpy() {
    let r = reference();
    let seeds: Vec<u32> = ids(&r["seeds"]);
    assert_eq!(demo_seeds(seeds.len()), seeds);
    for task in Task::ALL {
        let want = &r["demo_indices"][task.name()];
        let pool = want["pool_len"].as_u64().unwrap() as usize;
        let k = want["k"].as_u64().unwrap() as usize;
        let first: Vec<Vec<usize>> = want["first_sets"]
            .as_array()
            .unwrap()
            .iter()
            .map(usizes)
            .collect();
        let got = demo_sets(pool, first.len(), k).unwrap();
        assert_eq!(got, first, "{task}");
    }
}

#[test]
fn in_context_prompts_are_byte_identical_to_mezo() {
    let r = reference();
    let mut checked = 0;
    for task in Task::ALL {
        let examples = load_fixture(task, "jsonl");
        let rendered: Vec<_> = examples.iter().map(|e| render(e).unwrap()).collect();
        for case in r["prompts"][task.name()].as_array().unwrap() {
            let k = case["k"].as_u64().unwrap() as usize;
            let max_length = case["max_length"].as_u64().unwrap() as usize;
            let i = case["example"].as_u64().unwrap() as usize;
            let ctx = format!("{task} example {i}, {k} demos, max_length {max_length}");
            let sets = demo_sets(examples.len(), examples.len(), k).unwrap();
            assert_eq!(sets[i], usizes(&case["demos"]), "{ctx}");
            let demos: Vec<_> = sets[i].iter().map(|&d| &rendered[d]).collect();
            let with = rendered[i].with_demos(&demos);
            let want: Vec<Vec<u32>> = case["encodings"]
                .as_array()
                .unwrap()
                .iter()
                .map(ids)
                .collect();
            let lens = usizes(&case["option_lens"]);
            match encode_example(&ByteEncoder, &with, budget(task, max_length)).unwrap() {
                EncodedEval::Candidates { options, .. } => {
                    let got: Vec<Vec<u32>> = options.iter().map(|o| o.ids.clone()).collect();
                    assert_eq!(got, want, "{ctx}");
                    // MeZO's option lengths are not clamped; ours are, to the predicted positions.
                    for (o, (&l, w)) in options.iter().zip(lens.iter().zip(&want)) {
                        assert_eq!(o.option_len, l.min(w.len() - 1), "{ctx}");
                    }
                }
                EncodedEval::Generation { prompt, .. } => {
                    assert_eq!(vec![prompt.ids.clone()], want, "{ctx}");
                    assert_eq!(lens, [0], "{ctx}");
                }
            }
            checked += 1;
        }
    }
    // 6 tasks × {0, 2} demos × {2048, 64} × every fixture row.
    assert_eq!(checked, 4 * 26);
}

#[test]
fn non_differentiable_prompts_match_mezo() {
    let r = reference();
    let mut checked = 0;
    for task in [Task::Squad, Task::Drop] {
        let examples = load_fixture(task, "jsonl");
        for case in r["nondiff"][task.name()].as_array().unwrap() {
            let max_length = case["max_length"].as_u64().unwrap() as usize;
            let i = case["example"].as_u64().unwrap() as usize;
            let rd = render(&examples[i]).unwrap();
            let want = ids(&case["input_ids"]);
            let f = encode_train(
                &ByteEncoder,
                &rd,
                Objective::NonDiff,
                budget(task, max_length),
            );
            if want.len() < 2 {
                // MeZO would generate from an empty (or BOS-only) input; zo refuses, naming the row.
                let err = f.unwrap_err().to_string();
                assert!(err.contains("no prompt is left"), "{err}");
                checked += 1;
                continue;
            }
            let f = f.unwrap();
            let TrainFeature::Generation {
                prompt,
                gold_answers,
            } = f
            else {
                panic!("{task}: not a generation feature");
            };
            assert_eq!(prompt.ids, want, "{task} {i} {max_length}");
            let gold: Vec<String> = case["gold"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            assert_eq!(gold_answers, gold);
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * (3 + 3));
}

#[test]
fn the_non_differentiable_objective_is_refused_for_candidate_tasks() {
    let ex = &load_fixture(Task::Sst2, "jsonl")[0];
    let err = encode_train(&ByteEncoder, &render(ex).unwrap(), Objective::NonDiff, 2048)
        .unwrap_err()
        .to_string();
    assert!(err.contains("non-differentiable"), "{err}");
}
