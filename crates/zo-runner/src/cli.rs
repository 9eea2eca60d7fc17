//! Command-line surface (clap derive). Flags are sugar for config keys: each one becomes a
//! `--set key=value` applied after the config files, in the order documented in `--help`.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

/// Zeroth-order fine-tuning of OPT and ResNet: MeZO's ZO-SGD (GA), STP, S2P and AS2P
/// ("Stochastic Two Points Method for Deep Model Zeroth-order Optimization", arXiv 2402.01621).
///
/// Results go to stdout, progress and logs to stderr, everything else to the run directory.
/// Exit status: 0 success, 1 the run failed, 2 bad usage or bad input.
#[derive(Parser, Debug)]
#[command(name = "zo", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every subcommand understands.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// No progress bar and only warnings on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Worker threads for the products, the attention and the weight sweeps (default: every
    /// core; sets RAYON_NUM_THREADS for the process). Results do not depend on it: the same
    /// seed gives the same bits with any count, so a run may resume with another. Under MPI it
    /// is per rank (two ranks on a 2-core machine: --threads 1). At most 1024.
    #[arg(long, global = true, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=MAX_THREADS as i64))]
    pub threads: Option<u16>,
    /// The widest instruction-set extensions zo's CPU kernels may use: generic, avx2, avx512,
    /// avx512bf16, amx or native (default: native, all the CPU has; the environment's
    /// ZO_MAX_ISA where the flag is not given). A cap makes an AVX-512 machine run the code of
    /// an AVX2-only one (AMD Zen 3), an AMX one the code of one without tiles: to time or
    /// check those paths. It never enables what the CPU lacks. The directions z are the same
    /// bits at every level; the products and sums may round differently.
    #[arg(long, global = true, value_name = "LEVEL",
          value_parser = |s: &str| zo_core::cpu::Level::parse(s))]
    pub max_isa: Option<zo_core::cpu::Level>,
    /// Run models on the CPU through candle's own ops, the op sequence of `--device cuda` and
    /// `metal`, instead of zo's CPU kernels (products, attention, LayerNorm, the lm_head's NLL,
    /// the packed forward, ResNet's fused convolutions): several times slower, rounded as
    /// candle rounds. For checking that sequence without a GPU and telling a kernel's rounding
    /// from a model's behaviour (the environment's ZO_CANDLE_OPS=1 where the flag is not given).
    /// The weight sweeps are zo's either way.
    #[arg(long, global = true)]
    pub candle_ops: bool,
}

/// The most worker threads `--threads` (and RAYON_NUM_THREADS) may ask for.
pub const MAX_THREADS: usize = 1024;

impl Global {
    /// Applies `--threads` to this process: called before anything starts a thread pool
    /// (rayon reads RAYON_NUM_THREADS when its global pool starts, candle on every matmul).
    /// Without it, a RAYON_NUM_THREADS above [`MAX_THREADS`] is refused (thousands of threads
    /// would stall the machine before the first step, or abort when the system refuses them);
    /// other values are rayon's (0 or not a number: every core).
    pub fn apply_threads(&self) -> Result<(), String> {
        if let Some(n) = self.threads {
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
            return Ok(());
        }
        let asked = std::env::var("RAYON_NUM_THREADS").ok();
        match asked.as_deref().map(|v| (v, v.trim().parse::<usize>())) {
            Some((v, Ok(n))) if n > MAX_THREADS => Err(format!(
                "RAYON_NUM_THREADS={v}: at most {MAX_THREADS} threads (--threads N sets it)"
            )),
            _ => Ok(()),
        }
    }

