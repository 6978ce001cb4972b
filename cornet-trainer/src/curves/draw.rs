//! Runs' curves as one SVG: a panel against epochs per drawn scalar of the records (loss,
//! top-1, learning rate), one colour per run; train thin, validation thick with dots.

use super::run::RunCurves;
use crate::error::Cause;
use crate::records::{Curve, SCALARS};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

const WIDTH: u32 = 900;
const PANEL_HEIGHT: u32 = 280;
/// Runs named per row of the legend.
const LEGEND_COLUMNS: usize = 3;
const LEGEND_ROW: u32 = 22;

/// The curves of `runs` as SVG text (text as SVG text: no fonts needed to draw it): one
/// panel per drawn scalar of the records, in their order.
pub fn svg(runs: &[RunCurves]) -> Result<String, Cause> {
    let drawn: Vec<(usize, Curve)> = SCALARS
        .iter()
        .enumerate()
        .filter_map(|(k, scalar)| Some((k, scalar.curve?)))
        .collect();
    let mut text = String::new();
    let legend_rows = 1 + runs.len().div_ceil(LEGEND_COLUMNS) as u32;
    let height = 10 + LEGEND_ROW * legend_rows + drawn.len() as u32 * PANEL_HEIGHT;
    {
        let root = SVGBackend::with_string(&mut text, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (legend, panels) = root.split_vertically(10 + LEGEND_ROW * legend_rows);
        draw_legend(&legend, runs)?;
        let panels = panels.split_evenly((drawn.len(), 1));
        let last_epoch = runs.iter().map(RunCurves::last_epoch).fold(0.0, f64::max);
        let epochs = 0.0..last_epoch.max(1e-3);
        for (panel_area, &(k, curve)) in panels.iter().zip(&drawn) {
            match curve {
                Curve::Means {
                    caption,
                    scale,
                    top,
                } => {
                    let top = top.unwrap_or_else(|| {
                        let values = runs
                            .iter()
                            .flat_map(|r| r.train_means(k).into_iter().chain(r.validations(k)));
                        let highest = values.map(|(_, v)| v * scale).fold(0.0, f64::max);
                        (highest * 1.05).clamp(1e-3, AXIS_LIMIT)
                    });
                    let mut chart =
                        panel(panel_area, caption).build_cartesian_2d(epochs.clone(), 0.0..top)?;
                    chart.configure_mesh().x_desc("epoch").draw()?;
                    for (colour, run) in runs.iter().enumerate() {
                        let (train, val) = (run.train_means(k), run.validations(k));
                        draw_pair(&mut chart, colour, train, val, scale)?;
                    }
                }
                Curve::Staircase { caption } => {
                    // A log scale: StepLR's rates differ tenfold.
                    let values = runs.iter().flat_map(|r| r.staircase(k)).map(|(_, v)| v);
                    let (low, high) = values
                        .filter(|&v| v > 0.0)
                        .fold((f64::INFINITY, 0.0_f64), |(l, h), v| (l.min(v), h.max(v)));
                    let (low, high) = if high > 0.0 {
                        (low / 2.0, (high * 2.0).min(AXIS_LIMIT))
                    } else {
                        (1e-4, 1.0)
                    };
                    let rates = (low..high)
                        .log_scale()
                        .with_key_points(log_ticks(low, high));
                    let mut chart =
                        panel(panel_area, caption).build_cartesian_2d(epochs.clone(), rates)?;
                    chart
                        .configure_mesh()
                        .x_desc("epoch")
                        .y_label_formatter(&|v| format!("{v:.0e}"))
                        .draw()?;
                    for (colour, run) in runs.iter().enumerate() {
                        let stairs = run.staircase(k).into_iter().filter(|&(_, v)| v > 0.0);
                        chart
                            .draw_series(LineSeries::new(stairs, color(colour).stroke_width(2)))?;
                    }
                }
            }
        }
        root.present()?;
    }
    Ok(text)
}

/// The largest value an axis reaches: a diverging run's values (or a learning rate of 1e308)
/// would take it to infinity, where plotters' tick loop never ends.
const AXIS_LIMIT: f64 = 1e300;

/// Decades at most this far apart on a log axis get labels in between (2 and 5 times each):
/// plotters' own choice put up to ten labels within one decade, over each other.
const SPARSE_DECADES: f64 = 2.5;

/// Labels of a log axis from `low` to `high` (both positive): each power of ten within it,
/// and where it spans less than [`SPARSE_DECADES`], 2 and 5 times each too; over more than
/// ten decades, every few decades.
fn log_ticks(low: f64, high: f64) -> Vec<f64> {
    let decades = (high / low).log10();
    let multiples: &[f64] = if decades < SPARSE_DECADES {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let every = (decades / 10.0).ceil().max(1.0) as i32;
    let (first, last) = (low.log10().floor() as i32, high.log10().ceil() as i32);
    (first..=last)
        .filter(|exponent| exponent.rem_euclid(every) == 0)
        .flat_map(|exponent| multiples.iter().map(move |m| m * 10f64.powi(exponent)))
        .filter(|tick| (low..=high).contains(tick))
        .collect()
}

/// A run's colour.
fn color(run: usize) -> RGBAColor {
    Palette99::pick(run).to_rgba()
}

/// A panel's frame: its caption and room for the axes' labels.
fn panel<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
) -> ChartBuilder<'a, 'static, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(34)
        .y_label_area_size(56);
    builder
}

