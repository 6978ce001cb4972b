//! `cornet-trainer score --model`: every area's output at every time step of a model, and the
//! decoder's pooled features, scored against recordings of the same images.

use super::command::{score_layer, NeuralRequest, NeuralTarget, Recordings, Scores};
use super::error::{Result, ScoreError};
use super::LayerFeatures;
use crate::error::Explain;
use crate::features::{check_memory, collect_taps, image_batches, write_file_list, ExtractError};
use crate::network::NetworkSpec;
use candle_core::Device;
use cornet_data::{Dataset, ImageFolder};
use cornet_model::TapFilter;
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `score --model`: which model, which images, which recordings.
pub struct ScanRequest {
    /// The network and its weights.
    pub network: NetworkSpec,
    /// Where to run the model.
    pub device: Device,
    /// The folder of stimulus images.
    pub images: PathBuf,
    /// File names in the recordings' order; `None` for the folder's sorted order.
    pub stimuli: Option<PathBuf>,
    /// Image side.
    pub imsize: usize,
    /// Images per forward pass.
    pub batch_size: usize,
    /// Decoding threads.
    pub workers: usize,
    /// The recordings, folds and metric (drawn folds are saved where it says).
    pub neural: NeuralRequest,
    /// The folder of the file list (the scores are written by [`Scan::write_reports`]).
    pub out_dir: PathBuf,
}

/// The scores of one tap: `V4.output.3` is area `V4` at time step 3, `decoder.avgpool.0` area
/// `decoder.avgpool` at step 0.
pub struct TapScore {
    /// The area (`V4`) or module (`decoder.avgpool`).
    pub area: String,
    /// The call of its output.
    pub time_step: usize,
    /// Its scores.
    pub scores: Scores,
}

impl TapScore {
    /// The per-layer scalar scores as (name, label, value); the ceiling belongs to the
    /// recordings and is reported once, in [`Scan::ceiling`].
    pub fn values(&self) -> impl Iterator<Item = (&'static str, &'static str, f64)> {
        self.scores
            .scalars()
            .into_iter()
            .filter(|(name, _, _)| *name != "ceiling")
            .filter_map(|(name, label, value)| value.map(|v| (name, label, v)))
    }
}

/// Every tap of a model scored.
pub struct Scan {
    /// Areas bottom-up, each area's time steps in order.
    pub taps: Vec<TapScore>,
    /// Taps whose features are the same for every stimulus, so that no score is defined: in
    /// R and RT an area sees the image only from the time step of its depth on.
    pub constant: Vec<String>,
    /// The recordings' split-half noise ceiling (median over neuroids), if they have one.
    pub ceiling: Option<f64>,
}

impl Scan {
    /// The areas scored, bottom-up.
    pub fn areas(&self) -> Vec<&str> {
        first_called(&self.taps)
    }

    /// A plain-text table: one row per tap, one column per metric, the ceiling below.
    pub fn table(&self) -> String {
        let names: Vec<&str> = self
            .taps
            .first()
            .map(|t| t.values().map(|(name, _, _)| name).collect())
            .unwrap_or_default();
        let mut text = format!("{:<16} {:>4}", "area", "step");
        for name in &names {
            write!(text, " {name:>19}").expect("writing to a String");
        }
        text.push('\n');
        for tap in &self.taps {
            write!(text, "{:<16} {:>4}", tap.area, tap.time_step).expect("writing to a String");
            for (_, _, value) in tap.values() {
                write!(text, " {value:>19.4}").expect("writing to a String");
            }
            text.push('\n');
        }
        if !self.constant.is_empty() {
            writeln!(
                text,
                "not scored, the same for every stimulus: {}",
                self.constant.join(", ")
            )
            .expect("writing to a String");
        }
        if let Some(ceiling) = self.ceiling {
            writeln!(text, "noise ceiling (split-half): {ceiling:.4}")
                .expect("writing to a String");
        }
        text
    }

    /// `OUT/scores.csv` and `OUT/scores.svg` (see [`Scan::write_csv`] and
    /// [`super::plot::write_svg`]); returns their paths.
    pub fn write_reports(&self, out_dir: &Path) -> Result<(PathBuf, PathBuf)> {
        let (csv, svg) = (out_dir.join("scores.csv"), out_dir.join("scores.svg"));
        self.write_csv(&csv)?;
        super::plot::write_svg(self, &svg)?;
        Ok((csv, svg))
    }

    /// `path` as CSV with the columns area, time_step, metric, value.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            area: &'a str,
            time_step: usize,
            metric: &'a str,
            value: f64,
        }
        let mut writer = csv::Writer::from_path(path)
            .explain(ScoreError::Output, || format!("writing {}", path.display()))?;
        for tap in &self.taps {
            for (metric, _, value) in tap.values() {
                writer.serialize(Row {
                    area: &tap.area,
                    time_step: tap.time_step,
                    metric,
                    value,
                })?;
            }
        }
        writer
            .flush()
            .explain(ScoreError::Output, || format!("writing {}", path.display()))
    }
}

