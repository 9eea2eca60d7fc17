//! `zo bench`: the speed and memory figures B1–B5 of docs/PERFORMANCE.md and
//! a scaling table, on an OPT with random weights (fixed seed) or a local checkpoint, f32 on the
//! CPU (and B1/B2 on a built-in ResNet, `resnet.rs`), as JSON lines on stdout (one per figure, printed as soon as it is measured, so a long
//! run that is interrupted keeps what it measured).
//!
//! Every run starts and ends with the quiet-machine probe (a fixed GEMM with 1 and N threads,
//! as the peer's `parallel_probe`): figures measured while the probe ratio is below 1.6 on a
//! 2-core machine were taken on a shared core and must be re-run before being compared with the
//! peer (docs/peer/mezo_torch_bench.py), which is to be run right before or after.

mod figures;
mod flops;
mod measure;
mod resnet;
mod rss;
mod step;

use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use clap::ValueEnum;
use serde_json::{json, Value};
use zo_models::opt::Preset;
use zo_models::{OptConfig, OptModel};

use step::LossKind;

/// Which figure(s) to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Figure {
    /// Forward + loss (full LM loss and task loss): seconds, tokens/s, GFLOP/s.
    B1,
    /// One GA step and one AS2P step (2 forwards + the sweeps).
    B2,
    /// One perturbation sweep over all parameters: ms and GB/s.
    B3,
    /// Peak RSS of a process doing B2 (a child process of this binary).
    B4,
    /// Sweeps per optimizer step.
    B5,
    /// B1 to B5 (not the scaling table).
    All,
    /// GA step time for tiny / 125m / 350m shapes × T (default 64, 128, 256).
    Scaling,
}

/// Options of `zo bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Which figure: b1..b5, all (B1-B5), or scaling.
    #[arg(long, value_enum, default_value = "all")]
    pub figure: Figure,
    /// Built-in random model (`tiny-opt`, `opt-125m`, `opt-350m`: shapes of the facebook
    /// checkpoints, random weights; `tiny-resnet`, `resnet18|34|50|101|152`: CIFAR ResNets,
    /// random weights, figures b1 and b2) or a local OPT directory (config.json + weights).
    #[arg(long, default_value = "opt-125m", value_name = "NAME|DIR")]
    pub model: String,
    /// Sequences (OPT) or 32×32 images (ResNet) per batch. Default: 16 (OPT), 128 (ResNet).
    #[arg(short = 'B', long = "batch")]
    pub batch: Option<usize>,
    /// ResNet: classes of the head; repeatable or a comma-separated list. Default: 10,100
    /// (CIFAR-10 and CIFAR-100).
    #[arg(long, value_delimiter = ',', value_name = "N")]
    pub classes: Vec<usize>,
    /// ResNet: the machine's f32 FMA peak in GFLOP/s for the threads used (e.g. what
    /// docs/peer/peak_fma.c prints), the denominator of `fraction_of_fma_peak`. Default: measured
    /// at the start of the run (reads low on a shared machine).
    #[arg(long, value_name = "GFLOPS", allow_negative_numbers = true)]
    pub fma_peak: Option<f64>,
    /// Tokens per sequence; repeatable or a comma-separated list. Default: 64,128
    /// (scaling: 64,128,256).
    #[arg(short = 'T', long = "seq", value_delimiter = ',', value_name = "T")]
    pub seq: Vec<usize>,
    /// Timed repetitions per figure (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Untimed calls before the timed ones.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Also write the JSON lines to this file (atomically, when the run ends).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Only this loss (default: both, the full LM loss and the task loss).
    #[arg(long, value_enum)]
    pub loss: Option<LossKind>,
    /// Seed of the random weights, the token ids and the directions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Arithmetic of the forward's products: f32, or bf16 (inputs rounded to bf16, f32
    /// accumulation, where the CPU has AMX or AVX512-BF16; f32 elsewhere). B1, B2, B3 and B5.
    #[arg(long, value_enum, default_value = "f32")]
    pub compute: crate::settings::ComputeSetting,
    /// B1/B2/B4/B5 with a LoRA adapter (MeZO's defaults: r 8, α 16 on q_proj and v_proj): the
    /// steps perturb and update the adapter only.
    #[arg(long)]
    pub lora: bool,
    /// Where B3 sweeps: cpu, cuda, cuda:N (needs a `--features cuda` build) or metal. The
    /// other figures run on the CPU. On a GPU each timed sweep ends with a device synchronize;
    /// the line says whether the native kernel ran (`native`) or z was staged from the host.
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: crate::settings::DeviceSetting,
    /// Storage dtype of the weights: f32, bf16 or f16 (MeZO runs f16 on GPUs). B1 and B2 build
    /// the model in it (on the CPU its 16-bit weights and activations are read widened into
    /// the f32 kernels); B3 sweeps weights of the model's shapes in it. The other figures run
    /// f32.
    #[arg(long, default_value = "f32", value_parser = parse_dtype, value_name = "DTYPE")]
    pub dtype: crate::settings::DTypeSetting,
    /// Internal: run as B4's child process (report this process's peak RSS).
    #[arg(long, hide = true)]
    pub child: bool,
}

