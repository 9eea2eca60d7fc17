#!/usr/bin/env python3
"""Trains the built-in tiny tokenizer (`Tokenizer::builtin_tiny()`): a GPT-2/OPT-style
byte-level BPE with ~2048 entries and OPT's special tokens at OPT's ids
(<s>=0, <pad>=1, </s>=2, <unk>=3), so the no-network quickstart can tokenize English.

Run from the repository root:
    $VENV/bin/python crates/zo-models/assets/tiny-tokenizer/make_tiny_tokenizer.py
(Python `tokenizers` 0.23.x, as installed with transformers 5.23.0.)
Writes vocab.json and merges.txt next to this script, and tokenizer_golden.json under
crates/zo-models/tests/fixtures/ (encodings by transformers' GPT2Tokenizer -- the class
MeZO uses; in transformers 5 it is backed by the Rust `tokenizers` library, since the
pure-Python one was removed -- and decodings with clean_up_tokenization_spaces=True, forced as
transformers 4.28.1 did by default).

Corpus (deterministic, all in this repository): every string field of tasks/*/*.jsonl
(SST-2 quickstart rows and the six tasks' fixture rows), MeZO's prompt templates, and
sentences drawn with random.Random(SEED) from the word list below. The BPE trainer is
deterministic for a given corpus; the corpus order is fixed (sorted file names, file order).
The shipped vocab.json and merges.txt were trained when tasks/sst2/quickstart_dev.jsonl held
60 rows (its first 60 draws, now 60 of its 200 rows); `QUICKSTART_DEV_ROWS` keeps the corpus
to those rows, so the files are reproduced.
"""
import glob
import json
import os
import random

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../../../.."))
SEED = 20240612
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]

TEMPLATES = [
    "It was great", "It was terrible", "Does this mean that \"{}\" is true? Yes or No?\nYes",
    "Does this mean that \"{}\" is true? Yes or No?\nNo", "Title: {}\nContext: {}\nQuestion: {}\nAnswer:",
    "Passage: {}\nQuestion: {}\nAnswer:", "so", "because", "\n\n", "- ", "@highlight",
]

WORDS = """the of and to a in is it you that he was for on are with as I his they be at one have this
from or had by hot word but what some we can out other were all there when up use your how said an
each she which do their time if will way about many then them write would like so these her long
make thing see him two has look more day could go come did number sound no most people my over know
water than call first who may down side been now find any new work part take get place made live
where after back little only round man year came show every good me give our under name very
through just form sentence great think say help low line differ turn cause much mean before move
right boy old too same tell does set three want air well also play small end put home read hand
port large spell add even land here must big high such follow act why ask men change went light
kind off need house picture try us again animal point mother world near build self earth father
head stand own page should country found answer school grow study still learn plant cover food sun
four between state keep eye never last let thought city tree cross farm hard start might story saw
far sea draw left late run don't while press close night real life few north open seem together
next white children begin got walk example ease paper group always music those both mark often
letter until mile river car feet care second book carry took science eat room friend began idea
fish mountain stop once base hear horse cut sure watch color face wood main enough plain girl usual
young ready above ever red list though feel talk bird soon body dog family direct pose leave song
measure door product black short numeral class wind question happen complete ship area half rock
order fire south problem piece told knew pass since top whole king space heard best hour better
true during hundred five remember step early hold west ground interest reach fast verb sing listen
six table travel less morning ten simple several vowel toward war lay against pattern slow center
love person money serve appear road map rain rule govern pull cold notice voice unit power town
fine certain fly fall lead cry dark machine note wait plan figure star box noun field rest correct
able pound done beauty drive stood contain front teach week final gave green oh quick develop ocean
warm free minute strong special mind behind clear tail produce fact street inch multiply nothing
course stay wheel full force blue object decide surface deep moon island foot system busy test
record boat common gold possible plane stead dry wonder laugh thousand ago ran check game shape
equate miss brought heat snow tire bring yes distant fill east paint language among film movie
actor director performance character audience scene plot script funny boring brilliant awful
wonderful terrible charming dull beautiful ugly moving stupid clever smart mess triumph""".split()
PUNCT = [" .", " ,", " !", " ?", " 's", " n't", " 're", " 've", " 'm", "."]