/// Extracts every tap of the model for the stimuli in one forward pass per batch and scores
/// each against the recordings. Inputs are checked before the model runs.
pub fn scan(request: &ScanRequest) -> Result<Scan> {
    let neural = &request.neural;
    let recordings = Recordings::load(&neural.recordings)?;
    let images = stimulus_images(&request.images, request.stimuli.as_deref())?;
    if images.len() != recordings.stimuli() {
        let source = match &request.stimuli {
            Some(list) => format!("{} lists", list.display()),
            None => format!("{} holds", request.images.display()),
        };
        return Err(ScoreError::Shape(format!(
            "{source} {} images but {} has {} stimuli",
            images.len(),
            neural.recordings.display(),
            recordings.stimuli()
        )));
    }
    std::fs::create_dir_all(&request.out_dir).explain(ScoreError::Output, || {
        format!("creating {}", request.out_dir.display())
    })?;
    let protocol = neural.protocol(&recordings)?;
    let target = NeuralTarget::new(neural, &recordings, &protocol)?;
    let model = request
        .network
        .load(&request.device)
        .map_err(ExtractError::Weights)?;
    let pixels = (request.imsize * request.imsize) as f64;
    check_memory(&model, pixels, request.batch_size, images.len(), true)?;
    write_file_list(&images, &request.out_dir)?;
    let batches = image_batches(images, request.imsize, request.workers, request.batch_size)?;
    let taps = collect_taps(&model, batches.images, batches.total, scored_taps(), false)?;
    let progress = ProgressBar::new(taps.len() as u64).with_style(
        ProgressStyle::with_template("scoring {bar:30} {pos}/{len} taps ({msg}, eta {eta})")
            .expect("static template"),
    );
    let mut scored = Vec::with_capacity(taps.len());
    let mut constant = Vec::new();
    // Each tap's features are dropped once reduced: a wide layer is held once, not twice.
    for (name, features) in taps {
        progress.set_message(name.clone());
        let (area, time_step) = area_and_step(&name)?;
        let features = LayerFeatures::new(&features.flatten_from(1)?)
            .explain(ScoreError::Features, || {
                format!("tap {name} of {}", request.network.weights.display())
            })?;
        match features {
            Some(features) => scored.push(TapScore {
                area,
                time_step,
                scores: score_layer(&features, &target, &protocol, neural.metric)
                    .explain(ScoreError::Features, || {
                        format!("tap {name} of {}", request.network.weights.display())
                    })?,
            }),
            None => constant.push(name),
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    // Areas in the order they are first called (bottom-up), each area's steps together.
    let areas: Vec<String> = first_called(&scored)
        .into_iter()
        .map(str::to_owned)
        .collect();
    scored.sort_by_key(|tap| (areas.iter().position(|a| *a == tap.area), tap.time_step));
    Ok(Scan {
        taps: scored,
        constant,
        ceiling: target.ceiling(),
    })
}

/// The images of `folder` in the order of `list` (one name per line, blank lines ignored), or
/// in sorted file-name order without one.
fn stimulus_images(folder: &Path, list: Option<&Path>) -> Result<ImageFolder> {
    let Some(list) = list else {
        return Ok(ImageFolder::flat(folder).map_err(ExtractError::Images)?);
    };
    let text = std::fs::read_to_string(list)
        .explain(ScoreError::Read, || format!("reading {}", list.display()))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    ImageFolder::listed(folder, &names)
        .explain(ScoreError::Read, || format!("--stimuli {}", list.display()))
}

/// The areas of `taps` in the order of their first tap.
fn first_called(taps: &[TapScore]) -> Vec<&str> {
    let mut areas: Vec<&str> = Vec::new();
    for tap in taps {
        if !areas.contains(&tap.area.as_str()) {
            areas.push(&tap.area);
        }
    }
    areas
}

/// Every call of each area's output and the decoder's pooled features (not the decoder's
/// output, which is the logits).
fn scored_taps() -> TapFilter {
    let modules = [
        "V1.output",
        "V2.output",
        "V4.output",
        "IT.output",
        "decoder.avgpool",
    ];
    TapFilter::Only(modules.map(str::to_owned).to_vec())
}

/// `V4.output.3` as (`V4`, 3); `decoder.avgpool.0` as (`decoder.avgpool`, 0).
fn area_and_step(tap: &str) -> Result<(String, usize)> {
    let parsed = tap.rsplit_once('.').and_then(|(module, call)| {
        let area = module.strip_suffix(".output").unwrap_or(module);
        Some((area.to_owned(), call.parse().ok()?))
    });
    parsed.explain(ScoreError::Features, || {
        format!("tap `{tap}` is not <module>.<call>")
    })
}
