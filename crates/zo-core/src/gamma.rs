//! γ statistics of AS2P: the standard deviation of the recent projected-gradient values, and
//! the soft clip γ' = 1/(1/|γ| + 1/τ) (docs/ALGORITHMS.md, AS2P).
//!
//! The window holds the last `capacity` γ values (capacity = ⌈w·K⌉). Statistics are recomputed
//! from the window at every step in f64 with the two-pass algorithm (mean by Neumaier-compensated
//! summation, then the compensated sum of squared deviations): O(window) per step, which is
//! nothing next to a forward pass, and, unlike a running update, it carries no accumulated
//! rounding from values that have left the window. Its whole state is the list of values, so a
//! resumed run reproduces it exactly.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which γ values σ is the spread of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigmaOf {
    /// Population std dev of the signed γ (the "decision" of docs/ALGORITHMS.md).
    #[default]
    Signed,
    /// Population std dev of |γ| (offered as an option).
    Abs,
}

/// Neumaier's compensated sum (Neumaier 1974, improved Kahan–Babuška).
fn compensated_sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut c) = (0.0f64, 0.0f64);
    for v in values {
        let t = sum + v;
        if sum.abs() >= v.abs() {
            c += (sum - t) + v;
        } else {
            c += (v - t) + sum;
        }
        sum = t;
    }
    sum + c
}

/// The last `capacity` γ values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GammaWindow {
    capacity: usize,
    values: VecDeque<f64>,
}

impl GammaWindow {
    /// A window of `capacity ≥ 1` values.
    pub fn new(capacity: usize) -> Self {
        GammaWindow {
            capacity: capacity.max(1),
            values: VecDeque::with_capacity(capacity.max(1)),
        }
    }

    /// Capacity ⌈w·K⌉ for a fraction `w ∈ (0, 1]` of a run of `total_steps` (at least 1).
    pub fn capacity_for(w: f64, total_steps: u64) -> usize {
        ((w * total_steps as f64).ceil() as usize).max(1)
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes the capacity, dropping the oldest values if it shrinks.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        while self.values.len() > self.capacity {
            self.values.pop_front();
        }
    }

    /// Adds γ, dropping the oldest value when full. Non-finite values are an error.
    pub fn push(&mut self, gamma: f64) -> Result<()> {
        if !gamma.is_finite() {
            return Err(Error::Msg(format!("γ window: non-finite value {gamma}")));
        }
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(gamma);
        Ok(())
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values, oldest first.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.values.iter().copied()
    }

    fn transformed(&self, of: SigmaOf) -> impl Iterator<Item = f64> + Clone + '_ {
        self.values.iter().map(move |&v| match of {
            SigmaOf::Signed => v,
            SigmaOf::Abs => v.abs(),
        })
    }

    /// Mean of the (signed or absolute) values; `None` when empty.
    pub fn mean(&self, of: SigmaOf) -> Option<f64> {
        if self.values.is_empty() {
            return None;
        }
        Some(compensated_sum(self.transformed(of)) / self.values.len() as f64)
    }

    /// Population standard deviation; `None` when empty.
    pub fn std(&self, of: SigmaOf) -> Option<f64> {
        let mean = self.mean(of)?;
        let ss = compensated_sum(self.transformed(of).map(|v| (v - mean) * (v - mean)));
        Some((ss / self.values.len() as f64).sqrt())
    }
}

/// γ' = 1/(1/|γ| + 1/τ), computed as |γ|τ/(|γ| + τ) (same value, no overflow for tiny |γ|):
/// ≈ |γ| when |γ| ≪ τ, → τ when |γ| ≫ τ (AS2P's progressive γ-clipping). 0 when γ = 0.
pub fn soft_clip(gamma_abs: f64, tau: f64) -> f64 {
    if gamma_abs == 0.0 {
        return 0.0;
    }
    gamma_abs * tau / (gamma_abs + tau)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(values: &[f64], of: SigmaOf) -> (f64, f64) {
        let v: Vec<f64> = values
            .iter()
            .map(|x| if of == SigmaOf::Abs { x.abs() } else { *x })
            .collect();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    /// A window sliding over 1000 values (with a large common offset, where a one-pass
    /// Σx² − n·mean² formula would lose digits) matches the naive two-pass f64 computation on the
    /// same last `capacity` values.
    #[test]
    fn window_std_equals_naive_f64() {
        let mut w = GammaWindow::new(37);
        let mut all = Vec::new();
        let mut s = 12345u64;
        for i in 0..1000 {
            s = crate::rng::mix64(s);
            let g = 1e6 + (s as f64 / u64::MAX as f64 - 0.5) * if i % 3 == 0 { 1e-2 } else { 1.0 };
            let g = if i % 5 == 0 { -g } else { g };
            w.push(g).unwrap();
            all.push(g);
            let tail = &all[all.len().saturating_sub(37)..];
            for of in [SigmaOf::Signed, SigmaOf::Abs] {
                let (m, sd) = naive(tail, of);
                let (gm, gs) = (w.mean(of).unwrap(), w.std(of).unwrap());
                assert!(
                    (gm - m).abs() <= 1e-12 * m.abs().max(1.0),
                    "mean {gm} vs {m}"
                );
                assert!(
                    (gs - sd).abs() <= 1e-9 * sd.max(1e-300),
                    "step {i} {of:?}: {gs} vs {sd}"
                );
            }
        }
        assert_eq!(w.len(), 37);
    }

    #[test]
    fn capacity_and_edge_cases() {
        assert_eq!(GammaWindow::capacity_for(0.1, 20_000), 2000);
        assert_eq!(GammaWindow::capacity_for(0.1, 15), 2);
        assert_eq!(GammaWindow::capacity_for(0.1, 0), 1);
        let mut w = GammaWindow::new(3);
        assert_eq!(w.std(SigmaOf::Signed), None);
        w.push(2.0).unwrap();
        assert_eq!(w.std(SigmaOf::Signed), Some(0.0));
        assert!(w.push(f64::NAN).is_err());
        for v in [1.0, 2.0, 3.0, 4.0] {
            w.push(v).unwrap();
        }
        assert_eq!(w.values().collect::<Vec<_>>(), vec![2.0, 3.0, 4.0]);
        w.set_capacity(2);
        assert_eq!(w.values().collect::<Vec<_>>(), vec![3.0, 4.0]);
    }

    #[test]
    fn soft_clip_limits() {
        assert_eq!(soft_clip(0.0, 1.0), 0.0);
        assert!((soft_clip(1e-6, 1.0) - 1e-6).abs() < 1e-11);
        assert!((soft_clip(1e9, 2.0) - 2.0).abs() < 1e-8);
        assert!((soft_clip(1.0, 1.0) - 0.5).abs() < 1e-15);
        assert!((soft_clip(3.0, 6.0) - 1.0 / (1.0 / 3.0 + 1.0 / 6.0)).abs() < 1e-15);
    }
}
