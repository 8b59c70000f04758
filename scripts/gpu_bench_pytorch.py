#!/usr/bin/env python3
"""PyTorch's side of the GPU comparison (issue 11): torchvision's DenseNet on one GPU, timed as
../shared/peer/pytorch_bench.py times it on the CPU (the lecture's step: zero_grad, forward,
NLLLoss(log_softmax), backward, Adam(lr=1e-4) step; synthetic images uniform in [0, 1)), in the
configurations the issue compares against:

  eager-fp32       fp32 with PyTorch's defaults (cuDNN convolutions on TF32)
  eager-bf16-cl    torch.autocast(cuda, bfloat16), model and input channels_last
  compile-bf16-cl  the same under torch.compile (inductor)

Each case runs in its own process, so that one's memory and compilation caches do not reach the
next, and prints one JSON line: images/s, seconds per step, torch.cuda.max_memory_allocated()
(what the caching allocator held for tensors at most, as `densenet bench --device cuda` counts
its own buffers) and, with --compile, the seconds the warm-up took.

  python3 scripts/gpu_bench_pytorch.py --mode train --batch-size 64 --cases eager-bf16-cl,compile-bf16-cl
  python3 scripts/gpu_bench_pytorch.py --device cpu --input-size 32 --batch-size 2 --steps 1   # a smoke test
"""
import argparse
import json
import subprocess
import sys
import time

CASES = {"eager-fp32": dict(precision="fp32", channels_last=False, compile=False),
         "eager-bf16-cl": dict(precision="bf16", channels_last=True, compile=False),
         "compile-bf16-cl": dict(precision="bf16", channels_last=True, compile=True)}


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="densenet121")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (torch.compile compiles in the first)")
    p.add_argument("--mode", choices=["train", "infer"], default="train")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated, of: " + ", ".join(CASES))
    p.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (a smoke test of this script)")
    p.add_argument("--one-case", help=argparse.SUPPRESS)  # the child process's case
    return p.parse_args()


def run_case(a, name):
    import torch
    import torchvision

    case = CASES[name]
    device = torch.device(a.device)
    torch.manual_seed(0)
    net = getattr(torchvision.models, a.arch)(num_classes=a.num_classes).to(device)
    x = torch.rand(a.batch_size, 3, a.input_size, a.input_size, device=device)
    y = torch.randint(0, a.num_classes, (a.batch_size,), device=device)
    if case["channels_last"]:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    model = torch.compile(net) if case["compile"] else net
    cuda = device.type == "cuda"

    def forward():
        if case["precision"] == "bf16":
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                return model(x).float()
        return model(x)

    def train_step():
        opt.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log_softmax(forward(), 1), y)
        loss.backward()
        opt.step()

    def infer_step():
        with torch.no_grad():
            forward()

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    net.train(a.mode == "train")
    step = train_step if a.mode == "train" else infer_step
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(a.warmup):
        step()
    sync()
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / a.steps
    print(json.dumps({
        "peer": "pytorch " + torch.__version__, "case": name, "arch": a.arch, "mode": a.mode,
        "precision": case["precision"], "channels_last": case["channels_last"], "compile": case["compile"],
        "tf32": bool(torch.backends.cudnn.allow_tf32), "device": a.device,
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
        "input_size": a.input_size, "batch_size": a.batch_size, "steps": a.steps, "warmup": a.warmup,
        "warmup_seconds": warmup_seconds, "seconds_per_step": seconds, "images_per_second": a.batch_size / seconds,
        "peak_device_bytes": torch.cuda.max_memory_allocated(device) if cuda else None}), flush=True)


def main():
    a = parse()
    if a.one_case:
        run_case(a, a.one_case)
        return 0
    names = [n for n in a.cases.split(",") if n]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        sys.exit("error: unknown case(s) %s; the cases are %s" % (", ".join(unknown), ", ".join(CASES)))
    failed = 0
    for name in names:
        args = [sys.executable, __file__, "--one-case", name, "--arch", a.arch, "--num-classes", str(a.num_classes),
                "--input-size", str(a.input_size), "--batch-size", str(a.batch_size), "--steps", str(a.steps),
                "--warmup", str(a.warmup), "--mode", a.mode, "--device", a.device]
        done = subprocess.run(args, stdout=subprocess.PIPE, text=True)
        lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
        if done.returncode != 0 or not lines:
            failed += 1
            print(json.dumps({"peer": "pytorch", "case": name, "mode": a.mode, "batch_size": a.batch_size,
                              "error": "exit status %d" % done.returncode}), flush=True)
        else:
            print(lines[-1], flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
