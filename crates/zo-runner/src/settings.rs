//! The resolved settings of a run: `configs/default.toml` (built in) < `--config FILE` <
//! flags and `--set key=value`. Every table denies unknown keys; values are typed (dtype,
//! device, task, optimizer are enums, not strings), so a typo is an error naming the key.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use zo_core::optim::OptimizerConfig;
use zo_core::Schedule;
use zo_tasks::{AnyTask, Objective, Task};

pub use crate::adapters::AdapterSettings;
use crate::layers;

/// The built-in defaults (MeZO's protocol with AS2P; see the file for the why of each value).
pub const DEFAULTS: &str = include_str!("../../../configs/default.toml");
/// The quickstart's overrides of the defaults.
pub const QUICKSTART: &str = include_str!("../../../configs/quickstart.toml");

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub model: ModelSettings,
    pub task: TaskSettings,
    pub optimizer: OptimizerConfig,
    pub train: TrainSettings,
    #[serde(default, skip_serializing_if = "AdapterSettings::is_default")]
    pub adapter: AdapterSettings,
    #[serde(default, skip_serializing_if = "ReportSettings::is_empty")]
    pub report: ReportSettings,
}

/// Storage dtype of the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DTypeSetting {
    F32,
    Bf16,
    F16,
}

impl DTypeSetting {
    pub fn candle(self) -> candle_core::DType {
        match self {
            Self::F32 => candle_core::DType::F32,
            Self::Bf16 => candle_core::DType::BF16,
            Self::F16 => candle_core::DType::F16,
        }
    }
}

/// Which BOS id prompts start with (docs/PROTOCOL.md 1.0): MeZO's protocol prepends id 0, HF's
/// OPT tokenizer id 2. Explicit, never sniffed from the model name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BosSetting {
    Mezo,
    Hf,
}

/// Architecture family of `model.source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// OPT: the text tasks.
    Opt,
    /// ResNet: the image tasks.
    Resnet,
}

/// Where the model runs: `cpu`, `cuda` / `cuda:N`, `metal`. Plain `cuda` is the GPU of the
/// process's node-local rank under an MPI launcher (one rank per GPU), GPU 0 otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSetting {
    Cpu,
    /// `cuda`: the GPU of the node-local rank ([`crate::dist::local_cuda_ordinal`]).
    CudaLocal,
    Cuda(usize),
    Metal,
}

impl FromStr for DeviceSetting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "metal" => Ok(Self::Metal),
            "cuda" => Ok(Self::CudaLocal),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("`{s}` is not one of cpu, cuda, cuda:N, metal")),
        }
    }
}

impl TryFrom<String> for DeviceSetting {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for DeviceSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::CudaLocal => f.write_str("cuda"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal => f.write_str("metal"),
        }
    }
}

impl From<DeviceSetting> for String {
    fn from(d: DeviceSetting) -> String {
        d.to_string()
    }
}

impl DeviceSetting {
    /// Opens the device; a missing driver or GPU is an error naming the key.
    pub fn open(self) -> Result<candle_core::Device> {
        let dev = match self {
            Self::Cpu => Ok(candle_core::Device::Cpu),
            Self::CudaLocal => {
                candle_core::Device::new_cuda(crate::dist::local_cuda_ordinal(|k| {
                    std::env::var(k).ok()
                }))
            }
            Self::Cuda(n) => candle_core::Device::new_cuda(n),
            Self::Metal => candle_core::Device::new_metal(0),
        };
        dev.map_err(|e| anyhow::anyhow!("config: key `model.device`: {self}: {e}"))
    }
}

