//! Replays every committed fuzz input (`fuzz/corpus/<target>/` and the crash reproducers in
//! `fuzz/regressions/<target>/`) through the entry points the fuzz targets call, on the stable
//! toolchain: an input that panics fails the test.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for sub in ["corpus", "regressions"] {
        if let Ok(rd) = std::fs::read_dir(root.join(sub).join(target)) {
            for e in rd.flatten() {
                if e.path().is_file() {
                    files.push(e.path());
                }
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_committed_fuzz_input_is_handled_without_a_panic() {
    let scratch = tempfile::tempdir().unwrap();
    let mut total = 0;
    for target in zo_runner::fuzzing::TARGETS {
        let files = inputs(target);
        assert!(!files.is_empty(), "no seed corpus for fuzz target {target}");
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let dir = scratch.path().join(target);
            let outcome = std::panic::catch_unwind(|| zo_runner::fuzzing::run(target, &dir, &data));
            match outcome {
                Ok(Ok(())) => println!("{target}: {}: accepted", f.display()),
                Ok(Err(e)) => println!("{target}: {}: refused: {e:#}", f.display()),
                Err(_) => panic!("{target}: {} panics", f.display()),
            }
            total += 1;
        }
    }
    assert!(total >= 6);
}