fn parse_dtype(s: &str) -> std::result::Result<crate::settings::DTypeSetting, String> {
    use crate::settings::DTypeSetting as D;
    match s {
        "f32" | "float32" => Ok(D::F32),
        "bf16" | "bfloat16" => Ok(D::Bf16),
        "f16" | "float16" => Ok(D::F16),
        _ => Err(format!("`{s}` is not one of f32, bf16, f16")),
    }
}

/// A `--model` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSpec {
    Tiny,
    Opt125m,
    Opt350m,
    /// facebook/opt-1.3b … opt-13b shapes, for B3 only (a sweep needs the shapes, not a model:
    /// zero weights are allocated on the `--device` in the `--dtype`).
    Shapes(SweepShapes),
    Dir(PathBuf),
}

/// The larger OPT shapes B3 can sweep (hidden, layers, heads, ffn: the facebook configs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepShapes {
    Opt1_3b,
    Opt2_7b,
    Opt6_7b,
    Opt13b,
}

impl SweepShapes {
    fn name(self) -> &'static str {
        match self {
            SweepShapes::Opt1_3b => "opt-1.3b",
            SweepShapes::Opt2_7b => "opt-2.7b",
            SweepShapes::Opt6_7b => "opt-6.7b",
            SweepShapes::Opt13b => "opt-13b",
        }
    }

    /// The config: opt-125m's (pre-LN, vocabulary 50272, 2048 positions) with these sizes.
    pub fn config(self) -> OptConfig {
        let (h, layers, heads, ffn) = match self {
            SweepShapes::Opt1_3b => (2048, 24, 32, 8192),
            SweepShapes::Opt2_7b => (2560, 32, 32, 10240),
            SweepShapes::Opt6_7b => (4096, 32, 32, 16384),
            SweepShapes::Opt13b => (5120, 40, 40, 20480),
        };
        let mut c = OptConfig::preset(Preset::Opt125m);
        c.hidden_size = h;
        c.num_hidden_layers = layers;
        c.num_attention_heads = heads;
        c.ffn_dim = ffn;
        c.word_embed_proj_dim = Some(h);
        c
    }
}

impl FromStr for ModelSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "tiny-opt" | "tiny" => ModelSpec::Tiny,
            "opt-125m" | "125m" => ModelSpec::Opt125m,
            "opt-350m" | "350m" => ModelSpec::Opt350m,
            "opt-1.3b" | "1.3b" => ModelSpec::Shapes(SweepShapes::Opt1_3b),
            "opt-2.7b" | "2.7b" => ModelSpec::Shapes(SweepShapes::Opt2_7b),
            "opt-6.7b" | "6.7b" => ModelSpec::Shapes(SweepShapes::Opt6_7b),
            "opt-13b" | "13b" => ModelSpec::Shapes(SweepShapes::Opt13b),
            dir => {
                let p = PathBuf::from(dir);
                anyhow::ensure!(
                    p.is_dir(),
                    "--model {dir:?}: neither a built-in model (tiny-opt, opt-125m, opt-350m; \
                     for b3: opt-1.3b, opt-2.7b, opt-6.7b, opt-13b; tiny-resnet, \
                     resnet18|34|50|101|152) nor a model directory"
                );
                ModelSpec::Dir(p)
            }
        })
    }
}

