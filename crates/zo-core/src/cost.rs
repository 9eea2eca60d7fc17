//! The training-cost ratio of the paper's Tables 5 and 6 (docs/ALGORITHMS.md): how many queries a
//! method needs to reach the loss GA reached at given fractions of its run, relative to GA's
//! total.
//!
//! 1. Each loss curve (points (queries so far, loss)) is smoothed by a centred moving average of
//!    `width(n)` points for a curve of `n` points (truncated at both ends): each curve over its
//!    own window, so runs of different lengths are smoothed alike.
//! 2. Thresholds L_j = GA's smoothed loss at point ⌈f_j·n⌉ − 1 of its n points.
//! 3. cost_M(j) = queries of the first point of M's smoothed curve with loss ≤ L_j, divided by
//!    GA's total queries; None ("–") if M never gets there. The same first-crossing rule is
//!    applied to GA itself, so GA's row is ≈ f_j (≤ f_j where its smoothed curve is not
//!    monotone).

use std::fmt::Write;

/// A loss curve: points in increasing query order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Curve {
    /// Queries used when the loss was measured.
    pub queries: Vec<u64>,
    /// The loss.
    pub loss: Vec<f64>,
}

/// Centred moving average of `width` points (made odd), truncated at the ends.
pub fn smooth(values: &[f64], width: usize) -> Vec<f64> {
    let h = width.max(1) / 2;
    (0..values.len())
        .map(|i| {
            let (a, b) = (i.saturating_sub(h), (i + h + 1).min(values.len()));
            values[a..b].iter().sum::<f64>() / (b - a) as f64
        })
        .collect()
}

/// Cost ratios of every curve (the base included) against `base` at `fractions`.
pub fn cost_ratios(
    base: &Curve,
    curves: &[&Curve],
    fractions: &[f64],
    width: impl Fn(usize) -> usize,
) -> Vec<Vec<Option<f64>>> {
    let sb = smooth(&base.loss, width(base.loss.len()));
    let total = base.queries.last().copied().unwrap_or(0).max(1) as f64;
    let n = sb.len();
    let thresholds: Vec<f64> = fractions
        .iter()
        .map(|f| {
            let i = ((f * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1;
            sb.get(i).copied().unwrap_or(f64::NAN)
        })
        .collect();
    curves
        .iter()
        .map(|c| {
            let s = smooth(&c.loss, width(c.loss.len()));
            thresholds
                .iter()
                .map(|&l| {
                    s.iter()
                        .position(|&v| v <= l)
                        .map(|i| c.queries[i] as f64 / total)
                })
                .collect()
        })
        .collect()
}

/// A markdown table: one row per (name, ratios), one column per fraction.
pub fn markdown_table(fractions: &[f64], rows: &[(String, Vec<Option<f64>>)]) -> String {
    let mut s = String::from("| method |");
    for f in fractions {
        let _ = write!(s, " {:.0}% |", f * 100.0);
    }
    s.push_str("\n|---|");
    s.push_str(&"---:|".repeat(fractions.len()));
    s.push('\n');
    for (name, r) in rows {
        let _ = write!(s, "| {name} |");
        for v in r {
            match v {
                Some(x) => {
                    let _ = write!(s, " {x:.2} |");
                }
                None => s.push_str(" – |"),
            }
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_on_known_curves() {
        // GA: loss 100 − q/10 over 1000 queries (10 points); M: twice as fast; N: never below 80.
        let ga = Curve {
            queries: (1..=10).map(|i| i * 100).collect(),
            loss: (1..=10).map(|i| 100.0 - 10.0 * i as f64).collect(),
        };
        let m = Curve {
            queries: ga.queries.clone(),
            loss: (1..=10).map(|i| 100.0 - 20.0 * i as f64).collect(),
        };
        let n = Curve {
            queries: ga.queries.clone(),
            loss: vec![85.0; 10],
        };
        let r = cost_ratios(&ga, &[&ga, &m, &n], &[1.0, 0.5, 0.2], |_| 1);
        assert_eq!(r[0], vec![Some(1.0), Some(0.5), Some(0.2)]);
        assert_eq!(r[1], vec![Some(0.5), Some(0.3), Some(0.1)]);
        assert_eq!(r[2], vec![None, None, None]);
        assert_eq!(smooth(&[0.0, 3.0, 6.0, 9.0], 3), vec![1.5, 3.0, 6.0, 7.5]);
        let t = markdown_table(&[1.0, 0.5], &[("GA".into(), vec![Some(1.0), None])]);
        assert!(t.contains("| GA | 1.00 | – |"), "{t}");
    }
}
