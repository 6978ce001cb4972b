#!/usr/bin/env python3
"""PyTorch reference for `cornet-trainer bench`: the same CORnet graphs, the same synthetic
batch, the same step (forward, cross-entropy, backward, SGD), timed the same way (median of
--steps after --warmup). Prints one JSON line with the fields `cornet-trainer bench` prints.

Usage: python3 scripts/pytorch_cornet_bench.py --model Z --batch-size 16 --image-size 224
"""
import argparse
import json
import time

import torch
from torch import nn


def z_area(cin, cout, k, s):
    m = nn.Sequential()
    m.add_module("conv", nn.Conv2d(cin, cout, k, s, k // 2))
    m.add_module("nonlin", nn.ReLU(inplace=True))
    m.add_module("pool", nn.MaxPool2d(3, 2, 1))
    m.add_module("output", nn.Identity())
    return m


def decoder(width, classes, has_output=True):
    m = nn.Sequential()
    m.add_module("avgpool", nn.AdaptiveAvgPool2d(1))
    m.add_module("flatten", nn.Flatten())
    m.add_module("linear", nn.Linear(width, classes))
    if has_output:
        m.add_module("output", nn.Identity())
    return m


def cornet_z():
    return nn.Sequential(
        z_area(3, 64, 7, 2), z_area(64, 128, 3, 1), z_area(128, 256, 3, 1),
        z_area(256, 512, 3, 1), decoder(512, 1000))


class SBlock(nn.Module):
    scale = 4

    def __init__(self, cin, cout, times):
        super().__init__()
        self.times = times
        w = cout * self.scale
        self.conv_input = nn.Conv2d(cin, cout, 1, bias=False)
        self.skip = nn.Conv2d(cout, cout, 1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cout, w, 1, bias=False)
        self.conv2 = nn.Conv2d(w, w, 3, stride=2, padding=1, bias=False)
        self.conv3 = nn.Conv2d(w, cout, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        for t in range(times):
            setattr(self, f"norm1_{t}", nn.BatchNorm2d(w))
            setattr(self, f"norm2_{t}", nn.BatchNorm2d(w))
            setattr(self, f"norm3_{t}", nn.BatchNorm2d(cout))

    def forward(self, x):
        x = self.conv_input(x)
        for t in range(self.times):
            if t == 0:
                skip = self.norm_skip(self.skip(x))
                self.conv2.stride = (2, 2)
            else:
                skip = x
                self.conv2.stride = (1, 1)
            x = self.relu(getattr(self, f"norm1_{t}")(self.conv1(x)))
            x = self.relu(getattr(self, f"norm2_{t}")(self.conv2(x)))
            x = getattr(self, f"norm3_{t}")(self.conv3(x))
            x = self.relu(x + skip)
        return x


def cornet_s():
    v1 = nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1), nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64),
        nn.ReLU(inplace=True))
    return nn.Sequential(v1, SBlock(64, 128, 2), SBlock(128, 256, 4), SBlock(256, 512, 2),
                         decoder(512, 1000))


def median_ms(fn, steps, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["Z", "S"], required=True)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    torch.manual_seed(0)
    model = {"Z": cornet_z, "S": cornet_s}[a.model]()
    images = torch.randn(a.batch_size, 3, a.image_size, a.image_size)
    targets = torch.arange(a.batch_size) * 37 % 1000
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()

    def train_step():
        model.train()
        opt.zero_grad()
        loss_fn(model(images), targets).backward()
        opt.step()

    def infer():
        model.eval()
        with torch.no_grad():
            model(images)

    train_ms = median_ms(train_step, a.steps, a.warmup)
    infer_ms = median_ms(infer, a.steps, a.warmup)
    print(json.dumps({
        "model": f"CORnet-{a.model} (PyTorch {torch.__version__}, {torch.get_num_threads()} threads)",
        "batch_size": a.batch_size, "image_size": a.image_size, "steps": a.steps,
        "train_step_ms": train_ms, "train_images_per_sec": a.batch_size / train_ms * 1000,
        "infer_step_ms": infer_ms, "infer_images_per_sec": a.batch_size / infer_ms * 1000,
    }))


if __name__ == "__main__":
    main()
