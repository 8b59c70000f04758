#!/usr/bin/python3
"""densenet.cpp against PyTorch on the speed issue's cases, one run after the other.

Runs `densenet bench --json` and the reference peer (../shared/peer/pytorch_bench.py, with Debian's
/usr/bin/python3 and its torch) with the same architecture, shape, batch, mode, precision, thread
count, warm-up and timed steps, and prints images/s and peak resident memory side by side with
their ratio. Both sides time `steps` steps after `warmup` untimed ones and report batch / (mean
seconds per step), and ru_maxrss * 1024 for memory, so the figures compare like for like.

  scripts/compare_pytorch.py [--quick] [--threads T] [--steps S] [--densenet build/densenet]
                             [--peer PATH (or env PYTORCH_BENCH)] [--out runs/compare_pytorch.jsonl]

Every raw JSON line goes to --out. Measure with nothing else running: on a 2-core machine another
job stalls OpenMP's barriers and both figures become noise.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name, what ours runs, what PyTorch runs, and which figure the row compares.
FULL = [
    ("fp32 train 224x224 b32", dict(mode="train", input_size=224, batch_size=32), {}, "speed"),
    ("fp32 train 224x224 b32, ours --memory keep", dict(mode="train", input_size=224, batch_size=32, memory="keep"), {}, "speed"),
    ("fp32 train 224x224 b16", dict(mode="train", input_size=224, batch_size=16), {}, "speed"),
    ("fp32 train 32x32 b64", dict(mode="train", input_size=32, batch_size=64, steps=10, warmup=2), {}, "speed"),
    ("fp32 infer 224x224 b32", dict(mode="infer", input_size=224, batch_size=32), {}, "speed"),
    ("fp32 infer 224x224 b16", dict(mode="infer", input_size=224, batch_size=16), {}, "speed"),
    ("bf16 train 224x224 b32 (PyTorch: autocast)", dict(mode="train", input_size=224, batch_size=32, precision="bf16"), {}, "speed"),
    ("peak memory, bf16 train 224x224 b32", dict(mode="train", input_size=224, batch_size=32, precision="bf16"), {}, "memory"),
    ("peak memory, fp32 train 224x224 b32", dict(mode="train", input_size=224, batch_size=32), {}, "memory"),
    ("peak memory, ours --memory keep", dict(mode="train", input_size=224, batch_size=32, memory="keep"), {}, "memory"),
    ("vs memory_efficient=True: speed", dict(mode="train", input_size=224, batch_size=32), {"memory_efficient": True}, "speed"),
    ("vs memory_efficient=True: peak memory", dict(mode="train", input_size=224, batch_size=32), {"memory_efficient": True}, "memory"),
]
SMALL = dict(input_size=32, batch_size=16, steps=10, warmup=2)
QUICK = [
    ("fp32 train 32x32 b16", dict(mode="train", **SMALL), {}, "speed"),
    ("fp32 infer 32x32 b16", dict(mode="infer", **SMALL), {}, "speed"),
    ("bf16 train 32x32 b16 (PyTorch: autocast)", dict(mode="train", precision="bf16", **SMALL), {}, "speed"),
    ("peak memory, fp32 train 32x32 b16", dict(mode="train", **SMALL), {}, "memory"),
    ("vs memory_efficient=True: speed", dict(mode="train", **SMALL), {"memory_efficient": True}, "speed"),
]
# The fields both sides print that must agree for a row to be a comparison.
SHAPE_FIELDS = ("arch", "mode", "precision", "input_size", "batch_size", "threads")


def shared_args(case, a):
    steps = a.steps if a.steps else case.get("steps", 3)
    warmup = a.warmup if a.warmup is not None else case.get("warmup", 1)
    return ["--arch", a.arch, "--num-classes", "10", "--input-size", str(case["input_size"]),
            "--batch-size", str(case["batch_size"]), "--steps", str(steps), "--warmup", str(warmup),
            "--mode", case["mode"], "--threads", str(a.threads)]


def ours_command(case, a):
    cmd = [a.densenet, "bench", *shared_args(case, a), "--precision", case.get("precision", "fp32"), "--json"]
    if case["mode"] == "train":
        cmd += ["--memory", case.get("memory", "recompute")]
    return cmd


def peer_command(case, peer, a):
    cmd = [a.python, a.peer, *shared_args(case, a)]
    if case.get("precision", "fp32") == "bf16":
        cmd += ["--precision", "bf16"]
    if peer.get("memory_efficient"):
        cmd += ["--memory-efficient"]
    return cmd


def run(cmd, cache, log):
    key = tuple(cmd)
    if key in cache:
        return cache[key]
    print("running: " + " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    if p.returncode == 0 and lines:
        try:
            outcome = {"result": json.loads(lines[-1])}
        except json.JSONDecodeError:
            outcome = {"error": "the last line of its output is not JSON: " + lines[-1][:200]}
    else:
        errors = [l for l in p.stderr.splitlines() if l.strip()]
        outcome = {"error": (errors[-1] if errors else "exit status %d" % p.returncode)}
    log.write(json.dumps({"command": cmd, **outcome}) + "\n")
    log.flush()
    cache[key] = outcome
    return outcome


def cell(outcome, figure):
    if "error" in outcome:
        return "not implemented" if "not implemented" in outcome["error"] else "failed"
    r = outcome["result"]
    if figure == "speed":
        return "%.2f img/s" % r["images_per_second"]
    return "%.2f GB" % (r["peak_rss_bytes"] / 1e9)


def ratio(ours, theirs, figure):
    if "error" in ours or "error" in theirs:
        return "-"
    mismatch = [f for f in SHAPE_FIELDS if ours["result"].get(f) != theirs["result"].get(f)]
    if mismatch:
        return "mismatch: " + ", ".join(mismatch)
    if figure == "speed":
        return "%.2fx" % (ours["result"]["images_per_second"] / theirs["result"]["images_per_second"])
    return "%.2fx" % (ours["result"]["peak_rss_bytes"] / theirs["result"]["peak_rss_bytes"])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="32x32 shapes only: a smoke run of a minute or two")
    p.add_argument("--arch", default="densenet121")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--steps", type=int, default=0, help="timed steps for every case (default: 3 at 224x224, 10 at 32x32)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 1 at 224x224, 2 at 32x32)")
    p.add_argument("--densenet", default=os.path.join(ROOT, "build", "densenet"))
    p.add_argument("--peer", default=os.environ.get("PYTORCH_BENCH", os.path.normpath(os.path.join(ROOT, "..", "shared", "peer", "pytorch_bench.py"))),
                   help="the reference script (env PYTORCH_BENCH)")
    p.add_argument("--python", default="/usr/bin/python3", help="a Python with torch and torchvision")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "compare_pytorch.jsonl"), help="raw JSON lines")
    a = p.parse_args()
    for path, what in ((a.densenet, "densenet program (build it, or pass --densenet)"),
                       (a.peer, "PyTorch reference script (pass --peer or set PYTORCH_BENCH)"),
                       (a.python, "Python with torch (pass --python)")):
        if not os.path.isfile(path):
            sys.exit("error: %s not found: %s" % (what, path))
    load = os.getloadavg()[0]
    if load > 0.5 * a.threads:
        print("warning: load average %.1f on %d threads: something else is running, the figures will be noise" % (load, a.threads),
              file=sys.stderr)

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    cache, rows = {}, []
    with open(a.out, "w") as log:
        for name, case, peer, figure in (QUICK if a.quick else FULL):
            ours = run(ours_command(case, a), cache, log)
            theirs = run(peer_command(case, peer, a), cache, log)
            rows.append((name, cell(ours, figure), cell(theirs, figure), ratio(ours, theirs, figure)))

    print("%s, %d threads; speed ratios > 1 and memory ratios < 1 favour densenet.cpp" % (a.arch, a.threads))
    widths = [max(len(r[i]) for r in rows + [("case", "ours", "PyTorch", "ours/PyTorch")]) for i in range(4)]
    for r in [("case", "ours", "PyTorch", "ours/PyTorch")] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print("raw JSON lines: " + a.out)


if __name__ == "__main__":
    main()
