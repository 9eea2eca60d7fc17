//! Synthetic objectives with known structure, to exercise the optimizers without a model:
//! an ill-conditioned quadratic, a Rosenbrock valley, a
//! function that is (L₀, L₁)-smooth but not L-smooth, and mini-batch logistic regression on
//! generated data. Every problem is deterministic (its data come from the direction generator, `rng`).
//!
//! Losses are computed in f64 from the f32 parameters read back from the tensors (the
//! parameters live in a [`ParamSet`] exactly as a model's would, and are moved by the sweeps).

use candle_core::{Device, Tensor};

use crate::objective::DataOrder;
use crate::rng::{z_at, Key};
use crate::{Distribution, ParamSet, Result};

/// A test problem.
pub trait Problem {
    /// Short name for tables.
    fn name(&self) -> &'static str;
    /// The starting point.
    fn init(&self) -> Result<ParamSet>;
    /// The loss at `params` on `batch` (empty = all data / no data).
    fn loss(&self, params: &ParamSet, batch: &[usize]) -> Result<f64>;
    /// The full-data loss (what the suite's curves record).
    fn full_loss(&self, params: &ParamSet) -> Result<f64> {
        self.loss(params, &[])
    }
    /// Mini-batch order, for stochastic problems.
    fn data(&self) -> Option<DataOrder> {
        None
    }
}

fn vector(name: &str, v: Vec<f32>) -> Result<(String, Tensor)> {
    let n = v.len();
    Ok((name.to_string(), Tensor::from_vec(v, n, &Device::Cpu)?))
}

fn read(params: &ParamSet, name: &str) -> Result<Vec<f64>> {
    let v: Vec<f32> = params.require(name)?.to_vec1()?;
    Ok(v.into_iter().map(f64::from).collect())
}

/// f(x) = ½ Σ hᵢ xᵢ², hᵢ log-spaced from 1 down to 1/`cond`; x₀ = 1. Condition number `cond`.
#[derive(Clone, Debug)]
pub struct Quadratic {
    /// Dimension.
    pub d: usize,
    /// Condition number.
    pub cond: f64,
}

impl Problem for Quadratic {
    fn name(&self) -> &'static str {
        "ill-conditioned quadratic"
    }
    fn init(&self) -> Result<ParamSet> {
        ParamSet::new([vector("x", vec![1.0; self.d])?])
    }
    fn loss(&self, params: &ParamSet, _: &[usize]) -> Result<f64> {
        let x = read(params, "x")?;
        let d = x.len().max(2) as f64;
        Ok(x.iter()
            .enumerate()
            .map(|(i, v)| 0.5 * self.cond.powf(-(i as f64) / (d - 1.0)) * v * v)
            .sum())
    }
}

/// Extended Rosenbrock: mean over pairs of 100(x₂ᵢ₊₁ − x₂ᵢ²)² + (1 − x₂ᵢ)²; x₀ = (−1.2, 1, …).
/// A curved valley: the classic test of a method's ability to follow a narrow ridge.
#[derive(Clone, Debug)]
pub struct Rosenbrock {
    /// Dimension (even).
    pub d: usize,
}

impl Problem for Rosenbrock {
    fn name(&self) -> &'static str {
        "rosenbrock valley"
    }
    fn init(&self) -> Result<ParamSet> {
        let v = (0..self.d)
            .map(|i| if i % 2 == 0 { -1.2 } else { 1.0 })
            .collect();
        ParamSet::new([vector("x", v)?])
    }
    fn loss(&self, params: &ParamSet, _: &[usize]) -> Result<f64> {
        let x = read(params, "x")?;
        let pairs = x.chunks_exact(2);
        let n = pairs.len().max(1) as f64;
        Ok(pairs
            .map(|p| 100.0 * (p[1] - p[0] * p[0]).powi(2) + (1.0 - p[0]).powi(2))
            .sum::<f64>()
            / n)
    }
}

/// f(x) = mean of cosh(xᵢ − 1) − 1 + ¼(xᵢ − 1)⁴; x₀ = 4. (L₀, L₁)-smooth (|f''| ≤ L₀ + L₁|f'|
/// holds for cosh and for the quartic) but not L-smooth: the curvature grows without bound, so
/// any fixed step that is safe far away is timid near the optimum (Zhang et al. 2020).
#[derive(Clone, Debug)]
pub struct CoshQuartic {
    /// Dimension.
    pub d: usize,
}

