//! The argument block of the CUDA sweep kernel (`sweep.cu`), built from a [`SweepKernel`]: what
//! the CUDA launch (`cuda.rs`) passes to the GPU and what the host test (`device_tests.rs`)
//! passes to the same source compiled for the CPU. Keep in step with `zo_sweep_args` there.

use super::{Prepared, SweepKernel};
use crate::rng::Distribution;

/// The kernel's source (C that is also CUDA C++; see its header).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) const SOURCE: &str = include_str!("sweep.cu");

/// Most ops one launch takes (`ZO_MAX_OPS`).
pub(crate) const MAX_OPS: usize = 8;

/// `zo_op`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct DeviceOp {
    /// 0: add `coef · z(key)`; 1: scale by `coef`.
    pub kind: u32,
    pub coef: f32,
    pub key: [u32; 4],
}

/// `zo_sweep_args` (224 bytes, no padding: the C and Rust layouts are the same).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct DeviceArgs {
    /// Index in the tensor of the first element the launch sees (a multiple of 64).
    pub first: u64,
    /// Elements the launch sees.
    pub n: u64,
    pub tensor: u32,
    /// 0 normal, 1 rademacher, 2 uniform.
    pub dist: u32,
    pub n_ops: u32,
    pub pad: u32,
    pub ops: [DeviceOp; MAX_OPS],
}

const _: () = assert!(std::mem::size_of::<DeviceArgs>() == 224);
const _: () = assert!(std::mem::size_of::<DeviceOp>() == 24);

impl DeviceArgs {
    /// The kernel's arguments for `k` over `n` elements, or `None` when its ops that change
    /// something (the CPU kernel skips zero coefficients, unit scales and the scales of a tensor
    /// without decay) are more than one launch takes.
    pub(crate) fn new(k: &SweepKernel<'_>, n: usize) -> Option<DeviceArgs> {
        let mut ops = [DeviceOp::default(); MAX_OPS];
        let mut n_ops = 0;
        for op in k.ops {
            let d = match *op {
                Prepared::Add { key, coef, .. } if coef != 0.0 => DeviceOp { kind: 0, coef, key },
                Prepared::Scale(f) if k.decayed && f != 1.0 => DeviceOp {
                    kind: 1,
                    coef: f,
                    key: [0; 4],
                },
                _ => continue,
            };
            *ops.get_mut(n_ops)? = d;
            n_ops += 1;
        }
        Some(DeviceArgs {
            first: k.first as u64,
            n: n as u64,
            tensor: k.tensor,
            dist: match k.dist {
                Distribution::Normal => 0,
                Distribution::Rademacher => 1,
                Distribution::Uniform => 2,
            },
            n_ops: n_ops as u32,
            pad: 0,
            ops,
        })
    }

    /// Threads the launch needs (`zo_sweep_threads`: four per run of 32 elements).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn threads(&self) -> u64 {
        let first_run = self.first / 32;
        let end_run = (self.first + self.n).div_ceil(32);
        (end_run - first_run) * 4
    }

    /// The bytes of the block, as the C struct has them.
    #[cfg(test)]
    pub(crate) fn to_bytes(self) -> Vec<u8> {
        let mut b = Vec::with_capacity(224);
        b.extend_from_slice(&self.first.to_ne_bytes());
        b.extend_from_slice(&self.n.to_ne_bytes());
        for v in [self.tensor, self.dist, self.n_ops, self.pad] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        for op in self.ops {
            b.extend_from_slice(&op.kind.to_ne_bytes());
            b.extend_from_slice(&op.coef.to_ne_bytes());
            for w in op.key {
                b.extend_from_slice(&w.to_ne_bytes());
            }
        }
        b
    }
}
