//! `zo bench` end to end on the tiny model: every line is one JSON object with the fields its
//! figure promises. (B4 re-runs the `zo` binary, which a unit-test binary is not; its parsing is
//! tested in `rss`, its process in the CLI tests.)

use std::sync::Mutex;

use super::*;

/// The probe changes RAYON_NUM_THREADS while it runs; tests that run the model hold this lock
/// so that no forward reads the variable while another test's probe is writing it.
static ENV_LOCK: Mutex<()> = Mutex::new(());

fn args(figure: Figure) -> BenchArgs {
    BenchArgs {
        figure,
        model: "tiny-opt".into(),
        batch: Some(2),
        classes: Vec::new(),
        fma_peak: None,
        seq: vec![8],
        repeats: 1,
        warmup: 0,
        json: None,
        loss: None,
        seed: 3,
        compute: crate::settings::ComputeSetting::F32,
        lora: false,
        device: crate::settings::DeviceSetting::Cpu,
        dtype: crate::settings::DTypeSetting::F32,
        child: false,
    }
}

/// A quiet context of batch 2, one repeat and no warm-up, writing its lines to `out`.
fn test_ctx(model: String, seqs: Vec<usize>, seed: u64, out: &mut Vec<u8>) -> Ctx<'_> {
    Ctx {
        model,
        batch: 2,
        seqs,
        repeats: 1,
        warmup: 0,
        seed,
        quiet: true,
        kernel: "test".into(),
        isa: None,
        dtype: "f32".into(),
        out,
        lines: Vec::new(),
    }
}

/// Kernel names as the `kernel` field prints them (not Rust's `Debug` form).
#[test]
fn kernel_names_are_plain() {
    use zo_models::sgemm::Isa;
    assert_eq!(super::kernel_name(Some(Isa::AmxBf16)), "amx_bf16");
    assert_eq!(super::kernel_name(Some(Isa::Avx512Bf16)), "avx512bf16");
    assert_eq!(
        super::kernel_name(Some(Isa::Avx512FmaBf16)),
        "avx512_fma_bf16"
    );
    assert_eq!(super::kernel_name(Some(Isa::Avx512)), "avx512");
    assert_eq!(super::kernel_name(Some(Isa::Avx2)), "avx2");
    assert_eq!(super::kernel_name(None), "candle");
}

