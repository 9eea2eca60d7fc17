//! The run directory: atomic file writes and the append-only `metrics.jsonl`.
//!
//! Layout (see README): `run.toml` (resolved config + versions), `metrics.jsonl` (one JSON object
//! per line: `"kind": "step"` or `"kind": "eval"`), `trajectory.jsonl` (every weight sweep, to
//! replay the fine-tune onto the base model), `checkpoint/` (latest, HF layout + `state.json`)
//! and `best/` (lowest dev loss, MeZO's rule).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use zo_core::trainer::TrainerState;

/// The directory holding `path`: its parent, or `.` for a bare name (whose parent is the
/// empty path).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
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

/// Writes `values` as JSON lines to `path` atomically ([`write_atomic`]): a stop or an error
/// before the end leaves an earlier file of that name as it was.
pub fn write_jsonl_atomic<T: serde::Serialize>(path: &Path, values: &[T]) -> Result<()> {
    let mut bytes = Vec::new();
    for v in values {
        serde_json::to_writer(&mut bytes, v)?;
        bytes.push(b'\n');
    }
    write_atomic(path, &bytes)
}

/// Checks, before a long computation, that a file can later be written at `path`: its
/// directory exists and `path` is not a directory.
pub fn check_writable(path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    if !dir.is_dir() {
        bail!(
            "{}: no directory {} to write into",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        bail!("{}: is a directory, not a file", path.display());
    }
    Ok(())
}

/// An append-only JSON-lines file whose every line is flushed as it is written, so a killed run
/// leaves at most one partial last line (dropped by [`reopen_logs`] on resume).
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

    /// Re-opens an existing file for a resumed run, cut to the lines [`Self::kept_lines`]
    /// keeps.
    #[cfg(test)]
    fn open_truncated(
        path: &Path,
        keep: impl FnMut(&serde_json::Value) -> Option<bool>,
    ) -> Result<Self> {
        Self::rewrite(path, &Self::kept_lines(path, keep)?.0)
    }

    /// For a resumed run, the lines of an existing file to keep (bytes, count; the file left as
    /// it is): those for which `keep` returns `Some(true)` (e.g. step lines before the
    /// checkpoint's step); those with `Some(false)`, written after the checkpoint, are cut off
    /// and redone. A last line without its newline is the write a kill cut short: it is dropped
    /// with a warning. Any other line that is not a JSON object, or for which `keep` returns
    /// `None` (a required field is missing), is corruption: an error naming the file and line.
    fn kept_lines(
        path: &Path,
        mut keep: impl FnMut(&serde_json::Value) -> Option<bool>,
    ) -> Result<(Vec<u8>, u64)> {
        let (mut kept, mut count) = (Vec::new(), 0);
        match fs::read(path) {
            Ok(bytes) => {
                let mut lines = bytes
                    .split_inclusive(|&b| b == b'\n')
                    .enumerate()
                    .peekable();
                while let Some((i, line)) = lines.next() {
                    let complete = line.last() == Some(&b'\n');
                    if !complete && lines.peek().is_none() {
                        tracing::warn!(
                            file = %path.display(),
                            line = i + 1,
                            "dropping a torn last line (the write a stop cut short)"
                        );
                        break;
                    }
                    let text = std::str::from_utf8(line)
                        .ok()
                        .map(str::trim)
                        .ok_or_else(|| anyhow!("{}:{}: not UTF-8", path.display(), i + 1))?;
                    if text.is_empty() {
                        continue;
                    }
                    let v: serde_json::Value = serde_json::from_str(text)
                        .map_err(|e| anyhow!("{}:{}: corrupt line: {e}", path.display(), i + 1))?;
                    if !v.is_object() {
                        bail!(
                            "{}:{}: corrupt line: not a JSON object",
                            path.display(),
                            i + 1
                        );
                    }
                    let Some(kept_line) = keep(&v) else {
                        bail!(
                            "{}:{}: corrupt line: no numeric `step`",
                            path.display(),
                            i + 1
                        );
                    };
                    if kept_line {
                        kept.extend_from_slice(text.as_bytes());
                        kept.push(b'\n');
                        count += 1;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
        }
        Ok((kept, count))
    }

    /// Replaces the file by the lines `kept` and opens it for appending.
    fn rewrite(path: &Path, kept: &[u8]) -> Result<Self> {
        write_atomic(path, kept)?;
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

/// The `metrics.jsonl` and `trajectory.jsonl` of a run resumed at step `done_steps` (the
/// checkpoint's), cut back to what the checkpoint covers: step lines and sweeps before it, and
/// evaluations up to it. A line that is not a JSON object with a numeric `step` is corruption.
pub fn reopen_logs(out: &Path, state: &TrainerState) -> Result<(JsonlWriter, JsonlWriter)> {
    let done_steps = state.step;
    let step = |v: &serde_json::Value| v.get("step").and_then(serde_json::Value::as_u64);
    let (m_path, t_path) = (out.join("metrics.jsonl"), out.join("trajectory.jsonl"));
    let metrics = JsonlWriter::kept_lines(&m_path, |v| {
        let k = step(v)?;
        Some(if v["kind"] == "eval" {
            k <= done_steps
        } else {
            k < done_steps
        })
    })?;
    let trajectory = JsonlWriter::kept_lines(&t_path, |v| Some(step(v)? < done_steps))?;
    // The trajectory must hold every sweep that made the checkpoint's weights, or replaying it
    // would rebuild other weights than the run's. Checked before either file is cut.
    if trajectory.1 != state.sweeps {
        bail!(
            "{}: holds {} sweeps of the first {done_steps} steps, the checkpoint records {}: the trajectory is incomplete",
            t_path.display(),
            trajectory.1,
            state.sweeps
        );
    }
    Ok((
        JsonlWriter::rewrite(&m_path, &metrics.0)?,
        JsonlWriter::rewrite(&t_path, &trajectory.0)?,
    ))
}

/// What `checkpoint/state.json` holds.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointState {
    pub trainer: TrainerState,
    /// Lowest dev loss so far (MeZO keeps the checkpoint with the lowest dev loss).
    pub best_dev_loss: Option<f64>,
}

/// Reads `checkpoint/state.json` of a run directory. A checkpoint directory caught between
/// the two renames of a replacement on a system without an atomic exchange (see
/// [`replace_dir`]) is moved back under its name first.
pub fn read_checkpoint_state(dir: &Path) -> Result<CheckpointState> {
    let ckpt = dir.join("checkpoint");
    recover_dir(&ckpt)?;
    let state_path = ckpt.join("state.json");
    let bytes = fs::read(&state_path)
        .with_context(|| {
            format!(
                "{}: no checkpoint to resume from (a run stopped before its first checkpoint starts again in a new or emptied directory)",
                state_path.display()
            )
        })?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: invalid checkpoint state", state_path.display()))
}

/// The files of a saved model directory: an OPT in the Hugging Face layout with its tokenizer,
/// a PEFT adapter, a ResNet's safetensors.
const MODEL_FILES: &[&str] = &[
    "config.json",
    "model.safetensors",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "adapter_config.json",
    "adapter_model.safetensors",
];

/// Checks that a command may write a saved model to `out` (which [`replace_dir`] replaces
/// whole): `out` is new, an empty directory, or a directory holding only a saved model's files
/// (an earlier output of such a command), and it is none of `inputs` (the model or adapter the
/// command reads). Anything else, a run directory, a file, a folder of the user's, is refused
/// rather than deleted.
pub fn check_model_out(out: &Path, inputs: &[&Path]) -> Result<()> {
    let meta = match fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(anyhow!("{}: cannot read: {e}", out.display())),
    };
    let refuse = |why: String| {
        Err(anyhow!(
            "{}: {why}: refusing to replace it (choose another output or remove it)",
            out.display()
        ))
    };
    if !meta.is_dir() {
        return refuse("exists and is not a directory".into());
    }
    if let Ok(here) = out.canonicalize() {
        for input in inputs {
            if input.canonicalize().is_ok_and(|p| p == here) {
                return refuse(format!("is this command's input `{}`", input.display()));
            }
        }
    }
    match foreign_entry(out, |name, is_file| is_file && MODEL_FILES.contains(&name))? {
        Some(name) => refuse(format!("holds `{name}`, not only a saved model")),
        None => Ok(()),
    }
}

/// The first entry of the directory `dir` that `allowed(name, is_file)` rejects, if any: what
/// a command would overwrite or delete that is not its own.
pub fn foreign_entry(dir: &Path, allowed: impl Fn(&str, bool) -> bool) -> Result<Option<String>> {
    let cannot = || format!("{}: cannot read", dir.display());
    for entry in fs::read_dir(dir).with_context(cannot)? {
        let entry = entry.with_context(cannot)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !allowed(&name, entry.file_type().is_ok_and(|t| t.is_file())) {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// The names beside `dir` that [`replace_dir`] uses: (`.NAME.tmp`, `.NAME.old`).
pub fn replacement_names(dir: &Path) -> (PathBuf, PathBuf) {
    let parent = parent_dir(dir);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (
        parent.join(format!(".{name}.tmp")),
        parent.join(format!(".{name}.old")),
    )
}

/// Puts `.NAME.old` back as `dir` when `dir` is missing (a replacement stopped between its two
/// renames, on a system without an atomic exchange).
pub fn recover_dir(dir: &Path) -> Result<()> {
    let (_, old) = replacement_names(dir);
    if !dir.exists() && old.is_dir() {
        tracing::warn!(dir = %dir.display(), "restoring the previous copy of an interrupted replacement");
        fs::rename(&old, dir).with_context(|| format!("{}: cannot restore", dir.display()))?;
    }
    Ok(())
}

/// Flushes every file of `dir` (one level; sub-directories recursively) and the directory
/// itself to disk.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        } else {
            File::open(entry.path())?.sync_all()?;
        }
    }
    sync_dir(dir)
}

/// Flushes a directory's entries (renames into it) to disk; a no-op where directories cannot
/// be opened as files.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Replaces the directory `dir` by the complete directory `tmp` (written beside it) so that
/// at every moment a complete copy exists: `tmp` is flushed to disk, then swapped with `dir`
/// in one atomic exchange (Linux `renameat2(RENAME_EXCHANGE)`), and the old copy removed.
/// Where the exchange is unavailable `dir` is renamed to `.NAME.old` and `tmp` into place;
/// a stop between the two leaves `.NAME.old`, which [`recover_dir`] restores.
pub fn replace_dir(tmp: &Path, dir: &Path) -> Result<()> {
    let parent = parent_dir(dir);
    sync_tree(tmp).with_context(|| format!("{}: cannot write", tmp.display()))?;
    let (_, old) = replacement_names(dir);
    if dir.exists() {
        if exchange(tmp, dir).is_ok() {
            // `tmp` now holds the previous copy.
            sync_dir(parent).with_context(|| format!("{}: cannot write", dir.display()))?;
            let _ = fs::remove_dir_all(tmp);
            return Ok(());
        }
        let _ = fs::remove_dir_all(&old);
        fs::rename(dir, &old).with_context(|| format!("{}: cannot replace", dir.display()))?;
    }
    fs::rename(tmp, dir).with_context(|| format!("{}: cannot write", dir.display()))?;
    sync_dir(parent).with_context(|| format!("{}: cannot write", dir.display()))?;
    let _ = fs::remove_dir_all(&old);
    Ok(())
}

/// Swaps two paths atomically.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes())?;
    let cb = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
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

mod versions;
pub use versions::{check_versions, write_versions};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_file_name_lies_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("model.safetensors")), Path::new("."));
        assert_eq!(parent_dir(Path::new("./model.safetensors")), Path::new("."));
        assert_eq!(
            parent_dir(Path::new("out/model.safetensors")),
            Path::new("out")
        );
        assert_eq!(
            parent_dir(Path::new("/m/model.safetensors")),
            Path::new("/m")
        );
    }

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
        let mut w = JsonlWriter::open_truncated(&p, |v| Some(v["step"].as_u64()? <= 2)).unwrap();
        w.write(&serde_json::json!({"step": 3})).unwrap();
        let rows = read_jsonl(&p).unwrap();
        let steps: Vec<u64> = rows.iter().map(|v| v["step"].as_u64().unwrap()).collect();
        assert_eq!(steps, vec![1, 2, 3]);
    }

    #[test]
    fn a_corrupt_line_before_the_last_is_refused_naming_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.jsonl");
        let keep = |v: &serde_json::Value| Some(v["step"].as_u64()? <= 2);
        for (text, line) in [
            ("{\"step\":1}\n{\"ste\n{\"step\":3}\n", 2),
            ("{\"step\":1}\n[1, 2]\n", 2),
            ("{\"nostep\":1}\n{\"step\":1}\n", 1),
        ] {
            fs::write(&p, text).unwrap();
            let err = JsonlWriter::open_truncated(&p, keep)
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains(&format!("m.jsonl:{line}: corrupt line")),
                "{err}"
            );
            assert_eq!(
                fs::read_to_string(&p).unwrap(),
                text,
                "a refused file is left as it is"
            );
        }
    }

    #[test]
    fn replacing_a_directory_keeps_a_complete_copy() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("checkpoint");
        let (tmp, old) = replacement_names(&dir);
        for round in 0..3 {
            fs::create_dir_all(&tmp).unwrap();
            fs::write(tmp.join("state.json"), format!("{round}")).unwrap();
            replace_dir(&tmp, &dir).unwrap();
            assert_eq!(
                fs::read_to_string(dir.join("state.json")).unwrap(),
                format!("{round}")
            );
            assert!(!tmp.exists() && !old.exists());
        }
        // A replacement stopped between the two renames of the fallback is undone on resume.
        fs::rename(&dir, &old).unwrap();
        recover_dir(&dir).unwrap();
        assert_eq!(fs::read_to_string(dir.join("state.json")).unwrap(), "2");
    }
}
