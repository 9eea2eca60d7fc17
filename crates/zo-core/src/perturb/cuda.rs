//! The native CUDA sweep: `sweep.cu` compiled by NVRTC at first use, launched in place on the
//! tensor's device memory (no copy of the weights, nothing allocated in proportion to the model:
//! a 1 KiB AES table per device).
//!
//! NVRTC rather than PTX built by nvcc with the crate: the source is compiled for the GPU it runs
//! on, the build needs nothing beyond what candle's `cuda` feature already needs, and the same
//! file is what the host test compiles (`device_tests.rs`). Options: `--fmad=false` (no
//! contraction of a multiply and an add into an fma: the source spells every fma out),
//! `--ftz=false`, `--prec-sqrt=true`, `--prec-div=true`.
//!
//! Trust, but check: before a device's first native sweep, [`native_ready`] runs the kernel on
//! small tensors of each dtype and distribution and compares the bits with the CPU kernel. Any
//! difference, or a failure to compile, load or launch, and that device takes the staged path
//! (the CPU's z, copied) for the rest of the process, said once in the log: a wrong direction
//! is never used silently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use candle_core::cuda_backend::{CudaDevice, CudaStorage, CudaStorageSlice, DeviceId};
use candle_core::{DType, Device, Tensor};
use half::{bf16, f16};

use super::device_abi::{DeviceArgs, SOURCE};
use super::{Prepared, SweepKernel};
use crate::rng::{ars::TE0, Distribution, Isa, Key};

/// Threads per block (each block loads the 256-entry table into shared memory once).
const BLOCK: u32 = 256;

fn msg(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("native CUDA sweep: {e}"))
}

/// The PTX of `sweep.cu`, compiled once per process.
fn ptx() -> candle_core::Result<&'static str> {
    static PTX: OnceLock<Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        let opts = CompileOptions {
            fmad: Some(false),
            ftz: Some(false),
            prec_sqrt: Some(true),
            prec_div: Some(true),
            name: Some("zo_sweep.cu".into()),
            ..Default::default()
        };
        compile_ptx_with_opts(SOURCE, opts)
            .map(|p| p.to_src())
            .map_err(|e| format!("NVRTC: {e:?}"))
    })
    .as_deref()
    .map_err(msg)
}

/// The AES T-table on `dev` (uploaded once per device).
fn table(dev: &CudaDevice) -> candle_core::Result<Arc<CudaSlice<u32>>> {
    static TABLES: OnceLock<Mutex<HashMap<DeviceId, Arc<CudaSlice<u32>>>>> = OnceLock::new();
    let mut tables = TABLES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(t) = tables.get(&dev.id()) {
        return Ok(t.clone());
    }
    let t = Arc::new(dev.clone_htod(&TE0)?);
    tables.insert(dev.id(), t.clone());
    Ok(t)
}

/// Runs `k` on elements `start..end` of `storage` (the candle in-place op's CUDA side).
pub(super) fn launch(
    k: &SweepKernel<'_>,
    storage: &mut CudaStorage,
    start: usize,
    end: usize,
) -> candle_core::Result<()> {
    let args =
        DeviceArgs::new(k, end - start).ok_or_else(|| msg("more ops than one launch takes"))?;
    let threads = args.threads();
    if threads == 0 {
        return Ok(());
    }
    // With no op left the kernel still runs: like the CPU kernel it widens and rounds back every
    // value (which quiets a signalling NaN of a bf16/f16 tensor), so the bits stay the CPU's.
    let blocks = u32::try_from(threads.div_ceil(u64::from(BLOCK)))
        .map_err(|_| msg("tensor too large for one launch"))?;
    let cfg = LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    let dev = storage.device.clone();
    let te = table(&dev)?;
    let ptx = ptx()?;
    let name = match storage.slice {
        CudaStorageSlice::F32(_) => "zo_sweep_f32",
        CudaStorageSlice::BF16(_) => "zo_sweep_bf16",
        CudaStorageSlice::F16(_) => "zo_sweep_f16",
        _ => return Err(msg(format!("unsupported dtype {:?}", storage.dtype()))),
    };
    let func = dev.get_or_load_custom_func(name, "zo_sweep", ptx)?;
    let mut b = func.builder();
    macro_rules! go {
        ($s:expr) => {{
            let mut view = $s.slice_mut(start..end);
            b.arg(&mut view);
            b.arg(te.as_ref());
            b.arg(&args);
            // SAFETY: the kernel's signature is (void *data, const u32 *te, zo_sweep_args a),
            // `DeviceArgs` is `zo_sweep_args` (repr(C), same layout, checked sizes), and every
            // thread touches only elements `first .. first + n` of the view, that is
            // `start..end` of the tensor's storage.
            unsafe { b.launch(cfg) }.map_err(msg)?;
        }};
    }
    match &mut storage.slice {
        CudaStorageSlice::F32(s) => go!(s),
        CudaStorageSlice::BF16(s) => go!(s),
        CudaStorageSlice::F16(s) => go!(s),
        _ => unreachable!("dtype checked above"),
    }
    Ok(())
}

