"""Writes the weight-picture fixtures: conv weights, and the uint8 grids torchvision draws of them.

Each grid is what the DenseNet lecture saves, torchvision.utils.save_image(make_grid(tiles,
normalize=True, nrow=8, padding=2), file), taken just before PIL encodes it:
make_grid(...).mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8), shape (H, W, 3).
Grids are stored as I32 (safetensors_lite has no U8); the values are 0..255.

Usage: make_grid_reference.py OUT_DIR  ->  OUT_DIR/{weights,grids,a,b,mismatch}.safetensors
"""
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_lite  # noqa: E402

CONV0 = "features.conv0.weight"
LAYER1 = "features.denseblock1.denselayer1.conv1.weight"


def grid_bytes(tiles):
    grid = torchvision.utils.make_grid(tiles, normalize=True, nrow=8, padding=2)
    return grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).to(torch.int32)


def main(out):
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(4)
    # conv0 before and after "training": kaiming-like scale, and a small update on top
    before = torch.randn(64, 3, 7, 7, generator=g) * 0.1
    after = before + torch.randn(64, 3, 7, 7, generator=g) * 0.01
    layer1 = torch.randn(128, 64, 1, 1, generator=g) * 0.1   # denselayer1.conv1
    layer1b = layer1 + torch.randn(128, 64, 1, 1, generator=g) * 0.01
    conv3 = torch.randn(32, 20, 3, 3, generator=g)            # 20 tiles: a part-filled last row
    grey = torch.randn(16, 1, 5, 5, generator=g)              # 1 input channel: the kernels, grey
    flat = 0.25 + torch.arange(108.0).reshape(4, 3, 3, 3) * 3e-8  # max - min < 1e-5: make_grid's floor
    weights = {"conv0_before": before, "conv0_after": after, "layer1": layer1, "conv3": conv3, "grey": grey, "flat": flat}
    safetensors_lite.save(weights, os.path.join(out, "weights.safetensors"))

    grids = {
        "conv0_before": grid_bytes(before),
        "conv0_diff": grid_bytes((after - before).abs()),
        "layer1_channel0": grid_bytes(layer1[0].unsqueeze(1)),
        "conv3_channel5": grid_bytes(conv3[5].unsqueeze(1)),
        "grey": grid_bytes(grey),
        "flat": grid_bytes(flat),
        "single": grid_bytes(before[:1]),  # one tile: no padding at all
    }
    safetensors_lite.save(grids, os.path.join(out, "grids.safetensors"))

    # Checkpoints for `densenet visualize`: a pair to compare, and one of another shape.
    norm0 = torch.ones(64)
    safetensors_lite.save({CONV0: before, "features.norm0.weight": norm0, LAYER1: layer1}, os.path.join(out, "a.safetensors"))
    safetensors_lite.save({CONV0: after, "features.norm0.weight": norm0, LAYER1: layer1b}, os.path.join(out, "b.safetensors"))
    safetensors_lite.save({CONV0: before[:32], LAYER1: layer1}, os.path.join(out, "mismatch.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1])