    /// Fixes the instruction-set cap of this process (`--max-isa`, else ZO_MAX_ISA): before
    /// any kernel runs. A ZO_MAX_ISA that names no level is refused. `--max-isa` sets
    /// ZO_MAX_ISA for the process, so a child process of this binary (B4's) runs under the
    /// same cap, as `--threads` sets RAYON_NUM_THREADS.
    pub fn apply_max_isa(&self) -> Result<(), String> {
        use zo_core::cpu;
        let level = match self.max_isa {
            Some(l) => {
                std::env::set_var(cpu::ENV, l.name());
                l
            }
            None => cpu::env_max()?.unwrap_or(cpu::Level::Amx),
        };
        cpu::set_max(level)
            .map_err(|set| format!("the instruction-set cap was already fixed at {set}"))
    }

    /// Puts the models of this process on candle's ops (`--candle-ops`, else ZO_CANDLE_OPS:
    /// `1`/`on`/`true`, or `0`/`off`/`false`/empty for zo's kernels; anything else is refused).
    /// The flag sets ZO_CANDLE_OPS=1 for the process, so child processes (B4's) follow it.
    pub fn apply_candle_ops(&self) -> Result<(), String> {
        let on = if self.candle_ops {
            std::env::set_var(CANDLE_OPS_ENV, "1");
            true
        } else {
            match std::env::var(CANDLE_OPS_ENV) {
                Err(_) => false,
                Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                    "1" | "on" | "true" => true,
                    "" | "0" | "off" | "false" => false,
                    _ => {
                        return Err(format!(
                            "{CANDLE_OPS_ENV}={v}: expected 1, on or true (candle's ops) or 0, \
                             off or false (zo's kernels)"
                        ))
                    }
                },
            }
        };
        zo_models::set_candle_ops(on);
        Ok(())
    }
}

/// The environment variable of `--candle-ops`.
pub const CANDLE_OPS_ENV: &str = "ZO_CANDLE_OPS";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fine-tune a model on a task. With no arguments: the built-in quickstart.
    Train(Box<TrainArgs>),
    /// The built-in quickstart: a tiny OPT, a shipped tokenizer and SST-2-format rows, no network.
    Quickstart(QuickstartArgs),
    /// Evaluate a model, a run directory or a saved model.safetensors on a task (MeZO's metrics).
    Eval(Box<EvalArgs>),
    /// Re-apply a run's trajectory to its base model: the fine-tune, rebuilt from kilobytes.
    Replay(ReplayArgs),
    /// Print the rendered prompts, candidates and option spans of task rows as JSON lines.
    Prompts(PromptsArgs),
    /// Run the paper's table cells (built in, or --configs DIR; shrinkable, --mini), then report.
    Reproduce(ReproduceArgs),
    /// Cost-ratio tables (markdown + CSV) and loss plots (SVG + PNG) from run directories.
    Report(ReportArgs),
    /// Fold a LoRA adapter into its base model: a full Hugging Face checkpoint.
    Merge(MergeArgs),
    /// Speed and memory figures (B1-B5 of docs/PERFORMANCE.md) on a random OPT, as JSON lines.
    #[command(after_long_help = BENCH_FIELDS)]
    Bench(crate::bench::BenchArgs),
}

/// What every `zo bench` line carries besides its figure's own fields (`zo bench --help`).
const BENCH_FIELDS: &str = "\
Every line also has: figure (B1..B5, or probe: the quiet-machine check, a 1024x768x3072 f32 \
GEMM on 1 and on all threads through candle's matmul, not zo's kernels, printed before and \
after the figures; its kernel field says so), model, B (batch), threads, \
dtype (the weights' type: f32), compute (the arithmetic the products ran in: f32 or bf16; \
bf16 needs a bf16 kernel, else the products stay f32) and kernel (amx_bf16, avx512bf16, \
avx512_fma_bf16 (bf16 inputs on f32 FMAs, Intel without AMX), avx512, avx2, or candle where \
none of zo's kernels fits the CPU) and isa (the instruction-set level zo's kernels ran at: \
generic, avx2, avx512, avx512bf16 or amx, the CPU's own capped by --max-isa). Timed figures give \
median_s (wall-clock seconds, the median of --repeats) with samples_s, and cpu_s_per_call, \
the process's CPU time per call (about threads x median_s when the cores were not shared). \
B1 lines count FLOPs as the peer does (2 x tokens x linear weights, lm_head included, plus the \
whole T x T attention square; biases, norms, softmax and the loss not counted): flops is that \
count for the full LM loss and, for the task loss, the count of what zo computes (the lm_head \
and the last layer's queries, attention and MLP only where the loss reads); flops_computed is \
the latter for both; gflops_per_s = flops / median_s, and fraction_of_fma_peak = gflops_per_s \
/ fma_peak_gflops (the probed f32 FMA peak; null where the products ran on bf16 units). On the \
avx512bf16 kernel (--compute bf16 without AMX), fraction_of_bf16_dot_peak = gflops_per_s / \
bf16_dot_peak_gflops (the probed vdpbf16ps peak, 4 FLOP per lane and instruction).";

