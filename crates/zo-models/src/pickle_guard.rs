//! Reading PyTorch `.bin`/`.pth` checkpoints without trusting them.
//!
//! A torch checkpoint is a zip whose `data.pkl` is a Python pickle; under a plain `torch.load`
//! a pickle can call any importable function (`os.system`, `builtins.eval`, ...). candle's
//! reader interprets the opcodes without calling anything, but a file that names such a
//! callable is hostile, and its claimed sizes (string lengths, tensor shapes) are taken at
//! their word. So before candle sees a file, [`check_archive`]:
//!
//! - walks every pickle's opcodes with a stack model, and refuses any global other than those
//!   torch's `weights_only` unpickler allows (the tensor-rebuild functions, storage types,
//!   dtypes, `collections.OrderedDict`), any call (`REDUCE`, `NEWOBJ`, `OBJ`) of something
//!   that is not such a global, the extension registry (`EXT*`) and out-of-band buffers, a
//!   length past the end of the data, and a malformed stack;
//!
//! and [`open`] then checks every tensor's shape against the bytes its storage entry holds,
//! so a header claiming 10¹² elements is refused before anything is allocated.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use candle_core::pickle::PthTensors;

use crate::{Error, Result};

/// The largest pickle read (a 13B model's `data.pkl` is well under 1 MiB).
pub const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// Globals a checkpoint's pickle may name: what torch's `weights_only` unpickler allows for
/// plain tensors (module, name); `torch` `*Storage` types are allowed by suffix.
const ALLOWED: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch.serialization", "_get_layout"),
    ("torch", "Size"),
    ("torch", "Tensor"),
    ("torch", "device"),
    ("torch", "strided"),
    ("torch.nn.parameter", "Parameter"),
    ("_codecs", "encode"),
];

/// torch dtypes (pickled as globals `torch.<name>`).
const DTYPES: &[&str] = &[
    "float64",
    "float32",
    "float16",
    "bfloat16",
    "double",
    "float",
    "half",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "long",
    "int",
    "short",
    "bool",
    "complex64",
    "complex128",
];

/// Is `module.name` a global a weights-only load may use?
pub fn allowed_global(module: &str, name: &str) -> bool {
    ALLOWED.contains(&(module, name))
        || (module == "torch"
            && (DTYPES.contains(&name)
                || (name.ends_with("Storage")
                    && name.len() > "Storage".len()
                    && name.chars().all(|c| c.is_ascii_alphanumeric()))))
}

