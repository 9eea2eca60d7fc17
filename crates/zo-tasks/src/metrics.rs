//! MeZO's metrics (`large_models/metrics.py`, identical in ZO-Bench; docs/PROTOCOL.md 1.0
//! "Metrics" and 7.1), with Python 3 `str` semantics.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

use crate::pystr::py_split;

/// Accuracy: the fraction of examples whose prediction is in its gold index list (a single
/// index for SST-2/RTE/COPA, every gold entity's index for ReCoRD). `None` for no examples
/// (numpy's mean of nothing is NaN). Pairs beyond the shorter slice are ignored.
pub fn accuracy(predictions: &[usize], correct: &[Vec<usize>]) -> Option<f64> {
    let n = predictions.len().min(correct.len());
    if n == 0 {
        return None;
    }
    let hits = predictions
        .iter()
        .zip(correct)
        .filter(|(p, c)| c.contains(p))
        .count();
    Some(hits as f64 / n as f64)
}

/// `int(np.argmax(scores))`: the first maximum; if any score is NaN, the first NaN (numpy
/// propagates NaN as the maximum). `None` for an empty slice.
pub fn argmax(scores: &[f64]) -> Option<usize> {
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Some(i);
    }
    let mut best: Option<usize> = None;
    for (i, &s) in scores.iter().enumerate() {
        if best.is_none_or(|b| s > scores[b]) {
            best = Some(i);
        }
    }
    best
}

/// Python's `string.punctuation`: the 32 ASCII punctuation characters only.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

fn python_word_runs() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // Python's `re` (str patterns) treats a character as a word character iff
    // `str.isalnum()` or it is "_"; `isalnum` = Unicode categories L* or N* (checked over all
    // code points by tools/check_pystr.py). The `regex` crate's own `\w` also counts marks
    // (M*) and connector punctuation, so `\b` is re-built from this class instead.
    RE.get_or_init(|| Regex::new(r"[\p{L}\p{N}_]+").expect("static regex"))
}

/// `re.sub(r'\b(a|an|the)\b', ' ', text)`: a maximal run of word characters that is exactly
/// `a`, `an` or `the` becomes one space (the `\b` on both sides forces a whole run).
fn remove_articles(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for m in python_word_runs().find_iter(text) {
        if matches!(m.as_str(), "a" | "an" | "the") {
            out.push_str(&text[last..m.start()]);
            out.push(' ');
            last = m.end();
        }
    }
    out.push_str(&text[last..]);
    out
}

/// SQuAD's `normalize_answer`: lower → remove ASCII punctuation → remove articles → collapse
/// whitespace (`" ".join(s.split())`), in that order.
pub fn normalize_answer(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punc: String = lower
        .chars()
        .filter(|c| !PUNCTUATION.contains(*c))
        .collect();
    let no_articles = remove_articles(&no_punc);
    py_split(&no_articles).collect::<Vec<_>>().join(" ")
}

/// Token F1 of one prediction against one gold answer (both normalized).
fn f1_one(prediction_tokens: &[&str], gold: &str) -> f64 {
    let gold_norm = normalize_answer(gold);
    let gold_tokens: Vec<&str> = py_split(&gold_norm).collect();
    let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
    for t in prediction_tokens {
        counts.entry(t).or_default().0 += 1;
    }
    for t in &gold_tokens {
        counts.entry(t).or_default().1 += 1;
    }
    // `sum((Counter(p) & Counter(g)).values())`; summing is order-independent.
    let num_same: usize = counts.values().map(|&(p, g)| p.min(g)).sum();
    if num_same == 0 {
        return 0.0;
    }
    let precision = num_same as f64 / prediction_tokens.len() as f64;
    let recall = num_same as f64 / gold_tokens.len() as f64;
    (2.0 * precision * recall) / (precision + recall)
}

/// MeZO's per-example F1: if the first gold is `"CANNOTANSWER"` or `"no answer"`, exact match
/// of the normalized strings (0 or 1); otherwise the max token F1 over all golds. No golds
/// gives 0 (MeZO would raise on `max([])`; the loaders reject such rows).
pub fn f1(prediction: &str, golds: &[String]) -> f64 {
    let Some(first) = golds.first() else {
        return 0.0;
    };
    let pred_norm = normalize_answer(prediction);
    if first == "CANNOTANSWER" || first == "no answer" {
        return f64::from(u8::from(normalize_answer(first) == pred_norm));
    }
    let pred_tokens: Vec<&str> = py_split(&pred_norm).collect();
    golds
        .iter()
        .map(|g| f1_one(&pred_tokens, g))
        .fold(f64::NEG_INFINITY, f64::max)
}

/// Exact match (MeZO's unused `"em"` metric): any gold equal to the prediction once normalized.
pub fn exact_match(prediction: &str, golds: &[String]) -> bool {
    let p = normalize_answer(prediction);
    golds.iter().any(|g| normalize_answer(g) == p)
}

/// Mean F1 over examples (`np.mean`); `None` for no examples.
pub fn mean_f1(predictions: &[String], golds: &[Vec<String>]) -> Option<f64> {
    let n = predictions.len().min(golds.len());
    if n == 0 {
        return None;
    }
    let total: f64 = predictions.iter().zip(golds).map(|(p, g)| f1(p, g)).sum();
    Some(total / n as f64)
}

/// transformers 4.28.1 `clean_up_tokenization` (applied by `decode`, whose
/// `clean_up_tokenization_spaces` defaults to True for OPT; docs/PROTOCOL.md 7.1): the same
/// ten `str.replace` calls in the same order. Apply to decoded generations before `.strip()`.
pub fn clean_up_tokenization(s: &str) -> String {
    s.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

/// What MeZO scores for a generation: `decode(ids, skip_special_tokens=True)` (with the
/// cleanup above) then Python `.strip()`. `decoded` is the decoder's raw text.
pub fn generation_answer(decoded: &str) -> String {
    crate::pystr::py_strip(&clean_up_tokenization(decoded)).to_string()
}
