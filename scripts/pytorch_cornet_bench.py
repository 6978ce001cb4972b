#!/usr/bin/env python3
"""PyTorch reference for `cornet-trainer bench`: the same CORnet graphs, the same synthetic
batch, the same step (forward, cross-entropy, backward, SGD), timed the same way (median of
--steps after --warmup). Prints one JSON line with the fields `cornet-trainer bench` prints.

Usage: python3 scripts/pytorch_cornet_bench.py --model Z --batch-size 16 --image-size 224
       python3 scripts/pytorch_cornet_bench.py --model S --batch-size 256 --device cuda --precision bf16

On CUDA it runs PyTorch's best case: cudnn.benchmark on, channels_last, and for bf16 autocast
(f32 weights and optimizer); f32 keeps PyTorch's default TF32 convolutions. `train_tflop` is
the FLOPs of one train step (forward and backward, torch.utils.flop_counter), so that
images/s converts to a fraction of a GPU's peak.
"""
import argparse
import json
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


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


class RTArea(nn.Module):
    """One area of CORnet-RT: conv_input -> GroupNorm -> ReLU, then conv1 over input + state."""

    def __init__(self, cin, cout, k, s):
        super().__init__()
        self.conv_input = nn.Conv2d(cin, cout, k, s, k // 2)
        self.norm_input = nn.GroupNorm(32, cout)
        self.conv1 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(32, cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, inp, state):
        if inp is not None:
            inp = self.relu(self.norm_input(self.conv_input(inp)))
        skip = inp if state is None else inp + state
        return self.relu(self.norm1(self.conv1(skip)))


class CornetRT(nn.Module):
    """Areas V1, V2, V4, IT over 5 time steps; at t = 0 only V1 sees the image and the others
    start from zeros; after that each reads the previous step's output of the area before."""

    def __init__(self, times=5):
        super().__init__()
        self.times = times
        self.areas = nn.ModuleList([RTArea(3, 64, 7, 4), RTArea(64, 128, 3, 2),
                                    RTArea(128, 256, 3, 2), RTArea(256, 512, 3, 2)])
        self.decoder = decoder(512, 1000, has_output=False)

    def forward(self, image):
        outputs, size = [], image.shape[-1]
        for i, area in enumerate(self.areas):
            k, s = area.conv_input.kernel_size[0], area.conv_input.stride[0]
            size = (size + 2 * (k // 2) - k) // s + 1
            if i == 0:
                outputs.append(area(image, None))
            else:
                zeros = image.new_zeros(image.shape[0], area.conv1.in_channels, size, size)
                outputs.append(area.relu(area.norm1(area.conv1(zeros))))
        for _ in range(1, self.times):
            previous = list(outputs)
            outputs = [area(image if i == 0 else previous[i - 1], previous[i])
                       for i, area in enumerate(self.areas)]
        return self.decoder(outputs[-1])


def cornet_s():
    v1 = nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1), nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64),
        nn.ReLU(inplace=True))
    return nn.Sequential(v1, SBlock(64, 128, 2), SBlock(128, 256, 4), SBlock(256, 512, 2),
                         decoder(512, 1000))


def median_ms(fn, steps, warmup, sync):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["Z", "RT", "S"], required=True)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", choices=["f32", "bf16"], default="f32")
    a = p.parse_args()
    torch.manual_seed(0)
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = cuda
    memory_format = torch.channels_last if cuda else torch.contiguous_format
    model = {"Z": cornet_z, "RT": CornetRT, "S": cornet_s}[a.model]()
    model = model.to(device, memory_format=memory_format)
    images = torch.randn(a.batch_size, 3, a.image_size, a.image_size, device=device)
    images = images.contiguous(memory_format=memory_format)
    targets = (torch.arange(a.batch_size) * 37 % 1000).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    autocast = torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.precision == "bf16")
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def train_step():
        model.train()
        opt.zero_grad()
        with autocast:
            loss = loss_fn(model(images), targets)
        loss.backward()
        opt.step()

    def infer():
        model.eval()
        with torch.no_grad(), autocast:
            model(images)

    with FlopCounterMode(display=False) as flops:
        train_step()
    train_ms = median_ms(train_step, a.steps, a.warmup, sync)
    infer_ms = median_ms(infer, a.steps, a.warmup, sync)
    where = torch.cuda.get_device_name() if cuda else f"{torch.get_num_threads()} threads"
    print(json.dumps({
        "model": f"CORnet-{a.model} (PyTorch {torch.__version__}, {where})",
        "device": a.device, "precision": a.precision,
        "batch_size": a.batch_size, "image_size": a.image_size, "steps": a.steps,
        "train_step_ms": train_ms, "train_images_per_sec": a.batch_size / train_ms * 1000,
        "infer_step_ms": infer_ms, "infer_images_per_sec": a.batch_size / infer_ms * 1000,
        "train_tflop": flops.get_total_flops() / 1e12,
    }))


if __name__ == "__main__":
    main()
