//! The loader benchmark stops where it is told (batches, seconds or whole passes), going on
//! into the next epoch when the data is smaller, and counts the images as it times them.

use crate::util::RecordedProgress;
use cornet_data::bench::{bench, BenchOptions, Measure};
use cornet_data::progress::{NoProgress, Unit};
use cornet_data::{Dataset, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// `len` copies of one small PNG, each read taking `delay`: a dataset as slow as asked.
struct SlowImages {
    len: usize,
    png: Vec<u8>,
    delay: Duration,
}

impl SlowImages {
    fn new(len: usize, delay: Duration) -> Self {
        let mut png = Vec::new();
        image::RgbImage::from_pixel(12, 12, image::Rgb([200, 10, 90]))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        SlowImages { len, png, delay }
    }
}

impl Dataset for SlowImages {
    fn len(&self) -> usize {
        self.len
    }
    fn read(&self, _: usize) -> Result<Vec<u8>> {
        std::thread::sleep(self.delay);
        Ok(self.png.clone())
    }
    fn label(&self, index: usize) -> usize {
        index % 2
    }
    fn num_classes(&self) -> usize {
        2
    }
    fn path(&self, _: usize) -> &Path {
        Path::new("slow.png")
    }
    fn fingerprint(&self) -> String {
        "slow".into()
    }
    fn classes(&self) -> &[String] {
        &[]
    }
}

fn options(measure: Measure) -> BenchOptions {
    BenchOptions {
        workers: 2,
        batch_size: 4,
        val: false,
        measure,
        image_size: 8,
        warmup_batches: 1,
    }
}

#[test]
fn a_bounded_measurement_crosses_epochs_and_counts_its_images() {
    // 10 images make 2 batches of 4 an epoch: 7 batches take 4 epochs.
    let progress = RecordedProgress::default();
    let data = SlowImages::new(10, Duration::ZERO);
    let measured = bench(data, &options(Measure::Batches(7)), &progress).unwrap();
    assert_eq!((measured.images, measured.batches), (28, 7));
    assert!(measured.seconds > 0.0 && measured.images_per_sec() > 0.0);
    let tasks = progress.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].what, "timing");
    assert_eq!(tasks[0].unit, Unit::Items("images"));
    assert_eq!((tasks[0].total, tasks[0].done), (Some(28), 28));
    assert!(tasks[0].finished);

    let data = SlowImages::new(10, Duration::ZERO);
    let measured = bench(data, &options(Measure::Epochs(3)), &NoProgress).unwrap();
    assert_eq!((measured.images, measured.batches), (24, 6));
}

#[test]
fn a_measurement_in_seconds_stops_in_time_on_data_too_big_to_pass_over() {
    // A pass would take 100,000 x 2 ms / 2 workers = 100 s.
    let progress = RecordedProgress::default();
    let data = SlowImages::new(100_000, Duration::from_millis(2));
    let start = Instant::now();
    let limit = Duration::from_millis(300);
    let measured = bench(data, &options(Measure::Time(limit)), &progress).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(measured.seconds >= limit.as_secs_f64(), "{measured:?}");
    assert!(measured.images < 100_000 && measured.batches > 0);
    assert_eq!(measured.images, 4 * measured.batches);
    let tasks = progress.tasks();
    assert_eq!((tasks[0].total, tasks[0].done), (None, measured.images));
}
