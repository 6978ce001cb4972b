#!/usr/bin/env python3
"""Writes OUT/gpu_report.md and OUT/gpu_report.json from what scripts/gpu_proof.sh has
recorded so far in OUT (standard library only: the GPU machine has no other packages we can
count on). The proof calls it after every step, so a report exists whatever step hangs.

    python3 scripts/gpu_report.py OUT

Inputs, each optional: OUT/steps.jsonl (one line per finished step: name, status, seconds,
limit, summary), OUT/results/{gpu,kit,smoke}.json, OUT/results/{bench,loader}.jsonl.
"""
import json
import os
import sys
from pathlib import Path

# Dense bf16 tensor-core peaks (TFLOP/s, without sparsity) from NVIDIA's data sheets, by a
# part of the name nvidia-smi reports; the first match wins, so the specific names come first.
BF16_DENSE_PEAK_TFLOPS = [
    ("H200 NVL", 835.0),
    ("H200", 989.4),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.5),
    ("H100", 989.4),
]


def read_json(path):
    return json.loads(path.read_text()) if path.is_file() else None


def read_jsonl(path):
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def bf16_peak(gpu_name):
    for part, peak in BF16_DENSE_PEAK_TFLOPS:
        if part in (gpu_name or ""):
            return peak
    return None


def pair_bench(runs):
    """Rows of (model, batch, precision) with our run and PyTorch's side by side."""
    rows = {}
    for run in runs:
        key = (run["arch"], run["batch_size"], run["precision"])
        rows.setdefault(key, {"model": f"CORnet-{key[0]}", "batch_size": key[1],
                              "precision": key[2]})[run["tool"]] = run
    return list(rows.values())


def derive(report):
    """The figures the runs imply: our speed against PyTorch's, the fraction of the GPU's bf16
    peak a CORnet-S step reaches, and the loader against the GPU's appetite."""
    peak = bf16_peak((report["gpu"] or {}).get("name"))
    for row in report["bench"]:
        ours, theirs = row.get("cornet-rs"), row.get("pytorch")
        if ours and theirs:
            row["ours_over_pytorch"] = (ours["train_images_per_sec"]
                                        / theirs["train_images_per_sec"])
        if ours and theirs and peak and theirs.get("train_tflop"):
            tflops = theirs["train_tflop"] * ours["train_images_per_sec"] / row["batch_size"]
            row["ours_fraction_of_bf16_peak"] = tflops / peak
            tflops = theirs["train_tflop"] * theirs["train_images_per_sec"] / row["batch_size"]
            row["pytorch_fraction_of_bf16_peak"] = tflops / peak
    appetite = [row["cornet-rs"]["train_images_per_sec"] for row in report["bench"]
                if row["model"] == "CORnet-S" and row["precision"] == "bf16"
                and "cornet-rs" in row]
    if appetite:
        for run in report["loader"]:
            run["over_gpu_train_images_per_sec"] = run["images_per_sec"] / max(appetite)


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def markdown(report):
    gpu, kit = report["gpu"] or {}, report["kit"] or {}
    lines = ["# GPU proof", ""]
    lines.append(f"- GPU: {gpu.get('name', 'none found')}, driver {gpu.get('driver', '-')}, "
                 f"CUDA {gpu.get('cuda', '-')}, {gpu.get('memory_mib', '-')} MiB")
    lines.append(f"- date: {gpu.get('date', '-')}; kit: {kit.get('commit', '-')}, "
                 f"built {kit.get('built', '-')}")
    lines += ["", "| step | status | seconds (limit) | summary |", "|---|---|---|---|"]
    for step in report["steps"]:
        lines.append(f"| {step['name']} | {step['status']} | {step['seconds']} "
                     f"({step['limit']}) | {step.get('summary', '')} |")
    if report["bench"]:
        lines += ["", "## Train step, 224 px (images/s; peak GPU memory in MiB, nvidia-smi "
                  "polled every 20 ms)", "",
                  "| model | batch | precision | ours | PyTorch | ours / PyTorch "
                  "| ours peak | PyTorch peak | ours, of bf16 peak |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in report["bench"]:
            ours, theirs = row.get("cornet-rs", {}), row.get("pytorch", {})
            lines.append(
                f"| {row['model']} | {row['batch_size']} | {row['precision']} "
                f"| {fmt(ours.get('train_images_per_sec'), '.0f')} "
                f"| {fmt(theirs.get('train_images_per_sec'), '.0f')} "
                f"| {fmt(row.get('ours_over_pytorch'), '.2f')} "
                f"| {fmt(ours.get('peak_gpu_mib'), '.0f')} "
                f"| {fmt(theirs.get('peak_gpu_mib'), '.0f')} "
                f"| {fmt(row.get('ours_fraction_of_bf16_peak'), '.1%')} |")
    if report["loader"]:
        lines += ["", "## Loader (cornet-data bench, generated 500x375 JPEGs, training "
                  "transform at 224 px)", "",
                  "| workers | images/s | of our best CORnet-S bf16 train images/s |",
                  "|---|---|---|"]
        for run in report["loader"]:
            lines.append(f"| {run['workers']} | {run['images_per_sec']:.0f} "
                         f"| {fmt(run.get('over_gpu_train_images_per_sec'), '.2f')} |")
    smoke = report["smoke"]
    if smoke:
        lines += ["", "## configs/smoke.yaml", ""]
        for key, value in smoke.items():
            lines.append(f"- {key}: {value}")
    return "\n".join(lines) + "\n"


def write_atomically(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main():
    out = Path(sys.argv[1])
    results = out / "results"
    report = {
        "gpu": read_json(results / "gpu.json"),
        "kit": read_json(results / "kit.json"),
        "steps": read_jsonl(out / "steps.jsonl"),
        "bench": pair_bench(read_jsonl(results / "bench.jsonl")),
        "loader": read_jsonl(results / "loader.jsonl"),
        "smoke": read_json(results / "smoke.json"),
    }
    derive(report)
    write_atomically(out / "gpu_report.json", json.dumps(report, indent=1) + "\n")
    write_atomically(out / "gpu_report.md", markdown(report))


if __name__ == "__main__":
    main()