impl ModelSpec {
    pub fn name(&self) -> String {
        match self {
            ModelSpec::Tiny => "tiny-opt".into(),
            ModelSpec::Opt125m => "opt-125m".into(),
            ModelSpec::Opt350m => "opt-350m".into(),
            ModelSpec::Shapes(s) => s.name().into(),
            ModelSpec::Dir(p) => p.display().to_string(),
        }
    }
}

/// The model of `spec` in `dtype`: random weights from `seed` for a preset, or the checkpoint
/// of a directory cast to `dtype`, on the CPU.
pub fn load_model(spec: &ModelSpec, seed: u64, dtype: DType) -> Result<OptModel> {
    let dev = Device::Cpu;
    let preset = |p| OptModel::random(&OptConfig::preset(p), seed, dtype, &dev);
    Ok(match spec {
        ModelSpec::Tiny => preset(Preset::Tiny)?,
        ModelSpec::Opt125m => preset(Preset::Opt125m)?,
        ModelSpec::Opt350m => preset(Preset::Opt350m)?,
        ModelSpec::Shapes(s) => anyhow::bail!("--model {}: shapes for --figure b3 only", s.name()),
        ModelSpec::Dir(d) => OptModel::from_dir(d, dtype, &dev)
            .with_context(|| format!("loading the model in {}", d.display()))?,
    })
}

/// The model with MeZO's default LoRA adapter when `--lora` is given (freshly initialised from
/// `--seed`), else as it is.
pub fn with_lora(model: OptModel, args: &BenchArgs) -> Result<OptModel> {
    if !args.lora {
        return Ok(model);
    }
    let a = crate::adapters::AdapterSettings {
        kind: crate::adapters::AdapterKind::Lora,
        ..Default::default()
    };
    crate::adapters::apply(model, &a, &[], false, args.seed, None)
}

/// The `kernel` field: the products' kernel (`amx_bf16`, `avx512bf16` or `avx512_fma_bf16`
/// for bf16 compute where the CPU has one, else the f32 one: `avx512`, `avx2`), or `candle` on
/// a CPU with none of zo's kernels or under `--candle-ops` (candle's matmul runs the products).
pub fn kernel_name(isa: Option<zo_models::sgemm::Isa>) -> String {
    isa.map_or("candle", zo_models::sgemm::Isa::name).to_owned()
}

/// The kernel of the products under `args` ([`kernel_name`]): `--compute`'s on this CPU, none
/// (candle's matmul) under `--candle-ops`.
pub fn products_isa(args: &BenchArgs) -> Option<zo_models::sgemm::Isa> {
    if zo_models::candle_ops() {
        return None;
    }
    args.compute.kernel().isa()
}

/// Settings shared by the figures, and where their lines go.
pub struct Ctx<'a> {
    pub model: String,
    pub batch: usize,
    pub seqs: Vec<usize>,
    pub repeats: usize,
    pub warmup: usize,
    pub seed: u64,
    /// The kernel the products run on ([`kernel_name`]).
    pub kernel: String,
    /// That kernel (`None`: candle's products), whose arithmetic decides which peak the lines
    /// compare with ([`measure::Peaks`]).
    pub isa: Option<zo_models::sgemm::Isa>,
    /// The weights' storage dtype (`--dtype`), by name.
    dtype: String,
    quiet: bool,
    out: &'a mut dyn Write,
    lines: Vec<String>,
}

