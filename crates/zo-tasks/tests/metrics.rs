//! Metric tests. Golden values in data/metrics_cases.json come from MeZO's own metric code,
//! run by tools/metrics_reference.py (committed next to it).

use serde_json::Value;
use zo_tasks::{
    accuracy, argmax, clean_up_tokenization, exact_match, f1, generation_answer, mean_f1,
    normalize_answer,
};

fn cases() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/metrics_cases.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn normalize_answer_matches_python_on_edge_cases() {
    let cases = cases();
    let list = cases["normalize"].as_array().unwrap();
    assert!(list.len() > 20);
    for c in list {
        let input = c["input"].as_str().unwrap();
        assert_eq!(
            normalize_answer(input),
            c["expected"].as_str().unwrap(),
            "input {input:?}"
        );
    }
}

#[test]
fn f1_and_em_match_python() {
    let cases = cases();
    for c in cases["f1"].as_array().unwrap() {
        let pred = c["prediction"].as_str().unwrap();
        let golds = strings(&c["golds"]);
        let want = c["f1"].as_f64().unwrap();
        let got = f1(pred, &golds);
        assert!(
            (got - want).abs() < 1e-12,
            "{pred:?} vs {golds:?}: {got} != {want}"
        );
        assert_eq!(
            exact_match(pred, &golds),
            c["em"].as_bool().unwrap(),
            "{pred:?}"
        );
    }
}

#[test]
fn cleanup_matches_transformers() {
    let cases = cases();
    for c in cases["cleanup"].as_array().unwrap() {
        let input = c["input"].as_str().unwrap();
        assert_eq!(
            clean_up_tokenization(input),
            c["expected"].as_str().unwrap()
        );
        assert_eq!(generation_answer(input), c["answer"].as_str().unwrap());
    }
    // docs/PROTOCOL.md 7.1: a generated "John 's car" becomes "John's car" and scores 0.4.
    let pred = generation_answer(" John 's car\n");
    assert_eq!(pred, "John's car");
    assert!((f1(&pred, &["John 's car".to_string()]) - 0.4).abs() < 1e-12);
}

#[test]
fn accuracy_with_single_and_list_gold() {
    // SST-2 style single gold and ReCoRD style list gold.
    let preds = [1, 0, 2, 3];
    let gold = [vec![1], vec![1], vec![0, 2], vec![]];
    assert_eq!(accuracy(&preds, &gold), Some(0.5));
    assert_eq!(accuracy(&[], &[]), None);
}

#[test]
fn mean_f1_averages_examples() {
    let preds = ["Denver Broncos".to_string(), String::new()];
    let golds = [vec!["Denver Broncos".to_string()], vec!["x".to_string()]];
    assert_eq!(mean_f1(&preds, &golds), Some(0.5));
    assert_eq!(mean_f1(&[], &[]), None);
    // No gold at all (rejected by the loaders) scores 0 instead of raising.
    assert_eq!(f1("x", &[]), 0.0);
}

#[test]
fn argmax_is_numpys() {
    assert_eq!(argmax(&[0.1, 0.3, 0.3]), Some(1)); // first maximum wins ties
    assert_eq!(argmax(&[-1.0, f64::NAN, 5.0, f64::NAN]), Some(1)); // NaN propagates
    assert_eq!(argmax(&[f64::NEG_INFINITY, f64::NEG_INFINITY]), Some(0));
    assert_eq!(argmax(&[]), None);
}
