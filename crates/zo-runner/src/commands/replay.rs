//! `zo replay RUN_DIR --out DIR`: the base model + the run's trajectory (every sweep, in order)
//! = the fine-tuned weights, bit for bit. A fine-tune stored in kilobytes.

use std::path::Path;

use anyhow::{anyhow, Context};

use super::{failed, usage, CmdResult};
use crate::cli::{Global, ReplayArgs};
use crate::pipeline::workload::Model;
use crate::rundir::read_jsonl;
use crate::settings::Settings;

pub fn run(g: &Global, a: &ReplayArgs) -> CmdResult {
    let mut s: Settings = crate::rundir::read_settings(&a.run).map_err(usage)?;
    crate::rundir::check_versions(&a.run)
        .and_then(|started| started.check_settings(&a.run, crate::fingerprint::config(&s)?))
        .map_err(usage)?;
    if let Some(device) = a.device {
        s.model.device = device;
    }
    let source = std::path::Path::new(&s.model.source);
    crate::rundir::check_model_out(&a.out, &[&a.run, source]).map_err(usage)?;
    let traj_path = a.run.join("trajectory.jsonl");
    let sweeps: Vec<zo_core::SweepRecord> = read_jsonl(&traj_path)
        .map_err(usage)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value(v)
                .map_err(|e| anyhow!("{}:{}: not a sweep record: {e}", traj_path.display(), i + 1))
        })
        .collect::<anyhow::Result<_>>()
        .map_err(usage)?;
    check_complete(&a.run, sweeps.len() as u64).map_err(usage)?;
    let model = Model::load(&s, None).map_err(usage)?;
    zo_core::replay(model.params(), &sweeps).map_err(|e| failed(anyhow!("replay: {e}")))?;
    model.save(&a.out, None).map_err(failed)?;
    if !g.quiet {
        eprintln!(
            "replayed {} sweeps onto {} → {}",
            sweeps.len(),
            s.model.source,
            a.out.display()
        );
    }
    Ok(())
}

/// Checks the trajectory against the sweeps the run recorded: all of them for a finished run
/// (results.json), at least the checkpoint's for one that stopped. A trajectory cut short
/// would rebuild other weights than the run's.
fn check_complete(run: &Path, lines: u64) -> anyhow::Result<()> {
    let traj = run.join("trajectory.jsonl");
    let results = run.join("results.json");
    if results.is_file() {
        let v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&results)
                .with_context(|| format!("{}: cannot read", results.display()))?,
        )
        .with_context(|| format!("{}: not JSON", results.display()))?;
        if let Some(n) = v.get("sweeps").and_then(serde_json::Value::as_u64) {
            anyhow::ensure!(
                n == lines,
                "{}: holds {lines} sweeps, the finished run made {n} ({}): the trajectory is incomplete",
                traj.display(),
                results.display()
            );
            return Ok(());
        }
    }
    if run.join("checkpoint/state.json").is_file() {
        let state = crate::rundir::read_checkpoint_state(run)?;
        anyhow::ensure!(
            lines >= state.trainer.sweeps,
            "{}: holds {lines} sweeps, the run's checkpoint records {}: the trajectory is incomplete",
            traj.display(),
            state.trainer.sweeps
        );
    }
    Ok(())
}
