//! `cornet-trainer score --model`, a model scan: every area's output at every time step of a
//! model, and the decoder's pooled features, extracted ([`crate::extract`]) and scored
//! against recordings of the same images ([`crate::score`]). The result is plain data;
//! [`report`] writes it as a table, a CSV and a plot.

mod error;
pub mod report;

pub use error::{Result, ScanError};

use crate::error::Explain;
use crate::extract::taps::{check_memory, collect_taps, image_batches, FileList};
use crate::extract::ExtractError;
use crate::network::NetworkSpec;
use crate::progress::{Progress, Work};
use crate::score::metric::Scores;
use crate::score::protocol::NeuralRequest;
use crate::score::target::{NeuralTarget, Recordings};
use crate::score::{score_layer, LayerFeatures};
use candle_core::Device;
use cornet_data::{Dataset, ImageFolder};
use cornet_model::TapFilter;
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
    /// The folder of the file list (the scores are written by [`report::write`]).
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
    /// recordings and is shown once, as [`Scan::ceiling`].
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
}

/// Extracts every tap of the model for the stimuli in one forward pass per batch and scores
/// each against the recordings, telling `progress` of the images, then of the taps. Inputs
/// are checked before the model runs.
pub fn scan(request: &ScanRequest, progress: &mut dyn Progress) -> Result<Scan> {
    let neural = &request.neural;
    let recordings = Recordings::load(&neural.recordings)?;
    let images = stimulus_images(&request.images, request.stimuli.as_deref())?;
    if images.len() != recordings.stimuli() {
        let source = match &request.stimuli {
            Some(list) => format!("{} lists", list.display()),
            None => format!("{} holds", request.images.display()),
        };
        return Err(ScanError::Shape(format!(
            "{source} {} images but {} has {} stimuli",
            images.len(),
            neural.recordings.display(),
            recordings.stimuli()
        )));
    }
    std::fs::create_dir_all(&request.out_dir).explain(ScanError::Output, || {
        format!("creating {}", request.out_dir.display())
    })?;
    let protocol = neural.protocol(&recordings)?;
    let splits = protocol.splits.as_deref();
    let target = NeuralTarget::new(&neural.recordings, &recordings, neural.metric, splits)?;
    let model = request
        .network
        .load(&request.device)
        .map_err(ExtractError::Weights)?;
    let pixels = (request.imsize * request.imsize) as f64;
    check_memory(&model, pixels, request.batch_size, images.len(), true)?;
    let file_list = FileList::of(&images);
    let batches = image_batches(images, request.imsize, request.workers, request.batch_size)?;
    let (images, total) = (batches.images, batches.total);
    let taps = collect_taps(&model, images, total, scored_taps(), false, progress)?;
    progress.start(Work::Scoring, taps.len() as u64, 0);
    let mut scored = Vec::with_capacity(taps.len());
    let mut constant = Vec::new();
    // Each tap's features are dropped once reduced: a wide layer is held once, not twice.
    for (name, features) in taps {
        progress.say(&name);
        let (area, time_step) = area_and_step(&name)?;
        let features = LayerFeatures::new(&features.flatten_from(1)?)
            .explain(ScanError::Features, || {
                format!("tap {name} of {}", request.network.weights.display())
            })?;
        match features {
            Some(features) => scored.push(TapScore {
                area,
                time_step,
                scores: score_layer(&features, &target, &protocol, neural.metric)
                    .explain(ScanError::Features, || {
                        format!("tap {name} of {}", request.network.weights.display())
                    })?,
            }),
            None => constant.push(name),
        }
        progress.advance(1);
    }
    progress.finish();
    file_list.write(&request.out_dir)?;
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
        .explain(ScanError::Read, || format!("reading {}", list.display()))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    ImageFolder::listed(folder, &names)
        .explain(ScanError::Read, || format!("--stimuli {}", list.display()))
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
    parsed.explain(ScanError::Features, || {
        format!("tap `{tap}` is not <module>.<call>")
    })
}
