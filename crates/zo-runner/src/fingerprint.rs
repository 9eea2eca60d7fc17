//! The start-up check of a multi-rank run: every rank must train the same thing. Each rank
//! hashes its resolved config, its model's weights and its training data; the hashes are
//! all-gathered and a rank whose hash differs from rank 0's stops the run with one line naming
//! what differs and where (a rank that loaded another checkpoint, another data file, or was
//! started with other options would silently train something else: the ranks' loss terms
//! would no longer belong to one model).

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use zo_core::ParamSet;

use crate::dist::World;
use crate::pipeline::workload::{ModelRef, Workload};
use crate::settings::Settings;

/// A stable 64-bit hash (FNV-1a-style over 8-byte words, with a final avalanche): the same
/// bytes give the same value on every machine and build. Not cryptographic; it tells
/// accidental differences apart.
#[derive(Clone, Copy)]
pub struct Hash64(u64);

impl Default for Hash64 {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hash64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(Self::PRIME).rotate_left(29);
    }

    /// Adds bytes (their length too, so that consecutive fields do not run together).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.word(b.len() as u64);
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut last = [0u8; 8];
        last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.word(u64::from_le_bytes(last));
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.word(v);
        self
    }

    pub fn finish(self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
}

/// The resolved settings, without the run directory (not a training setting).
pub fn config(s: &Settings) -> Result<u64> {
    let mut s = s.clone();
    s.train.out = Default::default();
    Ok(Hash64::default().bytes(s.to_toml()?.as_bytes()).finish())
}

/// Elements of a tensor copied to the host at a time (bounds the memory the hash needs).
const CHUNK: usize = 1 << 20;

/// Adds a tensor's name, dtype, shape and values (f32 bit patterns; f16 and bf16 convert to f32
/// without loss, any other dtype to f64), read in chunks of [`CHUNK`] elements.
fn tensor(h: &mut Hash64, name: &str, t: &Tensor) -> Result<()> {
    h.bytes(name.as_bytes())
        .bytes(t.dtype().as_str().as_bytes());
    for &d in t.dims() {
        h.u64(d as u64);
    }
    let flat = t.flatten_all()?;
    let n = flat.elem_count();
    let mut start = 0;
    while start < n {
        let part = flat.narrow(0, start, CHUNK.min(n - start))?;
        match t.dtype() {
            DType::F32 | DType::F16 | DType::BF16 => {
                for v in part.to_dtype(DType::F32)?.to_vec1::<f32>()? {
                    h.u64(u64::from(v.to_bits()));
                }
            }
            _ => {
                for v in part.to_dtype(DType::F64)?.to_vec1::<f64>()? {
                    h.u64(v.to_bits());
                }
            }
        }
        start += CHUNK;
    }
    Ok(())
}

fn params(h: &mut Hash64, set: &ParamSet, skip: impl Fn(&str) -> bool) -> Result<()> {
    for (_, name, t) in set.iter() {
        if !skip(name) {
            tensor(h, name, t)?;
        }
    }
    Ok(())
}

/// Every weight of the model: the base tensors and the trainable ones (an adapter's, a
/// prefix's) that are not among them; a ResNet's parameters and buffers.
pub fn weights(work: &Workload) -> Result<u64> {
    let mut h = Hash64::default();
    match work.model() {
        ModelRef::Opt(m, _) => {
            let base = m.base_params();
            params(&mut h, base, |_| false)?;
            params(&mut h, m.params(), |n| base.get(n).is_some())?;
        }
        ModelRef::ResNet(m) => {
            params(&mut h, m.params(), |_| false)?;
            for (name, t) in m.buffers() {
                tensor(&mut h, name, t)?;
            }
        }
    }
    Ok(h.finish())
}

/// The training examples as the loss sees them (token ids, or images and labels), in order.
pub fn data(work: &Workload) -> Result<u64> {
    let mut h = Hash64::default();
    match work {
        Workload::Text { data, .. } => {
            h.u64(data.train.len() as u64);
            for f in &data.train {
                h.bytes(&serde_json::to_vec(f)?);
            }
        }
        Workload::Vision { data, .. } => {
            h.u64(data.train.len() as u64);
            for v in &data.train.images {
                h.u64(u64::from(v.to_bits()));
            }
            for &l in &data.train.labels {
                h.u64(u64::from(l));
            }
        }
    }
    Ok(h.finish())
}

