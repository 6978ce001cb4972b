"""Reads shards written by `cornet-data pack` with Python's webdataset and checks them against
their manifest (and, with --src, byte for byte against the ImageFolder they were packed from).

    python3 scripts/check_webdataset_interop.py SHARDS [--src IMAGEFOLDER]   # webdataset, pillow
"""
import argparse
import collections
import io
import json
import pathlib
import sys

import webdataset as wds
from PIL import Image


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shards", type=pathlib.Path)
    p.add_argument("--src", type=pathlib.Path, help="the ImageFolder that was packed")
    a = p.parse_args()
    manifest = json.loads((a.shards / "manifest.json").read_text())
    urls = [str(a.shards / s["file"]) for s in manifest["shards"]]
    counts = collections.Counter()
    source = sorted(f for f in a.src.rglob("*") if f.is_file()) if a.src else None
    n = 0
    for sample in wds.WebDataset(urls, shardshuffle=False):
        label = int(sample["cls"])
        Image.open(io.BytesIO(sample["jpg"])).convert("RGB")  # decodes
        if source is not None and sample["jpg"] != source[n].read_bytes():
            sys.exit(f"sample {n} ({sample['__key__']}) differs from {source[n]}")
        counts[label] += 1
        n += 1
    expected = {i: c["count"] for i, c in enumerate(manifest["classes"]) if c["count"]}
    if n != manifest["samples"] or dict(counts) != expected:
        sys.exit(f"webdataset read {n} samples, counts {dict(counts)}; manifest: {expected}")
    print(f"ok: webdataset {wds.__version__ if hasattr(wds, '__version__') else ''} read "
          f"{n} samples of {len(counts)} classes from {len(urls)} shards, as the manifest says"
          + (", byte for byte the source files" if source is not None else ""))


if __name__ == "__main__":
    main()
