//! Task data for a run: rows (hub, a local directory, or the quickstart rows built into the
//! binary) → MeZO's subsets → rendered prompts → token ids.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use zo_models::tokenizer::Tokenizer;
use zo_tasks::{
    demo_sets, encode_example, encode_train, load_rows, load_splits, render, sample_subset_indices,
    BadRowPolicy, DataSource, EncodedEval, Example, HubOptions, Rendered, Split, SplitSizes,
    Splits, Task, TrainFeature,
};

use crate::settings::{BadRows, Settings, TextLimits};

/// The SST-2-format rows of the quickstart (tasks/sst2/make_quickstart.py), built in so the
/// quickstart needs neither the network nor the source tree.
const QUICKSTART_TRAIN: &str = include_str!("../../../../tasks/sst2/quickstart_train.jsonl");
const QUICKSTART_DEV: &str = include_str!("../../../../tasks/sst2/quickstart_dev.jsonl");

/// Everything a run needs from its task, tokenized.
pub struct TaskData {
    pub task: Task,
    /// The token budgets the sequences were encoded with (and generation runs under).
    pub limits: TextLimits,
    pub train: Vec<TrainFeature>,
    /// The dev set's training features (for the dev loss) and evaluation encodings.
    pub dev_features: Vec<TrainFeature>,
    pub dev: Vec<(String, EncodedEval)>,
    pub test: Vec<(String, EncodedEval)>,
}

fn parse_embedded(task: Task, text: &str, origin: &str) -> Result<Vec<Example>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{origin}:{}: invalid JSON", i + 1))?;
            Example::from_json(task, i, &v).map_err(|e| anyhow!("{origin}:{}: {e}", i + 1))
        })
        .collect()
}

/// The rows of a run's three splits.
pub struct Rows {
    pub train: Vec<Example>,
    pub dev: Vec<Example>,
    pub test: Vec<Example>,
}

/// The rows of the three splits, as the settings say.
pub fn load_examples(s: &Settings) -> Result<Rows> {
    let task = s.text_task()?;
    if s.task.data == "builtin:quickstart" {
        anyhow::ensure!(
            task == Task::Sst2,
            "task.data `builtin:quickstart` holds SST-2 rows, not {task}"
        );
        let train = parse_embedded(task, QUICKSTART_TRAIN, "builtin:quickstart/train")?;
        let dev = parse_embedded(task, QUICKSTART_DEV, "builtin:quickstart/dev")?;
        // No MeZO sampling here: the quickstart trains on all its rows and evaluates on its dev
        // rows (which serve as both dev and test).
        return Ok(Rows {
            train,
            dev: dev.clone(),
            test: dev,
        });
    }
    let (source, policy) = source_and_policy(s);
    let sizes = SplitSizes {
        num_train: s.task.num_train,
        num_dev: s.task.num_dev,
        num_eval: s.task.num_eval,
    };
    let sp: Splits<Example> = load_splits(task, &source, s.task.data_seed, sizes, policy)?;
    Ok(Rows {
        train: sp.train,
        dev: sp.dev,
        test: sp.test,
    })
}

fn source_and_policy(s: &Settings) -> (DataSource, BadRowPolicy) {
    let source = match s.task.data.as_str() {
        "hub" => DataSource::Hub(HubOptions::from_env()),
        dir => DataSource::Dir(PathBuf::from(dir)),
    };
    let policy = match s.task.bad_rows {
        BadRows::Fail => BadRowPolicy::Fail,
        BadRows::Skip => BadRowPolicy::Skip,
    };
    (source, policy)
}

/// The rows of an in-context evaluation: the whole train pool (where demonstrations come
/// from) and the test examples (`num_eval` of the validation pool, MeZO's sampling with
/// `task.data_seed`).
pub struct IclRows {
    pub pool: Vec<Example>,
    pub test: Vec<Example>,
}