impl<'a> Ctx<'a> {
    /// The context of a run with `args`: `default_batch` where `-B` is not given; the kernel
    /// is the one `--compute` picks on this CPU (candle's under `--candle-ops`).
    fn new(
        args: &BenchArgs,
        model: String,
        default_batch: usize,
        seqs: Vec<usize>,
        quiet: bool,
        out: &'a mut dyn Write,
    ) -> Self {
        let isa = products_isa(args);
        Ctx {
            model,
            batch: args.batch.unwrap_or(default_batch),
            seqs,
            repeats: args.repeats,
            warmup: args.warmup,
            seed: args.seed,
            kernel: kernel_name(isa),
            isa,
            dtype: format!("{:?}", args.dtype).to_lowercase(),
            quiet,
            out,
            lines: Vec::new(),
        }
    }

    /// Prints one figure line (adding the fields every line carries), and a short human
    /// summary on stderr unless quiet.
    pub fn emit(&mut self, mut line: Value) -> Result<()> {
        let obj = line
            .as_object_mut()
            .context("a figure line must be a JSON object")?;
        let defaults = [
            ("model", json!(self.model)),
            ("B", json!(self.batch)),
            ("threads", json!(candle_core::utils::get_num_threads())),
            ("dtype", json!(self.dtype)),
            (
                "compute",
                // Whether the kernel rounds the products' inputs to bf16 (`compute` = bf16).
                json!(if self.isa.is_some_and(zo_models::sgemm::Isa::is_bf16) {
                    "bf16"
                } else {
                    "f32"
                }),
            ),
            ("kernel", json!(self.kernel)),
            ("isa", json!(zo_core::cpu::level().name())),
        ];
        for (k, v) in defaults {
            obj.entry(k).or_insert(v);
        }
        let text = serde_json::to_string(&line)?;
        writeln!(self.out, "{text}")?;
        self.out.flush()?;
        if !self.quiet {
            eprintln!("{}", human(&line));
        }
        self.lines.push(text);
        Ok(())
    }
}

/// One short line for a person watching stderr.
fn human(v: &Value) -> String {
    let g = |k: &str| v.get(k).map(|x| x.to_string()).unwrap_or_default();
    let mut s = format!("{} model={} B={}", g("figure"), g("model"), g("B"));
    for k in ["T", "loss", "method", "terms"] {
        if let Some(x) = v.get(k) {
            s.push_str(&format!(" {k}={x}"));
        }
    }
    if let Some(m) = v.get("median_s").and_then(Value::as_f64) {
        s.push_str(&format!(
            " median={m:.4}s min={:.4}s max={:.4}s n={}",
            v["min_s"].as_f64().unwrap_or(f64::NAN),
            v["max_s"].as_f64().unwrap_or(f64::NAN),
            g("repeats")
        ));
    }
    for k in [
        "gflops_per_s",
        "fraction_of_fma_peak",
        "fraction_of_bf16_dot_peak",
        "gb_per_s",
        "peak_rss_gib",
        "sweeps_per_step",
        "ratio",
        "contended",
    ] {
        if let Some(x) = v.get(k).filter(|x| !x.is_null()) {
            s.push_str(&format!(" {k}={x}"));
        }
    }
    s
}

/// Merges the fields of a timing summary into a figure line.
pub fn merge(line: Value, summary: &measure::Summary) -> Result<Value> {
    merge_value(line, serde_json::to_value(summary)?)
}

/// `line` with the fields of the object `extra` it lacks.
pub fn merge_value(mut line: Value, extra: Value) -> Result<Value> {
    let Value::Object(extra) = extra else {
        anyhow::bail!("extra fields must be a JSON object");
    };
    let obj = line
        .as_object_mut()
        .context("a figure line must be a JSON object")?;
    for (k, v) in extra {
        obj.entry(k).or_insert(v);
    }
    Ok(line)
}

/// `zo bench`: JSON lines on stdout. Bad arguments are bad usage (exit 2), found before any
/// probe runs; a figure that fails is a failed run (exit 1).
pub fn run(args: &BenchArgs, quiet: bool) -> crate::exit::CmdResult {
    check_args(args).map_err(crate::exit::usage)?;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    figures(args, quiet, &mut lock).map_err(crate::exit::failed)
}