fn parse_lines(buf: Vec<u8>) -> Vec<Value> {
    let text = String::from_utf8(buf).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn num(v: &Value, k: &str) -> f64 {
    v.get(k)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number {k} in {v}"))
}

fn figure(v: &Value) -> String {
    v["figure"].as_str().unwrap().to_string()
}

/// B1, B2 (+ B5), B3 in one context (one model build, no probe: fast), 1 repeat each.
#[test]
fn tiny_figures_emit_well_formed_json_lines() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let a = args(Figure::All);
    let spec: ModelSpec = a.model.parse().unwrap();
    let mut buf = Vec::new();
    let mut ctx = test_ctx(spec.name(), a.seq.clone(), a.seed, &mut buf);
    let kinds = [LossKind::FullLm, LossKind::Task];
    let figs = [Figure::B1, Figure::B2, Figure::B3];
    run_figures(&mut ctx, &a, &spec, &figs, &kinds).unwrap();
    let n_lines = ctx.lines.len();
    let all = parse_lines(buf);
    assert_eq!(all.len(), n_lines);
    for v in &all {
        assert_eq!(v["model"], "tiny-opt", "{v}");
        assert_eq!(num(v, "B"), 2.0);
        assert!(num(v, "threads") >= 1.0);
        if figure(v) != "B5" {
            let (med, lo, hi) = (num(v, "median_s"), num(v, "min_s"), num(v, "max_s"));
            assert!(lo <= med && med <= hi && lo > 0.0, "{v}");
            assert_eq!(num(v, "repeats"), 1.0);
        }
    }
    let b1: Vec<&Value> = all.iter().filter(|v| figure(v) == "B1").collect();
    assert_eq!(b1.len(), 2, "full_lm and task");
    for v in &b1 {
        assert!(num(v, "gflops_per_s") > 0.0 && num(v, "tokens_per_s") > 0.0);
        assert!(num(v, "loss_value").is_finite());
        // The FMA peak is probed where the CPU has AVX2+FMA or AVX-512F; the forward is a
        // positive fraction of it (below 1 up to the probe's noise).
        if super::measure::fma_peak_gflops().is_some() {
            let f = num(v, "fraction_of_fma_peak");
            assert!(f > 0.0 && f < 1.5, "{v}");
            assert!(
                num(v, "fma_peak_gflops") > num(v, "gflops_per_s") / 1.5,
                "{v}"
            );
        }
        // f32 products: no bf16 peak.
        assert!(v["fraction_of_bf16_dot_peak"].is_null(), "{v}");
    }
    // The task loss computes the lm_head at 2 rows instead of 2·8, and at 2 of 16 positions
    // the last layer's queries, attention output and MLP there only: its count is what zo
    // computes, below the peer's count less the lm_head.
    assert!(num(b1[1], "flops") < num(b1[0], "flops"));
    let model = load_model(&spec, a.seed, candle_core::DType::F32).unwrap();
    let fl = super::flops::forward_flops(model.config(), 2, num(b1[1], "T") as usize);
    assert_eq!(num(b1[1], "flops") as u64, fl.at_rows(2), "{}", b1[1]);
    assert_eq!(num(b1[1], "flops_computed") as u64, fl.at_rows(2));
    assert!(fl.at_rows(2) < fl.with_logit_rows(2));
    let b2: Vec<&Value> = all.iter().filter(|v| figure(v) == "B2").collect();
    assert_eq!(b2.len(), 4, "GA and AS2P × two losses");
    for v in &b2 {
        // Warm-up 0: the one timed step is the run's first, whose +ρ probe was not fused
        // into a previous sweep.
        assert_eq!(num(v, "sweeps_per_step"), 3.0, "{v}");
        assert_eq!(num(v, "queries_per_step"), 2.0);
    }
    let b3: Vec<&Value> = all.iter().filter(|v| figure(v) == "B3").collect();
    assert_eq!(b3.len(), 2);
    assert!(b3.iter().all(|v| num(v, "gb_per_s") > 0.0));
    assert_eq!(all.iter().filter(|v| figure(v) == "B5").count(), 2);
}

/// The public entry: probe lines around the figure, B5 in the steady state (2 sweeps: the
/// probe is fused into the previous step's update), and --json written.
#[test]
fn run_to_b5_writes_probes_and_the_json_file() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bench.jsonl");
    let mut a = args(Figure::B5);
    a.json = Some(file.clone());
    let mut buf = Vec::new();
    run_to(&a, true, &mut buf).unwrap();
    let all = parse_lines(buf);
    let names: Vec<String> = all.iter().map(figure).collect();
    assert_eq!(names, ["probe", "B5", "B5", "probe"]);
    for v in &all[1..3] {
        assert_eq!(num(v, "sweeps_per_step"), 2.0, "{v}");
    }
    assert!(num(&all[0], "gflops_1t") > 0.0);
    for probe in [&all[0], &all[3]] {
        assert_eq!(probe["kernel"], PROBE_KERNEL, "{probe}");
    }
    assert_ne!(all[1]["kernel"], PROBE_KERNEL);
    let saved = std::fs::read_to_string(&file).unwrap();
    assert_eq!(saved.lines().count(), 4);
}

#[test]
fn bad_model_and_sizes_are_errors() {
    let err = "no/such/dir".parse::<ModelSpec>().unwrap_err().to_string();
    // Every built-in a user can name, the ResNets (resolved before this parse) included.
    for name in [
        "tiny-opt",
        "opt-125m",
        "opt-350m",
        "tiny-resnet",
        "resnet18",
    ] {
        assert!(err.contains(name), "{err}");
        assert!(
            name.parse::<ModelSpec>().is_ok() || resnet::preset(name).is_some(),
            "{name}"
        );
    }
    assert_eq!("opt-350m".parse::<ModelSpec>().unwrap(), ModelSpec::Opt350m);
    let mut a = args(Figure::B1);
    a.seq = vec![1];
    assert!(run_to(&a, true, &mut Vec::new()).is_err());
}