/// Run `k`'s train curve (thin, pale) and validation curve (thick, dotted), values times
/// `scale`.
fn draw_pair(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    k: usize,
    train: Vec<(f64, f64)>,
    val: Vec<(f64, f64)>,
    scale: f64,
) -> Result<(), Cause> {
    let scaled = |points: Vec<(f64, f64)>| points.into_iter().map(move |(x, y)| (x, y * scale));
    let pale = color(k).mix(0.5);
    chart.draw_series(LineSeries::new(scaled(train), pale.stroke_width(1)))?;
    chart.draw_series(LineSeries::new(
        scaled(val.clone()),
        color(k).stroke_width(2),
    ))?;
    chart.draw_series(scaled(val).map(|p| Circle::new(p, 3, color(k).filled())))?;
    Ok(())
}

/// The key of line styles, then each run's colour and name.
fn draw_legend(area: &DrawingArea<SVGBackend<'_>, Shift>, runs: &[RunCurves]) -> Result<(), Cause> {
    let font = ("sans-serif", 14);
    let line =
        |x: i32, y: i32, style: ShapeStyle| PathElement::new(vec![(x, y), (x + 24, y)], style);
    let key = BLACK.mix(0.5).stroke_width(1);
    area.draw(&line(60, 16, key))?;
    area.draw(&Text::new(
        "train (mean per tenth of an epoch)",
        (90, 9),
        font,
    ))?;
    area.draw(&line(360, 16, BLACK.stroke_width(2)))?;
    area.draw(&Circle::new((372, 16), 3, BLACK.filled()))?;
    area.draw(&Text::new("validation", (390, 9), font))?;
    for (k, run) in runs.iter().enumerate() {
        let x = 60 + 280 * (k % LEGEND_COLUMNS) as i32;
        let y = 16 + (LEGEND_ROW * (1 + (k / LEGEND_COLUMNS) as u32)) as i32;
        area.draw(&line(x, y, color(k).stroke_width(3)))?;
        area.draw(&Text::new(run.name.clone(), (x + 30, y - 7), font))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::log_ticks;

    #[test]
    fn a_log_axis_has_a_few_labels_apart_whatever_its_span() {
        let shown = |low, high| -> Vec<String> {
            let ticks = log_ticks(low, high);
            ticks.iter().map(|v| format!("{v:.0e}")).collect()
        };
        // StepLR from 0.1 to 0.01, axis from half the lowest to twice the highest.
        assert_eq!(
            shown(0.005, 0.2),
            ["5e-3", "1e-2", "2e-2", "5e-2", "1e-1", "2e-1"]
        );
        assert_eq!(shown(0.0125, 0.1), ["2e-2", "5e-2", "1e-1"]);
        assert_eq!(shown(0.0005, 0.2), ["1e-3", "1e-2", "1e-1"]);
        assert_eq!(shown(5e-10, 2e-2).len(), 8);
        assert_eq!(
            shown(5e-30, 2e-2),
            ["1e-27", "1e-24", "1e-21", "1e-18", "1e-15", "1e-12", "1e-9", "1e-6", "1e-3"]
        );
    }
}
