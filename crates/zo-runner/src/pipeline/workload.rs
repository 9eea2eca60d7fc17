//! What a run trains: a model with its data, whichever the family. `zo train`, `zo eval`,
//! `zo replay` and `zo reproduce` see one interface: OPT on a text task (MeZO's protocol) or a
//! ResNet on an image task (the paper's Table 5). The family is decided once, by the task
//! (`task.name`, checked against `model.kind` when the settings are resolved), so a model never
//! meets data of the other family.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;
use zo_core::ParamSet;
use zo_models::opt::save::SaveOptions;
use zo_models::resnet::ResNet;
use zo_models::tokenizer::Tokenizer;
use zo_models::OptModel;
use zo_tasks::{AnyTask, ImageSplits, TrainFeature};

use super::data::{load_examples, load_icl_examples, prepare, prepare_icl, TaskData};
use super::evaluate::{evaluate, evaluate_groups, groups, mean_score};
use super::model::{load_opt, load_tokenizer};
use super::objective::{dataset_loss, split_batch_loss, LossModel};
use super::vision;
use crate::dist::{slice, World};
use crate::rundir::write_atomic;
use crate::settings::Settings;

/// The model of a run, without its data (replay, the best checkpoint). One per process,
/// moved once: the variants' size difference is moot.
#[allow(clippy::large_enum_variant)]
pub enum Model {
    Opt(OptModel, Tokenizer),
    ResNet(ResNet),
}

/// A borrowed model: what saving and the parameters need.
#[derive(Clone, Copy)]
pub enum ModelRef<'a> {
    Opt(&'a OptModel, &'a Tokenizer),
    ResNet(&'a ResNet),
}

fn load_text_model(s: &Settings, weights: Option<&Path>) -> Result<(OptModel, Tokenizer)> {
    let dev = s.model.device.open()?;
    // An adapter run's saved directories hold the adapter only: the base is `model.source`.
    let adapter_dir = weights.filter(|d| crate::adapters::is_adapter_dir(d));
    let full = if adapter_dir.is_some() { None } else { weights };
    let model = load_opt(&s.model, &dev, full).with_context(|| match weights {
        Some(dir) => format!("{}: cannot load", dir.display()),
        None => format!("model.source `{}`: cannot load", s.model.source),
    })?;
    let mut model = crate::adapters::apply(
        model,
        &s.adapter,
        &s.train.trainable,
        s.model.untie_embeddings,
        s.train.seed,
        adapter_dir,
    )?;
    model.set_compute(s.model.compute.kernel_for_this_cpu());
    let tok = load_tokenizer(&s.model)?;
    let vocab = model.config().vocab_size;
    anyhow::ensure!(
        tok.vocab_size() <= vocab,
        "the tokenizer has {} tokens but the model's vocabulary is {vocab}: they do not belong together",
        tok.vocab_size(),
    );
    let ids = tok.max_id().into_iter().chain(tok.special_ids());
    if let Some(id) = ids.filter(|&id| id as usize >= vocab).max() {
        anyhow::bail!(
            "{}: the tokenizer gives id {id}, outside the model's vocabulary of {vocab}: they do not belong together",
            tok.origin().display()
        );
    }
    Ok((model, tok))
}

/// A run directory given as `model.source` (it holds `run.toml`, its weights are in `best/`
/// and `final/`): an error that says where they are, instead of "no config.json".
fn refuse_a_run_directory(s: &Settings, weights: Option<&Path>) -> Result<()> {
    let source = Path::new(&s.model.source);
    if weights.is_none()
        && source.join("run.toml").is_file()
        && !source.join("config.json").is_file()
    {
        anyhow::bail!(
            "model.source `{}` is a run directory, not a model: its weights are in `{}` / `{}` \
             (or pass `zo eval --run {}`)",
            s.model.source,
            source.join("best").display(),
            source.join("final").display(),
            s.model.source
        );
    }
    Ok(())
}

impl Model {
    /// Loads the model of the settings; `weights`, when given, is a directory this tool saved
    /// (a checkpoint, `best/`, `final/`) whose weights replace `model.source`'s.
    pub fn load(s: &Settings, weights: Option<&Path>) -> Result<Self> {
        refuse_a_run_directory(s, weights)?;
        Ok(match s.task.name {
            AnyTask::Text(_) => {
                let (m, tok) = load_text_model(s, weights)?;
                Model::Opt(m, tok)
            }
            AnyTask::Image(task) => Model::ResNet(vision::load_resnet(
                &s.model,
                task,
                &s.model.device.open()?,
                weights,
            )?),
        })
    }

    pub fn as_ref(&self) -> ModelRef<'_> {
        match self {
            Model::Opt(m, t) => ModelRef::Opt(m, t),
            Model::ResNet(m) => ModelRef::ResNet(m),
        }
    }

    pub fn params(&self) -> &ParamSet {
        self.as_ref().params()
    }

    /// See [`ModelRef::save`].
    pub fn save(&self, dir: &Path, extra: Option<(&str, &[u8])>) -> Result<()> {
        self.as_ref().save(dir, extra)
    }
}

