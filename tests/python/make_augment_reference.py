#!/usr/bin/python3
"""torchvision's augmentations, for tests/data/test_augment.cpp. Into OUT/augment/:

  resized_crop/manifest.txt   one case a line: name channels in_h in_w top left height width size
  resized_crop/<name>.in      a random uint8 image, planar (channels, in_h, in_w)
  resized_crop/<name>.out     torchvision's F.resized_crop(PIL image, top, left, height, width, size), planar
  draws.json                  the statistics of 20000 draws of RandomResizedCrop.get_params and
                              RandomErasing.get_params (torch's generator cannot be shared, so the
                              draws are compared by their distribution)
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image

DRAWS = 20000
CROP_IMAGES = [(28, 28), (32, 48), (224, 100), (5, 40)]  # the last makes get_params fall back often
ERASE_IMAGES = [(28, 28), (32, 32)]


def planar(img):
    a = np.asarray(img)
    return (a[None] if a.ndim == 2 else a.transpose(2, 0, 1)).copy()


def summary(rows):
    a = np.array(rows, dtype=np.float64)
    return {"mean": a.mean(axis=0).tolist(), "std": a.std(axis=0).tolist(), "count": len(rows)}


def write_crops(out, rng):
    os.makedirs(out)
    cases = [  # channels, in_h, in_w, top, left, height, width, size
        (1, 28, 28, 3, 5, 20, 17, 32), (3, 32, 32, 0, 0, 32, 32, 32), (3, 32, 48, 7, 2, 11, 30, 24),
        (1, 28, 28, 10, 10, 4, 6, 224), (3, 60, 50, 1, 9, 55, 40, 7), (1, 5, 40, 0, 17, 5, 7, 28),
    ]
    lines = []
    for k, (c, in_h, in_w, top, left, h, w, size) in enumerate(cases):
        shape = (in_h, in_w) if c == 1 else (in_h, in_w, 3)
        img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), "L" if c == 1 else "RGB")
        name = f"case{k}"
        planar(img).tofile(os.path.join(out, name + ".in"))
        planar(F.resized_crop(img, top, left, h, w, [size, size])).tofile(os.path.join(out, name + ".out"))
        lines.append(f"{name} {c} {in_h} {in_w} {top} {left} {h} {w} {size}")
    with open(os.path.join(out, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def write_draws(out):
    torch.manual_seed(7)
    result = {"crop": {}, "erase": {}}
    for h, w in CROP_IMAGES:
        img = Image.new("L", (w, h))
        rows = [T.RandomResizedCrop.get_params(img, scale=[0.08, 1.0], ratio=[3 / 4, 4 / 3]) for _ in range(DRAWS)]
        result["crop"][f"{h}x{w}"] = summary(rows)  # top, left, height, width
    eraser = T.RandomErasing(p=1.0, value=0)
    for h, w in ERASE_IMAGES:
        img = torch.zeros(1, h, w)
        rows = [eraser.get_params(img, scale=eraser.scale, ratio=eraser.ratio, value=[0]) for _ in range(DRAWS)]
        erased = [r[:4] for r in rows if not (r[2] == h and r[3] == w)]  # get_params returns the image when no box fits
        result["erase"][f"{h}x{w}"] = dict(summary(erased), tried=DRAWS)
    with open(os.path.join(out, "draws.json"), "w") as f:
        json.dump(result, f)


def main():
    out = os.path.join(sys.argv[1], "augment")
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    write_crops(os.path.join(tmp, "resized_crop"), np.random.default_rng(11))
    write_draws(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    print("wrote", out)


if __name__ == "__main__":
    main()
