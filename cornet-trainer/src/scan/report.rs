//! A scan as the user reads it: a plain-text table, `scores.csv` and `scores.svg` (score
//! against time step, one panel per metric, one line per area).

use super::error::{Result, ScanError};
use super::Scan;
use crate::error::{Cause, Explain};
use crate::files::write_whole;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const PANEL: (u32, u32) = (520, 340);
/// Height of the strip above the panels that names the areas' colours.
const LEGEND: u32 = 40;

/// A plain-text table: one row per tap, one column per metric, the ceiling below.
pub fn table(scan: &Scan) -> String {
    let names: Vec<&str> = scan
        .taps
        .first()
        .map(|t| t.values().map(|(name, _, _)| name).collect())
        .unwrap_or_default();
    let mut text = format!("{:<16} {:>4}", "area", "step");
    for name in &names {
        write!(text, " {name:>19}").expect("writing to a String");
    }
    text.push('\n');
    for tap in &scan.taps {
        write!(text, "{:<16} {:>4}", tap.area, tap.time_step).expect("writing to a String");
        for (_, _, value) in tap.values() {
            write!(text, " {value:>19.4}").expect("writing to a String");
        }
        text.push('\n');
    }
    if !scan.constant.is_empty() {
        writeln!(
            text,
            "not scored, the same for every stimulus: {}",
            scan.constant.join(", ")
        )
        .expect("writing to a String");
    }
    if let Some(ceiling) = scan.ceiling {
        writeln!(text, "noise ceiling (split-half): {ceiling:.4}").expect("writing to a String");
    }
    text
}

/// Writes `OUT/scores.csv` (see [`csv`]) and `OUT/scores.svg` (see [`svg`]), each whole;
/// returns their paths.
pub fn write(scan: &Scan, out_dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let (csv_path, svg_path) = (out_dir.join("scores.csv"), out_dir.join("scores.svg"));
    write_whole(&csv_path, csv(scan)?).explain(ScanError::Output, || {
        format!("writing {}", csv_path.display())
    })?;
    let drawing = || format!("drawing {}", svg_path.display());
    let svg = svg(scan).map_err(|cause| ScanError::Output(drawing(), Some(cause)))?;
    write_whole(&svg_path, svg).explain(ScanError::Output, drawing)?;
    Ok((csv_path, svg_path))
}

/// The scores as CSV with the columns area, time_step, metric, value.
pub fn csv(scan: &Scan) -> Result<Vec<u8>> {
    #[derive(serde::Serialize)]
    struct Row<'a> {
        area: &'a str,
        time_step: usize,
        metric: &'a str,
        value: f64,
    }
    let mut writer = csv::Writer::from_writer(Vec::new());
    for tap in &scan.taps {
        for (metric, _, value) in tap.values() {
            writer.serialize(Row {
                area: &tap.area,
                time_step: tap.time_step,
                metric,
                value,
            })?;
        }
    }
    Ok(writer.into_inner().expect("a Vec takes every byte"))
}

/// The plot as SVG text (text as SVG text: no fonts needed to draw it); fails as plotters
/// does, or with nothing to plot.
pub fn svg(scan: &Scan) -> Result<String, Cause> {
    let Some(first) = scan.taps.first() else {
        return Err("no taps to plot".into());
    };
    let metrics: Vec<(&str, &str)> = first.values().map(|(n, label, _)| (n, label)).collect();
    let areas = scan.areas();
    let last_step = scan.taps.iter().map(|t| t.time_step).max().unwrap_or(0) as f64;
    let cols = metrics.len().min(2);
    let rows = metrics.len().div_ceil(cols);
    let size = (PANEL.0 * cols as u32, LEGEND + PANEL.1 * rows as u32);
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
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
    }
    Ok(text)
}