impl<'a> ModelRef<'a> {
    /// The trainable tensors (sharing storage with the model).
    pub fn params(self) -> &'a ParamSet {
        match self {
            ModelRef::Opt(m, _) => m.params(),
            ModelRef::ResNet(m) => m.params(),
        }
    }

    /// Saves the model into `dir` atomically (written beside it, then swapped in, so a crash
    /// never leaves a half-written directory under the final name, and a complete copy exists at
    /// every moment: see [`crate::rundir::replace_dir`]), with an optional extra file. OPT: the
    /// Hugging Face layout with the tokenizer; ResNet: torchvision-named safetensors.
    pub fn save(self, dir: &Path, extra: Option<(&str, &[u8])>) -> Result<()> {
        let (tmp, _) = crate::rundir::replacement_names(dir);
        let written = self
            .save_into(&tmp, dir, extra)
            .and_then(|()| crate::rundir::replace_dir(&tmp, dir));
        if written.is_err() {
            // Frees the space of a partial copy (a full disk); `dir` is untouched.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        written
    }

    /// Writes the model (and `extra`) into the new directory `tmp`, the future `dir`.
    fn save_into(self, tmp: &Path, dir: &Path, extra: Option<(&str, &[u8])>) -> Result<()> {
        let _ = std::fs::remove_dir_all(tmp);
        match self {
            // An adapter is saved alone, in PEFT's layout; the base is never written.
            ModelRef::Opt(m, _) if m.lora().is_some() || m.prefix().is_some() => {
                m.save_adapter(tmp, "")
            }
            ModelRef::Opt(m, tok) => m.save_pretrained(tmp, Some(tok), &SaveOptions::default()),
            ModelRef::ResNet(m) => m.save(tmp),
        }
        .with_context(|| format!("{}: cannot save the model", dir.display()))?;
        if let Some((file, bytes)) = extra {
            write_atomic(&tmp.join(file), bytes)?;
        }
        Ok(())
    }
}

fn loss_model<'a>(model: &'a OptModel, tok: &'a Tokenizer, data: &TaskData) -> LossModel<'a> {
    LossModel {
        model,
        tok,
        max_new_tokens: data.limits.max_new_tokens,
    }
}

/// A model and its data, of one family. (One per process, moved once: the variants' size
/// difference is moot.)
#[allow(clippy::large_enum_variant)]
pub enum Workload {
    Text {
        model: OptModel,
        tok: Tokenizer,
        data: TaskData,
        /// Batch size of the dev loss (the training batch size, as MeZO's trainer uses).
        batch_size: usize,
    },
    Vision {
        model: ResNet,
        data: ImageSplits,
    },
}

/// One split's evaluation: the metric's key (MeZO's names: `accuracy`, `f1`, `dev_accuracy`…),
/// its value, and one JSON object per example.
pub struct SplitEval {
    pub key: String,
    pub value: f64,
    pub predictions: Vec<Value>,
}

impl Workload {
    /// Loads the model (see [`Model::load`]) and the task's data.
    pub fn load(s: &Settings, weights: Option<&Path>) -> Result<Self> {
        refuse_a_run_directory(s, weights)?;
        Ok(match s.task.name {
            AnyTask::Text(task) => {
                let (model, tok) = load_text_model(s, weights)?;
                let limits = s.text_limits(task, model.config().max_position_embeddings)?;
                let rows = load_examples(s)?;
                let data = prepare(s, &tok, &rows, limits)?;
                Workload::Text {
                    model,
                    tok,
                    data,
                    batch_size: s.train.batch_size,
                }
            }
            AnyTask::Image(task) => {
                let dev = s.model.device.open()?;
                Workload::Vision {
                    model: vision::load_resnet(&s.model, task, &dev, weights)?,
                    data: vision::load_data(s, task)?,
                }
            }
        })
    }

    /// An in-context evaluation of a text task (`zo eval --demos K`): the model and the test
    /// split only, each example preceded by its `k` demonstrations.
    pub fn load_icl(s: &Settings, weights: Option<&Path>, k: usize) -> Result<Self> {
        let task = s.text_task()?;
        let (model, tok) = load_text_model(s, weights)?;
        let limits = s.text_limits(task, model.config().max_position_embeddings)?;
        let rows = load_icl_examples(s)?;
        let data = prepare_icl(s, &tok, &rows, k, limits)?;
        Ok(Workload::Text {
            model,
            tok,
            data,
            batch_size: s.train.batch_size,
        })
    }

