//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use zo_tasks::{load_files, BadRowPolicy, Example, Task, TextEncoder};

/// A toy tokenizer: BOS (id 0) then one id per UTF-8 byte (`byte + 4`), like MeZO's
/// `tokenizer.encode` with its BOS. Option lengths come out in bytes.
pub struct ByteEncoder;

pub const BOS: u32 = 0;

impl TextEncoder for ByteEncoder {
    fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        Ok(std::iter::once(BOS)
            .chain(text.bytes().map(|b| u32::from(b) + 4))
            .collect())
    }
}

/// Bytes back from ids (BOS dropped).
pub fn decode(ids: &[u32]) -> String {
    let bytes: Vec<u8> = ids
        .iter()
        .filter(|&&i| i != BOS)
        .map(|&i| (i - 4) as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

pub fn fixture(task: Task, ext: &str) -> PathBuf {
    task.source_dir().join(format!("fixture.{ext}"))
}

pub fn load_fixture(task: Task, ext: &str) -> Vec<Example> {
    load_files(task, &[fixture(task, ext)], BadRowPolicy::Fail)
        .unwrap()
        .examples
}
