//! `zo train` (and the quickstart): resolve settings → prepare the run directory → load model,
//! tokenizer, data → the training loop (`crate::training`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

use super::{failed, usage, CmdError, CmdResult};
use crate::cli::{Global, TrainArgs};
use crate::pipeline::workload::Workload;
use crate::rundir::write_atomic;
use crate::rundir::CheckpointState;
use crate::settings::{resolve, Settings, Sources, DEFAULTS};

pub fn run(g: &Global, a: &TrainArgs) -> CmdResult {
    if let Some(dir) = &a.resume {
        if a.config.is_some()
            || !a.set.is_empty()
            || !a.flags.to_sets().is_empty()
            || a.dry_run
            || a.out.is_some()
        {
            return Err(usage(anyhow!(
                "--resume {}: continues the run with its own settings; drop the other options",
                dir.display()
            )));
        }
        return resume(g, dir);
    }
    let mut sets = a.flags.to_sets();
    sets.extend(a.set.iter().cloned());
    if let Some(out) = &a.out {
        sets.push(format!(
            "train.out = {}",
            toml::Value::String(out.display().to_string())
        ));
    }
    let settings = resolve(&Sources {
        base: &[("built-in defaults", DEFAULTS)],
        config_file: a.config.as_deref(),
        sets: &sets,
    })
    .map_err(usage)?;
    if a.dry_run {
        print!("{}", settings.to_toml().map_err(failed)?);
        return Ok(());
    }
    train(settings, g.quiet)
}

/// The run directory a settings value names (default runs/<task>-<method>-s<seed>).
pub fn out_dir(s: &Settings) -> PathBuf {
    if s.train.out.as_os_str().is_empty() {
        PathBuf::from(format!(
            "runs/{}-{}-s{}",
            s.task.name,
            s.method(),
            s.train.seed
        ))
    } else {
        s.train.out.clone()
    }
}

/// run.toml: the resolved settings plus the versions and the number of ranks that produced
/// them.
fn run_toml(s: &Settings, world_size: usize) -> Result<String> {
    let mut text = s.to_toml()?;
    text.push_str(&format!(
        "\n# written by zo {} (candle-core 0.11), {world_size} {}\n",
        env!("CARGO_PKG_VERSION"),
        if world_size == 1 { "rank" } else { "ranks" }
    ));
    Ok(text)
}

pub fn resume(g: &Global, dir: &Path) -> CmdResult {
    // First, so that a rank failing below stops every rank (see `crate::main`).
    let world = crate::dist::world().map_err(usage)?;
    let settings: Settings = crate::rundir::read_settings(dir).map_err(usage)?;
    let started = crate::rundir::check_versions(dir).map_err(usage)?;
    crate::fingerprint::config(&settings)
        .and_then(|fp| started.check_settings(dir, fp))
        .map_err(usage)?;
    // Rank 0 alone repairs an interrupted checkpoint replacement; the others read after it.
    if world.writes() {
        crate::rundir::recover_dir(&dir.join("checkpoint")).map_err(usage)?;
    }
    if world.size() > 1 {
        world.all_gather_u64(0).map_err(usage)?;
    }
    let mut settings = settings;
    settings.train.out = dir.to_path_buf();
    if !dir.join("checkpoint/state.json").is_file() && !dir.join("results.json").is_file() {
        // Stopped before its first checkpoint: the exact continuation is the run from its
        // first step (the same seed, the same bits); its logs are written anew.
        if world.writes() {
            tracing::warn!(
                "{}: no checkpoint yet (the run stopped before its first): starting it over from step 0",
                dir.display()
            );
        }
        return start_run(settings, Start::Over, g.quiet);
    }
    let state = crate::rundir::read_checkpoint_state(dir).map_err(usage)?;
    tracing::info!(
        step = state.trainer.step,
        started_with_ranks = started.world_size,
        "resuming from the checkpoint (any number of ranks continues it exactly)"
    );
    if let Some(then) = started.isa.as_deref() {
        check_isa(dir, then, settings.model.compute);
    }
    if settings.model.device == crate::settings::DeviceSetting::Cpu {
        check_ops(dir, started.candle_ops);
    }
    start_run(settings, Start::Resume(state), g.quiet)
}

