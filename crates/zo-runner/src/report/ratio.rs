//! The training-cost ratio of the paper's Tables 5 and 6 (ALGORITHMS.md, "The training-cost
//! ratio"), computed from loss curves measured in queries (forward passes).
//!
//! 1. Every curve is smoothed with a centred moving average ([`smooth`]).
//! 2. The base method's smoothed loss at fractions f of its run gives thresholds L_f.
//! 3. cost_M(f) = queries M used when its smoothed curve first reaches ≤ L_f, divided by the
//!    base method's total queries; `None` ("–") when M never gets there.

/// One training-loss curve: (cumulative queries after the step, loss) in step order.
#[derive(Clone, Debug, Default)]
pub struct Curve {
    pub queries: Vec<u64>,
    pub loss: Vec<f64>,
}

/// The smoothing rule, stated in every report.
pub const SMOOTHING: &str = "centred moving average over a window of max(1, 5 % of the run's steps) rounded up to odd, truncated at the ends";

/// Width of the centred window for a run of `n` steps (odd, ≥ 1).
pub fn window(n: usize) -> usize {
    let w = (n as f64 * 0.05).ceil() as usize;
    let w = w.max(1);
    if w % 2 == 0 {
        w + 1
    } else {
        w
    }
}

/// Centred moving average with [`window`]; the ends average over what is available.
/// Non-finite values are not expected here (the trainer stops on them).
pub fn smooth(y: &[f64]) -> Vec<f64> {
    let n = y.len();
    let half = window(n) / 2;
    // Prefix sums in f64 keep it O(n) and exact enough for losses.
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0);
    for v in y {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + v);
    }
    (0..n)
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(n);
            (prefix[hi] - prefix[lo]) / (hi - lo) as f64
        })
        .collect()
}

/// The cost ratios of `curves` against `base` at `fractions` of the base run (e.g. 1, 0.75, ..).
/// Returns one row per curve, one entry per fraction.
pub fn cost_ratios(base: &Curve, curves: &[&Curve], fractions: &[f64]) -> Vec<Vec<Option<f64>>> {
    let base_s = smooth(&base.loss);
    let n = base_s.len();
    let total = base.queries.last().copied().unwrap_or(0);
    if n == 0 || total == 0 {
        return curves.iter().map(|_| vec![None; fractions.len()]).collect();
    }
    let thresholds: Vec<f64> = fractions
        .iter()
        .map(|f| {
            // The step index at fraction f of the base run (f = 1 → the last step).
            let idx = ((f * n as f64).round() as usize).clamp(1, n) - 1;
            base_s[idx]
        })
        .collect();
    curves
        .iter()
        .map(|c| {
            let s = smooth(&c.loss);
            thresholds
                .iter()
                .map(|&l| {
                    s.iter()
                        .position(|&v| v <= l)
                        .map(|i| c.queries[i] as f64 / total as f64)
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(loss: Vec<f64>, q_per_step: u64) -> Curve {
        let queries = (1..=loss.len() as u64).map(|k| k * q_per_step).collect();
        Curve { queries, loss }
    }

    #[test]
    fn base_row_is_its_own_fractions() {
        // A strictly decreasing base curve: its smoothed value at fraction f is first reached
        // at fraction f (or an earlier step, by at most the smoothing half-width).
        let base = curve((0..100).map(|k| 10.0 - k as f64 * 0.05).collect(), 2);
        let rows = cost_ratios(&base, &[&base], &[1.0, 0.75, 0.5, 0.25]);
        let r: Vec<f64> = rows[0].iter().map(|x| x.unwrap()).collect();
        assert_eq!(r, vec![1.0, 0.75, 0.5, 0.25]);
    }

    #[test]
    fn twice_as_fast_method_costs_half_and_never_is_none() {
        let base = curve((0..200).map(|k| 1.0 / (1.0 + k as f64)).collect(), 2);
        let fast = curve((0..200).map(|k| 1.0 / (1.0 + 2.0 * k as f64)).collect(), 2);
        let flat = curve(vec![5.0; 200], 2);
        let rows = cost_ratios(&base, &[&fast, &flat], &[0.5]);
        let half = rows[0][0].unwrap();
        assert!((half - 0.25).abs() < 0.02, "{half}");
        assert_eq!(rows[1][0], None);
    }

    #[test]
    fn smoothing_is_centred_and_truncated() {
        assert_eq!(window(100), 5);
        assert_eq!(window(10), 1);
        let s = smooth(&[
            0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ]);
        // n = 41 → window 3: the spike spreads to its two neighbours.
        assert_eq!(&s[0..4], &[0.0, 1.0, 1.0, 1.0]);
        assert_eq!(s[4], 0.0);
    }
}