/// The training objective of a text task: the task's own (MeZO's), or one forced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectiveSetting {
    #[default]
    #[serde(rename = "")]
    Task,
    #[serde(rename = "classification")]
    Classification,
    #[serde(rename = "lm")]
    Lm,
    /// MeZO's `--non_diff`: f = −F1 of the greedy generation (SQuAD, DROP).
    #[serde(rename = "non_diff")]
    NonDiff,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// `builtin:quickstart-opt` (the quickstart's pre-trained small OPT, compiled in),
    /// `builtin:tiny-opt` (random weights from `init_seed`), a directory, or a hub repo id with
    /// an optional `@revision` (e.g. `facebook/opt-125m@main`).
    pub source: String,
    /// Architecture family: `opt` (the text tasks) or `resnet` (cifar10, cifar100).
    pub kind: ModelKind,
    pub dtype: DTypeSetting,
    /// `cpu`, `cuda` (the GPU of the MPI local rank, 0 without a launcher), `cuda:N` or `metal`.
    pub device: DeviceSetting,
    /// Tokenizer: `builtin:tiny`, a directory, or empty for the model's own files.
    #[serde(default)]
    pub tokenizer: String,
    pub bos: BosSetting,
    /// Seed of the random initialisation of `builtin:*` models.
    pub init_seed: u64,
    /// Arithmetic of the OPT forward's products on the CPU: `f32`, or `bf16` (inputs rounded to
    /// bf16, f32 accumulation; AMX or AVX512-BF16 CPUs, f32 elsewhere; see
    /// `zo_models::sgemm::Compute::isa`). The weights stay `dtype`.
    #[serde(default)]
    pub compute: ComputeSetting,
    /// Give the OPT its own `lm_head.weight`, a copy of the embeddings (MeZO's `--untie_emb`),
    /// so `train.trainable = ["lm_head"]` tunes the head alone (MeZO's `--head_tuning`).
    #[serde(default)]
    pub untie_embeddings: bool,
}

/// `model.compute`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ComputeSetting {
    #[default]
    F32,
    Bf16,
}

impl ComputeSetting {
    pub fn kernel(self) -> zo_models::sgemm::Compute {
        match self {
            Self::F32 => zo_models::sgemm::Compute::F32,
            Self::Bf16 => zo_models::sgemm::Compute::Bf16,
        }
    }

    /// [`ComputeSetting::kernel`], warning once per process when bf16 was asked for on a CPU
    /// without AMX-BF16 or AVX512-BF16 (the products then run in f32), or where the bf16
    /// products run on the f32 FMA units (Intel without AMX: no faster than f32).
    pub fn kernel_for_this_cpu(self) -> zo_models::sgemm::Compute {
        use zo_models::sgemm::{Compute, Isa};
        static SAID: std::sync::Once = std::sync::Once::new();
        let compute = self.kernel();
        if compute == Compute::Bf16 {
            SAID.call_once(|| match compute.isa() {
                Some(Isa::Avx512FmaBf16) => tracing::warn!(
                    "model.compute = \"bf16\": this Intel CPU has no AMX (or does not let zo use it) and its vdpbf16ps runs at half the f32 FMA rate, so the bf16 products run on the f32 FMA units: no faster than compute = \"f32\""
                ),
                isa if !isa.is_some_and(Isa::is_bf16) => tracing::warn!(
                    "model.compute = \"bf16\": this CPU has no AVX512-BF16 (nor AMX-BF16); the products run in f32"
                ),
                _ => {}
            });
        }
        compute
    }
}

