//! The trainer's configuration from a run's settings: the budget (steps or forward passes),
//! the schedule, the batch order, and when to evaluate and checkpoint.

use zo_core::objective::DataOrder;
use zo_core::trainer::{Budget, TrainerConfig};

use crate::settings::Settings;

/// The trainer config for `n_train` training examples, and the number of steps the budget
/// allows (for the progress bar) with `queries_per_step` forward passes a step.
pub fn trainer_config(s: &Settings, n_train: usize, queries_per_step: u64) -> (TrainerConfig, u64) {
    let budget = if s.train.max_queries > 0 {
        Budget::Queries(s.train.max_queries)
    } else {
        Budget::Steps(s.train.steps)
    };
    let mut cfg = TrainerConfig::new(s.train.seed, budget);
    cfg.schedule = s.train.schedule;
    cfg.data = Some(DataOrder {
        n: n_train,
        batch_size: s.train.batch_size,
        seed: s.train.seed,
    });
    cfg.eval_every = (s.train.eval_every > 0).then_some(s.train.eval_every);
    cfg.checkpoint_every = Some(if s.train.checkpoint_every > 0 {
        s.train.checkpoint_every
    } else {
        u64::MAX
    });
    let total = match budget {
        Budget::Steps(n) => n,
        Budget::Queries(q) => q / queries_per_step.max(1),
    };
    (cfg, total)
}
