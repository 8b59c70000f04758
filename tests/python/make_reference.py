#!/usr/bin/python3
"""Writes the PyTorch reference for the engine's parity tests (the llm.c way: PyTorch computes,
the C++ test compares).

For each case, into OUT/<case>/:
  init.safetensors      the torchvision state_dict the C++ side starts from
  expected.safetensors  input, labels, eval and train logits and losses, every parameter gradient,
                        the BN running statistics after one training forward, and the weights
                        and losses of 5 Adam and 5 SGD-momentum steps; for the cases marked
                        autocast, also the logits, losses and gradients under
                        torch.autocast("cpu", dtype=torch.bfloat16) ("bf16." keys), which the
                        engine's bf16 precision is held against; for the cases marked eval_only,
                        only input, labels and the eval logits and loss.
"""
import copy
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models  # noqa: E402
import safetensors_lite  # noqa: E402

CASES = {
    # The lecture's network with a CIFAR-10 head, at 32x32 (its smallest input), batch 4.
    "densenet121": dict(arch="densenet121", num_classes=10, batch=4, size=32),
    # The same network where batch norm is well conditioned (32 values per channel in block 4, not
    # 4), so that float32 can be held to 1e-4 of the exact result after 5 optimizer steps too.
    "densenet121_64": dict(arch="densenet121", num_classes=10, batch=8, size=64, autocast=True),
    # A custom configuration with the small-image stem; growth 12 makes channel counts that are
    # not multiples of 16, and one input channel.
    "custom_small": dict(arch="custom", growth_rate=12, block_config=[2, 3, 2], num_init_features=24, bn_size=4,
                         num_classes=10, stem="small_inputs", in_channels=1, batch=4, size=16, autocast=True),
    # A narrow network whose first block runs at 28x28 (112x112 images): there the engine's
    # training runs its pointwise convolutions on oneDNN's blocked layout (nChw16c), which the
    # smaller cases' maps never reach. Growth 16 and a bottleneck of 32 keep channel counts
    # multiples of 16.
    "custom_28": dict(arch="custom", growth_rate=16, block_config=[3, 2], num_init_features=32, bn_size=2,
                      num_classes=10, batch=2, size=112, autocast=True),
    # The lecture's network at the lecture's size, evaluated only (its training at this size is
    # what the cases above check at smaller ones): the maps of 56x56 and 28x28 where inference's
    # 3x3 convolutions run Winograd, oneDNN's on AVX-512, the engine's own on AVX2.
    "densenet121_224": dict(arch="densenet121", num_classes=10, batch=2, size=224, eval_only=True),
}
STEPS = 5
ADAM = dict(lr=1e-4)
SGD = dict(lr=0.01, momentum=0.9)


def loss_of(net, x, y):
    return F.nll_loss(F.log_softmax(net(x), dim=1), y)


