//! Glue between the task data (zo-tasks), the model (zo-models) and the loop (zo-core).

pub mod data;
pub mod evaluate;
pub mod model;
pub mod objective;
pub mod vision;
pub mod workload;
