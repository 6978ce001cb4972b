//! Preprocessing against torchvision + Pillow (`images_expected.npz`): the feature-extraction
//! and validation transforms of five real photographs in ImageNet's odd forms.

use crate::util::{fixture, read_npz};
use cornet_data::decode::decode_rgb;
use cornet_data::transform::{sample_rng, Transform};
use fast_image_resize::Resizer;
use std::collections::HashMap;

/// torchvision's outputs, by `<transform>/<image>`, flattened (f32, as stored).
fn expected() -> HashMap<String, Vec<f32>> {
    read_npz("images_expected.npz")
        .into_iter()
        .map(|(name, array)| (name, array.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

const IMAGES: [&str; 5] = [
    "astronaut_png.JPEG",
    "camera_gray.png",
    "chelsea_cmyk.jpg",
    "china.jpg",
    "coffee.png",
];

#[test]
fn test_and_val_transforms_match_torchvision() {
    let expected = expected();
    let mut resizer = Resizer::new();
    for (kind, transform) in [
        ("test", Transform::Test { size: 224 }),
        ("val", Transform::Val { size: 224 }),
    ] {
        for name in IMAGES {
            let path = fixture("images").join(name);
            let image = decode_rgb(&std::fs::read(&path).unwrap(), &path).unwrap();
            let mut ours = vec![0f32; transform.output_len()];
            transform
                .apply(&image, &mut sample_rng(0, 0, 0), &mut resizer, &mut ours)
                .unwrap();
            let theirs = &expected[&format!("{kind}/{name}")];
            let diffs: Vec<f32> = ours
                .iter()
                .zip(theirs)
                .map(|(a, b)| (a - b).abs())
                .collect();
            let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
            let max = diffs.iter().cloned().fold(0.0, f32::max);
            assert!(
                mean <= 0.01 && max <= 0.25,
                "{kind}/{name}: mean |diff| {mean:.4}, max {max:.4}"
            );
        }
    }
}

#[test]
fn unreadable_files_are_named() {
    for name in ["truncated.jpg", "not_an_image.jpg"] {
        let path = fixture(name);
        let err = decode_rgb(&std::fs::read(&path).unwrap(), &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(name) && err.contains("not a readable image"),
            "{err}"
        );
    }
}
