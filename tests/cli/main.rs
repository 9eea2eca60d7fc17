//! End-to-end tests of the `zo` binary (issue 5): each runs the real executable on tiny inputs.

mod bad_input;
mod common;
mod report;
mod train;
mod vision;
