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
