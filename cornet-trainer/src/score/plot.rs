//! The scan as a picture: score against time step, one panel per metric, one line per area.

use super::error::{Result, ScoreError};
use super::scan::Scan;
use crate::error::{Cause, Explain};
use plotters::prelude::*;
use std::path::Path;

const PANEL: (u32, u32) = (520, 340);
/// Height of the strip above the panels that names the areas' colours.
const LEGEND: u32 = 40;

/// Writes `scan` to `path` as SVG (text as SVG text: no fonts needed to draw it).
pub fn write_svg(scan: &Scan, path: &Path) -> Result<()> {
    draw(scan, path).explain(ScoreError::Output, || format!("drawing {}", path.display()))
}

/// The plot; fails as plotters does (or with nothing to plot), the caller naming the file.
fn draw(scan: &Scan, path: &Path) -> Result<(), Cause> {
    let Some(first) = scan.taps.first() else {
        return Err("no taps to plot".into());
    };
    let metrics: Vec<(&str, &str)> = first.values().map(|(n, label, _)| (n, label)).collect();
    let areas = scan.areas();
    let last_step = scan.taps.iter().map(|t| t.time_step).max().unwrap_or(0) as f64;
    let cols = metrics.len().min(2);
    let rows = metrics.len().div_ceil(cols);
    let size = (PANEL.0 * cols as u32, LEGEND + PANEL.1 * rows as u32);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (legend, panels) = root.split_vertically(LEGEND);
    // One legend for every panel, so that none covers a panel's points.
    for (k, area) in areas.iter().enumerate() {
        let x = 60 + 140 * k as i32;
        let color = Palette99::pick(k).to_rgba();
        legend.draw(&PathElement::new(
            vec![(x, 20), (x + 24, 20)],
            color.stroke_width(3),
        ))?;
        legend.draw(&Text::new(*area, (x + 30, 13), ("sans-serif", 15)))?;
    }
    for (panel, &(metric, label)) in panels.split_evenly((rows, cols)).iter().zip(&metrics) {
        let series = |area: &str| -> Vec<(f64, f64)> {
            scan.taps
                .iter()
                .filter(|t| t.area == area)
                .filter_map(|t| {
                    let (_, _, v) = t.values().find(|(n, _, _)| *n == metric)?;
                    Some((t.time_step as f64, v))
                })
                .collect()
        };
        let values = areas.iter().flat_map(|a| series(a)).map(|(_, v)| v);
        let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
        // Room around the points, and a visible range when every score is the same.
        let pad = ((high - low) * 0.1).max(0.02);
        let mut chart = ChartBuilder::on(panel)
            .caption(label, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.5..last_step + 0.5, (low - pad)..(high + pad))?;
        chart
            .configure_mesh()
            .x_desc("time step")
            .x_labels(last_step as usize + 2)
            .x_label_formatter(&|x| {
                // Time steps are whole numbers; other tick positions get no label.
                if x.fract() == 0.0 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            })
            // Three decimals, and no "-0.000" for a tick at zero.
            .y_label_formatter(&|y| format!("{:.3}", if y.abs() < 1e-12 { 0.0 } else { *y }))
            .draw()?;
        for (k, area) in areas.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let points = series(area);
            chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?;
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
    }
    root.present()?;
    Ok(())
}
