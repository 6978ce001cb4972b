"""The reference for `cornet-data bench`: torchvision's ImageFolder + DataLoader with the same
training (or validation) transforms, timed the same way (warm-up batches, then whole epochs).
Prints `images_per_sec X` as its last line.

    python3 scripts/bench_torchvision.py --data DIR [--workers 2] [--batch-size 64] [--val]
"""
import argparse
import time

import torch
from torchvision import datasets, transforms


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--val", action="store_true")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--warmup-batches", type=int, default=4)
    a = p.parse_args()
    normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    if a.val:
        steps = [transforms.Resize(round(a.image_size * 256 / 224)),
                 transforms.CenterCrop(a.image_size)]
    else:
        steps = [transforms.RandomResizedCrop(a.image_size), transforms.RandomHorizontalFlip()]
    dataset = datasets.ImageFolder(a.data, transforms.Compose(steps + [transforms.ToTensor(),
                                                                       normalize]))
    # Persistent workers: process start-up is not charged to any epoch, as our threads' is not.
    loader = torch.utils.data.DataLoader(dataset, batch_size=a.batch_size, shuffle=not a.val,
                                         drop_last=not a.val, num_workers=a.workers,
                                         persistent_workers=a.workers > 0)
    for i, _ in enumerate(loader):
        if i + 1 >= a.warmup_batches:
            break
    images, seconds = 0, 0.0
    for epoch in range(1, a.epochs + 1):
        start, count = time.perf_counter(), 0
        for batch, _ in loader:
            count += batch.shape[0]
        elapsed = time.perf_counter() - start
        print(f"epoch {epoch}: {count} images in {elapsed:.2f} s, {count / elapsed:.1f} images/s")
        images, seconds = images + count, seconds + elapsed
    print(f"images_per_sec {images / seconds:.1f}")


if __name__ == "__main__":
    main()