/// Warns when a run resumes at an instruction-set level whose products round differently from
/// the level it started at (`then`, from `versions.json`): the steps from here are then not
/// the bits an uninterrupted run would have made.
fn check_isa(dir: &Path, then: &str, compute: crate::settings::ComputeSetting) {
    let now = zo_core::cpu::level();
    match zo_core::cpu::Level::parse(then) {
        Ok(level) if same_products(compute, level, now) => {
            if level != now {
                tracing::info!(
                    started = then,
                    now = now.name(),
                    "resuming at another instruction-set level, whose products give the same bits"
                );
            }
        }
        _ => tracing::warn!(
            "{}: the run started with its kernels at {then} and resumes at {now} (model.compute = {}), whose products round differently: the steps from here are not the bits an uninterrupted run would have made (--max-isa {then} runs at that level where the CPU has it)",
            dir.display(),
            format!("{compute:?}").to_lowercase()
        ),
    }
}

/// Warns when a CPU run resumes on other ops than it started on (`--candle-ops` or zo's
/// kernels; `then`: whether it started on candle's, from `versions.json`), which round
/// differently.
fn check_ops(dir: &Path, then: bool) {
    let now = zo_models::candle_ops();
    if then != now {
        let name = |c: bool| {
            if c {
                "candle's ops"
            } else {
                "zo's CPU kernels"
            }
        };
        tracing::warn!(
            "{}: the run started on {} and resumes on {}, which round differently: the steps from here are not the bits an uninterrupted run would have made",
            dir.display(),
            name(then),
            name(now)
        );
    }
}

/// Whether the forward's products give the same bits at levels `a` and `b`: with f32 products
/// every vector level shares one FMA order and `generic` (candle's products) has its own; bf16
/// products round their inputs on AMX tiles (`amx`) or with `vdpbf16ps`'s bits
/// (`avx512bf16`), and run in f32 below.
fn same_products(
    compute: crate::settings::ComputeSetting,
    a: zo_core::cpu::Level,
    b: zo_core::cpu::Level,
) -> bool {
    use crate::settings::ComputeSetting;
    use zo_core::cpu::Level;
    let class = |l: Level| match (compute, l) {
        (_, Level::Generic) => 0,
        (ComputeSetting::Bf16, Level::Amx) => 3,
        (ComputeSetting::Bf16, Level::Avx512Bf16) => 2,
        _ => 1,
    };
    class(a) == class(b)
}

/// A new run, the whole of it ([`start_run`]).
pub fn train(settings: Settings, quiet: bool) -> CmdResult {
    start_run(settings, Start::New, quiet)
}

/// Where a run starts.
enum Start {
    /// A new run in a new (or empty) directory.
    New,
    /// Again from step 0 in its own directory (it stopped before its first checkpoint).
    Over,
    /// From a checkpoint.
    Resume(CheckpointState),
}

/// The whole run, from where `start` says.
///
/// Under an MPI launcher every rank runs this with the same settings; rank 0 alone writes the
/// run directory (takes its lock, writes run.toml, versions.json, the logs and the weights), the
/// others only read it (the checkpoint on a resume, `best/` before the final evaluation).
fn start_run(settings: Settings, start: Start, quiet: bool) -> CmdResult {
    let world = crate::dist::world().map_err(usage)?;
    let writes = world.writes();
    let out = out_dir(&settings);
    let (new, resume) = match start {
        Start::New => (true, None),
        Start::Over => (false, None),
        Start::Resume(state) => (false, Some(state)),
    };
    // Bad input first (exit 2): run directory, model, tokenizer, data.
    // One writer per run directory, held until the run ends.
    if new && writes {
        check_new_run_dir(&out).map_err(usage)?;
    }
    check_budget(&settings).map_err(usage)?;
    let _lock = if writes {
        Some(lock_run_dir(&out)?)
    } else {
        None
    };
    if new && writes {
        if out.join("run.toml").exists() {
            return Err(usage(anyhow!(
                "{}: already holds a run (use --resume {} to continue it, or another --out)",
                out.display(),
                out.display()
            )));
        }
        // Created (and so checked for writability) before the slow loading; run.toml, which
        // marks the directory as holding a run, is written only once every input loaded, so a
        // start that fails on bad input can simply be retried.
        std::fs::create_dir_all(&out)
            .with_context(|| format!("{}: cannot create the run directory", out.display()))
            .map_err(usage)?;
    }
    let ckpt = out.join("checkpoint");
    let work = Workload::load(&settings, resume.as_ref().map(|_| ckpt.as_path())).map_err(usage)?;
    let (n_train, n_dev, n_test) = work.sizes();
    if n_train == 0 {
        return Err(usage(anyhow!(
            "task {}: no training examples",
            settings.task.name
        )));
    }
    tracing::info!(train = n_train, dev = n_dev, test = n_test, "data ready");
    crate::fingerprint::check_run(world.as_ref(), &settings, &work).map_err(usage)?;
    if new && writes {
        let fingerprint = crate::fingerprint::config(&settings).map_err(failed)?;
        crate::rundir::write_versions(&out, world.size(), fingerprint).map_err(usage)?;
        write_atomic(
            &out.join("run.toml"),
            run_toml(&settings, world.size())
                .map_err(failed)?
                .as_bytes(),
        )
        .map_err(usage)?;
    }

    crate::training::run_loop(&settings, &out, &work, resume, quiet, world.as_ref())
}

