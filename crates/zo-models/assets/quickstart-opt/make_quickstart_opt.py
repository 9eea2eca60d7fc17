#!/usr/bin/env python3
"""Pre-trains the quickstart's small OPT (`builtin:quickstart-opt`) by backprop, so that the
quickstart fine-tunes a *pre-trained* model, as MeZO does.

Run from the repository root (CPU, one thread; about five minutes):
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch transformers
    /tmp/venv/bin/python crates/zo-models/assets/quickstart-opt/make_quickstart_opt.py
(made with torch 2.15.0, transformers 5.25.0). Writes next to this script:
  config.json, model.safetensors  `OPTForCausalLM.save_pretrained` (f32, tied lm_head);
  golden.json                     the model's logits on a few left-padded prompts, for the
                                  Rust test that checks zo's forward against transformers;
  corpus_stats.json               what the corpus holds and what the model knows before the
                                  quickstart (below).

The model: OPT with hidden 64, 2 layers, 4 heads, FFN 256, 128 positions, the built-in
2048-entry tokenizer (crates/zo-models/assets/tiny-tokenizer), pre-LN as facebook/opt-125m.

The corpus (unlabeled text, deterministic): review sentences drawn from the generator of the
quickstart rows (tasks/sst2/make_quickstart.py, `sentence`) and from a few more review forms
below, each followed by " It was" and one word. A third of the time that word is "good" after
a positive review and "bad" after a negative one; a third of the time it is what the review
talks about last ("acting", "plot", "film", …); the last third it is "great" or "terrible"
drawn at random, whatever the review says. So the model learns to read the sentiment (and
the topic) of a review, and its state after "It was" holds both; but the two words SST-2's
verbalizer uses, "terrible" and "great", carry no sentiment in its training data: zero-shot,
the quickstart's prompt "<review> It was" scores them alike (the two rows of the embedding
are set to their mean after training, see `main`), every dev example is a tie, and dev
accuracy is at chance (0.5: ties go to the first class, as MeZO's argmax does).
Fine-tuning has to tie great/terrible to the sentiment the model already computes, and not to
the topic it computes alongside, which zeroth-order steps do within a minute. No sentence of the quickstart's train or dev rows is in
the corpus.

Tokens: MeZO's encoding, BOS id 0 then the GPT-2 byte-level BPE of the text.
"""
import json
import os
import random
import sys

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import OPTConfig, OPTForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../../../.."))
sys.path.insert(0, os.path.join(ROOT, "tasks", "sst2"))
import make_quickstart as mq  # noqa: E402

SEED = 20240613
N_DOCS = 40000
STEPS = 3000
BATCH = 64
LR = 3e-3
TOK_DIR = os.path.join(ROOT, "crates", "zo-models", "assets", "tiny-tokenizer")
BOS, PAD = 0, 1

NOUNS = ["movie", "film", "little picture", "comedy", "drama", "story", "performance", "script"]
INTENS = ["", "", "really ", "very ", "truly ", "rather "]
TOPICS = {s.split()[-1] if s != "the director 's latest" else "latest" for s in mq.SUBJECTS} | {
    n.split()[-1] for n in NOUNS}


def extra_sentence(rng, positive):
    """Review forms beyond the quickstart generator's, so that each sentiment word is seen
    plain, negated and in contrasts."""
    adj = rng.choice(mq.POS_ADJ if positive else mq.NEG_ADJ)
    opp = rng.choice(mq.NEG_ADJ if positive else mq.POS_ADJ)
    subj = rng.choice(mq.SUBJECTS)
    noun = rng.choice(NOUNS)
    art = "an" if adj[0] in "aeiou" else "a"
    kind = rng.randrange(8)
    if kind == 0:
        s = f"{subj} is {rng.choice(INTENS)}{adj} ."
    elif kind == 1:
        s = f"{rng.choice(mq.PREFIX)}{art} {rng.choice(INTENS)}{adj} {noun} ."
    elif kind == 2:
        s = f"{subj} is n't {opp} ."
    elif kind == 3:
        s = f"{subj} is {adj} , and {mq.clause(rng, positive)} ."
    elif kind == 4:
        s = f"{mq.clause(rng, not positive)} , but {subj} is {adj} ."
    elif kind == 5:
        s = f"it 's {art} {adj} {noun} , and {subj} is n't {opp} at all ."
    elif kind == 6:
        s = f"{subj} is {opp} , but it 's {art} {adj} {noun} ."
    else:
        s = f"{rng.choice(mq.PREFIX)}{mq.clause(rng, positive)} ."
    return s + " "


