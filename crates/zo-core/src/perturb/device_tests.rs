//! The CUDA sweep kernel's source (`sweep.cu`), compiled for this CPU by the system C compiler
//! and run thread by thread, gives the CPU sweep's bits: every dtype, distribution and op list,
//! lengths that are not whole runs, chunks that start inside a tensor, special values. The GPU
//! runs the same source (NVRTC, no contraction, correctly rounded `fma`/`sqrt`, integer half
//! conversions), and checks itself against the CPU kernel on its first sweep (`cuda.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use half::{bf16, f16};

use super::device_abi::DeviceArgs;
use super::{Elem, Prepared, SweepKernel};
use crate::rng::{ars::TE0, Distribution, Isa, Key};

/// Reads the input file (the T-table, the argument block, the store kind, the data), runs every
/// thread of the kernel in order and writes the data back.
const HARNESS: &str = r#"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "sweep.cu"
int main(int argc, char **argv) {
    zo_u32 te[256];
    zo_sweep_args a;
    int store;
    size_t es;
    void *d;
    zo_u64 t, nt;
    FILE *f, *g;
    if (argc != 3 || sizeof(zo_sweep_args) != 224) return 2;
    f = fopen(argv[1], "rb");
    if (!f || fread(te, 4, 256, f) != 256 || fread(&a, sizeof a, 1, f) != 1
        || fread(&store, sizeof store, 1, f) != 1) return 3;
    es = store == ZO_STORE_F32 ? 4 : 2;
    d = malloc(a.n * es + 4);
    if (!d || fread(d, es, a.n, f) != a.n) return 4;
    nt = zo_sweep_threads(&a);
    for (t = 0; t < nt; t++) zo_sweep_thread(t, d, store, &a, te);
    g = fopen(argv[2], "wb");
    if (!g || fwrite(d, es, a.n, g) != a.n) return 5;
    return fclose(g) != 0;
}
"#;