def train(net, opt, x, y):
    losses = []
    net.train()
    for _ in range(STEPS):
        opt.zero_grad()
        loss = loss_of(net, x, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return torch.tensor(losses, dtype=torch.float32)


# Rounding-level noise on every convolution's output: Gaussian, with this standard deviation
# relative to the output's RMS. Two float32 computations of the same network differ like this when
# their convolutions sum in different orders (oneDNN's direct and Winograd kernels differ by about
# 1e-6 of the output's magnitude). Where a case is ill-conditioned (batch norm over channels of
# nearly constant values in block 4), such a difference moves some gradients by 1e-3..1e-2
# (densenet121_64's block4.denselayer9.norm1.bias: 3e-2, where plain float32 is 8e-6 from float64),
# so PyTorch's float32 result is no bar there for a computation that rounds differently. The
# reference holds, per element, the farthest from float64 of NOISY_RUNS such runs, and the C++
# test holds each tensor to twice the larger distance of plain or noisy float32 from float64.
CONV_NOISE = 1e-6
NOISY_RUNS = 4


def add_conv_noise(net, conv_noise, seed):
    """Hooks `conv_noise` (see CONV_NOISE) onto each of net's convolution outputs, drawn from `seed`."""
    if not conv_noise:
        return
    g = torch.Generator().manual_seed(seed)
    noise = lambda module, inputs, output: output + conv_noise * output.detach().square().mean().sqrt() * (  # noqa: E731
        torch.randn(output.shape, generator=g, dtype=output.dtype))
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(noise)


def farthest_of_noisy_runs(run_noisy, exact):
    """Per element, the farthest from `exact` of NOISY_RUNS runs: run_noisy(seed) gives each run's
    tensors by name (those with a float64 counterpart in `exact` are kept)."""
    farthest = {}
    for seed in range(NOISY_RUNS):
        for k, v in run_noisy(seed).items():
            if k not in exact or not v.is_floating_point():
                continue
            if k in farthest:
                v = torch.where((v - exact[k]).abs() > (farthest[k] - exact[k]).abs(), v, farthest[k])
            farthest[k] = v
    return farthest


def run(net, init, x, y, dtype, conv_noise=0.0, seed=0, eval_only=False):
    """Everything the C++ side compares, computed with the network and input in `dtype`, and
    with `conv_noise` (see CONV_NOISE) on each convolution's output, drawn from `seed`; with
    eval_only, the evaluation's logits and loss alone."""
    net = copy.deepcopy(net).to(dtype)
    x = x.to(dtype)
    add_conv_noise(net, conv_noise, seed)
    out = {}
    net.eval()
    with torch.no_grad():
        logits = net(x)
    out["eval.logits"] = logits
    out["eval.loss"] = F.nll_loss(F.log_softmax(logits, 1), y).reshape(1)
    if eval_only:
        return {k: v.float() for k, v in out.items()}

    net.train()
    logits = net(x)
    loss = F.nll_loss(F.log_softmax(logits, 1), y)
    loss.backward()
    out["train.logits"] = logits.detach()
    out["train.loss"] = loss.detach().reshape(1)
    # state_dict() and .grad alias the live tensors, which the optimizer runs below overwrite.
    for n, p in net.named_parameters():
        out["grad." + n] = p.grad.clone()
    for n, b in net.state_dict().items():
        if "running" in n or "num_batches" in n:
            out["after_forward." + n] = b.clone()

    for opt_name, make_opt in (("adam", lambda p: torch.optim.Adam(p, **ADAM)),
                               ("sgd", lambda p: torch.optim.SGD(p, **SGD))):
        net.load_state_dict(init)
        losses = train(net, make_opt(net.parameters()), x, y)
        out[opt_name + ".losses"] = losses
        for n, t in net.state_dict().items():
            out[opt_name + "." + n] = t.clone()
        net.eval()
        with torch.no_grad():
            out[opt_name + ".eval_loss"] = loss_of(net, x, y).reshape(1)
    return {k: (v.float() if v.is_floating_point() else v) for k, v in out.items()}


def run_autocast(net, x, y):
    """The lecture's step under CPU autocast, as the PyTorch peer runs it: the network in bf16
    autocast, its logits cast to float, log_softmax and the loss outside in float32."""
    net = copy.deepcopy(net)
    out = {}
    net.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(x).float()
    out["bf16.eval.logits"] = logits
    out["bf16.eval.loss"] = F.nll_loss(F.log_softmax(logits, 1), y).reshape(1)
    net.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(x).float()
    loss = F.nll_loss(F.log_softmax(logits, 1), y)
    loss.backward()
    out["bf16.train.logits"] = logits.detach()
    out["bf16.train.loss"] = loss.detach().reshape(1)
    for n, p in net.named_parameters():
        out["bf16.grad." + n] = p.grad.float().clone()
    return out


def network_and_batch(case):
    """The case's network (perturbed away from its defaults), its batch and labels, and its initial
    state_dict: the same for every fixture made from the case."""
    torch.manual_seed(1234)
    g = torch.Generator().manual_seed(99)
    net = reference_models.build(case)
    reference_models.perturb(net, g)
    x = torch.rand(case["batch"], case.get("in_channels", 3), case["size"], case["size"], generator=g)
    y = torch.randint(0, case["num_classes"], (case["batch"],), generator=g)
    return net, x, y, copy.deepcopy(net.state_dict())


def make(name, case, out):
    net, x, y, init = network_and_batch(case)
    os.makedirs(out, exist_ok=True)
    safetensors_lite.save(init, os.path.join(out, "init.safetensors"))

    expected = {"input": x, "labels": y.to(torch.int32)}
    # PyTorch in float32 is what users run; PyTorch in float64 is the exact math, stored rounded
    # to float32. Where a case is ill-conditioned (BN over 4 values in densenet121's last block at
    # 32x32, batch 4), PyTorch's own float32 result is far from the exact one, and the C++ test
    # uses that distance, or the noisy runs' (CONV_NOISE), as the bar for its own.
    eval_only = case.get("eval_only", False)
    expected.update(run(net, init, x, y, torch.float32, eval_only=eval_only))
    exact = run(net, init, x, y, torch.float64, eval_only=eval_only)
    expected.update({"f64." + k: v for k, v in exact.items()})
    farthest = farthest_of_noisy_runs(
        lambda seed: run(net, init, x, y, torch.float32, CONV_NOISE, seed, eval_only=eval_only), exact)
    expected.update({"noisy." + k: v for k, v in farthest.items()})
    if case.get("autocast"):
        expected.update(run_autocast(net, x, y))
    safetensors_lite.save(expected, os.path.join(out, "expected.safetensors"),
                          metadata={"case": json.dumps(case), "adam": json.dumps(ADAM), "sgd": json.dumps(SGD)})


if __name__ == "__main__":
    # make_reference.py OUT [CASE...]: every case, or those named (scripts/gpu_check.sh makes each
    # in a process of its own). One thread: PyTorch's float32 sums then do not depend on the
    # machine's core count.
    out_dir, names = sys.argv[1], sys.argv[2:] or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        sys.exit(f"make_reference.py: no case {', '.join(unknown)} (cases: {', '.join(CASES)})")
    torch.set_num_threads(1)
    for name in names:
        make(name, CASES[name], os.path.join(out_dir, name))
    print("reference written to", out_dir)
