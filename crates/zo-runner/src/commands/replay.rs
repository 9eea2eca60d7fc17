//! `zo replay RUN_DIR --out DIR`: the base model + the run's trajectory (every sweep, in order)
//! = the fine-tuned weights, bit for bit. A fine-tune stored in kilobytes.

use anyhow::anyhow;

use super::{failed, usage, CmdResult};
use crate::cli::{Global, ReplayArgs};
use crate::pipeline::workload::Model;
use crate::rundir::read_jsonl;
use crate::settings::Settings;

pub fn run(g: &Global, a: &ReplayArgs) -> CmdResult {
    let mut s: Settings = crate::rundir::read_settings(&a.run).map_err(usage)?;
    if let Some(device) = a.device {
        s.model.device = device;
    }
    let _ = crate::rundir::check_versions(&a.run).map_err(usage)?;
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
