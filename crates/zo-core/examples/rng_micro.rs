//! Splits the cost of a sweep into its parts, single thread, from an L1-resident buffer: ARS4x32-7
//! alone (rademacher fill: one AND/OR per word), ARS + Box–Muller (normal fill), and the whole
//! one-term normal sweep (adds the streaming x += c·z pass). Figures are CPU-time medians scaled
//! to 125 239 296 elements (opt-125m), so they compare directly with `sweep_bench`.
//!
//! Run: `cargo run --release -p zo-core --example rng_micro [-- --repeats 7] [--isa avx2]`.
//! For an A/B of two builds, run the two binaries alternately and compare the medians of one
//! run.

use candle_core::{DType, Device, Tensor};
use zo_core::perturb::{apply_with, Sweep, Term};
use zo_core::rng::{fill_with, Isa};
use zo_core::{Distribution, Key, ParamSet};

const N: usize = 125_239_296;

/// CPU seconds of this thread (`CLOCK_THREAD_CPUTIME_ID`) or of the process
/// (`CLOCK_PROCESS_CPUTIME_ID`): immune to waiting for a core on a shared machine.
fn cpu_clock(clk: i32) -> f64 {
    let mut ts = std::mem::MaybeUninit::<[i64; 2]>::uninit();
    // SAFETY: clock_gettime writes a timespec (two i64 on x86-64 Linux) into the pointer.
    unsafe extern "C" {
        fn clock_gettime(clk: i32, ts: *mut [i64; 2]) -> i32;
    }
    let ts = unsafe {
        clock_gettime(clk, ts.as_mut_ptr());
        ts.assume_init()
    };
    ts[0] as f64 + ts[1] as f64 * 1e-9
}

fn cpu_now() -> f64 {
    cpu_clock(3)
}

fn process_cpu_now() -> f64 {
    cpu_clock(2)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> zo_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let repeats: usize = args
        .iter()
        .position(|a| a == "--repeats")
        .and_then(|i| args.get(i + 1))
        .map_or(7, |s| s.parse().expect("--repeats N"));
    // `--isa scalar|avx2|avx2_vaes|avx512` forces a path (e.g. the AVX2 kernels of the Zen
    // machines measured on an AVX-512 host); default: the one the dispatch picks.
    let isa = match args
        .iter()
        .position(|a| a == "--isa")
        .and_then(|i| args.get(i + 1))
    {
        None => Isa::detect(),
        Some(name) => {
            let isa = match name.as_str() {
                "scalar" => Isa::Scalar,
                "avx2" => Isa::Avx2,
                "avx2_vaes" => Isa::Avx2Vaes,
                "avx512" => Isa::Avx512,
                _ => {
                    eprintln!("rng_micro: --isa {name}: one of scalar, avx2, avx2_vaes, avx512");
                    std::process::exit(2);
                }
            };
            if !isa.is_available() {
                eprintln!("rng_micro: --isa {name}: not available on this CPU");
                std::process::exit(2);
            }
            isa
        }
    };
    println!("isa {isa:?}");
    let key = Key::new(1, 0);
    let mut buf = vec![0.0f32; 4096];
    let fills = N / buf.len();
    let mut sink = 0.0f32;
    for (label, dist) in [
        ("ars_only(rademacher_fill)", Distribution::Rademacher),
        ("ars+box_muller(normal_fill)", Distribution::Normal),
    ] {
        let ms: Vec<f64> = (0..repeats)
            .map(|_| {
                let t0 = cpu_now();
                for f in 0..fills {
                    fill_with(isa, &key, 0, (f * buf.len() / 64) as u64, dist, &mut buf);
                    sink += buf[f % 4096];
                }
                (cpu_now() - t0) * 1e3
            })
            .collect();
        println!("{label:34} {:8.1} ms CPU", median(ms));
    }
    let params = ParamSet::new([(
        "w".to_string(),
        Tensor::zeros(N, DType::F32, &Device::Cpu).unwrap(),
    )])?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let sweep = Sweep::add(&[Term::new(key, 1e-3)], Distribution::Normal);
    pool.install(|| apply_with(&params, &sweep, isa))?;
    let ms: Vec<f64> = (0..repeats)
        .map(|_| {
            let t0 = process_cpu_now();
            pool.install(|| apply_with(&params, &sweep, isa)).unwrap();
            (process_cpu_now() - t0) * 1e3
        })
        .collect();
    println!(
        "{:34} {:8.1} ms CPU (1 thread)",
        "sweep_normal_1term",
        median(ms)
    );
    eprintln!("(sink {sink})");
    Ok(())
}