/// Shorthands of the common config keys for `zo train`. Each is the same as `--set KEY=VALUE`
/// for the key it names; they apply over `--config`, and `--set` applies over them.
#[derive(Args, Debug, Default, Clone)]
pub struct TrainFlags {
    /// Model: hub id[@revision], directory, checkpoint file, or builtin:… [model.source]
    #[arg(long, value_name = "SRC", help_heading = "Shorthands")]
    pub model: Option<String>,
    /// Model family: opt (text tasks) or resnet (cifar10, cifar100) [model.kind]
    #[arg(long, value_name = "KIND", help_heading = "Shorthands")]
    pub kind: Option<String>,
    /// Task: sst2, rte, copa, record, squad, drop, cifar10, cifar100 [task.name]
    #[arg(long, value_name = "NAME", help_heading = "Shorthands")]
    pub task: Option<String>,
    /// Task data: hub, builtin:quickstart, or a local directory [task.data]
    #[arg(long, value_name = "SRC", help_heading = "Shorthands")]
    pub data: Option<String>,
    /// Optimizer: ga, stp, s2p, as2p (its other keys: --set optimizer.KEY=…) [optimizer.method]
    #[arg(long, value_name = "METHOD", help_heading = "Shorthands")]
    pub optimizer: Option<String>,
    /// Learning rate α₀ (GA, STP, S2P; AS2P with auto_lr = false) [optimizer.lr]
    #[arg(
        long,
        value_name = "X",
        help_heading = "Shorthands",
        allow_negative_numbers = true
    )]
    pub lr: Option<f64>,
    /// Perturbation size ρ (GA, S2P, AS2P) [optimizer.rho]
    #[arg(
        long,
        value_name = "X",
        help_heading = "Shorthands",
        allow_negative_numbers = true
    )]
    pub rho: Option<f64>,
    /// Number of optimizer steps [train.steps]
    #[arg(long, value_name = "N", help_heading = "Shorthands")]
    pub steps: Option<u64>,
    /// Budget in forward passes instead of steps [train.max_queries]
    #[arg(long, value_name = "N", help_heading = "Shorthands")]
    pub max_queries: Option<u64>,
    /// Examples per step [train.batch_size]
    #[arg(long, value_name = "N", help_heading = "Shorthands")]
    pub batch_size: Option<u64>,
    /// Run seed: directions and batch order [train.seed]
    #[arg(long, value_name = "N", help_heading = "Shorthands",
          value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
    pub seed: Option<u64>,
    /// Seed of the train/dev/test subsets (MeZO's train_set_seed) [task.data_seed]
    #[arg(long, value_name = "N", help_heading = "Shorthands")]
    pub data_seed: Option<u32>,
    /// LR schedule: constant, cosine, linear [train.schedule]
    #[arg(long, value_name = "NAME", help_heading = "Shorthands")]
    pub schedule: Option<String>,
    /// Weight storage: f32, bf16, f16 [model.dtype]
    #[arg(long, value_name = "DTYPE", help_heading = "Shorthands")]
    pub dtype: Option<String>,
    /// Device: cpu, cuda (the GPU of the MPI local rank), cuda:N, metal [model.device]
    #[arg(long, value_name = "DEV", help_heading = "Shorthands")]
    pub device: Option<String>,
    /// Evaluate on dev every N steps (0 = only at the end) [train.eval_every]
    #[arg(long, value_name = "N", help_heading = "Shorthands")]
    pub eval_every: Option<u64>,
    /// Write a checkpoint every N steps (0 = only at the end) [train.checkpoint_every]
    #[arg(long, value_name = "N", help_heading = "Shorthands")]
    pub checkpoint_every: Option<u64>,
}

