//! The six MeZO tasks and their static protocol facts (docs/PROTOCOL.md 1.0, tables
//! "Resulting sizes" and "Which loss each task uses").

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::sampling::SplitSizes;

/// A MeZO `large_models` task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Sst2,
    Rte,
    Copa,
    Record,
    Squad,
    Drop,
}

/// What the training loss is (`mezo.sh`: `--train_as_classification` for SST-2/RTE only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// One sequence per candidate; per-sequence mean option log-prob as the logit; CE over the
    /// candidates (`forward_wrap_with_option_len` with `num_options`).
    Classification,
    /// LM cross-entropy on the option tokens of the gold sequence only, token-weighted over the
    /// batch.
    LmOption,
    /// MeZO's `--non_diff`: f = −(mean F1 of the greedy generation against the gold answers),
    /// generation tasks only. The prompt is the gold training sequence with its option tokens
    /// cut off (`encoded[:-option_len]`), so no teacher forcing.
    NonDiff,
}

/// How evaluation predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalMode {
    /// Score every candidate by its mean option-token log-prob; argmax (first index on ties).
    Candidates,
    /// Greedy decoding, at most [`MAX_NEW_TOKENS`] tokens, stop at `"\n"` or EOS.
    Generation,
}

/// The metric MeZO reports (`metric_name` in `tasks.py`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Accuracy,
    F1,
}

impl MetricKind {
    /// The key MeZO writes in its result JSON (`"accuracy"`, `"f1"`).
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Accuracy => "accuracy",
            MetricKind::F1 => "f1",
        }
    }
}

/// MeZO's `--max_length` default.
pub const MAX_LENGTH: usize = 2048;
/// MeZO's `--max_new_tokens` default; generation tasks truncate prompts to
/// `MAX_LENGTH - MAX_NEW_TOKENS`.
pub const MAX_NEW_TOKENS: usize = 50;

/// Static facts about a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TaskSpec {
    pub task: Task,
    /// MeZO's class-name spelling (`SST2`, `RTE`, `Copa`, `ReCoRD`, `SQuAD`, `DROP`).
    pub mezo_name: &'static str,
    pub objective: Objective,
    pub eval_mode: EvalMode,
    pub metric: MetricKind,
    /// `mezo.sh` defaults: 1000 / 500 (COPA: 100) / 1000. Pool sizes then cap them
    /// (SST-2 test 872, RTE test 277, COPA 300/100/100).
    pub default_sizes: SplitSizes,
    /// Token budget per sequence, BOS included: 2048, or 1998 for generation tasks.
    pub max_length: usize,
    /// `max_new_tokens` for generation tasks (50), 0 otherwise.
    pub max_new_tokens: usize,
}

impl Task {
    pub const ALL: [Task; 6] = [
        Task::Sst2,
        Task::Rte,
        Task::Copa,
        Task::Record,
        Task::Squad,
        Task::Drop,
    ];

    /// Our canonical lower-case name (also the `tasks/<name>/` directory).
    pub fn name(self) -> &'static str {
        match self {
            Task::Sst2 => "sst2",
            Task::Rte => "rte",
            Task::Copa => "copa",
            Task::Record => "record",
            Task::Squad => "squad",
            Task::Drop => "drop",
        }
    }

    pub fn spec(self) -> TaskSpec {
        let generation = matches!(self, Task::Squad | Task::Drop);
        TaskSpec {
            task: self,
            mezo_name: match self {
                Task::Sst2 => "SST2",
                Task::Rte => "RTE",
                Task::Copa => "Copa",
                Task::Record => "ReCoRD",
                Task::Squad => "SQuAD",
                Task::Drop => "DROP",
            },
            objective: match self {
                Task::Sst2 | Task::Rte => Objective::Classification,
                _ => Objective::LmOption,
            },
            eval_mode: if generation {
                EvalMode::Generation
            } else {
                EvalMode::Candidates
            },
            metric: if generation {
                MetricKind::F1
            } else {
                MetricKind::Accuracy
            },
            default_sizes: SplitSizes {
                num_train: 1000,
                num_dev: if self == Task::Copa { 100 } else { 500 },
                num_eval: 1000,
            },
            max_length: if generation {
                MAX_LENGTH - MAX_NEW_TOKENS
            } else {
                MAX_LENGTH
            },
            max_new_tokens: if generation { MAX_NEW_TOKENS } else { 0 },
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Task {
    type Err = TaskError;

    /// Case-insensitive; accepts our names and MeZO's (`SST2`, `Copa`, `ReCoRD`, `SQuAD`,
    /// `DROP`), plus the hyphenated `sst-2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sst2" | "sst-2" => Ok(Task::Sst2),
            "rte" => Ok(Task::Rte),
            "copa" => Ok(Task::Copa),
            "record" => Ok(Task::Record),
            "squad" => Ok(Task::Squad),
            "drop" => Ok(Task::Drop),
            _ => Err(TaskError::UnknownTask(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_accept_mezo_spellings() {
        for t in Task::ALL {
            assert_eq!(t.name().parse::<Task>().unwrap(), t);
            assert_eq!(t.spec().mezo_name.parse::<Task>().unwrap(), t);
            assert_eq!(t.to_string(), t.name());
        }
        assert_eq!("ReCoRD".parse::<Task>().unwrap(), Task::Record);
        assert_eq!("SST-2".parse::<Task>().unwrap(), Task::Sst2);
        let err = "mnli".parse::<Task>().unwrap_err();
        assert!(err.to_string().contains("mnli"), "{err}");
    }

    #[test]
    fn specs_follow_the_reference_tables() {
        use Task::*;
        assert_eq!(Sst2.spec().objective, Objective::Classification);
        assert_eq!(Rte.spec().objective, Objective::Classification);
        for t in [Copa, Record, Squad, Drop] {
            assert_eq!(t.spec().objective, Objective::LmOption);
        }
        for t in [Squad, Drop] {
            let s = t.spec();
            assert_eq!(
                (s.eval_mode, s.metric, s.max_length),
                (EvalMode::Generation, MetricKind::F1, 1998)
            );
            assert_eq!(s.max_new_tokens, 50);
        }
        for t in [Sst2, Rte, Copa, Record] {
            let s = t.spec();
            assert_eq!(
                (s.eval_mode, s.metric, s.max_length),
                (EvalMode::Candidates, MetricKind::Accuracy, 2048)
            );
        }
        assert_eq!(Copa.spec().default_sizes.num_dev, 100);
        assert_eq!(
            Sst2.spec().default_sizes,
            SplitSizes {
                num_train: 1000,
                num_dev: 500,
                num_eval: 1000
            }
        );
        assert_eq!(MetricKind::F1.name(), "f1");
    }
}
