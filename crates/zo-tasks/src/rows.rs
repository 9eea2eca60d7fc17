//! Raw row readers: JSONL and parquet files, both yielding one JSON object per row in file
//! order. Parquet rows (the HF exports' nested `struct`/`list` columns included) are converted
//! to the same JSON shape a JSONL row has, so one validation path serves both formats.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use serde_json::{Map, Number, Value};

use crate::error::{RowErrorKind, TaskError};

/// File formats we read, by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowFormat {
    Jsonl,
    Parquet,
}

impl RowFormat {
    /// `.parquet` → Parquet; `.jsonl`/`.json`/`.ndjson` → JSONL.
    pub fn from_path(path: &Path) -> Option<RowFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "parquet" => Some(RowFormat::Parquet),
            "jsonl" | "json" | "ndjson" => Some(RowFormat::Jsonl),
            _ => None,
        }
    }
}

/// Where a row sits in its file, as a person finds it: the 1-based line of a JSONL file (blank
/// lines counted, as an editor counts them) or the 1-based row of a parquet file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowPosition {
    Line(usize),
    Row(usize),
}

impl std::fmt::Display for RowPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowPosition::Line(n) => write!(f, "line {n}"),
            RowPosition::Row(n) => write!(f, "row {n} (counting from 1)"),
        }
    }
}

/// Call `f` with each row of `path` in order, with its position in the file: `Ok(object)` or
/// the row's own error (a bad JSON line). File-level failures (cannot open, corrupt parquet) are
/// returned as `Err`.
pub fn for_each_row(
    path: &Path,
    mut f: impl FnMut(RowPosition, Result<Value, RowErrorKind>) -> Result<(), TaskError>,
) -> Result<(), TaskError> {
    match RowFormat::from_path(path) {
        Some(RowFormat::Jsonl) => {
            let file = File::open(path).map_err(|e| TaskError::io(path, e))?;
            for (i, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|e| TaskError::io(path, e))?;
                // Blank lines (a trailing newline, spacing) are not rows.
                if line.trim().is_empty() {
                    continue;
                }
                f(
                    RowPosition::Line(i + 1),
                    serde_json::from_str::<Value>(&line)
                        .map_err(|e| RowErrorKind::InvalidJson(e.to_string())),
                )?;
            }
            Ok(())
        }
        Some(RowFormat::Parquet) => {
            let pq = |source| TaskError::Parquet {
                path: path.to_path_buf(),
                source,
            };
            let file = File::open(path).map_err(|e| TaskError::io(path, e))?;
            let corrupt = |reason| TaskError::CorruptParquet {
                path: path.to_path_buf(),
                reason,
            };
            // Decoded whole before any row is used: a file that is corrupt further on is
            // rejected before its first rows reach `f`.
            let mut rows = Vec::new();
            each_parquet_row(file, pq, corrupt, |_, row| {
                rows.push(row_to_json(&row));
                Ok(())
            })?;
            for (i, row) in rows.into_iter().enumerate() {
                f(RowPosition::Row(i + 1), Ok(row))?;
            }
            Ok(())
        }
        None => Err(TaskError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "unknown file type: expected .parquet or .jsonl",
            ),
        )),
    }
}

/// Calls `f(index, row)` for every row of a parquet file, in order. The parquet crate panics
/// on some corrupt files (an index past a decoded page, a thrift field it expects): such a
/// panic is caught, without the panic hook's report and backtrace, and returned as
/// `corrupt(message)`; the crate's own errors as `pq(error)`; `f`'s errors as they are.
pub(crate) fn each_parquet_row<E>(
    file: File,
    pq: impl Fn(parquet::errors::ParquetError) -> E,
    corrupt: impl FnOnce(String) -> E,
    mut f: impl FnMut(usize, Row) -> Result<(), E>,
) -> Result<(), E> {
    let read = || -> Result<(), E> {
        let reader = SerializedFileReader::new(file).map_err(&pq)?;
        for (i, row) in reader.get_row_iter(None).map_err(&pq)?.enumerate() {
            f(i, row.map_err(&pq)?)?;
        }
        Ok(())
    };
    catch_quietly(read).unwrap_or_else(|reason| Err(corrupt(reason)))
}

thread_local! {
    /// Whether this thread's panics are being caught by [`catch_quietly`].
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, returning a panic's message as `Err` instead of unwinding, and without the panic
/// hook's report on stderr for this thread's panics inside `f` (other threads' panics are
/// reported as before: the hook installed once wraps the previous one).
fn catch_quietly<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the reader failed".into())
    })
}

/// A parquet row as a JSON object (column name → value).
pub fn row_to_json(row: &Row) -> Value {
    Value::Object(
        row.get_column_iter()
            .map(|(name, field)| (name.clone(), field_to_json(field)))
            .collect::<Map<String, Value>>(),
    )
}

fn float(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn field_to_json(field: &Field) -> Value {
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(v) => Value::from(*v),
        Field::Short(v) => Value::from(*v),
        Field::Int(v) => Value::from(*v),
        Field::Long(v) => Value::from(*v),
        Field::UByte(v) => Value::from(*v),
        Field::UShort(v) => Value::from(*v),
        Field::UInt(v) => Value::from(*v),
        Field::ULong(v) => Value::from(*v),
        Field::Float16(v) => float(f64::from(*v)),
        Field::Float(v) => float(f64::from(*v)),
        Field::Double(v) => float(*v),
        Field::Decimal(d) => Value::String(format!("{d:?}")),
        Field::Str(s) => Value::String(s.clone()),
        // Text datasets have no binary columns; keep valid UTF-8, drop the rest.
        Field::Bytes(b) => std::str::from_utf8(b.data())
            .map(|s| Value::String(s.to_string()))
            .unwrap_or(Value::Null),
        Field::Date(v) | Field::TimeMillis(v) => Value::from(*v),
        Field::TimeMicros(v) | Field::TimestampMillis(v) | Field::TimestampMicros(v) => {
            Value::from(*v)
        }
        Field::Group(row) => row_to_json(row),
        Field::ListInternal(list) => {
            Value::Array(list.elements().iter().map(field_to_json).collect())
        }
        Field::MapInternal(map) => Value::Array(
            map.entries()
                .iter()
                .map(|(k, v)| Value::Array(vec![field_to_json(k), field_to_json(v)]))
                .collect(),
        ),
    }
}