impl TrainFlags {
    /// The `--set` entries the flags stand for, in a fixed order.
    pub fn to_sets(&self) -> Vec<String> {
        fn s(v: &str) -> String {
            toml::Value::String(v.to_string()).to_string()
        }
        let strings = [
            ("model.source", &self.model),
            ("model.kind", &self.kind),
            ("task.name", &self.task),
            ("task.data", &self.data),
            ("optimizer.method", &self.optimizer),
            ("train.schedule", &self.schedule),
            ("model.dtype", &self.dtype),
            ("model.device", &self.device),
        ];
        // TOML spells the non-finite floats `nan` and `inf` (Rust's `NaN` would be no value at
        // all), so that `--lr nan` meets the optimizer's own check instead of a type error.
        fn float(x: f64) -> String {
            if x.is_finite() {
                format!("{x:e}")
            } else {
                toml::Value::Float(x).to_string()
            }
        }
        let numbers = [
            ("optimizer.lr", self.lr.map(float)),
            ("optimizer.rho", self.rho.map(float)),
            ("train.steps", self.steps.map(|x| x.to_string())),
            ("train.max_queries", self.max_queries.map(|x| x.to_string())),
            ("train.batch_size", self.batch_size.map(|x| x.to_string())),
            ("train.seed", self.seed.map(|x| x.to_string())),
            ("task.data_seed", self.data_seed.map(|x| x.to_string())),
            ("train.eval_every", self.eval_every.map(|x| x.to_string())),
            (
                "train.checkpoint_every",
                self.checkpoint_every.map(|x| x.to_string()),
            ),
        ];
        // The method first: naming another method replaces the optimizer table, which must
        // not discard --lr/--rho given with it.
        let mut out: Vec<String> = strings
            .iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| format!("{k} = {}", s(v))))
            .collect();
        out.sort_by_key(|e| !e.starts_with("optimizer.method"));
        out.extend(
            numbers
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| format!("{k} = {v}"))),
        );
        out
    }
}

/// `zo train`.
#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    /// TOML config file, applied over the built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub flags: TrainFlags,
    /// Override one config key (repeatable), e.g. --set optimizer.rho=1e-3. Applied last.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the resolved config (TOML) and exit without training.
    #[arg(long)]
    pub dry_run: bool,
    /// Continue the interrupted run in this run directory, exactly where it stopped (its
    /// settings are the run's own: no other option applies).
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Run directory to create (default: runs/<task>-<method>-s<seed>, e.g. runs/sst2-as2p-s42).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

impl TrainArgs {
    /// `zo train` with no arguments runs the quickstart.
    pub fn is_empty(&self) -> bool {
        self.config.is_none()
            && self.set.is_empty()
            && self.flags.to_sets().is_empty()
            && !self.dry_run
            && self.resume.is_none()
            && self.out.is_none()
    }
}

/// `zo quickstart`.
#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// Run directory to create.
    #[arg(long, value_name = "DIR", default_value = "runs/quickstart")]
    pub out: PathBuf,
    /// Number of steps (default: the quickstart config's, 500).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Override one config key (repeatable), as for `zo train`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl Default for QuickstartArgs {
    fn default() -> Self {
        Self {
            out: PathBuf::from("runs/quickstart"),
            steps: None,
            set: Vec::new(),
        }
    }
}

