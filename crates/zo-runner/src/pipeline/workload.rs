//! What a run trains: a model with its data, whichever the family. `zo train`, `zo eval`,
//! `zo replay` and `zo reproduce` see one interface: OPT on a text task (MeZO's protocol) or a
//! ResNet on CIFAR (the paper's Table 5).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use zo_core::ParamSet;
use zo_models::opt::save::SaveOptions;
use zo_models::resnet::ResNet;
use zo_models::tokenizer::Tokenizer;
use zo_models::OptModel;
use zo_tasks::TrainFeature;

use super::data::{load_examples, prepare, TaskData};
use super::evaluate::evaluate;
use super::model::{device, load_model, load_tokenizer};
use super::objective::{batch_loss, dataset_loss};
use super::vision::{self, VisionData};
use crate::rundir::write_atomic;
use crate::settings::Settings;

/// The model of a run. (One per process, moved once: the variants' size difference is moot.)
#[allow(clippy::large_enum_variant)]
pub enum Model {
    Opt(OptModel, Tokenizer),
    ResNet(ResNet),
}

impl Model {
    /// Loads the model of the settings; `weights`, when given, is a directory this tool saved
    /// (a checkpoint, `best/`, `final/`) whose weights replace `model.source`'s.
    pub fn load(s: &Settings, weights: Option<&Path>) -> Result<Self> {
        match s.model.kind.as_str() {
            "resnet" => {
                let kind = vision::cifar_kind(&s.task.name).ok_or_else(|| {
                    anyhow!(
                        "config: key `task.name`: a ResNet trains on cifar10 or cifar100, not `{}`",
                        s.task.name
                    )
                })?;
                let m = vision::load_model(&s.model, kind.num_classes(), weights)?;
                Ok(Model::ResNet(m))
            }
            _ => {
                let model = match weights {
                    Some(dir) => {
                        OptModel::from_dir(dir, s.model.dtype.candle(), &device(&s.model.device)?)
                            .with_context(|| format!("{}: cannot load", dir.display()))?
                    }
                    None => load_model(&s.model)?,
                };
                let tok = load_tokenizer(&s.model)?;
                if tok.vocab_size() > model.config().vocab_size {
                    bail!(
                        "the tokenizer has {} tokens but the model's vocabulary is {}: they do not belong together",
                        tok.vocab_size(),
                        model.config().vocab_size
                    );
                }
                Ok(Model::Opt(model, tok))
            }
        }
    }

    /// The trainable tensors (sharing storage with the model).
    pub fn params(&self) -> &ParamSet {
        match self {
            Model::Opt(m, _) => m.params(),
            Model::ResNet(m) => m.params(),
        }
    }

    /// Saves the model into `dir` atomically (written beside it, then swapped in, so a crash
    /// never leaves a half-written directory under the final name, and a complete copy exists at
    /// every moment: see [`crate::rundir::replace_dir`]), with an optional extra
    /// file. OPT: the Hugging Face layout with the tokenizer; ResNet: torchvision-named
    /// safetensors.
    pub fn save(&self, dir: &Path, extra: Option<(&str, &[u8])>) -> Result<()> {
        let (tmp, _) = crate::rundir::replacement_names(dir);
        let _ = std::fs::remove_dir_all(&tmp);
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
    fn save_into(&self, tmp: &Path, dir: &Path, extra: Option<(&str, &[u8])>) -> Result<()> {
        match self {
            Model::Opt(m, tok) => m
                .save_pretrained(tmp, Some(tok), &SaveOptions::default())
                .with_context(|| format!("{}: cannot save the model", dir.display()))?,
            Model::ResNet(m) => {
                std::fs::create_dir_all(tmp)
                    .with_context(|| format!("{}: cannot save the model", dir.display()))?;
                vision::save_model(m, tmp)?;
            }
        }
        if let Some((file, bytes)) = extra {
            write_atomic(&tmp.join(file), bytes)?;
        }
        Ok(())
    }
}

/// The data of a run.
pub enum Data {
    Text(TaskData),
    Vision(VisionData),
}

/// A model and its data.
pub struct Workload {
    pub model: Model,
    pub data: Data,
    /// Batch size of the dev loss (the training batch size, as MeZO's trainer uses).
    pub batch_size: usize,
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
        let model = Model::load(s, weights)?;
        let data = match &model {
            Model::Opt(_, tok) => {
                let rows = load_examples(s)?;
                Data::Text(prepare(s, tok, &rows)?)
            }
            Model::ResNet(_) => Data::Vision(vision::load_data(s)?),
        };
        Ok(Self {
            model,
            data,
            batch_size: s.train.batch_size,
        })
    }

    /// (train, dev, test) sizes.
    pub fn sizes(&self) -> (usize, usize, usize) {
        match &self.data {
            Data::Text(d) => (d.train.len(), d.dev.len(), d.test.len()),
            Data::Vision(d) => (d.train.len(), d.dev.len(), d.test.len()),
        }
    }

    pub fn params(&self) -> &ParamSet {
        self.model.params()
    }

    /// The training loss of the examples at `batch` (indices into the training set).
    pub fn batch_loss(&self, batch: &[usize]) -> Result<f64> {
        match (&self.model, &self.data) {
            (Model::Opt(m, _), Data::Text(d)) => {
                let feats: Vec<&TrainFeature> = batch.iter().map(|&i| &d.train[i]).collect();
                batch_loss(m, &feats)
            }
            (Model::ResNet(m), Data::Vision(d)) => vision::batch_loss(m, &d.train, batch),
            _ => bail!("model and data of different families"),
        }
    }

    /// The dev loss (MeZO keeps the checkpoint with the lowest), None without a dev set.
    pub fn dev_loss(&self) -> Result<Option<f64>> {
        match (&self.model, &self.data) {
            (Model::Opt(m, _), Data::Text(d)) => {
                if d.dev_features.is_empty() {
                    return Ok(None);
                }
                Ok(Some(dataset_loss(m, &d.dev_features, self.batch_size)?))
            }
            (Model::ResNet(m), Data::Vision(d)) => {
                if d.dev.is_empty() {
                    return Ok(None);
                }
                Ok(Some(vision::evaluate(m, &d.dev, 0)?.loss))
            }
            _ => bail!("model and data of different families"),
        }
    }

    /// The task metric on a split (`dev` or `test`), over its first `limit` examples (all
    /// when 0); None when the split is empty.
    pub fn evaluate_split(&self, split: &str, limit: usize) -> Result<Option<SplitEval>> {
        let prefix = if split == "dev" { "dev_" } else { "" };
        match (&self.model, &self.data) {
            (Model::Opt(m, tok), Data::Text(d)) => {
                let examples = if split == "dev" { &d.dev } else { &d.test };
                let n = if limit == 0 {
                    examples.len()
                } else {
                    limit.min(examples.len())
                };
                if n == 0 {
                    return Ok(None);
                }
                let spec = d.task.spec();
                let (value, preds) = evaluate(m, tok, &examples[..n], spec.max_new_tokens, |_| {})?;
                Ok(Some(SplitEval {
                    key: format!("{prefix}{}", spec.metric.name()),
                    value,
                    predictions: preds
                        .iter()
                        .map(serde_json::to_value)
                        .collect::<Result<_, _>>()?,
                }))
            }
            (Model::ResNet(m), Data::Vision(d)) => {
                let set = if split == "dev" { &d.dev } else { &d.test };
                if set.is_empty() {
                    return Ok(None);
                }
                let sc = vision::evaluate(m, set, limit)?;
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
            _ => bail!("model and data of different families"),
        }
    }
}