/// B3 over a model's shapes in bf16 / f16 (zero weights, no model built): two lines with the
/// dtype, the device, whether the sweep ran in place, and bytes that count 2 bytes a weight.
#[test]
fn b3_sweeps_shapes_in_other_dtypes() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let tiny_params = OptConfig::preset(Preset::Tiny)
        .expected_params()
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum::<usize>();
    for (dtype, name, width) in [
        (crate::settings::DTypeSetting::Bf16, "bf16", 2.0),
        (crate::settings::DTypeSetting::F16, "f16", 2.0),
        (crate::settings::DTypeSetting::F32, "f32", 4.0),
    ] {
        let mut a = args(Figure::B3);
        a.dtype = dtype;
        let mut buf = Vec::new();
        run_to(&a, true, &mut buf).unwrap();
        let lines = parse_lines(buf);
        // bf16/f16: no probe lines (a CPU GEMM probe says nothing about them); f32 on the CPU
        // is the usual B3 with its probes.
        let b3: Vec<&Value> = lines.iter().filter(|l| figure(l) == "B3").collect();
        assert_eq!(b3.len(), 2, "{lines:?}");
        for (l, terms) in b3.iter().zip([1, 2]) {
            assert_eq!(l["terms"], terms);
            assert_eq!(l["dtype"], name);
            assert_eq!(num(l, "params") as usize, tiny_params);
            assert_eq!(num(l, "bytes"), 2.0 * width * tiny_params as f64);
            if name != "f32" {
                assert_eq!(l["device"], "cpu");
                assert_eq!(l["native"], true);
            }
        }
    }
}

/// B1 and B2 of a model built with 16-bit weights: the same lines as with f32 weights, each
/// saying its dtype.
#[test]
fn b1_and_b2_build_the_model_in_16_bit() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let loss_of = |fig: Figure, dtype| {
        let mut a = args(fig);
        a.dtype = dtype;
        a.loss = Some(LossKind::Task);
        let mut buf = Vec::new();
        run_to(&a, true, &mut buf).unwrap();
        parse_lines(buf)
            .into_iter()
            .filter(|l| figure(l) != "probe")
            .collect::<Vec<_>>()
    };
    use crate::settings::DTypeSetting as D;
    for fig in [Figure::B1, Figure::B2] {
        let f32_lines = loss_of(fig, D::F32);
        assert!(!f32_lines.is_empty());
        for (dtype, name) in [(D::Bf16, "bf16"), (D::F16, "f16")] {
            let lines = loss_of(fig, dtype);
            assert_eq!(lines.len(), f32_lines.len(), "{lines:?}");
            for (l, l32) in lines.iter().zip(&f32_lines) {
                assert_eq!(l["dtype"], name, "{l}");
                assert_eq!(l32["dtype"], "f32", "{l32}");
                assert_eq!(figure(l), figure(l32));
            }
        }
    }
}

/// The large shapes' sizes are the facebook checkpoints' (1.3 B … 13 B parameters), and they
/// and --device are refused outside B3, --dtype outside B1 / B2 / B3.
#[test]
fn large_shapes_are_for_b3_only() {
    for (name, billions) in [
        ("opt-1.3b", 1.3),
        ("opt-2.7b", 2.7),
        ("opt-6.7b", 6.7),
        ("opt-13b", 12.9),
    ] {
        let ModelSpec::Shapes(s) = name.parse::<ModelSpec>().unwrap() else {
            panic!("{name}")
        };
        let n: usize = s
            .config()
            .expected_params()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        let b = n as f64 / 1e9;
        assert!((b - billions).abs() < 0.1, "{name}: {b} B parameters");
        let mut a = args(Figure::B1);
        a.model = name.into();
        let err = check_args(&a).unwrap_err().to_string();
        assert!(err.contains("--figure b3"), "{err}");
    }
    let mut a = args(Figure::B2);
    a.dtype = crate::settings::DTypeSetting::F16;
    assert!(check_args(&a).is_ok());
    for f in [Figure::B4, Figure::All] {
        let mut a = args(f);
        a.dtype = crate::settings::DTypeSetting::Bf16;
        let err = check_args(&a).unwrap_err().to_string();
        assert!(err.contains("--dtype bf16"), "{err}");
    }
    let mut a = args(Figure::All);
    a.device = crate::settings::DeviceSetting::Cuda(0);
    assert!(check_args(&a).is_err());
    let mut a = args(Figure::B3);
    a.model = "opt-13b".into();
    assert!(check_args(&a).is_ok());
}