/// A budget in forward passes must pay for one step at least (else the run would make no
/// step and leave a run directory without results).
fn check_budget(s: &Settings) -> anyhow::Result<()> {
    let q = s.train.max_queries;
    if q > 0 {
        let per_step = s
            .optimizer
            .build()
            .map_err(|e| anyhow!("config: optimizer: {e}"))?
            .queries_per_step();
        anyhow::ensure!(
            q >= per_step,
            "config: key `train.max_queries`: {q} forward passes is less than one step of {} ({per_step})",
            s.method()
        );
    }
    Ok(())
}

/// A new run's directory: new, or empty but for what a start that failed on bad input leaves
/// (the lock file, versions.json); a run's (run.toml) is refused by the caller with a hint to
/// resume it; any other file, the user's, is refused rather than overwritten.
fn check_new_run_dir(out: &Path) -> anyhow::Result<()> {
    if out.join("run.toml").exists() {
        return Ok(());
    }
    match std::fs::metadata(out) {
        // Not there (or not reachable): created below, or refused naming why.
        Err(_) => return Ok(()),
        Ok(m) if !m.is_dir() => anyhow::bail!("{}: exists and is not a directory", out.display()),
        Ok(_) => {}
    }
    let leftovers = [crate::lock::LOCK_FILE, "versions.json"];
    match crate::rundir::foreign_entry(out, |name, _| leftovers.contains(&name))? {
        Some(name) => anyhow::bail!(
            "{}: holds `{name}` but no run: a new run needs a new or empty directory (another --out)",
            out.display()
        ),
        None => Ok(()),
    }
}

/// Creates the run directory if needed and takes its lock (refused, naming the holder's pid,
/// while another process writes it).
fn lock_run_dir(out: &Path) -> Result<crate::lock::RunLock, CmdError> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create the run directory", out.display()))
        .map_err(usage)?;
    crate::lock::RunLock::acquire(out).map_err(usage)
}

#[cfg(test)]
mod tests {
    use super::same_products;
    use crate::settings::ComputeSetting::{Bf16, F32};
    use zo_core::cpu::Level::*;

    #[test]
    fn products_round_alike_across_vector_levels_in_f32_only() {
        for (a, b) in [(Avx2, Avx512), (Avx2, Amx), (Avx512Bf16, Amx), (Amx, Amx)] {
            assert!(
                same_products(F32, a, b) && same_products(F32, b, a),
                "{a} {b}"
            );
        }
        assert!(!same_products(F32, Generic, Avx2));
        assert!(same_products(Bf16, Avx2, Avx512));
        assert!(same_products(Bf16, Amx, Amx));
        for (a, b) in [(Avx512, Avx512Bf16), (Avx512Bf16, Amx), (Generic, Avx2)] {
            assert!(
                !same_products(Bf16, a, b) && !same_products(Bf16, b, a),
                "{a} {b}"
            );
        }
    }
}
