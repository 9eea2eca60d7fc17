#!/usr/bin/env python3
"""Golden values for tests/metrics.rs, computed with MeZO's own metric code.

`normalize_answer` and the F1 / EM loops below are MeZO `large_models/metrics.py` (commit
552cb1b) verbatim in behaviour; `clean_up_tokenization` is transformers 4.28.1
`PreTrainedTokenizerBase.clean_up_tokenization`. Plain CPython 3 only (no packages).
Writes tests/data/metrics_cases.json atomically. Run: python3 tools/metrics_reference.py
"""
import json
import os
import re
import string
from collections import Counter


def normalize_answer(s):
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1(pred, golds):
    if golds[0] == "CANNOTANSWER" or golds[0] == "no answer":
        return float(int(normalize_answer(golds[0]) == normalize_answer(pred)))
    all_f1s = []
    for ans in golds:
        prediction_tokens = normalize_answer(pred).split()
        ground_truth_tokens = normalize_answer(ans).split()
        common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
        num_same = sum(common.values())
        if num_same == 0:
            all_f1s.append(0)
        else:
            precision = 1.0 * num_same / len(prediction_tokens)
            recall = 1.0 * num_same / len(ground_truth_tokens)
            all_f1s.append((2 * precision * recall) / (precision + recall))
    return float(max(all_f1s))


def em(pred, golds):
    return any(normalize_answer(a) == normalize_answer(pred) for a in golds)


def clean_up_tokenization(out_string):
    return (out_string.replace(" .", ".").replace(" ?", "?").replace(" !", "!")
            .replace(" ,", ",").replace(" ' ", "'").replace(" n't", "n't")
            .replace(" 'm", "'m").replace(" 's", "'s").replace(" 've", "'ve")
            .replace(" 're", "'re"))


NORMALIZE = [
    "The Cat", "a an the", "  The   quick\tbrown\u001ffox ", "Théâtre", "l'été",
    "ÀN APPLE", "the_cat", "the-cat", "\u201cthe\u201d cat", "naïve the",
    "a\u0301 b", "A.B.C.", "ΣΑΣ the", "İstanbul", "theatre", "an", "", "THE END!",
    "x\u00a0the\u3000y", "1,000 the 2", "the\u200bcat", "\u203fthe", "the\u00b2",
    "Ⓐ the", "an\u0301", "«the»", "the\u0085end", "x\u001cthe\u001dy", "théthe the",
]
F1 = [
    ("John 's car", ["John 's car"]),
    ("John's car", ["John 's car"]),
    ("the the cat cat", ["cat the cat"]),
    ("cat cat cat", ["cat dog cat"]),
    ("", ["Denver"]),
    ("Denver", [""]),
    ("Denver Broncos", ["Denver Broncos", "Broncos", "the Denver Broncos team"]),
    ("Broncos of Denver", ["Carolina Panthers", "Denver Broncos"]),
    ("no answer", ["no answer"]),
    ("No answer.", ["no answer", "x"]),
    ("something", ["CANNOTANSWER", "something"]),
    ("", ["CANNOTANSWER"]),
    ("a", ["the"]),
    ("Zürich, Switzerland", ["zürich"]),
    ("CHF 1.2 billion", ["about $1.3 billion", "CHF 1.2 billion"]),
    ("1.2 billion", ["CHF 1.2 billion"]),
    ("Münster and Osnabrück", ["Münster", "Osnabrück"]),
    ("in France", ["France", "France.", "in France"]),
    ("the\u001fcat sat", ["cat"]),
]
CLEANUP = [
    "John 's car", "I do n't know .", "he said ' hi ' , then left !", "we 're here ?",
    "you 've I 'm", " Denver Broncos\n", "a ?b .c", "x  .", "",
]

cases = {
    "normalize": [{"input": s, "expected": normalize_answer(s)} for s in NORMALIZE],
    "f1": [{"prediction": p, "golds": g, "f1": f1(p, g), "em": em(p, g)} for p, g in F1],
    "cleanup": [{"input": s, "expected": clean_up_tokenization(s),
                 "answer": clean_up_tokenization(s).strip()} for s in CLEANUP],
}
here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "tests", "data", "metrics_cases.json")
with open(out + ".tmp", "w", encoding="utf-8") as f:
    json.dump(cases, f, ensure_ascii=False, indent=1)
    f.write("\n")
os.replace(out + ".tmp", out)
print("wrote", out)