def topic(s):
    """The last thing the review talks about ("the acting is dull ." → "acting")."""
    words = [w for w in s.split() if w in TOPICS]
    return words[-1] if words else "film"


def corpus(rng, exclude):
    docs = []
    while len(docs) < N_DOCS:
        positive = rng.random() < 0.5
        if rng.random() < 0.5:
            s = mq.sentence(rng, positive)
        else:
            s = extra_sentence(rng, positive)
        if s in exclude:
            continue
        r = rng.random()
        if r < 1 / 3:
            word = "good" if positive else "bad"
        elif r < 2 / 3:
            word = topic(s)
        else:
            word = "great" if r < 5 / 6 else "terrible"
        docs.append((s.strip() + " It was " + word, positive, word))
    return docs


def tokenizer():
    tok = Tokenizer(models.BPE.from_file(os.path.join(TOK_DIR, "vocab.json"),
                                         os.path.join(TOK_DIR, "merges.txt")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tok


def encode(tok, text):
    return [BOS] + tok.encode(text).ids


def read_rows(name):
    with open(os.path.join(ROOT, "tasks", "sst2", name), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def left_pad(seqs):
    width = max(len(s) for s in seqs)
    ids = [[PAD] * (width - len(s)) + s for s in seqs]
    mask = [[0] * (width - len(s)) + [1] * len(s) for s in seqs]
    return torch.tensor(ids), torch.tensor(mask)


@torch.no_grad()
def last_logits(model, seqs):
    out = []
    for i in range(0, len(seqs), 64):
        ids, mask = left_pad(seqs[i:i + 64])
        out.append(model(input_ids=ids, attention_mask=mask).logits[:, -1, :])
    return torch.cat(out)


def accuracy(model, tok, rows, pos_word, neg_word):
    """SST-2's prompt "<sentence> It was"; the label is the larger of the two words' logits
    (MeZO's classification rule for one-token options)."""
    seqs = [encode(tok, r["sentence"].strip() + " It was") for r in rows]
    logits = last_logits(model, seqs)
    p, n = tok.token_to_id("Ġ" + pos_word), tok.token_to_id("Ġ" + neg_word)
    pred = (logits[:, p] > logits[:, n]).long()
    return sum(int(pred[i]) == r["label"] for i, r in enumerate(rows)) / len(rows)


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    rng = random.Random(SEED)
    tok = tokenizer()
    train_rows, dev_rows = read_rows("quickstart_train.jsonl"), read_rows("quickstart_dev.jsonl")
    exclude = {r["sentence"] for r in train_rows + dev_rows}
    docs = corpus(rng, exclude)
    seqs = [encode(tok, text) for text, _, _ in docs]
    assert max(len(s) for s in seqs) <= 128

    cfg = OPTConfig(vocab_size=2048, hidden_size=64, num_hidden_layers=2, ffn_dim=256,
                    num_attention_heads=4, max_position_embeddings=128, word_embed_proj_dim=64,
                    do_layer_norm_before=True, dropout=0.0, attention_dropout=0.0,
                    activation_dropout=0.0, layerdrop=0.0, pad_token_id=PAD, bos_token_id=2,
                    eos_token_id=2, tie_word_embeddings=True)
    model = OPTForCausalLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / 100) * max(0.0, 1 - k / STEPS))
    order = list(range(len(seqs)))
    model.train()
    for step in range(STEPS):
        if step % (len(seqs) // BATCH) == 0:
            rng.shuffle(order)
        j = step % (len(seqs) // BATCH) * BATCH
        batch = [seqs[k] for k in order[j:j + BATCH]]
        width = max(len(s) for s in batch)
        ids = torch.tensor([s + [PAD] * (width - len(s)) for s in batch])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch])
        labels = ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == STEPS - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}", flush=True)
    model.eval()
    # Training leaves the rows of "great" and "terrible" slightly apart, in a direction that
    # happens to correlate with sentiment (zero-shot dev accuracy ~0.7 from the sign of a
    # ~1e-2 logit gap). Both words were trained on the same contexts; one row, their mean,
    # for both makes the model score them alike, as its data says.
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        g, t = tok.token_to_id("Ġgreat"), tok.token_to_id("Ġterrible")
        mean = (emb[g] + emb[t]) / 2
        emb[g] = mean
        emb[t] = mean

    model.save_pretrained(HERE, safe_serialization=True)
    os.remove(os.path.join(HERE, "generation_config.json"))
    # What zo reads back: the saved tensors, as the golden logits below are computed from them.
    reloaded = OPTForCausalLM.from_pretrained(HERE)
    reloaded.eval()
    assert set(load_file(os.path.join(HERE, "model.safetensors"))) >= {
        "model.decoder.embed_tokens.weight"}

    stats = {
        "corpus_docs": len(docs),
        "corpus_tokens": sum(len(s) for s in seqs),
        "corpus_words_after_it_was": {w: sum(d[2] == w for d in docs)
                                      for w in ["good", "bad", "great", "terrible"]},
        "corpus_topic_words": sorted(TOPICS),
        "quickstart_rows_in_corpus": 0,
        "parameters": sum(p.numel() for p in reloaded.parameters()),
        "final_pretraining_loss": round(loss.item(), 4),
        # Zero-shot on the quickstart rows with SST-2's verbalizer: near chance by design.
        "dev_accuracy_great_terrible": accuracy(reloaded, tok, dev_rows, "great", "terrible"),
        "train_accuracy_great_terrible": accuracy(reloaded, tok, train_rows, "great", "terrible"),
        # The same prompt read with the corpus's own sentiment words: what the model knows.
        "dev_accuracy_good_bad": accuracy(reloaded, tok, dev_rows, "good", "bad"),
        "train_accuracy_good_bad": accuracy(reloaded, tok, train_rows, "good", "bad"),
    }
    with open(os.path.join(HERE, "corpus_stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
        f.write("\n")
    print(json.dumps(stats, indent=1))

    # Golden logits: three prompts of different lengths, left-padded (pad id 1) as zo batches.
    prompts = [dev_rows[0]["sentence"].strip() + " It was",
               dev_rows[1]["sentence"].strip() + " It was great",
               "It was"]
    seqs_g = [encode(tok, p) for p in prompts]
    ids, mask = left_pad(seqs_g)
    with torch.no_grad():
        logits = reloaded(input_ids=ids, attention_mask=mask).logits
    words = ["Ġgreat", "Ġterrible", "Ġgood", "Ġbad"]
    cols = list(range(16)) + [tok.token_to_id(w) for w in words]
    golden = {
        "prompts": prompts,
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        # Full vocabulary rows at the last position of every prompt.
        "last_logits": [[round(x, 6) for x in row] for row in logits[:, -1, :].tolist()],
        # A few columns (ids 0-15, great, terrible, good, bad) at every real position.
        "columns": cols,
        "column_logits": [[[round(logits[b, t, c].item(), 6) for c in cols]
                           for t in range(ids.shape[1]) if mask[b, t]]
                          for b in range(ids.shape[0])],
    }
    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump(golden, f)
        f.write("\n")


if __name__ == "__main__":
    main()