QUICKSTART_DEV_ROWS = 60


def rows_of(path):
    with open(path, encoding="utf-8") as f:
        rows = list(f)
    if path.endswith(os.path.join("sst2", "quickstart_dev.jsonl")):
        # The file as it was with 60 rows: make_quickstart.py's generator asked for 60.
        import importlib.util
        spec = importlib.util.spec_from_file_location(
            "make_quickstart", os.path.join(os.path.dirname(path), "make_quickstart.py"))
        mq = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mq)
        rng = mq.random.Random(20240611)
        seen = set()
        mq.build(rng, 240, seen)
        old = mq.build(rng, QUICKSTART_DEV_ROWS, seen)
        rows = [json.dumps(r) + "\n" for r in old]
    return rows


def corpus():
    lines = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tasks", "*", "*.jsonl"))):
        for row in rows_of(path):
            row = row.strip()
            if not row:
                continue
            obj = json.loads(row)
            stack = [obj]
            while stack:
                v = stack.pop()
                if isinstance(v, str):
                    lines.append(v)
                elif isinstance(v, dict):
                    stack.extend(v[k] for k in sorted(v))
                elif isinstance(v, list):
                    stack.extend(v)
    lines.extend(TEMPLATES)
    rng = random.Random(SEED)
    for _ in range(6000):
        n = rng.randint(4, 16)
        words = [rng.choice(WORDS) for _ in range(n)]
        if rng.random() < 0.5:
            words[0] = words[0].capitalize()
        lines.append(" ".join(words) + rng.choice(PUNCT))
    return lines


def main():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2048, min_frequency=2, special_tokens=SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    lines = corpus()
    tok.train_from_iterator(lines, trainer=trainer)
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    tok.model.save(HERE)  # vocab.json + merges.txt
    print(json.dumps({"corpus_lines": len(lines), "vocab_size": tok.get_vocab_size()}))
    write_golden()


def write_golden():
    """Encodings/decodings by transformers' GPT2Tokenizer over the files just written."""
    from transformers import GPT2Tokenizer

    slow = GPT2Tokenizer(os.path.join(HERE, "vocab.json"), os.path.join(HERE, "merges.txt"),
                         unk_token="</s>", bos_token="</s>", eos_token="</s>", pad_token="<pad>",
                         add_bos_token=True,
                         # transformers 5 skips the cleanup for BPE unless forced; MeZO's 4.28.1
                         # applied it (docs/PROTOCOL.md 7.1).
                         clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output=True)
    texts = [
        "it 's a charming and often affecting journey . It was great",
        "the plot is a tired , leaden mess It was terrible",
        "Premise here.\nDoes this mean that \"x\" is true? Yes or No?\nYes",
        "Title: Super_Bowl_50\nContext: Hello  world\nQuestion: who?\nAnswer: Denver Broncos\n",
        "a witty , seductive tale of amélie 's café and its naïve patrons . ",
        "emoji 🙂 and tabs\tand  double  spaces",
        "",
        "\n",
    ]
    rows = []
    for t in texts:
        hf_ids = slow.encode(t)  # BOS </s> = 2 (HF's OPT default)
        plain = slow.encode(t, add_special_tokens=False)
        rows.append({"text": t, "ids_hf_bos": hf_ids, "ids_plain": plain})
    decode_cases = []
    for t in ["John 's car is n't here .", "Yes ! is it ? fine , ok", " I 'm sure they 're done and we 've won"]:
        ids = [0] + slow.encode(t, add_special_tokens=False) + [2, 1]
        decode_cases.append({
            "ids": ids,
            # MeZO's decode: bos_token_id = 0 makes <s> special too; skip_special_tokens=True.
            "skip_special_clean_up": slow.decode(ids[1:-2], skip_special_tokens=True,
                                                 clean_up_tokenization_spaces=True),
            "no_clean_up": slow.decode(ids[1:-2], skip_special_tokens=True,
                                       clean_up_tokenization_spaces=False),
        })
    newline = slow.encode("\n", add_special_tokens=False)[-1]
    out = {"texts": rows, "decode": decode_cases, "newline_id": newline}
    path = os.path.join(ROOT, "crates/zo-models/tests/fixtures/tokenizer_golden.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
