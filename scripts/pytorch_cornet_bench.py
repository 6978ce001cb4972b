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
import pathlib
import sys
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# The same graphs the parity fixtures are made from.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools" / "fixtures"))
import cornet_reference  # noqa: E402


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
    model = cornet_reference.BUILDERS[a.model]()
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
