//! Every malformed checkpoint gives its named error (naming the file and, where there is one,
//! the tensor), never a panic. Each test breaks one thing in a copy of a good fixture.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::*;
use zo_models::{Error, OptModel};

/// A temp copy of fixture `name` (only config.json + the weight files).
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let src = fixture(name);
    let dst = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let n = p.file_name().unwrap().to_str().unwrap().to_string();
        if n != "golden.json" {
            std::fs::copy(&p, dst.path().join(n)).unwrap();
        }
    }
    dst
}

fn load(dir: &Path) -> Error {
    OptModel::from_dir(dir, DType::F32, &Device::Cpu).unwrap_err()
}

/// Rewrites `model.safetensors` of `dir` through `edit` (candle's writer: no metadata, fine for
/// our loader).
fn edit_safetensors(dir: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> PathBuf {
    let p = dir.join("model.safetensors");
    let mut m = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
    edit(&mut m);
    candle_core::safetensors::save(&m, &p).unwrap();
    p
}

#[test]
fn missing_directory() {
    let e = load(Path::new("/nonexistent/zo-model"));
    assert!(
        matches!(&e, Error::Io { path, .. } if path.ends_with("zo-model")),
        "{e}"
    );
}

#[test]
fn missing_config() {
    let d = copy_fixture("postln");
    std::fs::remove_file(d.path().join("config.json")).unwrap();
    let e = load(d.path());
    assert!(
        matches!(&e, Error::Io { path, .. } if path.ends_with("config.json")),
        "{e}"
    );
}

#[test]
fn bad_config_json() {
    let d = copy_fixture("postln");
    std::fs::write(d.path().join("config.json"), "{\"vocab_size\": 256,").unwrap();
    let e = load(d.path());
    assert!(
        matches!(&e, Error::Json { path, .. } if path.ends_with("config.json")),
        "{e}"
    );
}

#[test]
fn invalid_config_value() {
    let d = copy_fixture("postln");
    let p = d.path().join("config.json");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"num_attention_heads\": 4", "\"num_attention_heads\": 5");
    std::fs::write(&p, text).unwrap();
    let e = load(d.path());
    assert!(
        matches!(&e, Error::Config { reason, .. } if reason.contains("num_attention_heads")),
        "{e}"
    );
}

#[test]
fn no_weight_files() {
    let d = copy_fixture("postln");
    std::fs::remove_file(d.path().join("model.safetensors")).unwrap();
    let e = load(d.path());
    assert!(matches!(&e, Error::NoWeights { .. }), "{e}");
}

#[test]
fn missing_tensor() {
    let d = copy_fixture("postln");
    edit_safetensors(d.path(), |m| {
        m.remove("model.decoder.layers.1.fc2.bias");
    });
    let e = load(d.path());
    assert!(
        matches!(&e, Error::MissingTensor { tensor, .. } if tensor == "model.decoder.layers.1.fc2.bias"),
        "{e}"
    );
}

#[test]
fn wrong_shape() {
    let d = copy_fixture("postln");
    let p = edit_safetensors(d.path(), |m| {
        m.insert(
            "model.decoder.layers.0.fc1.weight".into(),
            Tensor::zeros((64, 31), DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let e = load(d.path());
    assert!(
        matches!(&e, Error::ShapeMismatch { path, tensor, got, .. }
            if path == &p && tensor == "model.decoder.layers.0.fc1.weight" && got == &vec![64, 31]),
        "{e}"
    );
}

#[test]
fn unexpected_tensor() {
    let d = copy_fixture("postln");
    edit_safetensors(d.path(), |m| {
        m.insert(
            "model.decoder.layers.7.fc1.bias".into(),
            Tensor::zeros(64, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let e = load(d.path());
    assert!(
        matches!(&e, Error::UnexpectedTensor { tensor, .. } if tensor == "model.decoder.layers.7.fc1.bias"),
        "{e}"
    );
}

#[test]
fn duplicate_tensor_under_both_prefixes() {
    let d = copy_fixture("postln");
    edit_safetensors(d.path(), |m| {
        let t = m["model.decoder.embed_tokens.weight"].clone();
        m.insert("decoder.embed_tokens.weight".into(), t);
    });
    let e = load(d.path());
    assert!(
        matches!(&e, Error::Checkpoint { reason, .. } if reason.contains("duplicates")),
        "{e}"
    );
}

#[test]
fn truncated_safetensors() {
    let d = copy_fixture("postln");
    let p = d.path().join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = load(d.path());
    assert!(
        matches!(&e, Error::Checkpoint { path, .. } if path == &p),
        "{e}"
    );
}

#[test]
fn garbage_safetensors_header() {
    let d = copy_fixture("postln");
    let p = d.path().join("model.safetensors");
    std::fs::write(&p, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}").unwrap();
    let e = load(d.path());
    assert!(
        matches!(&e, Error::Checkpoint { path, .. } if path == &p),
        "{e}"
    );
}

#[test]
fn truncated_pytorch_bin() {
    let d = copy_fixture("nobias-bin");
    let p = d.path().join("pytorch_model.bin");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let e = load(d.path());
    assert!(
        matches!(&e, Error::Checkpoint { path, .. } if path == &p),
        "{e}"
    );
}

#[test]
fn pytorch_bin_that_is_not_a_zip() {
    let d = copy_fixture("nobias-bin");
    let p = d.path().join("pytorch_model.bin");
    std::fs::write(&p, b"this is not a torch archive").unwrap();
    let e = load(d.path());
    assert!(
        matches!(&e, Error::Checkpoint { path, .. } if path == &p),
        "{e}"
    );
}

#[test]
fn bad_index_json() {
    let d = copy_fixture("postln-sharded");
    let p = d.path().join("model.safetensors.index.json");
    std::fs::write(&p, "{\"weight_map\": [1, 2]}").unwrap();
    let e = load(d.path());
    assert!(
        matches!(&e, Error::Json { path, reason } if path == &p && reason.contains("weight_map")),
        "{e}"
    );
}

#[test]
fn index_names_a_missing_shard() {
    let d = copy_fixture("nobias-bin-sharded");
    let shard = d.path().join("pytorch_model-00002-of-00002.bin");
    std::fs::remove_file(&shard).unwrap();
    let e = load(d.path());
    assert!(
        matches!(&e, Error::Io { path, .. } if path == &shard),
        "{e}"
    );
}

#[test]
fn index_with_a_path_outside_the_directory() {
    let d = copy_fixture("postln-sharded");
    let p = d.path().join("model.safetensors.index.json");
    std::fs::write(&p, r#"{"weight_map": {"a": "../../etc/passwd"}}"#).unwrap();
    let e = load(d.path());
    assert!(matches!(&e, Error::Json { .. }), "{e}");
}