/// The checks of the arguments alone (bad usage: `zo` exits 2), before any probe runs.
pub fn check_args(args: &BenchArgs) -> Result<()> {
    anyhow::ensure!(args.batch != Some(0), "-B must be at least 1");
    anyhow::ensure!(args.repeats >= 1, "--repeats must be at least 1");
    if let Some(path) = &args.json {
        crate::rundir::check_writable(path)?;
    }
    if resnet::preset(&args.model).is_some() {
        anyhow::ensure!(!args.child, "--child is for OPT models");
        anyhow::ensure!(
            args.fma_peak.is_none_or(|p| p > 0.0 && p.is_finite()),
            "--fma-peak must be a positive number of GFLOP/s"
        );
        anyhow::ensure!(
            args.classes.iter().all(|&c| c >= 2),
            "--classes values must be at least 2"
        );
        anyhow::ensure!(
            matches!(args.figure, Figure::B1 | Figure::B2 | Figure::All),
            "--figure {:?}: a ResNet has the figures b1 (forward), b2 (steps) and all",
            args.figure
        );
        return Ok(());
    }
    anyhow::ensure!(
        args.classes.is_empty() && args.fma_peak.is_none(),
        "--classes and --fma-peak are for ResNet models (resnet18, …)"
    );
    anyhow::ensure!(!args.child || args.loss.is_some(), "--child needs --loss");
    let spec = args.model.parse::<ModelSpec>()?;
    anyhow::ensure!(
        args.figure == Figure::B3
            || (matches!(args.device, crate::settings::DeviceSetting::Cpu)
                && !matches!(spec, ModelSpec::Shapes(_))),
        "--device and the opt-1.3b … opt-13b shapes are for --figure b3 (the sweep); the other \
         figures run on the CPU"
    );
    anyhow::ensure!(
        matches!(args.figure, Figure::B1 | Figure::B2 | Figure::B3)
            || args.dtype == crate::settings::DTypeSetting::F32,
        "--dtype {}: for --figure b1, b2 or b3 (the other figures run f32)",
        format!("{:?}", args.dtype).to_lowercase()
    );
    anyhow::ensure!(
        args.figure != Figure::B3 || !args.lora,
        "--lora: B3 sweeps the whole model"
    );
    anyhow::ensure!(
        args.seq.iter().all(|&t| t >= 2),
        "-T values must be at least 2"
    );
    Ok(())
}

/// [`run`] writing its lines to `out` (the tests' entry).
#[cfg(test)]
pub(crate) fn run_to(args: &BenchArgs, quiet: bool, out: &mut dyn Write) -> Result<()> {
    check_args(args)?;
    figures(args, quiet, out)
}

/// The figures of checked arguments ([`check_args`]).
fn figures(args: &BenchArgs, quiet: bool, out: &mut dyn Write) -> Result<()> {
    if let Some(preset) = resnet::preset(&args.model) {
        let mut ctx = Ctx::new(args, args.model.clone(), 128, Vec::new(), quiet, out);
        let classes = if args.classes.is_empty() {
            vec![10, 100]
        } else {
            args.classes.clone()
        };
        probe_line(&mut ctx, "before")?;
        resnet::run(
            &mut ctx,
            preset,
            args.figure,
            &classes,
            args.fma_peak,
            args.compute.kernel(),
        )?;
        probe_line(&mut ctx, "after")?;
        if let Some(path) = &args.json {
            write_atomically(path, &ctx.lines)?;
        }
        return Ok(());
    }
    let kinds: Vec<LossKind> = match args.loss {
        Some(k) => vec![k],
        None => vec![LossKind::FullLm, LossKind::Task],
    };
    if args.child {
        return rss::child(args, kinds[0]);
    }
    let spec: ModelSpec = args.model.parse()?;
    let seqs = if !args.seq.is_empty() {
        args.seq.clone()
    } else if args.figure == Figure::Scaling {
        vec![64, 128, 256]
    } else {
        vec![64, 128]
    };
    let mut ctx = Ctx::new(args, spec.name(), 16, seqs, quiet, out);
    if args.figure == Figure::B3 && !on_cpu_default(args, &spec) {
        // A sweep on a GPU, in another dtype or over the large shapes: no CPU GEMM probe (it
        // says nothing about these figures).
        figures::b3_shapes(&mut ctx, &spec, args.device, args.dtype)?;
        if let Some(path) = &args.json {
            write_atomically(path, &ctx.lines)?;
        }
        return Ok(());
    }
    probe_line(&mut ctx, "before")?;
    let figures = match args.figure {
        Figure::All => vec![Figure::B1, Figure::B2, Figure::B3, Figure::B4],
        f => vec![f],
    };
    run_figures(&mut ctx, args, &spec, &figures, &kinds)?;
    probe_line(&mut ctx, "after")?;
    if let Some(path) = &args.json {
        write_atomically(path, &ctx.lines)?;
    }
    Ok(())
}

