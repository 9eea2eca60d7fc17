//! Typed access to the fields of one row, as a JSON object (JSONL rows directly; parquet rows
//! are converted to the same JSON shape first, so both formats share one validation path).

use serde_json::{Map, Value};

use crate::error::RowErrorKind;

pub(crate) type Obj = Map<String, Value>;

fn type_name(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("bool {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {:?}", truncate(s)),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn get<'a>(obj: &'a Obj, field: &str) -> Result<&'a Value, RowErrorKind> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(RowErrorKind::MissingField(field.to_string())),
        Some(v) => Ok(v),
    }
}

pub(crate) fn string(obj: &Obj, field: &str) -> Result<String, RowErrorKind> {
    match get(obj, field)? {
        Value::String(s) => Ok(s.clone()),
        other => Err(RowErrorKind::WrongType {
            field: field.to_string(),
            expected: "a string",
            found: type_name(other),
        }),
    }
}

pub(crate) fn int(obj: &Obj, field: &str) -> Result<i64, RowErrorKind> {
    let v = get(obj, field)?;
    v.as_i64().ok_or_else(|| RowErrorKind::WrongType {
        field: field.to_string(),
        expected: "an integer",
        found: type_name(v),
    })
}

/// An optional integer (`idx`): absent or null is `None`; present with a wrong type is an error.
pub(crate) fn opt_int(obj: &Obj, field: &str) -> Result<Option<i64>, RowErrorKind> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => int(obj, field).map(Some),
    }
}

pub(crate) fn opt_string(obj: &Obj, field: &str) -> Result<Option<String>, RowErrorKind> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => string(obj, field).map(Some),
    }
}

fn string_list_value(v: &Value, field: &str) -> Result<Vec<String>, RowErrorKind> {
    let wrong = |found: &Value| RowErrorKind::WrongType {
        field: field.to_string(),
        expected: "a list of strings",
        found: type_name(found),
    };
    let Value::Array(items) = v else {
        return Err(wrong(v));
    };
    items
        .iter()
        .map(|it| match it {
            Value::String(s) => Ok(s.clone()),
            other => Err(wrong(other)),
        })
        .collect()
}

/// A `Sequence(Value("string"))` column.
pub(crate) fn string_list(obj: &Obj, field: &str) -> Result<Vec<String>, RowErrorKind> {
    string_list_value(get(obj, field)?, field)
}

/// A list nested in a struct column, e.g. SQuAD's `answers.text`, DROP's `answers_spans.spans`.
pub(crate) fn nested_string_list(
    obj: &Obj,
    field: &str,
    inner: &str,
) -> Result<Vec<String>, RowErrorKind> {
    let path = format!("{field}.{inner}");
    match get(obj, field)? {
        Value::Object(o) => match o.get(inner) {
            None | Some(Value::Null) => Err(RowErrorKind::MissingField(path)),
            Some(v) => string_list_value(v, &path),
        },
        other => Err(RowErrorKind::WrongType {
            field: field.to_string(),
            expected: "an object",
            found: type_name(other),
        }),
    }
}

/// A 0/1 ClassLabel `label` (stored as int64 in the HF exports).
pub(crate) fn binary_label(obj: &Obj) -> Result<usize, RowErrorKind> {
    let label = int(obj, "label")?;
    match label {
        0 | 1 => Ok(label as usize),
        _ => Err(RowErrorKind::LabelOutOfRange {
            label,
            num_candidates: 2,
        }),
    }
}
