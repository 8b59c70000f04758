#!/usr/bin/python3
"""torch.optim on one random tensor and 5 fixed random gradients, for every optimizer variant the
engine offers. Writes OUT/optimizers.safetensors: the start, the gradients, and each variant's result."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_lite  # noqa: E402

VARIANTS = {
    "adam": ("adam", dict(lr=1e-3)),
    "adam_wd_amsgrad": ("adam", dict(lr=1e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01, amsgrad=True)),
    "adamw": ("adamw", dict(lr=1e-2, weight_decay=0.5)),
    "sgd": ("sgd", dict(lr=0.1)),
    "sgd_momentum_dampening": ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=1e-3)),
    "sgd_nesterov": ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
}
g = torch.Generator().manual_seed(5)
start = torch.randn(1000, generator=g)
grads = torch.randn(5, 1000, generator=g) * torch.logspace(-4, 1, 1000)
out = {"start": start, "grads": grads}
for name, (kind, options) in VARIANTS.items():
    p = torch.nn.Parameter(start.clone())
    opt = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[kind]([p], **options)
    for step in range(5):
        p.grad = grads[step].clone()
        opt.step()
    out[name] = p.detach().clone()
os.makedirs(sys.argv[1], exist_ok=True)
safetensors_lite.save(out, os.path.join(sys.argv[1], "optimizers.safetensors"),
                      metadata={k: json.dumps(v[1]) for k, v in VARIANTS.items()})
