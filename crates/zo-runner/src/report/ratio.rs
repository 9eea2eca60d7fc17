//! The report's smoothing policy on top of zo-core's cost-ratio computation
//! ([`zo_core::cost`], docs/ALGORITHMS.md "The training-cost ratio").

pub use zo_core::cost::Curve;

/// The smoothing rule, stated in every report.
pub const SMOOTHING: &str = "centred moving average over a window of max(1, 5 % of the run's steps) rounded up to odd, truncated at the ends";

/// Width of the centred window for a run of `n` steps (odd, ≥ 1): 5 % of the run, so curves of
/// runs with different lengths are smoothed over the same fraction of their run.
pub fn window(n: usize) -> usize {
    let w = ((n as f64 * 0.05).ceil() as usize).max(1);
    if w.is_multiple_of(2) {
        w + 1
    } else {
        w
    }
}

/// A curve's smoothed losses under the report's rule.
pub fn smooth(y: &[f64]) -> Vec<f64> {
    zo_core::cost::smooth(y, window(y.len()))
}

/// The cost ratios of `curves` against `base` at `fractions` of the base run, each curve
/// smoothed over its own run's [`window`] (as [`smooth`] does for the plots).
pub fn cost_ratios(base: &Curve, curves: &[&Curve], fractions: &[f64]) -> Vec<Vec<Option<f64>>> {
    zo_core::cost::cost_ratios(base, curves, fractions, window)
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
    fn each_curve_is_smoothed_over_its_own_run() {
        // The base's 20 steps smooth over 1 point; the other run's 200 over 11, which averages
        // its one-step dip away: it reaches the base's final loss (0.62) only at step 190 by
        // the 0.002 per step decline, not at the dip (step 10, 0.55 of the base's queries).
        let base = curve((0..20).map(|k| 1.0 - 0.02 * k as f64).collect(), 2);
        let mut long: Vec<f64> = (0..200).map(|k| 1.0 - 0.002 * k as f64).collect();
        long[10] = 0.0;
        let rows = cost_ratios(&base, &[&curve(long, 2)], &[1.0]);
        let r = rows[0][0].unwrap();
        assert!((9.0..=9.6).contains(&r), "{r}");
    }

    #[test]
    fn window_is_five_percent_and_odd() {
        assert_eq!(window(100), 5);
        assert_eq!(window(10), 1);
        assert_eq!(window(41), 3);
        assert_eq!(window(1000), 51);
    }
}