fn unsafe_pickle(path: &Path, reason: impl Into<String>) -> Error {
    Error::UnsafePickle {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A value on the modelled stack: what matters is which strings and globals are where.
#[derive(Clone, Debug)]
enum V {
    Mark,
    Str(String),
    Global,
    Other,
}

/// Validates one pickle (see the module docs). `path` names the file in errors.
pub fn check_pickle(data: &[u8], path: &Path) -> Result<()> {
    let bad = |reason: String| unsafe_pickle(path, reason);
    let mut stack: Vec<V> = Vec::new();
    let mut memo: HashMap<u64, V> = HashMap::new();
    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize| -> Result<&[u8]> {
        let end = pos
            .checked_add(n)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| bad(format!("truncated at byte {pos}")))?;
        let s = &data[*pos..end];
        *pos = end;
        Ok(s)
    };
    let line = |pos: &mut usize| -> Result<&[u8]> {
        let rest = &data[*pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad(format!("unterminated line at byte {pos}")))?;
        let s = &rest[..n];
        *pos += n + 1;
        Ok(s)
    };
    let le = |b: &[u8]| -> u64 {
        b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
    };
    let len_of = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    fn pop(stack: &mut Vec<V>, at: usize, path: &Path) -> Result<V> {
        match stack.pop() {
            Some(V::Mark) | None => {
                Err(unsafe_pickle(path, format!("stack underflow at byte {at}")))
            }
            Some(v) => Ok(v),
        }
    }
    fn pop_mark(stack: &mut Vec<V>, at: usize, path: &Path) -> Result<Vec<V>> {
        let m = stack
            .iter()
            .rposition(|v| matches!(v, V::Mark))
            .ok_or_else(|| unsafe_pickle(path, format!("no mark at byte {at}")))?;
        let items = stack.split_off(m + 1);
        stack.pop();
        Ok(items)
    }
    fn top(stack: &[V], at: usize, path: &Path) -> Result<()> {
        match stack.last() {
            Some(V::Mark) | None => {
                Err(unsafe_pickle(path, format!("stack underflow at byte {at}")))
            }
            Some(_) => Ok(()),
        }
    }
    let check_global = |module: &str, name: &str, at: usize| -> Result<V> {
        if allowed_global(module, name) {
            Ok(V::Global)
        } else {
            Err(bad(format!(
                "byte {at}: the pickle calls `{module}.{name}`, which is not a tensor-rebuild function (refusing to load it; a plain torch.load would run it)"
            )))
        }
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    loop {
        let at = pos;
        let op = *take(&mut pos, 1)?.first().unwrap_or(&b'.');
        match op {
            b'.' => return Ok(()),
            b'(' => stack.push(V::Mark),
            b'0' => {
                pop(&mut stack, at, path)?;
            }
            b'1' => {
                pop_mark(&mut stack, at, path)?;
            }
            b'2' => {
                top(&stack, at, path)?;
                let v = stack.last().cloned().unwrap_or(V::Other);
                stack.push(v);
            }
            b'F' | b'I' | b'L' | b'P' => {
                line(&mut pos)?;
                stack.push(V::Other);
            }
            b'S' | b'V' => {
                let s = line(&mut pos)?;
                let s = s
                    .strip_prefix(b"'")
                    .and_then(|s| s.strip_suffix(b"'"))
                    .unwrap_or(s);
                stack.push(V::Str(text(s)));
            }
            b'J' | b'K' | b'M' | b'G' => {
                let n = match op {
                    b'J' => 4,
                    b'K' => 1,
                    b'M' => 2,
                    _ => 8,
                };
                take(&mut pos, n)?;
                stack.push(V::Other);
            }
            0x8a | 0x8b => {
                let n = le(take(&mut pos, if op == 0x8a { 1 } else { 4 })?);
                take(&mut pos, len_of(n))?;
                stack.push(V::Other);
            }
            b'T' | b'U' | b'X' | 0x8c | 0x8d => {
                let w = match op {
                    b'U' | 0x8c => 1,
                    0x8d => 8,
                    _ => 4,
                };
                let n = le(take(&mut pos, w)?);
                let s = take(&mut pos, len_of(n))?;
                stack.push(V::Str(text(s)));
            }
            b'B' | b'C' | 0x8e | 0x96 => {
                let w = match op {
                    b'C' => 1,
                    b'B' => 4,
                    _ => 8,
                };
                let n = le(take(&mut pos, w)?);
                take(&mut pos, len_of(n))?;
                stack.push(V::Other);
            }
            b'N' | 0x88 | 0x89 | b']' | b'}' | b')' | 0x8f => stack.push(V::Other),
            b'a' => {
                pop(&mut stack, at, path)?;
                top(&stack, at, path)?;
            }
            b's' => {
                pop(&mut stack, at, path)?;
                pop(&mut stack, at, path)?;
                top(&stack, at, path)?;
            }
            b'e' | b'u' | 0x90 => {
                pop_mark(&mut stack, at, path)?;
                top(&stack, at, path)?;
            }
            b'l' | b't' | b'd' | 0x91 => {
                pop_mark(&mut stack, at, path)?;
                stack.push(V::Other);
            }
            0x85..=0x87 => {
                for _ in 0..(op - 0x84) {
                    pop(&mut stack, at, path)?;
                }
                stack.push(V::Other);
            }
            b'g' | b'h' | b'j' => {
                let idx = match op {
                    b'g' => std::str::from_utf8(line(&mut pos)?)
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .ok_or_else(|| bad(format!("byte {at}: bad memo index")))?,
                    b'h' => le(take(&mut pos, 1)?),
                    _ => le(take(&mut pos, 4)?),
                };
                let v = memo
                    .get(&idx)
                    .cloned()
                    .ok_or_else(|| bad(format!("byte {at}: memo entry {idx} not set")))?;
                stack.push(v);
            }
            b'p' | b'q' | b'r' | 0x94 => {
                let idx = match op {
                    b'p' => std::str::from_utf8(line(&mut pos)?)
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .ok_or_else(|| bad(format!("byte {at}: bad memo index")))?,
                    b'q' => le(take(&mut pos, 1)?),
                    b'r' => le(take(&mut pos, 4)?),
                    _ => memo.len() as u64,
                };
                top(&stack, at, path)?;
                let v = stack.last().cloned().unwrap_or(V::Other);
                memo.insert(idx, v);
            }
            b'c' | b'i' => {
                let module = text(line(&mut pos)?);
                let name = text(line(&mut pos)?);
                let g = check_global(&module, &name, at)?;
                if op == b'i' {
                    pop_mark(&mut stack, at, path)?;
                    stack.push(V::Other);
                } else {
                    stack.push(g);
                }
            }
            0x93 => {
                let name = pop(&mut stack, at, path)?;
                let module = pop(&mut stack, at, path)?;
                match (module, name) {
                    (V::Str(m), V::Str(n)) => stack.push(check_global(&m, &n, at)?),
                    _ => return Err(bad(format!("byte {at}: STACK_GLOBAL of a non-string"))),
                }
            }
            b'R' | 0x81 | 0x92 => {
                pop(&mut stack, at, path)?;
                if op == 0x92 {
                    pop(&mut stack, at, path)?;
                }
                match pop(&mut stack, at, path)? {
                    V::Global => stack.push(V::Other),
                    _ => {
                        return Err(bad(format!(
                            "byte {at}: a call of something that is not an allowed global"
                        )))
                    }
                }
            }
            b'o' => {
                let items = pop_mark(&mut stack, at, path)?;
                match items.first() {
                    Some(V::Global) => stack.push(V::Other),
                    _ => {
                        return Err(bad(format!(
                            "byte {at}: OBJ of something that is not an allowed global"
                        )))
                    }
                }
            }
            b'b' => {
                pop(&mut stack, at, path)?;
                top(&stack, at, path)?;
            }
            b'Q' => {
                pop(&mut stack, at, path)?;
                stack.push(V::Other);
            }
            0x80 => {
                take(&mut pos, 1)?;
            }
            0x95 => {
                take(&mut pos, 8)?;
            }
            0x82..=0x84 => {
                return Err(bad(format!(
                    "byte {at}: the extension registry (EXT opcodes) names arbitrary callables"
                )))
            }
            0x97 | 0x98 => return Err(bad(format!("byte {at}: out-of-band buffers"))),
            other => return Err(bad(format!("byte {at}: unknown opcode 0x{other:02x}"))),
        }
    }
}

fn zip_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("not a readable torch zip archive: {e}"),
    }
}

