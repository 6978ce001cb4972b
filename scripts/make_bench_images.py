"""An ImageFolder of ImageNet-sized JPEGs for the data-pipeline benchmark: random crops of
the parity fixtures' photographs (scaled, flipped, colour-shifted, with mild sensor-like noise
so that the files are about as large as ImageNet's, ~110 KB), 500x375, quality 90.

    python3 scripts/make_bench_images.py OUT [--images 800] [--classes 8]   # pillow, numpy
"""
import argparse
import pathlib
import random

import numpy as np

from PIL import Image, ImageEnhance

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "tests/fixtures/images"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--images", type=int, default=800)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--fixtures", type=pathlib.Path, default=FIXTURES)
    args = parser.parse_args()
    sources = [Image.open(p).convert("RGB") for p in sorted(args.fixtures.iterdir())]
    rng = random.Random(0)
    for i in range(args.images):
        source = rng.choice(sources)
        # Landscape 500x375 mostly, portrait sometimes, as in ImageNet.
        size = (500, 375) if rng.random() < 0.8 else (375, 500)
        scale = rng.uniform(0.5, 1.0)
        w = int(min(source.width, source.height * size[0] / size[1]) * scale)
        h = int(w * size[1] / size[0])
        left, top = rng.randint(0, source.width - w), rng.randint(0, source.height - h)
        image = source.crop((left, top, left + w, top + h)).resize(size, Image.BICUBIC)
        if rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        image = ImageEnhance.Color(image).enhance(rng.uniform(0.6, 1.4))
        noise = np.random.default_rng(i).normal(0, 8, (size[1], size[0], 3))
        image = Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8))
        folder = args.out / f"class_{i % args.classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:05d}.jpg", quality=90)


if __name__ == "__main__":
    main()
