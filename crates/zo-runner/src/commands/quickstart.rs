//! `zo quickstart` (and `zo train` with no arguments): the built-in, network-free run.

use super::{usage, CmdResult};
use crate::cli::{Global, QuickstartArgs};
use crate::settings::{resolve, Sources, DEFAULTS, QUICKSTART};

pub fn run(g: &Global, a: &QuickstartArgs) -> CmdResult {
    let mut sets = vec![format!(
        "train.out = {}",
        toml::Value::String(a.out.display().to_string())
    )];
    if let Some(n) = a.steps {
        sets.push(format!("train.steps = {n}"));
    }
    sets.extend(a.set.iter().cloned());
    let settings = resolve(&Sources {
        base: &[
            ("built-in defaults", DEFAULTS),
            ("built-in quickstart", QUICKSTART),
        ],
        config_file: None,
        sets: &sets,
    })
    .map_err(usage)?;
    if !g.quiet {
        eprintln!(
            "zo quickstart: {} steps of {} on {} with the built-in SST-2-format rows → {}",
            settings.train.steps,
            settings.method().to_uppercase(),
            settings.model.source,
            a.out.display()
        );
    }
    super::train::train(settings, g.quiet)
}