fn build_harness(dir: &Path) -> PathBuf {
    let src_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/perturb");
    let c = dir.join("harness.c");
    std::fs::write(&c, HARNESS).unwrap_or_else(|e| panic!("writing {}: {e}", c.display()));
    let exe = dir.join("harness");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args([
            "-std=c99",
            "-O2",
            "-ffp-contract=off",
            "-Wall",
            "-Werror",
            "-I",
        ])
        .arg(&src_dir)
        .arg(&c)
        .arg("-o")
        .arg(&exe)
        .arg("-lm")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` (set CC): {e}"));
    assert!(
        out.status.success(),
        "`{cc}` failed on sweep.cu:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// A storage type as the harness sees it: its store code and raw bytes.
trait Raw: Elem + Copy {
    const STORE: i32;
    fn from_f32(v: f32) -> Self;
    fn bits(self) -> u32;
    fn put(self, out: &mut Vec<u8>);
    fn take(b: &[u8]) -> Self;
}

impl Raw for f32 {
    const STORE: i32 = 0;
    fn from_f32(v: f32) -> Self {
        v
    }
    fn bits(self) -> u32 {
        self.to_bits()
    }
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_ne_bytes())
    }
    fn take(b: &[u8]) -> Self {
        f32::from_ne_bytes(b.try_into().expect("4 bytes"))
    }
}

/// bf16 and f16: 16-bit storage, store codes 1 and 2.
macro_rules! raw_half {
    ($t:ty, $store:expr) => {
        impl Raw for $t {
            const STORE: i32 = $store;
            fn from_f32(v: f32) -> Self {
                <$t>::from_f32(v)
            }
            fn bits(self) -> u32 {
                self.to_bits().into()
            }
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_bits().to_ne_bytes())
            }
            fn take(b: &[u8]) -> Self {
                <$t>::from_bits(u16::from_ne_bytes(b.try_into().expect("2 bytes")))
            }
        }
    };
}
raw_half!(bf16, 1);
raw_half!(f16, 2);

/// Weights of many magnitudes, with zeros of both signs, subnormals (f32 and f16), values near
/// the f16 limit (the fma overflows there), an infinity and a NaN.
fn values<T: Raw>(n: usize, salt: u32) -> Vec<T> {
    let special = [
        0.0,
        -0.0,
        1e-40,
        -3e-8,
        6.0e-5,
        65000.0,
        -65504.0,
        f32::INFINITY,
        f32::NAN,
        1.0,
    ];
    (0..n)
        .map(|i| {
            let h = crate::rng::mix64((i as u64) << 8 | u64::from(salt));
            let v = if h.is_multiple_of(13) {
                special[(h >> 8) as usize % special.len()]
            } else {
                let m = ((h >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32;
                m * 2f32.powi((h >> 3) as i32 % 9 - 6)
            };
            T::from_f32(v)
        })
        .collect()
}

fn check<T: Raw>(exe: &Path, dir: &Path, case: &str, k: &SweepKernel<'_>, x: &[T]) {
    let args = DeviceArgs::new(k, x.len()).expect("ops fit one launch");
    let mut input = Vec::new();
    for w in TE0 {
        input.extend_from_slice(&w.to_ne_bytes());
    }
    input.extend_from_slice(&args.to_bytes());
    input.extend_from_slice(&T::STORE.to_ne_bytes());
    for v in x {
        v.put(&mut input);
    }
    let (inp, outp) = (dir.join("in.bin"), dir.join("out.bin"));
    std::fs::write(&inp, input)
        .unwrap_or_else(|e| panic!("{case}: writing {}: {e}", inp.display()));
    let st = Command::new(exe)
        .arg(&inp)
        .arg(&outp)
        .status()
        .unwrap_or_else(|e| panic!("{case}: running {}: {e}", exe.display()));
    assert!(st.success(), "{case}: harness exit {st}");
    let got: Vec<T> = std::fs::read(&outp)
        .unwrap_or_else(|e| panic!("{case}: reading {}: {e}", outp.display()))
        .chunks_exact(std::mem::size_of::<T>())
        .map(T::take)
        .collect();
    let mut want = x.to_vec();
    k.run(&mut want);
    assert_eq!(got.len(), want.len(), "{case}");
    let bad: Vec<usize> = (0..want.len())
        .filter(|&i| got[i].bits() != want[i].bits())
        .collect();
    assert!(
        bad.is_empty(),
        "{case}: {} of {} elements differ, first at {} (device {:#x}, cpu {:#x}, input {:#x})",
        bad.len(),
        want.len(),
        bad[0],
        got[bad[0]].bits(),
        want[bad[0]].bits(),
        x[bad[0]].bits()
    );
}

fn op_lists() -> Vec<(&'static str, Vec<Prepared>)> {
    let k = |seed, step| Key::new(seed, step).ars_key();
    let add = |key, coef| Prepared::Add {
        key,
        coef,
        reused: false,
    };
    vec![
        ("one term", vec![add(k(7, 3), 1e-3)]),
        ("two terms", vec![add(k(7, 3), -2e-3), add(k(7, 4), 1e-3)]),
        (
            "decay, a zero term, one direction twice, a unit scale",
            vec![
                Prepared::Scale(0.999),
                add(k(1, 9), 0.0),
                add(k(1, 9), 0.5),
                add(k(2, 0), -0.25),
                Prepared::Scale(1.0),
                add(k(1, 9), 3.0),
            ],
        ),
        ("a large step", vec![add(k(123, 456), 7.5)]),
    ]
}

fn run_all<T: Raw>(exe: &Path, dir: &Path, ty: &str) {
    let mut cases = 0;
    for (ops_name, ops) in op_lists() {
        for dist in [
            Distribution::Normal,
            Distribution::Rademacher,
            Distribution::Uniform,
        ] {
            for (n, first, tensor, decayed) in [
                (1, 0, 0, true),
                (17, 0, 3, true),
                (45, 64, 1, false),
                (64, 0, 2, true),
                (1000, 128, 0, true),
                (4096 + 37, 0, 41, true),
                (20_000, 1 << 20, 5, false),
            ] {
                let k = SweepKernel {
                    tensor,
                    first,
                    ops: &ops,
                    dist,
                    decayed,
                    isa: Isa::detect(),
                };
                let x = values::<T>(n, tensor * 31 + n as u32);
                let case = format!("{ty}, {dist:?}, {ops_name}, n {n}, first {first}, tensor {tensor}, decayed {decayed}");
                check(exe, dir, &case, &k, &x);
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 4 * 3 * 7);
}

#[test]
fn the_cuda_source_compiled_for_the_host_gives_the_cpu_sweep_bits() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let exe = build_harness(dir.path());
    run_all::<f32>(&exe, dir.path(), "f32");
    run_all::<bf16>(&exe, dir.path(), "bf16");
    run_all::<f16>(&exe, dir.path(), "f16");
}

#[test]
fn the_device_argument_block_keeps_only_the_ops_that_change_something() {
    let key = Key::new(1, 2).ars_key();
    let ops = [
        Prepared::Add {
            key,
            coef: 0.0,
            reused: false,
        },
        Prepared::Scale(1.0),
        Prepared::Scale(0.5),
        Prepared::Add {
            key,
            coef: 2.0,
            reused: true,
        },
    ];
    let k = |decayed| SweepKernel {
        tensor: 9,
        first: 64,
        ops: &ops,
        dist: Distribution::Uniform,
        decayed,
        isa: Isa::Scalar,
    };
    let a = DeviceArgs::new(&k(true), 100).expect("2 ops fit one launch");
    assert_eq!((a.n_ops, a.ops[0].kind, a.ops[0].coef), (2, 1, 0.5));
    assert_eq!((a.ops[1].kind, a.ops[1].coef, a.ops[1].key), (0, 2.0, key));
    assert_eq!((a.first, a.n, a.tensor, a.dist), (64, 100, 9, 2));
    // 64..164 covers runs 2..6 (elements 64..191): four runs, four threads each.
    assert_eq!(a.threads(), 16);
    assert_eq!(
        DeviceArgs::new(&k(false), 100).map(|a| a.n_ops),
        Some(1),
        "no decay: the scale is dropped"
    );
    let many = vec![
        Prepared::Add {
            key,
            coef: 1.0,
            reused: true
        };
        9
    ];
    let k9 = SweepKernel {
        ops: &many,
        ..k(true)
    };
    assert!(
        DeviceArgs::new(&k9, 100).is_none(),
        "9 ops do not fit one launch"
    );
}
