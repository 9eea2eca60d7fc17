//! Loss-against-queries plots (SVG and PNG), all methods of one task on one figure.
//!
//! Drawn with `plotters`; text uses DejaVu Sans embedded in the binary (assets/), so a PNG
//! renders the same on a machine without system fonts.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::ratio::{smooth, Curve};

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Registration fails only on a malformed font, which include_bytes! rules out.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// The colours of the series, in order (colour-blind-safe Okabe–Ito palette).
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// Writes `<stem>.svg` and `<stem>.png` into `dir`: the smoothed training loss of every
/// `(label, curve)` against cumulative queries.
pub fn loss_plot(dir: &Path, stem: &str, title: &str, series: &[(String, &Curve)]) -> Result<()> {
    register_font();
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    {
        let root = SVGBackend::new(&svg, (900, 560)).into_drawing_area();
        draw(&root, title, series)?;
        root.present()
            .map_err(|e| anyhow!("{}: {e}", svg.display()))?;
    }
    {
        let root = BitMapBackend::new(&png, (900, 560)).into_drawing_area();
        draw(&root, title, series)?;
        root.present()
            .map_err(|e| anyhow!("{}: {e}", png.display()))?;
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    series: &[(String, &Curve)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("plot: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let smoothed: Vec<Vec<f64>> = series.iter().map(|(_, c)| smooth(&c.loss)).collect();
    let x_max = series
        .iter()
        .filter_map(|(_, c)| c.queries.last().copied())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let (mut y_min, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in &smoothed {
        for &v in s {
            y_min = y_min.min(v);
            y_max = y_max.max(v);
        }
    }
    if !y_min.is_finite() || !y_max.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.05).max(1e-9);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, (y_min - pad)..(y_max + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("queries (forward passes)")
        .y_desc("training loss (smoothed)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    for (i, ((label, curve), s)) in series.iter().zip(&smoothed).enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points = curve
            .queries
            .iter()
            .map(|&q| q as f64)
            .zip(s.iter().copied());
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err)?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    Ok(())
}