/// What to do with a data row that breaks the task's schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BadRows {
    Fail,
    Skip,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSettings {
    /// sst2, rte, copa, record, squad, drop (OPT); cifar10, cifar100 (ResNet).
    pub name: AnyTask,
    /// `hub` (the task's dataset through the hub cache), `builtin:quickstart` (the SST-2-format
    /// rows shipped in the binary), or a local directory with the hub layout or
    /// train/validation files.
    pub data: String,
    pub num_train: usize,
    pub num_dev: usize,
    pub num_eval: usize,
    /// MeZO's `--train_set_seed`.
    pub data_seed: u32,
    pub bad_rows: BadRows,
    /// Override the task's training objective: `classification` or `lm` (empty: the task's).
    #[serde(default)]
    pub objective: ObjectiveSetting,
    /// Evaluations during training use at most this many dev examples (0 = all).
    pub eval_examples: usize,
    /// MeZO's `--max_length`: tokens per sequence, BOS included (0 = min(2048, the model's
    /// `max_position_embeddings`)). Longer prompts are left-truncated keeping the BOS.
    #[serde(default)]
    pub max_length: usize,
    /// MeZO's `--max_new_tokens`: the generation budget of SQuAD and DROP; their prompts are
    /// truncated to `max_length − max_new_tokens`.
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: usize,
}

fn default_max_new_tokens() -> usize {
    zo_tasks::MAX_NEW_TOKENS
}

/// The token budgets of a text task on a given model (see [`Settings::text_limits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextLimits {
    /// `task.max_length` resolved against the model.
    pub max_length: usize,
    /// Tokens each encoded sequence may have: `max_length`, less `max_new_tokens` for a
    /// generation task (MeZO's `encode_prompt`).
    pub encode_budget: usize,
    /// New tokens a generation may add (0 for candidate tasks).
    pub max_new_tokens: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// Number of optimizer steps (ignored when `max_queries` > 0).
    pub steps: u64,
    /// Budget in forward passes instead of steps (0 = use `steps`).
    pub max_queries: u64,
    pub batch_size: usize,
    /// Run seed: every direction and the batch order derive from it and the step number.
    pub seed: u64,
    pub schedule: Schedule,
    /// Evaluate on dev every N steps (0 = only at the end).
    pub eval_every: u64,
    /// Also evaluate on dev before the first step of a fresh run.
    #[serde(default)]
    pub eval_at_start: bool,
    /// Write a checkpoint every N steps (0 = only at the end).
    pub checkpoint_every: u64,
    /// Run directory (empty: runs/<task>-<method>-s<seed>).
    #[serde(default)]
    pub out: PathBuf,
    /// Train only the base tensors matching one of these name patterns (a pattern with `*` or
    /// `?` is a glob over the whole name, any other a substring); empty: every tensor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trainable: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// Label of this run in `zo report` tables (default: from the method).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The table (and plot) this run belongs to in `zo report` (default: the task name).
    /// Table 5 groups by model and dataset (`resnet18-cifar10`), as two ResNets share CIFAR-10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl ReportSettings {
    fn is_empty(&self) -> bool {
        self.label.is_none() && self.group.is_none()
    }
}

/// Where the layers come from, in order.
pub struct Sources<'a> {
    pub base: &'a [(&'a str, &'a str)],
    pub config_file: Option<&'a std::path::Path>,
    pub sets: &'a [String],
}

/// Merges one layer. The `[optimizer]` table is special: a layer that names another
/// `optimizer.method` replaces the whole table (the methods have different keys, so merging
/// AS2P's `eta_b` into a GA table would only produce an "unknown field" error).
fn merge_layer(table: &mut toml::Table, layer: toml::Table) {
    let method = |t: &toml::Table| {
        t.get("optimizer")?
            .get("method")?
            .as_str()
            .map(str::to_string)
    };
    if let (Some(new), Some(old)) = (method(&layer), method(table)) {
        if new != old {
            table.remove("optimizer");
        }
    }
    layers::merge(table, layer);
}