/// `zo eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A run directory: its settings, and its best checkpoint (else its final weights).
    #[arg(long, value_name = "RUN_DIR")]
    pub run: Option<PathBuf>,
    /// A model: directory, model.safetensors file (config.json beside it), hub id[@revision]
    /// or builtin:quickstart-opt / builtin:tiny-opt.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<PathBuf>,
    /// Task (sst2, rte, copa, record, squad, drop).
    #[arg(long)]
    pub task: Option<String>,
    /// A LoRA adapter directory (PEFT's layout: adapter_config.json + adapter_model.safetensors)
    /// applied to the model (--model, or the run's model.source).
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// Data: hub, builtin:quickstart, or a local directory.
    #[arg(long)]
    pub data: Option<String>,
    /// Which split(s) to evaluate.
    #[arg(long, value_enum, default_value = "both")]
    pub split: EvalSplit,
    /// In-context evaluation (MeZO's `--trainer none`): every test example is preceded by K
    /// demonstrations from the train split, drawn as MeZO draws them (one set per example);
    /// 0 is zero-shot. Evaluates the test split only.
    #[arg(long, value_name = "K")]
    pub demos: Option<usize>,
    /// Write one JSON line per example (id, scores or generated text, prediction, gold).
    #[arg(long, value_name = "FILE")]
    pub predictions: Option<PathBuf>,
    /// Also write the metrics JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// TOML config file (as for `zo train`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one config key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Splits `zo eval` can evaluate.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalSplit {
    Test,
    Dev,
    Both,
}

impl EvalSplit {
    pub fn includes(self, split: &str) -> bool {
        matches!(
            (self, split),
            (Self::Both, _) | (Self::Test, "test") | (Self::Dev, "dev")
        )
    }
}

/// `zo merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The base model: directory, hub id[@revision] or builtin:….
    #[arg(value_name = "BASE")]
    pub base: String,
    /// The adapter directory (adapter_config.json + adapter_model.safetensors).
    #[arg(value_name = "ADAPTER")]
    pub adapter: PathBuf,
    /// Where to write the merged model (config.json, model.safetensors, tokenizer).
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
}

/// `zo replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The run directory (run.toml names the base model, trajectory.jsonl the sweeps).
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// Where to write the rebuilt model (HF layout).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Device to replay on: cpu, cuda, cuda:N, metal (default: the run's `model.device`). The
    /// directions are the same bits on every device, so a GPU run replayed with `--device cpu`
    /// rebuilds its weights exactly.
    #[arg(long, value_name = "DEV")]
    pub device: Option<crate::settings::DeviceSetting>,
}