/// Checks every pickle (`*.pkl` entry) of the torch zip archive at `path`; see the module
/// docs.
pub fn check_archive(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut zip =
        zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| zip_err(path, e))?;
    let mut pickles = 0;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| zip_err(path, e))?;
        let name = entry.name().map_err(|e| zip_err(path, e))?.into_owned();
        if !name.ends_with(".pkl") {
            continue;
        }
        pickles += 1;
        if entry.size() > MAX_PICKLE_BYTES || entry.compressed_size() > file_len {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("`{name}` claims {} bytes", entry.size()),
            });
        }
        let mut data = Vec::new();
        (&mut entry)
            .take(MAX_PICKLE_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| zip_err(path, format!("`{name}`: {e}")))?;
        if data.len() as u64 > MAX_PICKLE_BYTES {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("`{name}` is larger than {MAX_PICKLE_BYTES} bytes"),
            });
        }
        check_pickle(&data, path).map_err(|e| match e {
            Error::UnsafePickle { path, reason } => Error::UnsafePickle {
                path,
                reason: format!("{name}: {reason}"),
            },
            e => e,
        })?;
    }
    if pickles == 0 {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            reason: "no pickle (data.pkl) in the archive".into(),
        });
    }
    Ok(())
}

/// Opens a torch checkpoint for reading tensors: [`check_archive`], candle's reader, then each
/// tensor's claimed extent against its storage entry (stored, within the file), so that no
/// tensor is allocated beyond the bytes that back it.
pub fn open(path: &Path) -> Result<PthTensors> {
    check_archive(path)?;
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let pth = PthTensors::new(path, None).map_err(|e| bad(e.to_string()))?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut zip =
        zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| zip_err(path, e))?;
    // Sorted: the first bad tensor reported is the same on every run.
    let mut infos: Vec<_> = pth.tensor_infos().iter().collect();
    infos.sort_by(|a, b| a.0.cmp(b.0));
    for (name, info) in infos {
        let layout = &info.layout;
        let elems = layout
            .dims()
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let need = elems
            .and_then(|n| n.checked_mul(info.dtype.size_in_bytes()))
            .and_then(|n| {
                n.checked_add(
                    layout
                        .start_offset()
                        .checked_mul(info.dtype.size_in_bytes())?,
                )
            });
        let entry = zip
            .by_name(&info.path)
            .map_err(|e| bad(format!("tensor `{name}`: storage `{}`: {e}", info.path)))?;
        let have = entry.size();
        let fits = need.is_some_and(|n| n as u64 <= have)
            && entry.compressed_size() <= file_len
            && have <= file_len;
        if !fits {
            return Err(bad(format!(
                "tensor `{name}` claims shape {:?} ({}) but its storage `{}` holds {have} bytes",
                layout.dims(),
                need.map_or("more than the address space".to_string(), |n| format!(
                    "{n} bytes"
                )),
                info.path
            )));
        }
    }
    Ok(pth)
}

