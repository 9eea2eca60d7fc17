//! An example's scored log-probabilities must not depend on its batch neighbours when the
//! batch is padded to one agreed length: data-parallel training splits a batch into slices and
//! must reproduce the one-process losses bit for bit.

use candle_core::{DType, Device};
use zo_models::opt::{Config, Preset};
use zo_models::scoring::option_token_logprobs;
use zo_models::{Batch, OptModel};

fn cfg() -> Config {
    let mut c = Config::preset(Preset::Tiny);
    c.vocab_size = 512;
    c.max_position_embeddings = 128;
    c
}

/// Six sequences of different lengths (5 to 37 tokens) with 1 to 3 option tokens.
fn seqs() -> (Vec<Vec<u32>>, Vec<usize>) {
    let lens = [5usize, 37, 12, 20, 9, 30];
    let seqs = lens
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            std::iter::once(2)
                .chain((1..n).map(|t| ((i * 131 + t * 17) % 500 + 3) as u32))
                .collect()
        })
        .collect();
    (seqs, vec![1, 3, 2, 1, 2, 3])
}

fn bits(rows: &[Vec<f64>]) -> Vec<Vec<u64>> {
    rows.iter()
        .map(|r| r.iter().map(|x| x.to_bits()).collect())
        .collect()
}

fn logprobs(m: &OptModel, seqs: &[Vec<u32>], k: &[usize], len: usize) -> Vec<Vec<f64>> {
    let b = Batch::left_padded_to(seqs, k, 1, len).unwrap();
    option_token_logprobs(m, &b).unwrap()
}

#[test]
fn slices_padded_to_the_batch_length_give_the_full_batch_bits() {
    let m = OptModel::random(&cfg(), 7, DType::F32, &Device::Cpu).unwrap();
    let (s, k) = seqs();
    let full = Batch::left_padded(&s, &k, 1, Some(8)).unwrap();
    let len = full.seq_len;
    let whole = bits(&option_token_logprobs(&m, &full).unwrap());
    for parts in [2usize, 3, 6] {
        let n = s.len() / parts;
        let mut joined = Vec::new();
        for p in 0..parts {
            let r = p * n..(p + 1) * n;
            joined.extend(bits(&logprobs(&m, &s[r.clone()], &k[r], len)));
        }
        assert_eq!(joined, whole, "{parts} slices differ from the whole batch");
    }
}

/// The shared-prompt classification terms (each example's prompt once, its candidates after
/// it) of slices padded to the whole batch's [`shared_widths`] are the whole batch's terms,
/// bit for bit.
#[test]
fn shared_prompt_slices_padded_to_the_batch_widths_give_the_full_batch_bits() {
    use zo_models::scoring::{classification_losses_shared, shared_widths, Candidate};
    let m = OptModel::random(&cfg(), 7, DType::F32, &Device::Cpu).unwrap();
    let (s, _) = seqs();
    // Each sequence is a prompt; every example gets two candidates, of 1 and 2 option tokens
    // (a prompt pass into a KV cache, then a pass over the second token of the longer option),
    // then of 1 token each (the prompt pass alone, its last layer at the prompts' last rows).
    for two_token in [true, false] {
        let olen = |c: usize| if two_token { c + 1 } else { 1 };
        let cands: Vec<Vec<Vec<u32>>> = s
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (0..2)
                    .map(|c| {
                        let mut x = p.clone();
                        x.extend((0..olen(c)).map(|t| ((i * 7 + c * 3 + t) % 400 + 5) as u32));
                        x
                    })
                    .collect()
            })
            .collect();
        let examples: Vec<Vec<Candidate>> = cands
            .iter()
            .map(|cs| {
                cs.iter()
                    .enumerate()
                    .map(|(c, ids)| Candidate {
                        ids,
                        option_len: olen(c),
                    })
                    .collect()
            })
            .collect();
        let correct: Vec<usize> = (0..examples.len()).map(|i| i % 2).collect();
        let w = shared_widths(&examples);
        assert_eq!(w.rest, usize::from(two_token), "{w:?}");
        let whole = classification_losses_shared(&m, &examples, &correct, None).unwrap();
        assert!(whole.iter().all(|l| l.is_finite()), "{whole:?}");
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for parts in [2usize, 3, 6] {
            let n = examples.len() / parts;
            let mut joined = Vec::new();
            for p in 0..parts {
                let r = p * n..(p + 1) * n;
                joined.extend(
                    classification_losses_shared(&m, &examples[r.clone()], &correct[r], Some(w))
                        .unwrap(),
                );
            }
            assert_eq!(bits(&joined), bits(&whole), "{parts} slices differ");
        }
        // Widths smaller than a slice's own are refused.
        let small = zo_models::scoring::SharedWidths { prompt: 1, rest: 0 };
        assert!(classification_losses_shared(&m, &examples, &correct, Some(small)).is_err());
    }
}

/// On f32 CPU tensors a query's bits depend on the tokens up to it alone: an example's
/// candidates scored with their prompt shared (the prompt into a KV cache, the options after
/// it), scored whole in a padded batch, and scored alone in batches of their own, all give the
/// same bits, whatever the padding and wherever the lengths fall against the softmax's 16
/// lanes (candidates of 15 to 49 tokens).
#[test]
fn shared_unshared_and_alone_scores_are_the_same_bits() {
    use zo_models::scoring::{mean_option_logprobs, mean_option_logprobs_shared, Candidate};
    let m = OptModel::random(&cfg(), 9, DType::F32, &Device::Cpu).unwrap();
    let prompts = [12usize, 13, 29, 30, 44, 45];
    let tok = |i: usize, t: usize| ((i * 97 + t * 13) % 480 + 5) as u32;
    // Candidate c of example i: the prompt, then c + 2 option tokens (3 or 4).
    let cands: Vec<Vec<(Vec<u32>, usize)>> = prompts
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            (0..2)
                .map(|c| {
                    let olen = c + 2;
                    let ids = std::iter::once(2)
                        .chain((1..p).map(|t| tok(i, t)))
                        .chain((0..olen).map(|t| tok(i + 7 * c + 1, 100 + t)))
                        .collect();
                    (ids, olen)
                })
                .collect()
        })
        .collect();
    let examples: Vec<Vec<Candidate>> = cands
        .iter()
        .map(|cs| {
            cs.iter()
                .map(|(ids, olen)| Candidate {
                    ids,
                    option_len: *olen,
                })
                .collect()
        })
        .collect();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let shared = mean_option_logprobs_shared(&m, &examples).unwrap().scores;
    let flat: Vec<(Vec<u32>, usize)> = cands.iter().flatten().cloned().collect();
    let seqs: Vec<Vec<u32>> = flat.iter().map(|c| c.0.clone()).collect();
    let k: Vec<usize> = flat.iter().map(|c| c.1).collect();
    let batch = Batch::left_padded(&seqs, &k, 1, Some(8)).unwrap();
    let unshared = mean_option_logprobs(&m, &batch).unwrap();
    assert_eq!(
        bits(&shared),
        bits(&unshared),
        "shared against one padded batch"
    );
    let alone: Vec<f64> = flat
        .iter()
        .map(|(s, o)| {
            let b = Batch::left_padded(std::slice::from_ref(s), &[*o], 1, None).unwrap();
            mean_option_logprobs(&m, &b).unwrap()[0]
        })
        .collect();
    assert_eq!(
        bits(&alone),
        bits(&unshared),
        "each alone against the padded batch"
    );
}
