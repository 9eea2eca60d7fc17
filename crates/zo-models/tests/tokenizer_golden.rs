//! The tokenizer against transformers' GPT2Tokenizer on the built-in tiny vocabulary
//! (goldens by assets/tiny-tokenizer/make_tiny_tokenizer.py): encodings with HF's BOS (id 2)
//! and without special tokens, decoding with skip_special_tokens and the 4.28.1
//! clean_up_tokenization_spaces rule, and the "\n" stop id.

mod common;

use common::*;
use zo_models::tokenizer::{Bos, Tokenizer};

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn encodings_match_transformers() {
    let g = read_json(&fixture("tokenizer_golden.json"));
    let hf = Tokenizer::builtin_tiny().with_bos(Bos::Hf);
    let mezo = Tokenizer::builtin_tiny();
    for row in g["texts"].as_array().unwrap() {
        let text = row["text"].as_str().unwrap();
        assert_eq!(
            hf.encode(text).unwrap(),
            ids(&row["ids_hf_bos"]),
            "{text:?}"
        );
        let plain = ids(&row["ids_plain"]);
        assert_eq!(hf.encode_plain(text).unwrap(), plain, "{text:?}");
        // MeZO: same BPE after <s> (id 0).
        let m = mezo.encode(text).unwrap();
        assert_eq!(m[0], 0);
        assert_eq!(&m[1..], plain.as_slice());
        // decode(encode(x)) == x for byte-level BPE.
        assert_eq!(hf.decode(&plain, false, false).unwrap(), text);
    }
    assert_eq!(
        hf.newline_id().unwrap() as u64,
        g["newline_id"].as_u64().unwrap()
    );
}

#[test]
fn decoding_matches_transformers() {
    let g = read_json(&fixture("tokenizer_golden.json"));
    let t = Tokenizer::builtin_tiny();
    for case in g["decode"].as_array().unwrap() {
        let v = ids(&case["ids"]);
        assert_eq!(
            t.decode(&v, true, true).unwrap(),
            case["skip_special_clean_up"].as_str().unwrap()
        );
        assert_eq!(
            t.decode(&v, true, false).unwrap(),
            case["no_clean_up"].as_str().unwrap()
        );
        // Without skipping, the special tokens come out as text.
        let raw = t.decode(&v, false, false).unwrap();
        assert!(
            raw.starts_with("<s>") && raw.ends_with("</s><pad>"),
            "{raw:?}"
        );
    }
}

#[test]
fn tokenizer_files_load_from_a_directory() {
    let d = tempfile::tempdir().unwrap();
    let t = Tokenizer::builtin_tiny();
    for (name, bytes) in t.files() {
        std::fs::write(d.path().join(name), bytes).unwrap();
    }
    let t2 = Tokenizer::from_dir(d.path()).unwrap();
    assert_eq!(t2.vocab_size(), 2048);
    assert_eq!(
        t2.encode("It was great").unwrap(),
        t.encode("It was great").unwrap()
    );
    let e = Tokenizer::from_dir(&d.path().join("nope")).unwrap_err();
    assert!(e.to_string().contains("no tokenizer.json"), "{e}");
}