/// Compares every rank's hashes (`(what, hash)`, in the same order on every rank) with rank
/// 0's; an error names the first part that differs and the ranks that differ. Every rank
/// takes part and reaches the same verdict.
pub fn check(world: &dyn World, parts: &[(&str, u64)]) -> Result<()> {
    for &(what, hash) in parts {
        let all = world.all_gather_u64(hash)?;
        let odd: Vec<String> = all
            .iter()
            .enumerate()
            .filter(|&(_, &h)| h != all[0])
            .map(|(r, _)| r.to_string())
            .collect();
        if !odd.is_empty() {
            bail!(
                "the ranks do not train the same run: {what}: rank {} {} from rank 0 \
                 (fingerprints {})",
                odd.join(", rank "),
                if odd.len() == 1 { "differs" } else { "differ" },
                all.iter()
                    .map(|h| format!("{h:016x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
    Ok(())
}

/// Checks that every rank holds the same model weights (`what`: which weights, for the error).
pub fn check_weights(world: &dyn World, what: &str, work: &Workload) -> Result<()> {
    if world.size() < 2 {
        return Ok(());
    }
    check(world, &[(&format!("{what} weights"), weights(work)?)])
}

/// Hashes the run's config, weights and data and checks that every rank has the same (a
/// no-op for one process).
pub fn check_run(world: &dyn World, s: &Settings, work: &Workload) -> Result<()> {
    if world.size() < 2 {
        return Ok(());
    }
    let parts = [
        ("config", config(s)?),
        ("model weights", weights(work)?),
        ("training data", data(work)?),
    ];
    check(world, &parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A world whose all-gather returns given values (rank 0 of them).
    struct Gathered(Vec<u64>);

    impl World for Gathered {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            self.0.len()
        }
        fn all_gather(&self, values: &[f64]) -> Result<Vec<f64>> {
            Ok(values.to_vec())
        }
        fn all_gather_u64(&self, _value: u64) -> Result<Vec<u64>> {
            Ok(self.0.clone())
        }
        fn all_gather_bytes(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
            Ok(vec![bytes.to_vec()])
        }
    }

    #[test]
    fn a_differing_rank_is_named_with_what_differs() {
        assert!(check(&Gathered(vec![7, 7, 7]), &[("config", 7)]).is_ok());
        let e = check(&Gathered(vec![7, 7, 8]), &[("model weights", 7)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model weights: rank 2 differs from rank 0"),
            "{e}"
        );
        let e = check(&Gathered(vec![1, 2, 3]), &[("training data", 1)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("training data: rank 1, rank 2 differ"), "{e}");
    }

    #[test]
    fn the_hash_is_stable_and_separates_fields() {
        let h = |parts: &[&[u8]]| {
            let mut h = Hash64::default();
            for p in parts {
                h.bytes(p);
            }
            h.finish()
        };
        assert_eq!(h(&[b"abc"]), h(&[b"abc"]));
        assert_ne!(h(&[b"ab", b"c"]), h(&[b"a", b"bc"]));
        assert_ne!(h(&[b"abcdefgh1"]), h(&[b"abcdefgh2"]));
        assert_ne!(h(&[b""]), h(&[b"\0"]));
    }

    #[test]
    fn a_tensor_hash_sees_every_chunk_and_the_dtype() {
        let dev = candle_core::Device::Cpu;
        let hash = |t: &Tensor| {
            let mut h = Hash64::default();
            tensor(&mut h, "w", t).unwrap();
            h.finish()
        };
        let n = CHUNK + 3;
        let mut v = vec![0.5f32; n];
        let a = Tensor::from_vec(v.clone(), n, &dev).unwrap();
        v[n - 1] = 0.25;
        let b = Tensor::from_vec(v, n, &dev).unwrap();
        assert_eq!(hash(&a), hash(&a.copy().unwrap()));
        assert_ne!(hash(&a), hash(&b), "a change in the last chunk");
        assert_ne!(hash(&a), hash(&a.to_dtype(DType::BF16).unwrap()));
        assert_ne!(hash(&a), hash(&a.reshape((1, n)).unwrap()));
    }

    #[test]
    fn the_config_hash_ignores_the_run_directory_only() {
        let s = crate::settings::resolve(&crate::settings::Sources {
            base: &[("built-in defaults", crate::settings::DEFAULTS)],
            config_file: None,
            sets: &[],
        })
        .unwrap();
        let mut other_out = s.clone();
        other_out.train.out = "elsewhere".into();
        assert_eq!(config(&s).unwrap(), config(&other_out).unwrap());
        let mut other_seed = s.clone();
        other_seed.train.seed += 1;
        assert_ne!(config(&s).unwrap(), config(&other_seed).unwrap());
    }
}