/// Every tensor of a torch checkpoint, by name (sorted), after the checks of [`open`].
pub fn read_all(path: &Path) -> Result<Vec<(String, candle_core::Tensor)>> {
    let pth = open(path)?;
    let mut names: Vec<&String> = pth.tensor_infos().keys().collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let t = pth
            .get(name)
            .map_err(|e| Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("tensor `{name}`: {e}"),
            })?
            .ok_or_else(|| Error::MissingTensor {
                path: path.to_path_buf(),
                tensor: name.clone(),
            })?;
        out.push((name.clone(), t));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/pickle")
            .join(name)
    }

    #[test]
    fn a_state_dict_passes() {
        let pth = open(&fixture("tiny_opt.bin")).unwrap();
        assert_eq!(pth.tensor_infos().len(), 20);
    }

    #[test]
    fn pickles_that_call_a_command_are_refused_naming_the_callable() {
        for (file, callable) in [
            ("evil_posix_system.bin", "posix.system"),
            ("evil_os_system.bin", "os.system"),
            ("evil_builtins_eval.bin", "builtins.eval"),
            ("evil_subprocess_inst.bin", "subprocess.Popen"),
        ] {
            let err = open(&fixture(file)).err().unwrap();
            assert!(matches!(err, Error::UnsafePickle { .. }), "{file}: {err}");
            let msg = err.to_string();
            assert!(msg.contains(callable) && msg.contains(file), "{msg}");
        }
    }

    #[test]
    fn lengths_past_the_end_and_bad_stacks_are_refused() {
        let p = Path::new("x.pkl");
        // BINUNICODE claiming 4 GiB.
        assert!(check_pickle(b"\x80\x02X\xff\xff\xff\xffab.", p).is_err());
        // REDUCE on an empty stack.
        assert!(check_pickle(b"R.", p).is_err());
        // REDUCE of a string (not a global).
        assert!(check_pickle(b"X\x01\x00\x00\x00a)R.", p).is_err());
        // EXT1.
        assert!(check_pickle(b"\x82\x01.", p).is_err());
        assert!(check_pickle(b"\x80\x02}q\x00.", p).is_ok());
    }
}