impl Problem for CoshQuartic {
    fn name(&self) -> &'static str {
        "(L0,L1)-smooth cosh+quartic"
    }
    fn init(&self) -> Result<ParamSet> {
        ParamSet::new([vector("x", vec![4.0; self.d])?])
    }
    fn loss(&self, params: &ParamSet, _: &[usize]) -> Result<f64> {
        let x = read(params, "x")?;
        let n = x.len().max(1) as f64;
        Ok(x.iter()
            .map(|v| (v - 1.0).cosh() - 1.0 + 0.25 * (v - 1.0).powi(4))
            .sum::<f64>()
            / n)
    }
}

/// Logistic regression on `n` generated rows of `dim` N(0,1) features; labels from a fixed
/// teacher w* (wᵢ* = ±1) with 10 % label noise. Mini-batch loss = mean log(1 + e^{−y(w·a+c)}).
#[derive(Clone, Debug)]
pub struct Logistic {
    rows: Vec<Vec<f64>>,
    labels: Vec<f64>,
    batch_size: usize,
    seed: u64,
}

impl Logistic {
    /// Generates the data set from `seed`.
    pub fn new(n: usize, dim: usize, batch_size: usize, seed: u64) -> Self {
        let key = Key::new(seed, u64::MAX);
        let rows: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                (0..dim)
                    .map(|j| f64::from(z_at(&key, 0, (i * dim + j) as u64, Distribution::Normal)))
                    .collect()
            })
            .collect();
        let labels = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let s: f64 = r
                    .iter()
                    .enumerate()
                    .map(|(j, a)| if j % 2 == 0 { *a } else { -a })
                    .sum();
                let flip = z_at(&key, 1, i as u64, Distribution::Uniform) > 0.8 * 3f32.sqrt();
                if (s > 0.0) ^ flip {
                    1.0
                } else {
                    -1.0
                }
            })
            .collect();
        Logistic {
            rows,
            labels,
            batch_size,
            seed,
        }
    }
}

impl Problem for Logistic {
    fn name(&self) -> &'static str {
        "logistic regression (mini-batch)"
    }
    fn init(&self) -> Result<ParamSet> {
        let dim = self.rows.first().map_or(0, Vec::len);
        ParamSet::new([vector("w", vec![0.0; dim])?, vector("bias", vec![0.0])?])
    }
    fn loss(&self, params: &ParamSet, batch: &[usize]) -> Result<f64> {
        let (w, c) = (read(params, "w")?, read(params, "bias")?[0]);
        let all: Vec<usize>;
        let rows = if batch.is_empty() {
            all = (0..self.rows.len()).collect();
            &all
        } else {
            batch
        };
        Ok(rows
            .iter()
            .map(|&i| {
                let m = self.labels[i]
                    * (self.rows[i].iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + c);
                // log(1 + e^{−m}), stable for both signs.
                if m > 0.0 {
                    (-m).exp().ln_1p()
                } else {
                    -m + m.exp().ln_1p()
                }
            })
            .sum::<f64>()
            / rows.len().max(1) as f64)
    }
    fn data(&self) -> Option<DataOrder> {
        Some(DataOrder {
            n: self.rows.len(),
            batch_size: self.batch_size,
            seed: self.seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_have_their_known_values() {
        let q = Quadratic { d: 3, cond: 100.0 };
        let p = q.init().unwrap();
        assert!((q.loss(&p, &[]).unwrap() - 0.5 * (1.0 + 0.1 + 0.01)).abs() < 1e-12);
        let r = Rosenbrock { d: 4 };
        let p = r.init().unwrap();
        assert!(
            (r.loss(&p, &[]).unwrap() - (100.0 * 0.44f64.powi(2) + 2.2f64.powi(2))).abs() < 1e-4
        );
        let c = CoshQuartic { d: 2 };
        let p = c.init().unwrap();
        assert!((c.loss(&p, &[]).unwrap() - (3f64.cosh() - 1.0 + 0.25 * 81.0)).abs() < 1e-9);
        let l = Logistic::new(100, 4, 10, 1);
        let p = l.init().unwrap();
        assert!((l.loss(&p, &[]).unwrap() - 2f64.ln()).abs() < 1e-12);
        assert!((l.loss(&p, &[0, 5]).unwrap() - 2f64.ln()).abs() < 1e-12);
        let pos = l.labels.iter().filter(|y| **y > 0.0).count();
        assert!((30..70).contains(&pos), "{pos}");
    }
}
