#!/usr/bin/env python3
"""PyTorch reference for `cornet-trainer eval`: the same weights (a safetensors file, as a
run's final.safetensors, or a .pth) loaded into the original CORnet graphs, scored on a
labelled ImageFolder with the original run.py's validation transform (Resize, CenterCrop,
ToTensor, Normalize; Resize(256) and CenterCrop(224) at --image-size 224) and its
accuracy(output, target, topk=(1, 5)). Prints one JSON line with the fields `eval` prints.

Usage: python3 scripts/pytorch_eval.py --model Z --weights final.safetensors --data-path val/ \
           --image-size 64 --batch-size 32
"""
import argparse
import json
import pathlib
import sys

import torch
import torchvision
from torchvision import transforms

# The same graphs the parity fixtures are made from.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools" / "fixtures"))
import cornet_reference  # noqa: E402


def read_state_dict(path):
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state)
    return {k.removeprefix("module."): v for k, v in state.items()}


def area_width(state, area):
    """An area's output channels: its first convolution's (conv, conv_input or conv1)."""
    for conv in ("conv", "conv_input", "conv1"):
        key = f"{area}.{conv}.weight"
        if key in state:
            return state[key].shape[0]
    raise SystemExit(f"no convolution of {area} in the weights")


def build(model, state, times):
    widths = [area_width(state, a) for a in ("V1", "V2", "V4", "IT")]
    num_classes = state["decoder.linear.weight"].shape[0]
    kwargs = {"times": times} if model in ("R", "RT") else {}
    net = cornet_reference.BUILDERS[model](widths=widths, num_classes=num_classes, **kwargs)
    net.load_state_dict(state, strict=True)
    return net.eval()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["Z", "R", "RT", "S"], required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--data-path", required=True)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--times", type=int, default=5)
    a = p.parse_args()
    net = build(a.model, read_state_dict(a.weights), a.times)
    normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    val = transforms.Compose(
        [
            transforms.Resize(round(a.image_size * 256 / 224)),
            transforms.CenterCrop(a.image_size),
            transforms.ToTensor(),
            normalize,
        ]
    )
    data = torchvision.datasets.ImageFolder(a.data_path, val)
    loader = torch.utils.data.DataLoader(data, batch_size=a.batch_size, shuffle=False)
    loss_sum, top1, top5, images = 0.0, 0, 0, 0
    with torch.no_grad():
        for x, target in loader:
            output = net(x)
            loss = torch.nn.functional.cross_entropy(output, target, reduction="sum")
            loss_sum += loss.double().item()
            # The original's accuracy(): topk, then the label among the first k (all classes
            # when there are fewer than five, as cornet-trainer counts them).
            _, pred = output.topk(min(5, output.shape[1]), 1, True, True)
            correct = pred.t().eq(target.view(1, -1).expand_as(pred.t()))
            top1 += int(correct[:1].sum())
            top5 += int(correct[:5].sum())
            images += len(target)
    print(json.dumps({"images": images, "top1": top1 / images, "top5": top5 / images,
                      "loss": loss_sum / images}))


if __name__ == "__main__":
    main()