// SAFETY: plain old data with the C layout of `zo_sweep_args` (see `device_abi.rs`).
unsafe impl candle_core::cuda_backend::cudarc::driver::DeviceRepr for DeviceArgs {}

/// True when `device` may take the native sweep: checked once per device (see the module docs);
/// false, with one warning in the log, when the check fails.
pub(super) fn native_ready(device: &Device) -> bool {
    let Device::Cuda(dev) = device else {
        return false;
    };
    static READY: OnceLock<Mutex<HashMap<DeviceId, bool>>> = OnceLock::new();
    let mut ready = READY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    *ready.entry(dev.id()).or_insert_with(|| match self_check(device) {
        Ok(()) => {
            tracing::info!(
                "perturbation sweep on {:?}: native CUDA kernel, checked bit for bit against the CPU kernel",
                device.location()
            );
            true
        }
        Err(e) => {
            tracing::warn!(
                "perturbation sweep on {:?}: the native CUDA kernel is not used ({e}); z is generated on the CPU and copied instead (the same bits, slower)",
                device.location()
            );
            false
        }
    })
}

/// The native kernel against the CPU kernel on small tensors: every dtype and distribution, two
/// terms and a decay, a length that is not whole runs, a tensor index > 0.
fn self_check(device: &Device) -> candle_core::Result<()> {
    let key = |seed, step| Key::new(seed, step).ars_key();
    let ops = [
        Prepared::Add {
            key: key(11, 5),
            coef: -2e-3,
            reused: false,
        },
        Prepared::Scale(0.999),
        Prepared::Add {
            key: key(11, 6),
            coef: 1e-3,
            reused: false,
        },
    ];
    let n = 4096 + 37;
    let host: Vec<f32> = (0..n)
        .map(|i| ((i as f32) * 0.618_034).sin() * 0.05)
        .collect();
    for dist in [
        Distribution::Normal,
        Distribution::Rademacher,
        Distribution::Uniform,
    ] {
        let k = SweepKernel {
            tensor: 3,
            first: 0,
            ops: &ops,
            dist,
            decayed: true,
            isa: Isa::detect(),
        };
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let cpu = Tensor::from_slice(&host, n, &Device::Cpu)?.to_dtype(dtype)?;
            let gpu = cpu.to_device(device)?;
            cpu.inplace_op1(&k)?;
            gpu.inplace_op1(&k)?;
            let back = gpu.to_device(&Device::Cpu)?;
            let (want, got) = match dtype {
                DType::F32 => (
                    bits(&cpu.to_vec1::<f32>()?, f32::to_bits),
                    bits(&back.to_vec1::<f32>()?, f32::to_bits),
                ),
                DType::BF16 => (
                    bits(&cpu.to_vec1::<bf16>()?, |x| x.to_bits().into()),
                    bits(&back.to_vec1::<bf16>()?, |x| x.to_bits().into()),
                ),
                _ => (
                    bits(&cpu.to_vec1::<f16>()?, |x| x.to_bits().into()),
                    bits(&back.to_vec1::<f16>()?, |x| x.to_bits().into()),
                ),
            };
            let differ: Vec<usize> = (0..n).filter(|&i| want[i] != got[i]).collect();
            if let Some(&i) = differ.first() {
                return Err(msg(format!(
                    "its {dtype:?} {dist:?} sweep differs from the CPU kernel's in {} of {n} \
                     elements, first at {i}: {:#x} on the GPU, {:#x} on the CPU",
                    differ.len(),
                    got[i],
                    want[i]
                )));
            }
        }
    }
    Ok(())
}

fn bits<T: Copy>(v: &[T], f: impl Fn(T) -> u32) -> Vec<u32> {
    v.iter().map(|x| f(*x)).collect()
}
