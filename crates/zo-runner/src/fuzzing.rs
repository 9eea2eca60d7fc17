//! One entry point per input format that `zo` reads from others: each takes arbitrary bytes,
//! lays them out as the files of that format in a scratch directory, and runs the same loaders
//! a run uses. Bad input must come back as an error, never a panic, a hang or an allocation
//! out of proportion to the input.
//!
//! The fuzz targets in `fuzz/` call [`run`] on libFuzzer's inputs; the `fuzz_corpus` test
//! replays every file of `fuzz/corpus/` and `fuzz/regressions/` through it on the stable
//! toolchain, so a regression fails `cargo test`.
//!
//! Inputs of several files are split on [`SEPARATOR`] (a line `%%`): the parts are, in order,
//! the files named in each function's docs; missing parts are empty files.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use candle_core::{DType, Device};
use zo_core::trainer::{Budget, Trainer, TrainerConfig};
use zo_models::resnet::{Depth, ResNet, ResNetConfig, Stem};
use zo_models::tokenizer::Tokenizer;
use zo_models::OptModel;
use zo_tasks::{BadRowPolicy, Task};

/// The fuzz targets, one per input format (the names of `fuzz/fuzz_targets/*.rs`).
pub const TARGETS: [&str; 6] = [
    "opt_model",
    "pytorch_bin",
    "tokenizer",
    "task_rows",
    "config",
    "resume_state",
];

/// Separates the files of a multi-file input.
pub const SEPARATOR: &[u8] = b"\n%%\n";

/// Runs `target`'s entry point on `data` in `scratch` (emptied first). The loaders' errors are
/// returned; a panic is a bug.
pub fn run(target: &str, scratch: &Path, data: &[u8]) -> Result<()> {
    reset(scratch)?;
    match target {
        "opt_model" => opt_model(scratch, data),
        "pytorch_bin" => pytorch_bin(scratch, data),
        "tokenizer" => tokenizer(scratch, data),
        "task_rows" => task_rows(scratch, data),
        "config" => config(scratch, data),
        "resume_state" => resume_state(scratch, data),
        other => Err(anyhow!("no fuzz target `{other}`")),
    }
}

/// A scratch directory of this process for `target` (under `/dev/shm` where it exists: the
/// loaders read files, and memory is faster than disk).
pub fn scratch(target: &str) -> PathBuf {
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("zo-fuzz-{target}-{}", std::process::id()))
}

fn reset(scratch: &Path) -> Result<()> {
    if scratch.exists() {
        std::fs::remove_dir_all(scratch)?;
    }
    std::fs::create_dir_all(scratch)?;
    Ok(())
}

/// The first `n` parts of `data` split on [`SEPARATOR`] (the last part keeps the rest).
pub fn split_parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::with_capacity(n);
    let mut rest = data;
    while parts.len() + 1 < n {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    while parts.len() < n {
        parts.push(&[]);
    }
    parts
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(p, bytes)?;
    Ok(())
}

/// `config.json` %% `model.safetensors`: the OPT loader on a model directory, then one forward
/// pass of two tokens when the model loads.
pub fn opt_model(scratch: &Path, data: &[u8]) -> Result<()> {
    let p = split_parts(data, 2);
    write(scratch, "config.json", p[0])?;
    write(scratch, "model.safetensors", p[1])?;
    let m = OptModel::from_dir(scratch, DType::F32, &Device::Cpu)?;
    let vocab = m.config().vocab_size as u32;
    m.logits(&[0, vocab.saturating_sub(1)], &[1, 1], 1, 2)?;
    Ok(())
}

/// A tiny OPT's `config.json`, for loading a fuzzed `pytorch_model.bin`.
const TINY_OPT_CONFIG: &str = r#"{"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1,
"ffn_dim": 8, "max_position_embeddings": 8, "num_attention_heads": 1}"#;

/// `pytorch_model.bin` (a torch zip archive, or a bare pickle): the OPT loader on it beside a
/// tiny `config.json`, and the ResNet loader on it as a `.bin` checkpoint.
pub fn pytorch_bin(scratch: &Path, data: &[u8]) -> Result<()> {
    write(scratch, "config.json", TINY_OPT_CONFIG.as_bytes())?;
    write(scratch, "pytorch_model.bin", data)?;
    let opt = OptModel::from_dir(scratch, DType::F32, &Device::Cpu);
    let cfg = ResNetConfig {
        base_width: 2,
        ..ResNetConfig::new(Depth::R18, 2, Stem::Cifar)
    };
    let resnet = ResNet::from_checkpoint(
        &scratch.join("pytorch_model.bin"),
        cfg,
        0,
        DType::F32,
        &Device::Cpu,
    );
    opt?;
    resnet?;
    Ok(())
}

