#!/usr/bin/python3
"""A checkpoint written by densenet.cpp loads into torchvision with strict=True, and torchvision's
eval logits on the same input agree with the engine's."""
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_lite  # noqa: E402

directory = sys.argv[1]
state, meta = safetensors_lite.load(os.path.join(directory, "for_pytorch.safetensors"))
expected, _ = safetensors_lite.load(os.path.join(directory, "for_pytorch_expected.safetensors"))
net = torchvision.models.densenet121(num_classes=10)
net.load_state_dict(state, strict=True)
assert state["features.norm0.num_batches_tracked"].dtype == torch.int64
assert int(state["features.norm0.num_batches_tracked"]) == 1, "one training forward was recorded"
net.eval()
with torch.no_grad():
    logits = net(expected["input"])
err = ((logits - expected["logits"]).norm() / expected["logits"].norm()).item()
print(f"torchvision loaded the checkpoint strictly; eval logits relative error {err:.3g}")
sys.exit(0 if err <= 1e-4 else 1)