/// The ResNet figures on the tiny ResNet: B1 per head, GA and AS2P steps, with the FLOP count
/// and the fraction of the FMA peak; a figure a ResNet does not have is an error.
#[test]
fn tiny_resnet_figures_emit_well_formed_json_lines() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let preset = resnet::preset("tiny-resnet").unwrap();
    let mut buf = Vec::new();
    let mut ctx = test_ctx("tiny-resnet".into(), Vec::new(), 3, &mut buf);
    resnet::run(
        &mut ctx,
        preset,
        Figure::All,
        &[10, 100],
        None,
        zo_models::sgemm::Compute::F32,
    )
    .unwrap();
    assert!(resnet::run(
        &mut ctx,
        preset,
        Figure::B3,
        &[10],
        None,
        zo_models::sgemm::Compute::F32
    )
    .is_err());
    assert!(resnet::run(
        &mut ctx,
        preset,
        Figure::B1,
        &[1],
        None,
        zo_models::sgemm::Compute::F32
    )
    .is_err());
    let all = parse_lines(buf);
    let names: Vec<String> = all.iter().map(figure).collect();
    assert_eq!(names, ["B1", "B2", "B2", "B1", "B2", "B2"]);
    let has_peak = crate::bench::measure::fma_peak_gflops().is_some();
    for v in &all {
        assert_eq!(v["model"], "tiny-resnet");
        assert_eq!(num(v, "B"), 2.0);
        assert!(
            num(v, "gflops_per_s") > 0.0 && num(v, "loss_value").is_finite(),
            "{v}"
        );
        if has_peak {
            let f = num(v, "fraction_of_fma_peak");
            assert!(f > 0.0 && f < 1.5, "{v}");
        }
    }
    // The 100-class head adds 2·B·64·90 FLOPs to the forward (feature width 64 at base 8).
    assert_eq!(
        num(&all[3], "flops") - num(&all[0], "flops"),
        (2 * 2 * 64 * 90) as f64
    );
    assert_eq!(num(&all[1], "flops"), 2.0 * num(&all[0], "flops"));
}

#[test]
fn classes_are_for_resnets_only() {
    let mut a = args(Figure::B1);
    a.classes = vec![10];
    let e = run_to(&a, true, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("--classes"), "{e}");
    let mut a = args(Figure::B1);
    a.fma_peak = Some(100.0);
    assert!(run_to(&a, true, &mut Vec::new()).is_err());
}

/// `--lora`: the steps run on MeZO's default adapter (the sweep of B3 covers the adapter's
/// tensors only, far fewer bytes than the whole model's).
#[test]
fn lora_figures_sweep_the_adapter_only() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let run = |lora: bool| {
        let mut a = args(Figure::B3);
        a.lora = lora;
        let spec: ModelSpec = a.model.parse().unwrap();
        let mut buf = Vec::new();
        let mut ctx = test_ctx(spec.name(), a.seq.clone(), a.seed, &mut buf);
        run_figures(
            &mut ctx,
            &a,
            &spec,
            &[Figure::B2, Figure::B3],
            &[LossKind::Task],
        )
        .unwrap();
        parse_lines(buf)
    };
    let bytes = |lines: &[Value]| -> f64 {
        let b3 = lines.iter().find(|v| figure(v) == "B3").expect("a B3 line");
        num(b3, "bytes")
    };
    let (full, lora) = (run(false), run(true));
    assert!(lora.iter().any(|v| figure(v) == "B2"));
    assert!(
        bytes(&lora) * 10.0 < bytes(&full),
        "{} vs {}",
        bytes(&lora),
        bytes(&full)
    );
}