/// `vocab.json` %% `merges.txt` %% `tokenizer_config.json`: the tokenizer of a model
/// directory, then encoding and decoding a few strings.
pub fn tokenizer(scratch: &Path, data: &[u8]) -> Result<()> {
    let p = split_parts(data, 3);
    write(scratch, "vocab.json", p[0])?;
    write(scratch, "merges.txt", p[1])?;
    write(scratch, "tokenizer_config.json", p[2])?;
    let tok = Tokenizer::from_dir(scratch)?;
    for text in ["Hello world", "<s> a</s><pad>\n", "ünïcödé 😀 \t x"] {
        let ids = tok.encode(text)?;
        tok.decode(&ids, true, true)?;
        tok.decode(&ids, false, false)?;
    }
    tok.special_ids();
    let _ = tok.newline_id();
    Ok(())
}

/// One byte choosing the task (`Task::ALL[b % 6]`) and the format (`(b / 6) % 2`: JSONL,
/// parquet), then the rows file: the task's row reader and schema, MeZO's prompt rendering and
/// encoding with the built-in tokenizer for every row that validates.
pub fn task_rows(scratch: &Path, data: &[u8]) -> Result<()> {
    let Some((&sel, rows)) = data.split_first() else {
        return Ok(());
    };
    let task = Task::ALL[usize::from(sel) % Task::ALL.len()];
    let name = if (sel / 6) % 2 == 0 {
        "rows.jsonl"
    } else {
        "rows.parquet"
    };
    write(scratch, name, rows)?;
    let loaded = zo_tasks::load_files(task, &[scratch.join(name)], BadRowPolicy::Skip)?;
    let tok = Tokenizer::builtin_tiny();
    let enc = crate::pipeline::data::encoder(&tok);
    let spec = task.spec();
    for ex in loaded.examples.iter().take(16) {
        let r = zo_tasks::render(ex)?;
        zo_tasks::encode_example(&enc, &r, 64)?;
        zo_tasks::encode_train(&enc, &r, spec.objective, 64)?;
    }
    Ok(())
}

/// A TOML config file %% `--set` assignments, one per line: the settings' layering and
/// validation, then the resolved settings written as `run.toml` and read back (a resumed run
/// reads them so).
pub fn config(scratch: &Path, data: &[u8]) -> Result<()> {
    let p = split_parts(data, 2);
    let path = scratch.join("config.toml");
    std::fs::write(&path, p[0])?;
    let sets: Vec<String> = String::from_utf8_lossy(p[1])
        .lines()
        .filter(|l| !l.is_empty())
        .take(32)
        .map(str::to_string)
        .collect();
    let settings = crate::settings::resolve(&crate::settings::Sources {
        base: &[("built-in defaults", crate::settings::DEFAULTS)],
        config_file: Some(&path),
        sets: &sets,
    })?;
    let text = settings.to_toml()?;
    std::fs::write(scratch.join("run.toml"), &text)?;
    let back = crate::rundir::read_settings(scratch)
        .map_err(|e| anyhow!("resolved settings do not read back: {e:#}\n{text}"))?;
    let again = back.to_toml()?;
    assert_eq!(text, again, "run.toml does not round-trip");
    Ok(())
}

/// `checkpoint/state.json` %% `trajectory.jsonl` %% `metrics.jsonl`: a run directory's
/// resume state: the checkpoint state parsed and handed to a trainer of its method, then the
/// logs cut back to the checkpoint's step as `--resume` does.
pub fn resume_state(scratch: &Path, data: &[u8]) -> Result<()> {
    let p = split_parts(data, 3);
    write(scratch, "checkpoint/state.json", p[0])?;
    write(scratch, "trajectory.jsonl", p[1])?;
    write(scratch, "metrics.jsonl", p[2])?;
    let state = crate::rundir::read_checkpoint_state(scratch)?;
    let t = &state.trainer;
    let settings = crate::settings::resolve(&crate::settings::Sources {
        base: &[("built-in defaults", crate::settings::DEFAULTS)],
        config_file: None,
        sets: &[format!(
            "optimizer.method = {}",
            toml::Value::String(t.method.clone())
        )],
    })?;
    let optimizer = settings.optimizer.build()?;
    let budget = Budget::Steps(t.total_steps.max(1));
    Trainer::new(TrainerConfig::new(t.seed, budget), optimizer).resume(t.clone())?;
    crate::rundir::reopen_logs(scratch, t)?;
    Ok(())
}
