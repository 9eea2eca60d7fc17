//! End-to-end tests of the `zo` binary: each runs the real executable on tiny inputs.

mod adapters;
mod bad_input;
mod candle_ops;
mod common;
mod durability;
mod isa;
mod outputs;
mod protocol;
mod report;
mod reproduce;
mod train;
mod vision;