    pub fn model(&self) -> ModelRef<'_> {
        match self {
            Workload::Text { model, tok, .. } => ModelRef::Opt(model, tok),
            Workload::Vision { model, .. } => ModelRef::ResNet(model),
        }
    }

    pub fn params(&self) -> &ParamSet {
        self.model().params()
    }

    /// (train, dev, test) sizes.
    pub fn sizes(&self) -> (usize, usize, usize) {
        match self {
            Workload::Text { data: d, .. } => (d.train.len(), d.dev.len(), d.test.len()),
            Workload::Vision { data: d, .. } => (d.train.len(), d.dev.len(), d.test.len()),
        }
    }

    /// The training loss of the examples at `batch` (indices into the training set), the text
    /// batch split over the ranks of `world` (the same bits as one process). An image batch is
    /// computed whole on every rank (the image path is not split; exact, without a speed-up).
    pub fn batch_loss(&self, batch: &[usize], world: &dyn World) -> Result<f64> {
        match self {
            Workload::Text {
                model, tok, data, ..
            } => {
                let feats: Vec<&TrainFeature> = batch.iter().map(|&i| &data.train[i]).collect();
                split_batch_loss(loss_model(model, tok, data), &feats, world)
            }
            Workload::Vision { model, data } => vision::batch_loss(model, &data.train, batch),
        }
    }

    /// Whether [`Self::dev_loss`] and [`Self::evaluate_split`] split their work over the ranks
    /// (then every rank must call them): text tasks.
    pub fn splits_evaluation(&self) -> bool {
        matches!(self, Workload::Text { .. })
    }

    /// The dev loss (MeZO keeps the checkpoint with the lowest), None without a dev set. A text
    /// task's batches are split over the ranks of `world` (the same bits as one process).
    pub fn dev_loss(&self, world: &dyn World) -> Result<Option<f64>> {
        match self {
            Workload::Text {
                model,
                tok,
                data,
                batch_size,
            } => {
                if data.dev_features.is_empty() {
                    return Ok(None);
                }
                Ok(Some(dataset_loss(
                    loss_model(model, tok, data),
                    &data.dev_features,
                    *batch_size,
                    world,
                )?))
            }
            Workload::Vision { model, data } => {
                if data.dev.is_empty() {
                    return Ok(None);
                }
                Ok(Some(vision::evaluate(model, &data.dev, 0)?.loss))
            }
        }
    }

    /// The task metric on a split (`dev` or `test`), over its first `limit` examples (all
    /// when 0); None when the split is empty. A text task's examples are split over the ranks
    /// of `world` by whole evaluation groups ([`groups`]: each example is scored as one
    /// process scores it) and the predictions gathered in order, so every rank must call it and
    /// every rank gets the whole result. An image task is evaluated whole by every rank.
    pub fn evaluate_split(
        &self,
        split: &str,
        limit: usize,
        world: &dyn World,
    ) -> Result<Option<SplitEval>> {
        let prefix = if split == "dev" { "dev_" } else { "" };
        match self {
            Workload::Text {
                model, tok, data, ..
            } => {
                let examples = if split == "dev" {
                    &data.dev
                } else {
                    &data.test
                };
                let n = if limit == 0 {
                    examples.len()
                } else {
                    limit.min(examples.len())
                };
                if n == 0 {
                    return Ok(None);
                }
                let spec = data.task.spec();
                let key = format!("{prefix}{}", spec.metric.name());
                let examples = &examples[..n];
                if world.size() == 1 {
                    let (value, preds) =
                        evaluate(model, tok, examples, data.limits.max_new_tokens, |_| {})?;
                    return Ok(Some(SplitEval {
                        key,
                        value,
                        predictions: preds
                            .iter()
                            .map(serde_json::to_value)
                            .collect::<Result<_, _>>()?,
                    }));
                }
                let all = groups(examples);
                let mine = &all[slice(all.len(), world.rank(), world.size())];
                let preds = evaluate_groups(
                    model,
                    tok,
                    examples,
                    mine,
                    data.limits.max_new_tokens,
                    |_| {},
                )?;
                // JSON both ways is exact (serde_json's float_roundtrip).
                let mut predictions: Vec<Value> = Vec::with_capacity(n);
                for part in world.all_gather_bytes(&serde_json::to_vec(&preds)?)? {
                    predictions.extend(serde_json::from_slice::<Vec<Value>>(&part)?);
                }
                anyhow::ensure!(
                    predictions.len() == n,
                    "the ranks evaluated {} of {n} examples",
                    predictions.len()
                );
                let scores = predictions
                    .iter()
                    .map(|p| p["score"].as_f64())
                    .collect::<Option<Vec<f64>>>()
                    .ok_or_else(|| anyhow::anyhow!("a gathered prediction has no score"))?;
                Ok(Some(SplitEval {
                    key,
                    value: mean_score(scores.into_iter()),
                    predictions,
                }))
            }
            Workload::Vision { model, data } => {
                let set = if split == "dev" {
                    &data.dev
                } else {
                    &data.test
                };
                if set.is_empty() {
                    return Ok(None);
                }
                let sc = vision::evaluate(model, set, limit)?;
                let predictions = sc
                    .predictions
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| {
                        serde_json::json!({
                            "id": format!("{split}-{i}"),
                            "prediction": p,
                            "gold": set.labels[i],
                            "score": f64::from(u8::from(p == set.labels[i])),
                        })
                    })
                    .collect();
                Ok(Some(SplitEval {
                    key: format!("{prefix}accuracy"),
                    value: sc.accuracy,
                    predictions,
                }))
            }
        }
    }
}