/// With bf16 compute on a CPU whose products then run on a bf16 kernel, B1 gives no fraction
/// of the f32 FMA peak (not the peak of that arithmetic); elsewhere (f32 products) it does.
/// Its lines name the arithmetic (`compute`) and the kernel.
#[test]
fn no_f32_peak_fraction_for_bf16_products() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut a = args(Figure::B1);
    a.compute = crate::settings::ComputeSetting::Bf16;
    let mut buf = Vec::new();
    run_to(&a, true, &mut buf).unwrap();
    let bf16 = zo_models::sgemm::Compute::Bf16
        .isa()
        .is_some_and(zo_models::sgemm::Isa::is_bf16);
    let bf16_units = zo_models::sgemm::Compute::Bf16
        .isa()
        .is_some_and(zo_models::sgemm::Isa::bf16_units);
    let b1: Vec<Value> = parse_lines(buf)
        .into_iter()
        .filter(|v| figure(v) == "B1")
        .collect();
    assert_eq!(b1.len(), 2);
    let kernel = super::kernel_name(zo_models::sgemm::Compute::Bf16.isa());
    for v in &b1 {
        // Which arithmetic ran, by name: the weights' `dtype` stays f32 under bf16 compute.
        assert_eq!(v["compute"], if bf16 { "bf16" } else { "f32" }, "{v}");
        assert_eq!(v["kernel"], kernel.as_str(), "{v}");
        assert_eq!(v["isa"], zo_core::cpu::level().name(), "{v}");
        assert_eq!(v["dtype"], "f32", "{v}");
        let f = &v["fraction_of_fma_peak"];
        if bf16_units {
            assert!(f.is_null(), "{v}");
        } else if super::measure::fma_peak_gflops().is_some() {
            assert!(f.as_f64().is_some_and(|x| x > 0.0), "{v}");
        }
        // On the `vdpbf16ps` kernel, the fraction of that instruction's peak instead.
        let dot = &v["fraction_of_bf16_dot_peak"];
        if kernel == "avx512bf16" && super::measure::bf16_dot_peak_gflops().is_some() {
            assert!(dot.as_f64().is_some_and(|x| x > 0.0 && x < 1.5), "{v}");
            assert!(num(v, "bf16_dot_peak_gflops") > 0.0, "{v}");
        } else {
            assert!(dot.is_null() && v["bf16_dot_peak_gflops"].is_null(), "{v}");
        }
    }
}

/// Each line's fractions divide by the peak of the arithmetic that ran: the f32 FMA peak for
/// f32 products, the `vdpbf16ps` peak where one is given, and none of the f32 peak on bf16
/// units.
#[test]
fn peak_fields_divide_by_the_peak_of_the_arithmetic_that_ran() {
    use super::measure::Peaks;
    let f32_products = Peaks {
        fma: Some(400.0),
        bf16_units: false,
        bf16_dot: None,
    };
    let v = f32_products.fields(100.0);
    assert_eq!(v["fma_peak_gflops"], 400.0);
    assert_eq!(v["fraction_of_fma_peak"], 0.25);
    assert!(v["bf16_dot_peak_gflops"].is_null() && v["fraction_of_bf16_dot_peak"].is_null());
    let dot = Peaks {
        fma: Some(400.0),
        bf16_units: true,
        bf16_dot: Some(799.6),
    };
    let v = dot.fields(600.0);
    assert_eq!(v["fma_peak_gflops"], 400.0);
    assert!(v["fraction_of_fma_peak"].is_null(), "{v}");
    assert_eq!(v["bf16_dot_peak_gflops"], 800.0);
    assert_eq!(v["fraction_of_bf16_dot_peak"], 0.75);
    // AMX tiles: bf16 units without a `vdpbf16ps` peak, so no fraction at all.
    let amx = Peaks {
        fma: Some(400.0),
        bf16_units: true,
        bf16_dot: None,
    };
    let v = amx.fields(600.0);
    assert!(v["fraction_of_fma_peak"].is_null() && v["fraction_of_bf16_dot_peak"].is_null());
}

