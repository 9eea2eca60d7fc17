//! Load a task's rows from parquet/JSONL files and report how many and how fast.
//!
//! `cargo run --release -p zo-tasks --example load_rows -- squad path/to/0000.parquet [...]`
//! (prints to stdout: it is a tool, not a library).
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use zo_tasks::{load_files, render, BadRowPolicy, Task};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let task: Task = args
        .next()
        .ok_or("usage: load_rows TASK FILE...")?
        .parse()?;
    let files: Vec<PathBuf> = args.map(PathBuf::from).collect();
    let t0 = Instant::now();
    let rows = load_files(task, &files, BadRowPolicy::Skip)?;
    let load_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut chars = 0usize;
    for ex in &rows.examples {
        let r = render(ex)?;
        chars += r.train.text.len();
    }
    println!(
        "{task}: {} rows ({} skipped) loaded in {load_s:.2}s; rendered in {:.2}s ({chars} bytes of training text)",
        rows.examples.len(),
        rows.skipped.len(),
        t1.elapsed().as_secs_f64()
    );
    Ok(())
}
