//! Layered TOML configuration: built-in defaults < `--config FILE` < `--set key=value`.
//!
//! Every layer is a TOML table; later layers override earlier ones key by key (tables merge
//! recursively, everything else is replaced). The merged table is then deserialised into the
//! typed settings with `deny_unknown_fields`, through `serde_path_to_error` so that an error names
//! the full dotted key (`optimizer.rho`, not just `rho`).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use toml::{Table, Value};

/// Merges `over` into `base`: tables merge recursively, any other value replaces.
pub fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Parses a TOML document, naming `origin` (a file path or "built-in defaults") in errors.
pub fn parse_table(text: &str, origin: &str) -> Result<Table> {
    text.parse::<Table>()
        .map_err(|e| anyhow!("{origin}: invalid TOML: {}", one_line(&e.to_string())))
}

/// Reads and parses a TOML file.
pub fn read_table(path: &Path) -> Result<Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read config file", path.display()))?;
    parse_table(&text, &path.display().to_string())
}

/// Turns one `--set key.sub=value` into a one-entry nested table. The value is read as a TOML
/// value (`3`, `1e-3`, `true`, `"x"`, `[1, 2]`); anything that is not valid TOML is taken as a
/// bare string, so `--set task.name=sst2` works without quotes.
pub fn set_to_table(assignment: &str) -> Result<Table> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| anyhow!("--set `{assignment}`: expected key=value"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|p| p.trim().is_empty()) {
        bail!("--set `{assignment}`: empty key");
    }
    let raw = raw.trim();
    let value = match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => t.remove("v").unwrap_or(Value::String(raw.to_string())),
        Err(_) => Value::String(raw.to_string()),
    };
    let mut parts: Vec<&str> = key.split('.').map(str::trim).collect();
    let last = parts.pop().unwrap_or(key);
    let mut table = Table::new();
    table.insert(last.to_string(), value);
    for p in parts.into_iter().rev() {
        let mut outer = Table::new();
        outer.insert(p.to_string(), Value::Table(table));
        table = outer;
    }
    Ok(table)
}

/// Deserialises the merged table into `T`, naming the dotted key of the first error.
pub fn deserialize<T: DeserializeOwned>(table: Table, origin: &str) -> Result<T> {
    let value = Value::Table(table);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = e.path().to_string();
        let inner = one_line(&e.into_inner().to_string());
        // A missing field is reported at its table: name the field's own key.
        if let Some(field) = missing_field(&inner) {
            path = if path == "." || path.is_empty() {
                field.to_string()
            } else {
                format!("{path}.{field}")
            };
        }
        if path == "." || path.is_empty() {
            anyhow!("{origin}: {inner}")
        } else {
            anyhow!("{origin}: key `{path}`: {inner}")
        }
    })
}

/// The field of serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")?
        .split_once('`')
        .map(|(field, _)| field)
}

/// Collapses a multi-line message (toml's errors quote the source) to its first line.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_builds_nested_tables_with_typed_values() {
        let t = set_to_table("optimizer.rho = 1e-3").unwrap();
        assert_eq!(t["optimizer"]["rho"].as_float(), Some(1e-3));
        let t = set_to_table("task.name=sst2").unwrap();
        assert_eq!(t["task"]["name"].as_str(), Some("sst2"));
        let t = set_to_table("train.steps=10").unwrap();
        assert_eq!(t["train"]["steps"].as_integer(), Some(10));
        assert!(set_to_table("novalue").is_err());
        assert!(set_to_table("a..b=1").is_err());
    }

    #[test]
    fn merge_overrides_leaves_and_keeps_siblings() {
        let mut base = parse_table("[a]\nx = 1\ny = 2\n", "base").unwrap();
        merge(&mut base, parse_table("[a]\ny = 3\n", "over").unwrap());
        assert_eq!(base["a"]["x"].as_integer(), Some(1));
        assert_eq!(base["a"]["y"].as_integer(), Some(3));
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    #[test]
    fn errors_name_the_dotted_key() {
        let t = parse_table("[inner]\nn = \"x\"\n", "f.toml").unwrap();
        let e = deserialize::<Outer>(t, "f.toml").unwrap_err().to_string();
        assert!(e.contains("key `inner.n`"), "{e}");
        let t = parse_table("[inner]\nn = 1\nm = 2\n", "f.toml").unwrap();
        let e = deserialize::<Outer>(t, "f.toml").unwrap_err().to_string();
        assert!(e.contains("unknown field `m`"), "{e}");
        let t = parse_table("[inner]\n", "f.toml").unwrap();
        let e = deserialize::<Outer>(t, "f.toml").unwrap_err().to_string();
        assert_eq!(e, "f.toml: key `inner.n`: missing field `n`");
    }
}