/// Merges the layers and deserialises them; errors name the file (or `--set`) and the key.
pub fn resolve(src: &Sources<'_>) -> Result<Settings> {
    let mut table = toml::Table::new();
    for (origin, text) in src.base {
        merge_layer(&mut table, layers::parse_table(text, origin)?);
    }
    if let Some(path) = src.config_file {
        merge_layer(&mut table, layers::read_table(path)?);
    }
    // A `--set optimizer.method=…` (which replaces the optimizer table) goes before the other
    // entries, so that the keys given beside it on the same command line (`--lr`, `--rho`,
    // `--set optimizer.KEY=…`) apply to the method it names, in whatever order they came.
    let is_method = |s: &&String| {
        s.split_once('=')
            .is_some_and(|(k, _)| k.trim() == "optimizer.method")
    };
    let (methods, others): (Vec<&String>, Vec<&String>) = src.sets.iter().partition(is_method);
    for s in methods.into_iter().chain(others) {
        merge_layer(&mut table, layers::set_to_table(s)?);
    }
    let origin = match src.config_file {
        Some(p) => format!("config ({} + overrides)", p.display()),
        None => "config".to_string(),
    };
    let method = table
        .get("optimizer")
        .and_then(|o| o.get("method"))
        .and_then(toml::Value::as_str)
        .unwrap_or("")
        .to_string();
    let settings: Settings = layers::deserialize(table, &origin)
        .map_err(|e| explain_missing_optimizer_key(e, &method))?;
    settings.validate()?;
    Ok(settings)
}

/// Says what to give for a key a method has no default for (the built-in defaults are AS2P's):
/// `--optimizer ga` alone would otherwise meet serde's bare "missing field `lr`".
fn explain_missing_optimizer_key(e: anyhow::Error, method: &str) -> anyhow::Error {
    let (key, what) = match method {
        "ga" | "stp" => (
            "lr",
            "has no default step size: give one with --lr (MeZO's full fine-tuning of OPT uses \
             1e-6 or 1e-7, with ρ = 1e-3)",
        ),
        "s2p" => (
            "option",
            "needs its step-size option: --set optimizer.option=N with N = 1 (α₀/√(Kd), with \
             --lr), 2 (|γ|/(Ld), with optimizer.l), 3 or 4 ((L₀, L₁)-smoothness, with \
             optimizer.l1, and for 4 optimizer.l0); see docs/ALGORITHMS.md",
        ),
        _ => return e,
    };
    let message = e.to_string();
    match message.split_once(&format!("key `optimizer.{key}`: missing field")) {
        Some((origin, _)) => {
            anyhow::anyhow!("{origin}key `optimizer.{key}`: method `{method}` {what}")
        }
        None => e,
    }
}

impl Settings {
    /// Checks what serde cannot: ranges and combinations. Errors name the key.
    pub fn validate(&self) -> Result<()> {
        if self.train.batch_size == 0 {
            bail!("config: key `train.batch_size`: must be at least 1");
        }
        if self.train.steps == 0 && self.train.max_queries == 0 {
            bail!("config: key `train.steps`: set train.steps or train.max_queries above 0");
        }
        self.adapter
            .validate(&self.train.trainable, self.model.kind == ModelKind::Opt)?;
        if self.model.untie_embeddings && self.model.kind != ModelKind::Opt {
            bail!("config: key `model.untie_embeddings`: applies to OPT models only");
        }
        if !self.train.trainable.is_empty() && self.model.kind != ModelKind::Opt {
            bail!("config: key `train.trainable`: tensor subsets apply to OPT models only");
        }
        match (self.model.kind, self.task.name) {
            (ModelKind::Opt, AnyTask::Text(_)) | (ModelKind::Resnet, AnyTask::Image(_)) => {}
            (ModelKind::Opt, AnyTask::Image(t)) => bail!(
                "config: key `model.kind`: `opt` cannot train on image task `{t}` (set model.kind = \"resnet\")"
            ),
            (ModelKind::Resnet, AnyTask::Text(t)) => bail!(
                "config: key `model.kind`: `resnet` cannot train on text task `{t}` (only cifar10, cifar100)"
            ),
        }
        if let (AnyTask::Text(t), ObjectiveSetting::NonDiff) = (self.task.name, self.task.objective)
        {
            if t.spec().eval_mode != zo_tasks::EvalMode::Generation {
                bail!("config: key `task.objective`: `non_diff` (−F1 of a generation) needs a generation task (squad, drop), not {t}");
            }
        }
        if self.task.max_new_tokens == 0 {
            bail!("config: key `task.max_new_tokens`: must be at least 1");
        }
        if self.task.max_length == 1 {
            bail!("config: key `task.max_length`: must be at least 2 (the BOS and one token), or 0 for the model's length");
        }
        if self.model.kind == ModelKind::Resnet && self.task.objective != ObjectiveSetting::Task {
            bail!("config: key `task.objective`: a ResNet trains with cross-entropy only; leave it empty");
        }
        self.optimizer
            .clone()
            .build()
            .map_err(|e| anyhow::anyhow!("config: optimizer: {e}"))?;
        Ok(())
    }