/// Loads the rows of an in-context evaluation.
pub fn load_icl_examples(s: &Settings) -> Result<IclRows> {
    let task = s.text_task()?;
    if s.task.data == "builtin:quickstart" {
        let rows = load_examples(s)?;
        return Ok(IclRows {
            pool: rows.train,
            test: rows.test,
        });
    }
    let (source, policy) = source_and_policy(s);
    let pool = load_rows(task, &source, Split::Train, policy)?.examples;
    let valid = load_rows(task, &source, Split::Validation, policy)?.examples;
    let test = sample_subset_indices(valid.len(), s.task.data_seed, s.task.num_eval)?
        .into_iter()
        .map(|i| valid[i].clone())
        .collect();
    Ok(IclRows { pool, test })
}

/// Tokenizes an in-context evaluation (docs/PROTOCOL.md 1.8): each test example gets its own
/// `k` demonstrations from the train pool, drawn as MeZO draws them, before its prompt; `k = 0`
/// is zero-shot. Only the test split is built.
pub fn prepare_icl(
    s: &Settings,
    tok: &Tokenizer,
    rows: &IclRows,
    k: usize,
    limits: TextLimits,
) -> Result<TaskData> {
    let task = s.text_task()?;
    let enc = encoder(tok);
    let sets = demo_sets(rows.pool.len(), rows.test.len(), k)?;
    // Each demonstration is rendered once, however many examples draw it.
    let mut cache: std::collections::HashMap<usize, Rendered> = std::collections::HashMap::new();
    let mut test = Vec::with_capacity(rows.test.len());
    for (e, set) in rows.test.iter().zip(&sets) {
        for &d in set {
            if let std::collections::hash_map::Entry::Vacant(v) = cache.entry(d) {
                v.insert(render(&rows.pool[d])?);
            }
        }
        let demos: Vec<&Rendered> = set.iter().map(|d| &cache[d]).collect();
        let r = render(e)?.with_demos(&demos);
        test.push((
            format!("test-{}", e.row),
            encode_example(&enc, &r, limits.encode_budget)?,
        ));
    }
    Ok(TaskData {
        task,
        limits,
        train: Vec::new(),
        dev_features: Vec::new(),
        dev: Vec::new(),
        test,
    })
}

/// The tokenizer as zo-tasks' encoder (ids with the BOS, as MeZO's `tokenizer.encode`).
pub fn encoder(tok: &Tokenizer) -> impl Fn(&str) -> Result<Vec<u32>, String> + '_ {
    move |text: &str| tok.encode(text).map_err(|e| e.to_string())
}

/// Renders and tokenizes the splits, every sequence within `limits.encode_budget` tokens.
pub fn prepare(
    s: &Settings,
    tok: &Tokenizer,
    splits: &Rows,
    limits: TextLimits,
) -> Result<TaskData> {
    let task = s.text_task()?;
    let enc = encoder(tok);
    let obj = s.objective(task);
    let train_features = |rows: &[Example]| -> Result<Vec<TrainFeature>> {
        rows.iter()
            .map(|e| Ok(encode_train(&enc, &render(e)?, obj, limits.encode_budget)?))
            .collect()
    };
    let evals = |rows: &[Example], split: &str| -> Result<Vec<(String, EncodedEval)>> {
        rows.iter()
            .map(|e| {
                Ok((
                    format!("{split}-{}", e.row),
                    encode_example(&enc, &render(e)?, limits.encode_budget)?,
                ))
            })
            .collect()
    };
    // The quickstart has no separate dev set: its dev rows double as the evaluation set.
    let dev_rows = if splits.dev.is_empty() {
        &splits.test
    } else {
        &splits.dev
    };
    Ok(TaskData {
        task,
        limits,
        train: train_features(&splits.train)?,
        dev_features: train_features(dev_rows)?,
        dev: evals(dev_rows, "dev")?,
        test: evals(&splits.test, "test")?,
    })
}
