//! `versions.json`: what produced a run directory (zo's version, the direction generator's,
//! the ranks, the kernels' instruction-set level, the ops, the settings' fingerprint), and the
//! checks a resume or a replay makes against it.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::write_atomic;

/// `versions.json`: what produced a run directory. The direction generator's version matters:
/// directions of another version differ, so replaying or resuming such a run here would give
/// other weights; both refuse (see [`check_versions`]).
pub const VERSIONS_FILE: &str = "versions.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct Versions {
    zo: String,
    /// `zo_core::rng::GENERATOR_VERSION` (1 = Philox4x32-10, 2 = Philox4x32-7, 3 = ARS4x32-7).
    generator: u32,
    /// The number of ranks the run started with (runs before this field: 1). A resume may use
    /// another number: the split of each batch gives the same bits whatever the count.
    #[serde(default = "one")]
    world_size: usize,
    /// The instruction-set level the run's kernels started at (`zo_core::cpu`; runs before
    /// this field: none recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    isa: Option<String>,
    /// The CPU it started on (its brand string), for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu: Option<String>,
    /// `"candle"` for a run started under `--candle-ops` (models on candle's own ops, not
    /// zo's CPU kernels); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ops: Option<String>,
    /// The fingerprint of the settings it started with ([`crate::fingerprint::config`]), in hex (runs before
    /// this field: none recorded): a resume or replay of an edited run.toml is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    settings: Option<String>,
}

/// What `versions.json` says of how a run started.
#[derive(Debug, PartialEq, Eq)]
pub struct Started {
    /// The number of ranks.
    pub world_size: usize,
    /// The instruction-set level of its kernels, by name, where recorded (a later zo may
    /// know levels this one does not).
    pub isa: Option<String>,
    /// Whether it started under `--candle-ops`.
    pub candle_ops: bool,
    /// The fingerprint of its settings, where recorded.
    pub settings: Option<String>,
}

impl Started {
    /// Refuses a run whose settings (read back from `dir`'s run.toml) have `fingerprint`
    /// ([`crate::fingerprint::config`]) other than those it started with: its checkpoint and
    /// trajectory belong to those.
    pub fn check_settings(&self, dir: &Path, fingerprint: u64) -> Result<()> {
        match &self.settings {
            Some(then) if *then != hex(fingerprint) => bail!(
                "{}: changed since the run started (versions.json recorded other settings): its checkpoint and trajectory belong to the settings it started with",
                dir.join("run.toml").display()
            ),
            _ => Ok(()),
        }
    }
}

fn hex(fingerprint: u64) -> String {
    format!("{fingerprint:016x}")
}

fn one() -> usize {
    1
}

/// Writes `versions.json` into a run directory started by `world_size` ranks.
/// `settings`: the fingerprint of the run's settings ([`crate::fingerprint::config`]).
pub fn write_versions(dir: &Path, world_size: usize, settings: u64) -> Result<()> {
    let v = Versions {
        zo: env!("CARGO_PKG_VERSION").to_string(),
        generator: zo_core::rng::GENERATOR_VERSION,
        world_size,
        isa: Some(zo_core::cpu::level().name().to_string()),
        cpu: zo_core::cpu::brand(),
        ops: zo_models::candle_ops().then(|| "candle".to_string()),
        settings: Some(hex(settings)),
    };
    write_atomic(
        &dir.join(VERSIONS_FILE),
        serde_json::to_string_pretty(&v)?.as_bytes(),
    )
}

/// Checks that a run directory was made with this build's direction generator, and returns
/// how the run started. A run without `versions.json` predates it and used generator 1 and
/// one rank.
pub fn check_versions(dir: &Path) -> Result<Started> {
    let path = dir.join(VERSIONS_FILE);
    let (generator, started) = match fs::read(&path) {
        Ok(bytes) => {
            let v = serde_json::from_slice::<Versions>(&bytes)
                .with_context(|| format!("{}: invalid", path.display()))?;
            let started = Started {
                world_size: v.world_size,
                isa: v.isa,
                candle_ops: v.ops.as_deref() == Some("candle"),
                settings: v.settings,
            };
            (v.generator, started)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            1,
            Started {
                world_size: 1,
                isa: None,
                candle_ops: false,
                settings: None,
            },
        ),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
    };
    if generator != zo_core::rng::GENERATOR_VERSION {
        anyhow::bail!(
            "{}: the run's directions come from generator version {generator}, this zo has version {}: its trajectory and checkpoint cannot be continued or replayed exactly",
            dir.display(),
            zo_core::rng::GENERATOR_VERSION
        );
    }
    Ok(started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_record_the_world_size_and_isa_and_older_runs_read_as_one_rank() {
        let d = tempfile::tempdir().unwrap();
        let fp = 0x0123_4567_89ab_cdef;
        write_versions(d.path(), 2, fp).unwrap();
        let want = Started {
            world_size: 2,
            isa: Some(zo_core::cpu::level().name().to_string()),
            candle_ops: false,
            settings: Some(hex(fp)),
        };
        assert_eq!(check_versions(d.path()).unwrap(), want);
        want.check_settings(d.path(), fp).unwrap();
        let e = want
            .check_settings(d.path(), fp + 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("run.toml: changed since the run started"), "{e}");
        let text = fs::read_to_string(d.path().join(VERSIONS_FILE)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["isa"], zo_core::cpu::level().name());
        assert_eq!(v["cpu"].as_str(), zo_core::cpu::brand().as_deref());
        assert!(v.get("ops").is_none(), "zo's kernels are not recorded: {v}");
        let old = serde_json::json!({
            "zo": "0.1.0",
            "generator": zo_core::rng::GENERATOR_VERSION,
        });
        fs::write(d.path().join(VERSIONS_FILE), old.to_string()).unwrap();
        let want = Started {
            world_size: 1,
            isa: None,
            candle_ops: false,
            settings: None,
        };
        assert_eq!(check_versions(d.path()).unwrap(), want);
    }
}