    /// The text task (an error naming the key for an image task).
    pub fn text_task(&self) -> Result<Task> {
        match self.task.name {
            AnyTask::Text(t) => Ok(t),
            AnyTask::Image(t) => bail!("config: key `task.name`: `{t}` is not a text task"),
        }
    }

    /// The training objective of the text task.
    pub fn objective(&self, task: Task) -> Objective {
        match self.task.objective {
            ObjectiveSetting::Task => task.spec().objective,
            ObjectiveSetting::Classification => Objective::Classification,
            ObjectiveSetting::Lm => Objective::LmOption,
            ObjectiveSetting::NonDiff => Objective::NonDiff,
        }
    }

    /// The token budgets of the text task on a model with `positions` learned positions
    /// (`max_position_embeddings`): `task.max_length`, or min(2048, positions) when 0; a
    /// generation task keeps `max_new_tokens` of it for the answer. Errors name the key.
    pub fn text_limits(&self, task: Task, positions: usize) -> Result<TextLimits> {
        let max_length = match self.task.max_length {
            0 => zo_tasks::MAX_LENGTH.min(positions),
            n => n,
        };
        if max_length > positions {
            bail!(
                "config: key `task.max_length`: {max_length} exceeds the model's max_position_embeddings {positions}"
            );
        }
        let generation = task.spec().eval_mode == zo_tasks::EvalMode::Generation;
        let max_new_tokens = if generation {
            self.task.max_new_tokens
        } else {
            0
        };
        let encode_budget = max_length.saturating_sub(max_new_tokens);
        if encode_budget < 2 {
            bail!(
                "config: key `task.max_new_tokens`: {max_new_tokens} new tokens leave {encode_budget} of max_length {max_length} for the prompt (at least 2 needed)"
            );
        }
        Ok(TextLimits {
            max_length,
            encode_budget,
            max_new_tokens,
        })
    }

    /// The resolved config as TOML (what `--dry-run` prints and run.toml stores).
    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string(self)?)
    }

    /// The method name of the optimizer (`ga`, `stp`, `s2p`, `as2p`).
    pub fn method(&self) -> String {
        let v = toml::Value::try_from(&self.optimizer).ok();
        v.and_then(|v| v.get("method").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_else(|| "unknown".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--lr X --set optimizer.method=ga`: the method's table replaces AS2P's first, then the
    /// learning rate given beside it applies (it was dropped with AS2P's table, and GA then
    /// asked for the `--lr` that had been given).
    #[test]
    fn keys_given_beside_a_method_apply_to_it_in_any_order() {
        for sets in [
            ["optimizer.lr = 1e-5", "optimizer.method = \"ga\""],
            ["optimizer.method = \"ga\"", "optimizer.lr = 1e-5"],
        ] {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            let s = resolve(&Sources {
                base: &[("built-in defaults", DEFAULTS)],
                config_file: None,
                sets: &sets,
            })
            .unwrap();
            assert_eq!(s.method(), "ga");
            let text = s.to_toml().unwrap();
            assert!(text.contains("lr = 0.00001"), "{text}");
        }
    }
}
