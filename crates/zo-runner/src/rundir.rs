//! The run directory: atomic file writes and the append-only `metrics.jsonl`.
//!
//! Layout (see README): `run.toml` (resolved config + versions), `metrics.jsonl` (one JSON object
//! per line: `"kind": "step"` or `"kind": "eval"`), `trajectory.jsonl` (every weight sweep, to
//! replay the fine-tune onto the base model), `checkpoint/` (latest, HF layout + `state.json`)
//! and `best/` (lowest dev loss, MeZO's rule).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Writes `bytes` to `path` atomically: a temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("{}: cannot write", path.display()))
}

/// An append-only JSON-lines file whose every line is flushed as it is written, so a killed run
/// leaves at most one partial last line (dropped by [`JsonlWriter::open_truncated`] on resume).
pub struct JsonlWriter {
    path: PathBuf,
    file: File,
}

impl JsonlWriter {
    /// Creates (or empties) the file.
    pub fn create(path: &Path) -> Result<Self> {
        let file =
            File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Re-opens an existing file for a resumed run, keeping only the complete lines for which
    /// `keep` returns true (e.g. step lines up to the checkpoint's step); the rest is cut off.
    pub fn open_truncated(
        path: &Path,
        mut keep: impl FnMut(&serde_json::Value) -> bool,
    ) -> Result<Self> {
        let mut kept = Vec::new();
        if path.exists() {
            let f = File::open(path).with_context(|| format!("{}: cannot read", path.display()))?;
            for line in BufReader::new(f).lines() {
                let line = line.with_context(|| format!("{}: cannot read", path.display()))?;
                match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) if keep(&v) => {
                        kept.extend_from_slice(line.as_bytes());
                        kept.push(b'\n');
                    }
                    _ => break, // a torn or later line: everything from here on is redone
                }
            }
        }
        write_atomic(path, &kept)?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("{}: cannot open for appending", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one JSON line and flushes it.
    pub fn write<T: serde::Serialize>(&mut self, value: &T) -> Result<()> {
        let mut line = serde_json::to_vec(value)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|_| self.file.flush())
            .with_context(|| format!("{}: cannot append", self.path.display()))
    }
}

/// Reads every JSON line of a file (blank lines skipped); a malformed line is an error naming
/// the file and line number.
pub fn read_jsonl(path: &Path) -> Result<Vec<serde_json::Value>> {
    let f = File::open(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}: cannot read", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: invalid JSON line", path.display(), i + 1))?;
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn truncated_reopen_drops_torn_and_later_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.jsonl");
        fs::write(&p, "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n{\"ste").unwrap();
        let mut w = JsonlWriter::open_truncated(&p, |v| v["step"].as_u64() <= Some(2)).unwrap();
        w.write(&serde_json::json!({"step": 3})).unwrap();
        let rows = read_jsonl(&p).unwrap();
        let steps: Vec<u64> = rows.iter().map(|v| v["step"].as_u64().unwrap()).collect();
        assert_eq!(steps, vec![1, 2, 3]);
    }
}

/// `versions.json`: what produced a run directory. The direction generator's version matters:
/// directions of another version differ, so replaying or resuming such a run here would give
/// other weights; both refuse (see [`check_versions`]).
pub const VERSIONS_FILE: &str = "versions.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct Versions {
    zo: String,
    /// `zo_core::rng::GENERATOR_VERSION` (1 = Philox4x32-10, 2 = Philox4x32-7, 3 = ARS4x32-7).
    generator: u32,
}

/// The text of a run directory's `run.toml` (the settings the run was made with).
pub fn read_run_toml(dir: &Path) -> Result<String> {
    let path = dir.join("run.toml");
    fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read (is this a run directory?)", path.display()))
}

/// The settings of a run directory, parsed from its `run.toml`.
pub fn read_settings(dir: &Path) -> Result<crate::settings::Settings> {
    let origin = dir.join("run.toml").display().to_string();
    let table = crate::layers::parse_table(&read_run_toml(dir)?, &origin)?;
    crate::layers::deserialize(table, &origin)
}

/// Writes `versions.json` into a run directory.
pub fn write_versions(dir: &Path) -> Result<()> {
    let v = Versions {
        zo: env!("CARGO_PKG_VERSION").to_string(),
        generator: zo_core::rng::GENERATOR_VERSION,
    };
    write_atomic(
        &dir.join(VERSIONS_FILE),
        serde_json::to_string_pretty(&v)?.as_bytes(),
    )
}

/// Checks that a run directory was made with this build's direction generator. A run without
/// `versions.json` predates it and used generator 1.
pub fn check_versions(dir: &Path) -> Result<()> {
    let path = dir.join(VERSIONS_FILE);
    let generator = match fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice::<Versions>(&bytes)
                .with_context(|| format!("{}: invalid", path.display()))?
                .generator
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
    };
    if generator != zo_core::rng::GENERATOR_VERSION {
        anyhow::bail!(
            "{}: the run's directions come from generator version {generator}, this zo has version {}: its trajectory and checkpoint cannot be continued or replayed exactly",
            dir.display(),
            zo_core::rng::GENERATOR_VERSION
        );
    }
    Ok(())
}