/// `zo prompts`.
#[derive(Args, Debug)]
pub struct PromptsArgs {
    /// Task (sst2, rte, copa, record, squad, drop).
    #[arg(long)]
    pub task: String,
    /// Rows to render (JSONL or parquet, the dataset's field names). Default: the task's
    /// fixture rows in tasks/<task>/ of this source tree.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Also tokenize with this tokenizer (builtin:tiny, a directory or hub id) and show the
    /// ids and option lengths.
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// At most this many rows.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// `zo reproduce`.
#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// Which table of the paper: 5 (ResNet-18/50 × CIFAR-10, ResNet-101/152 × CIFAR-100) or
    /// 6 (OPT × SST-2/RTE/COPA/ReCoRD/SQuAD/DROP).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u8).range(5..=6))]
    pub table: u8,
    /// Read the cell configs from DIR (one TOML per cell under DIR/table5/, DIR/table6/ and,
    /// for --mini, DIR/mini/table6/) instead of the ones built into the binary (a copy of
    /// configs/paper/ of the source tree).
    #[arg(long, value_name = "DIR")]
    pub configs: Option<PathBuf>,
    /// The miniature Table 6: GA cosine, GA constant, STP and AS2P on the built-in quickstart
    /// model and SST-2-format rows, tuned hyper-parameters, seeds 1,2,3; minutes on a laptop
    /// CPU, no network.
    #[arg(long)]
    pub mini: bool,
    /// Run every cell once per seed (comma-separated train.seed values, e.g. 1,2,3); the report
    /// gives mean ± std over seeds [default: the cell's own seed; --mini: 1,2,3].
    #[arg(long, value_name = "LIST")]
    pub seeds: Option<String>,
    /// Use this model instead of the paper's (OPT-13B; the pre-trained ResNets): hub id[@revision],
    /// directory, builtin:… (e.g. builtin:tiny-opt, builtin:tiny-resnet).
    #[arg(long)]
    pub model: Option<String>,
    /// Steps per run instead of the paper's 20 000 (evaluations and checkpoints at every fifth).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Only these tasks (comma-separated, e.g. sst2,copa or cifar10).
    #[arg(long)]
    pub tasks: Option<String>,
    /// Override one config key in every cell (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Where the run directories and the report go [default: runs/table5, runs/table6 or
    /// runs/table6-mini].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print every cell's resolved config and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Also evaluate each task's model without training, zero-shot and in context (MeZO's
    /// `icl.sh`: --demos below), and add these baseline rows to the report (report.md's
    /// "Baselines" table; baselines/<task>.json). Table 6 only.
    #[arg(long)]
    pub baselines: bool,
    /// Demonstrations per example of the in-context baseline.
    #[arg(long, value_name = "K", default_value_t = 32)]
    pub demos: usize,
}

/// `zo report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directories (each with run.toml and metrics.jsonl).
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Where to write report.md, report.csv and the plots.
    #[arg(long, value_name = "DIR", default_value = "report")]
    pub out: PathBuf,
    /// Label of the base method (cost 1 at its full run).
    #[arg(long, default_value = "GA")]
    pub base: String,
    /// Thresholds as fractions of the base run: `llm` (1,.75,.5,.25), `resnet` (1,.8,.6,.4,.2),
    /// or a comma-separated list. Default: by the runs' model kind.
    #[arg(long, value_name = "SET")]
    pub fractions: Option<String>,
}

/// The command line; a mistake in it is one line on stderr naming the help to read, and exit
/// code 2 (clap's own report spans several lines: the error, the usage, a tip).
pub fn parse() -> Cli {
    use clap::error::ErrorKind;
    Cli::try_parse().unwrap_or_else(|e| {
        if matches!(
            e.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            e.exit()
        }
        eprintln!("zo: {}", one_line(&e.render().to_string()));
        std::process::exit(2)
    })
}

/// clap's report as one line: its first paragraph without the `error: ` prefix, then which help
/// to read (that of the subcommand on the command line, if any).
fn one_line(report: &str) -> String {
    // The first paragraph (the error, and the possible values where clap lists them), and
    // clap's tips (a similar argument's name).
    let first: Vec<&str> = report
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let tips = report
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("tip:"));
    let first = first.into_iter().chain(tips).collect::<Vec<_>>().join(" ");
    let first = first.strip_prefix("error: ").unwrap_or(&first);
    let cmd = Cli::command();
    let sub = std::env::args()
        .skip(1)
        .find(|a| cmd.get_subcommands().any(|s| s.get_name() == a));
    match sub {
        Some(sub) => format!("{first} (see `zo {sub} --help`)"),
        None => format!("{first} (see `zo --help`)"),
    }
}

/// tracing to stderr: warnings by default, -v/-vv/-vvv for more, RUST_LOG wins when set.
/// Colours only on a terminal: a log redirected to a file or a pipe holds plain text.
pub fn init_logging(g: &Global) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let level = match (g.quiet, g.verbose) {
        (true, _) => "warn",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
