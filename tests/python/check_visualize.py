"""`densenet visualize` end to end: its PNGs against torchvision's make_grid, and its errors.

Usage: check_visualize.py DENSENET_PROGRAM FIXTURE_DIR OUT_DIR   (fixtures: make_grid_reference.py)
Each PNG must be torchvision's save_image(make_grid(w, normalize=True, nrow=8, padding=2)) grid,
every pixel enlarged into an integer-sized square block.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_lite  # noqa: E402

CONV0 = "features.conv0.weight"
LAYER1 = "features.denseblock1.denselayer1.conv1.weight"


def grid_bytes(tiles):
    grid = torchvision.utils.make_grid(tiles, normalize=True, nrow=8, padding=2)
    return grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()


def check_png(path, tiles):
    want = grid_bytes(tiles)
    got = np.asarray(Image.open(path).convert("RGB"))
    factor = got.shape[0] // want.shape[0]
    assert factor >= 1 and got.shape == (want.shape[0] * factor, want.shape[1] * factor, 3), (path, got.shape, want.shape)
    enlarged = want.repeat(factor, axis=0).repeat(factor, axis=1)
    bad = np.argwhere(got != enlarged)
    assert len(bad) == 0, f"{path}: {len(bad)} values differ from torchvision's grid, first at {bad[0].tolist()}"


def run(program, *args):
    return subprocess.run([program, "visualize", *args], capture_output=True, text=True)


def expect_error(program, args, *fragments):
    r = run(program, *args)
    assert r.returncode != 0, f"{args} should fail, but exited 0:\n{r.stdout}"
    for f in fragments:
        assert f in r.stderr, f"{args}: stderr lacks {f!r}:\n{r.stderr}"
    print(f"ok: {' '.join(args)} -> {r.stderr.strip().splitlines()[-1]}")


def main(program, fixtures, out):
    shutil.rmtree(out, ignore_errors=True)
    a, _ = safetensors_lite.load(os.path.join(fixtures, "a.safetensors"))
    b, _ = safetensors_lite.load(os.path.join(fixtures, "b.safetensors"))
    ckpt_a, ckpt_b = os.path.join(fixtures, "a.safetensors"), os.path.join(fixtures, "b.safetensors")

    r = run(program, "--checkpoint", ckpt_a, "--compare", ckpt_b, "--out", out)
    assert r.returncode == 0, r.stderr
    expected = {
        "conv0.png": a[CONV0],
        "conv0_compare.png": b[CONV0],
        "conv0_diff.png": (a[CONV0] - b[CONV0]).abs(),
        "denseblock1_denselayer1_conv1.png": a[LAYER1][0].unsqueeze(1),
        "denseblock1_denselayer1_conv1_compare.png": b[LAYER1][0].unsqueeze(1),
        "denseblock1_denselayer1_conv1_diff.png": (a[LAYER1] - b[LAYER1]).abs()[0].unsqueeze(1),
    }
    assert sorted(os.listdir(out)) == sorted(expected), os.listdir(out)
    for name, tiles in expected.items():
        check_png(os.path.join(out, name), tiles)
        assert os.path.join(out, name) in r.stdout, f"stdout does not name {name}:\n{r.stdout}"
    print(r.stdout, end="")

    # --layer with ".weight", another output channel, into a folder that does not exist yet
    sub = os.path.join(out, "channel3")
    r = run(program, "--checkpoint", ckpt_a, "--layer", LAYER1, "--output-channel", "3", "--out", sub)
    assert r.returncode == 0, r.stderr
    assert os.listdir(sub) == ["denseblock1_denselayer1_conv1.png"], os.listdir(sub)
    check_png(os.path.join(sub, "denseblock1_denselayer1_conv1.png"), a[LAYER1][3].unsqueeze(1))

    # --layer repeated: every one is drawn
    both = os.path.join(out, "both")
    r = run(program, "--checkpoint", ckpt_a, "--layer", "features.conv0", "--layer", LAYER1, "--out", both)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(both)) == ["conv0.png", "denseblock1_denselayer1_conv1.png"], os.listdir(both)

    expect_error(program, ["--checkpoint", ckpt_a, "--layer", "features.nope", "--out", out],
                 "error:", "no layer 'features.nope'", "features.conv0.weight")
    expect_error(program, ["--checkpoint", ckpt_a, "--layer", "features.norm0", "--out", out],
                 "error:", "features.norm0.weight", "[64]", "not a convolution weight")
    expect_error(program, ["--checkpoint", ckpt_a, "--compare", os.path.join(fixtures, "mismatch.safetensors"), "--out", out],
                 "error:", "[64, 3, 7, 7]", "[32, 3, 7, 7]", "not the same architecture")
    expect_error(program, ["--checkpoint", ckpt_a, "--layer", LAYER1, "--output-channel", "128", "--out", out],
                 "error:", "--output-channel 128", "128 output channels")
    expect_error(program, ["--checkpoint", os.path.join(fixtures, "missing.safetensors"), "--out", out],
                 "missing.safetensors")
    expect_error(program, ["--checkpoint", ckpt_a], "--out")
    print("visualize: all checks passed")


if __name__ == "__main__":
    main(*sys.argv[1:4])
