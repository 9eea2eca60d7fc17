//! Schedules as pure functions of (step, total steps): the LR factor c_k, and the decays
//! ρ₀ → ρ_end and 2η_a → η_a of AS2P (docs/ALGORITHMS.md).
//!
//! Pure functions (no state) so a resumed run computes the very same values.

use serde::{Deserialize, Serialize};

/// The shape of a factor that goes from 1 (step 0) towards 0 (step K).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// c_k = 1.
    #[default]
    Constant,
    /// c_k = ½(1 + cos(πk/K)) (the paper's "cosine decay"; HF `get_cosine_schedule_with_warmup`
    /// without warm-up).
    Cosine,
    /// c_k = 1 − k/K.
    Linear,
}

impl Schedule {
    /// The factor at `step` of a run of `total` steps, in [0, 1]. Steps past the end give the
    /// end value; `total == 0` gives 1.
    pub fn factor(self, step: u64, total: u64) -> f64 {
        if total == 0 {
            return 1.0;
        }
        let t = (step.min(total) as f64) / (total as f64);
        match self {
            Schedule::Constant => 1.0,
            Schedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * t).cos()),
            Schedule::Linear => 1.0 - t,
        }
    }

    /// A value decaying from `from` (step 0) to `to` (step K) along this shape:
    /// `to + (from − to)·factor`.
    pub fn decay(self, from: f64, to: f64, step: u64, total: u64) -> f64 {
        to + (from - to) * self.factor(step, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_values_at_known_points() {
        let k = 100;
        assert_eq!(Schedule::Constant.factor(37, k), 1.0);
        assert_eq!(Schedule::Cosine.factor(0, k), 1.0);
        assert!((Schedule::Cosine.factor(50, k) - 0.5).abs() < 1e-15);
        assert!((Schedule::Cosine.factor(25, k) - (0.5 + 0.5 * 0.5f64.sqrt())).abs() < 1e-15);
        assert!(Schedule::Cosine.factor(100, k).abs() < 1e-15);
        assert_eq!(Schedule::Linear.factor(0, k), 1.0);
        assert_eq!(Schedule::Linear.factor(75, k), 0.25);
        assert_eq!(Schedule::Linear.factor(1000, k), 0.0);
        assert_eq!(Schedule::Cosine.factor(3, 0), 1.0);
        // ρ from 1e-3 to 1e-4 and τa's factor from 2η_a to η_a.
        assert_eq!(Schedule::Cosine.decay(1e-3, 1e-4, 0, k), 1e-3);
        assert!((Schedule::Cosine.decay(1e-3, 1e-4, 50, k) - 5.5e-4).abs() < 1e-18);
        assert!((Schedule::Cosine.decay(1e-3, 1e-4, 100, k) - 1e-4).abs() < 1e-18);
        assert_eq!(Schedule::Cosine.decay(10.0, 5.0, 0, k), 10.0);
        assert_eq!(Schedule::Constant.decay(10.0, 5.0, 99, k), 10.0);
    }

    #[test]
    fn serde_names() {
        let s: Schedule = serde_json::from_str("\"cosine\"").unwrap();
        assert_eq!(s, Schedule::Cosine);
        assert!(serde_json::from_str::<Schedule>("\"cosin\"").is_err());
    }
}