/// The probes time real work: no x86 core issues more than four 512-bit FMAs (64 lanes ×
/// 2 FLOP) or four `vdpbf16ps` (64 lanes × 4 FLOP) a cycle, nor runs above 6 GHz, so a
/// probe above that per thread timed a loop the compiler removed or merged.
#[test]
fn peak_probes_are_physically_possible() {
    let threads = candle_core::utils::get_num_threads().max(1) as f64;
    if let Some(p) = super::measure::fma_peak_gflops() {
        assert!(
            p > 0.0 && p / threads < 4.0 * 32.0 * 6.0,
            "FMA peak {p} GFLOP/s"
        );
    }
    if let Some(p) = super::measure::bf16_dot_peak_gflops() {
        assert!(
            p > 0.0 && p / threads < 4.0 * 64.0 * 6.0,
            "bf16 dot peak {p} GFLOP/s"
        );
    }
}

/// The FMA probes keep every chain in registers: each reads at least 0.8 of the same loop with
/// 8 chains (which cannot spill, and covers a 4-cycle FMA latency on two pipes). With 16 AVX2
/// chains, one spilled to the stack, the probe read 0.57 of it on a Zen 4. A spill shows in
/// every measurement, a busy host in some: the pair is measured up to three times and one
/// clean pair passes.
#[cfg(target_arch = "x86_64")]
#[test]
fn fma_probes_keep_their_chains_in_registers() {
    use super::measure::{fma_loop_avx2, fma_loop_avx512, peak_of, AVX2_CHAINS, AVX512_CHAINS};
    use std::arch::is_x86_feature_detected as has;
    let check = |what: &str, pair: &dyn Fn() -> (f64, f64)| {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (probe, eight) = pair();
            if probe >= 0.8 * eight {
                return;
            }
            seen.push(format!("{probe:.0} against {eight:.0}"));
        }
        panic!(
            "{what}: the probe against 8 chains, GFLOP/s: {}",
            seen.join(", ")
        );
    };
    if has!("avx2") && has!("fma") {
        check("AVX2", &|| {
            // SAFETY: AVX2 and FMA were detected.
            let probe = peak_of(AVX2_CHAINS as u64 * 8 * 2, |i| unsafe {
                fma_loop_avx2::<AVX2_CHAINS>(i)
            });
            // SAFETY: as above.
            let eight = peak_of(8 * 8 * 2, |i| unsafe { fma_loop_avx2::<8>(i) });
            (probe, eight)
        });
    }
    if has!("avx512f") {
        check("AVX-512", &|| {
            // SAFETY: AVX-512F was detected.
            let probe = peak_of(AVX512_CHAINS as u64 * 16 * 2, |i| unsafe {
                fma_loop_avx512::<AVX512_CHAINS>(i)
            });
            // SAFETY: as above.
            let eight = peak_of(8 * 16 * 2, |i| unsafe { fma_loop_avx512::<8>(i) });
            (probe, eight)
        });
    }
}

/// The stderr summary names the fraction of the peak of the arithmetic that ran, and leaves
/// out the fractions that do not apply.
#[test]
fn human_line_gives_the_fraction_that_applies() {
    let line = serde_json::json!({
        "figure": "B1", "model": "m", "B": 2, "loss": "full_lm", "median_s": 0.5,
        "min_s": 0.4, "max_s": 0.6, "repeats": 3, "gflops_per_s": 700.0,
        "fraction_of_fma_peak": null, "fraction_of_bf16_dot_peak": 0.7,
    });
    let h = super::human(&line);
    assert!(
        h.contains("gflops_per_s=700.0 fraction_of_bf16_dot_peak=0.7"),
        "{h}"
    );
    assert!(!h.contains("fraction_of_fma_peak"), "{h}");
}
