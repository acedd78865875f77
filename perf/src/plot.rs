//! Percentile-distribution plots (the HdrHistogram kind: latency against "how many nines"),
//! one PNG per latency scenario and placement, every system a line.

use hdrhistogram::Histogram;
use plotters::prelude::*;
use std::path::Path;

/// Fonts this machine may have; plots need one (ab_glyph renders it, no system library).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a font once; false if none is found (then no plots are drawn).
fn font() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        FONTS.iter().any(|path| {
            std::fs::read(path).ok().is_some_and(|bytes| {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    })
}

/// The x position of quantile `q`: its number of nines, -log10(1 - q).
fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-7).log10()
}

/// Draws `series` (name, merged histogram) to `path`. Returns false (and draws nothing) if
/// no font is available.
pub fn percentiles(path: &Path, title: &str, series: &[(String, Histogram<u64>)]) -> Result<bool, String> {
    if series.is_empty() || !font() {
        return Ok(false);
    }
    let quantiles: Vec<f64> = (0..=120).map(|i| 1.0 - 10f64.powf(-(i as f64) / 24.0)).collect();
    let top = series.iter().map(|(_, h)| h.max().max(1)).max().unwrap_or(1) as f64;
    let low = series.iter().map(|(_, h)| h.min().max(1)).min().unwrap_or(1) as f64;
    let root = BitMapBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = frame(&root, title)
        .build_cartesian_2d(0f64..5f64, (low * 0.8..top * 1.25).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency, ns (log)")
        .x_labels(6)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_label_formatter(&|x| match x.round() as i32 {
            0 => "0%".into(),
            1 => "90%".into(),
            2 => "99%".into(),
            3 => "99.9%".into(),
            4 => "99.99%".into(),
            _ => "99.999%".into(),
        })
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, h)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = quantiles
            .iter()
            .map(|&q| (nines(q).min(5.0), h.value_at_quantile(q).max(1) as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    finish(&mut chart, &root)
}

/// Draws latency quantiles (p50, p99, p99.9) against offered load to `path`, log-log: one
/// point per `(offered messages per second, histogram)`. Returns false (and draws nothing) if
/// no font is available.
pub fn curve(path: &Path, title: &str, points: &[(f64, Histogram<u64>)]) -> Result<bool, String> {
    if points.is_empty() || !font() {
        return Ok(false);
    }
    let quantiles = [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")];
    let x_low = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x_high = points.iter().map(|p| p.0).fold(0.0, f64::max);
    let y_low = points
        .iter()
        .map(|p| p.1.value_at_quantile(0.5).max(1))
        .min()
        .unwrap_or(1) as f64;
    let y_high = points
        .iter()
        .map(|p| p.1.value_at_quantile(0.999).max(1))
        .max()
        .unwrap_or(1) as f64;
    let root = BitMapBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = frame(&root, title)
        .build_cartesian_2d(
            (x_low * 0.8..x_high * 1.25).log_scale(),
            (y_low * 0.8..y_high * 1.25).log_scale(),
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("offered load, messages/s (log)")
        .y_desc("publish to durable confirm, ns (log)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (q, name)) in quantiles.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let line: Vec<(f64, f64)> = points
            .iter()
            .map(|(x, h)| (*x, h.value_at_quantile(q).max(1) as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(line.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    finish(&mut chart, &root)
}

/// Draws the legend of `chart` and writes `root` out.
fn finish<'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    root: &DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>,
) -> Result<bool, String>
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(true)
}

/// The frame every plot shares: the title, margins and label areas.
fn frame<'r, 'a: 'r, 'b>(
    root: &'r DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>,
    title: &'b str,
) -> ChartBuilder<'r, 'b, BitMapBackend<'a>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(70);
    builder
}
