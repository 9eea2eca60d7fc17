//! Loss-against-queries plots (SVG and PNG), all methods of one task on one figure.
//!
//! Drawn with `plotters`; text uses DejaVu Sans embedded in the binary (assets/), so a PNG
//! renders the same on a machine without system fonts.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

/// One line of a plot: smoothed losses against queries, with an optional (low, high) band.
pub struct Series {
    pub label: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub band: Option<(Vec<f64>, Vec<f64>)>,
}

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

/// Writes `<stem>.svg` and `<stem>.png` into `dir`: every series (smoothed training loss
/// against cumulative queries), its band shaded in its colour.
pub fn loss_plot(dir: &Path, stem: &str, title: &str, series: &[Series]) -> Result<()> {
    register_font();
    // Drawn under temporary names, then renamed, so a plot is never seen half-written.
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    let svg_tmp = dir.join(format!(".{stem}.svg.tmp"));
    let png_tmp = dir.join(format!(".{stem}.tmp.png"));
    {
        let root = SVGBackend::new(&svg_tmp, (900, 560)).into_drawing_area();
        draw(&root, title, series)?;
        root.present()
            .map_err(|e| anyhow!("{}: {e}", svg.display()))?;
    }
    {
        let root = BitMapBackend::new(&png_tmp, (900, 560)).into_drawing_area();
        draw(&root, title, series)?;
        root.present()
            .map_err(|e| anyhow!("{}: {e}", png.display()))?;
    }
    for (tmp, path) in [(&svg_tmp, &svg), (&png_tmp, &png)] {
        std::fs::rename(tmp, path).map_err(|e| anyhow!("{}: cannot write: {e}", path.display()))?;
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    series: &[Series],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("plot: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let x_max = series
        .iter()
        .filter_map(|s| s.x.last().copied())
        .fold(1.0_f64, f64::max);
    let (mut y_min, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in series {
        let band = s.band.iter().flat_map(|(lo, hi)| lo.iter().chain(hi));
        for &v in s.y.iter().chain(band).filter(|v| v.is_finite()) {
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
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        if let Some((lo, hi)) = &s.band {
            let outline: Vec<(f64, f64)> =
                s.x.iter()
                    .zip(hi)
                    .map(|(&x, &y)| (x, y))
                    .chain(s.x.iter().zip(lo).rev().map(|(&x, &y)| (x, y)))
                    .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    outline,
                    color.mix(0.18).filled(),
                )))
                .map_err(err)?;
        }
    }
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points = s.x.iter().copied().zip(s.y.iter().copied());
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err)?
            .label(s.label.as_str())
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