/// The figures' usual setting: f32 weights of a built model on the CPU (B3 otherwise sweeps
/// zero weights of the model's shapes: [`figures::b3_shapes`]).
fn on_cpu_default(args: &BenchArgs, spec: &ModelSpec) -> bool {
    matches!(args.device, crate::settings::DeviceSetting::Cpu)
        && args.dtype == crate::settings::DTypeSetting::F32
        && !matches!(spec, ModelSpec::Shapes(_))
}

/// Runs `figures` in order (B5 is emitted with B2 when both are asked, from the same steps).
fn run_figures(
    ctx: &mut Ctx,
    args: &BenchArgs,
    spec: &ModelSpec,
    figures: &[Figure],
    kinds: &[LossKind],
) -> Result<()> {
    let needs_model = figures
        .iter()
        .any(|f| matches!(f, Figure::B1 | Figure::B2 | Figure::B3 | Figure::B5));
    let model = if needs_model {
        let mut m = with_lora(load_model(spec, args.seed, args.dtype.candle())?, args)?;
        m.set_compute(args.compute.kernel());
        Some(m)
    } else {
        None
    };
    let with_b5 = args.figure == Figure::All;
    for f in figures {
        let m = model.as_ref();
        match f {
            Figure::B1 => figures::b1(ctx, m.context("model")?, kinds)?,
            Figure::B2 => figures::b2(ctx, m.context("model")?, kinds, with_b5)?,
            Figure::B3 => figures::b3(ctx, m.context("model")?)?,
            Figure::B4 => rss::b4(ctx, args, kinds)?,
            Figure::B5 => figures::b5(ctx, m.context("model")?)?,
            Figure::Scaling => figures::scaling(ctx)?,
            Figure::All => unreachable!("expanded by run_to"),
        }
    }
    Ok(())
}

/// What the probe line names as its kernel.
const PROBE_KERNEL: &str = "gemm crate (candle matmul)";

/// The probe as a line of its own (and a warning on stderr when the cores were shared).
fn probe_line(ctx: &mut Ctx, when: &str) -> Result<()> {
    let p = measure::probe()?;
    if p.contended {
        tracing::warn!(
            "quiet-machine probe {when}: {} threads give only {:.3}× one thread's GEMM \
             GFLOP/s (< {}): the cores are shared, figures are not comparable",
            p.threads,
            p.ratio,
            measure::PROBE_MIN_RATIO
        );
    }
    let mut v = serde_json::to_value(&p)?;
    let obj = v.as_object_mut().context("probe object")?;
    obj.insert("figure".into(), json!("probe"));
    obj.insert("when".into(), json!(when));
    // The probe's GEMM is candle's (the gemm crate, with its own kernel choice: its AVX2 one
    // on some AVX-512 CPUs), not zo's: the line says so instead of carrying the figures' kernel,
    // so its GFLOP/s are not read as zo's kernel's.
    obj.insert("kernel".into(), json!(PROBE_KERNEL));
    ctx.emit(v)
}

/// Writes `lines` to `path` through a temporary file in the same directory and a rename.
fn write_atomically(path: &std::path::Path, lines: &[String]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let name = path
        .file_name()
        .with_context(|| format!("--json {}: not a file path", path.display()))?;
    let tmp = dir
        .map(|d| d.join(format!(".{}.tmp", name.to_string_lossy())))
        .unwrap_or_else(|| PathBuf::from(format!(".{}.tmp", name.to_string_lossy())));
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests;
