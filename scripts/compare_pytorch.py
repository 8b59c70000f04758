#!/usr/bin/python3
"""densenet.cpp against every CPU peer on the speed issue's cases, one run after the other.

Runs `densenet bench --json` and the reference measurement (../shared/peer/pytorch_bench.py) for
each peer with the same architecture, shape, batch, mode, precision, thread count, warm-up and
timed steps:
  - PyTorch 1.13 eager, Debian's, with /usr/bin/python3;
  - PyTorch 2.x eager, in NCHW and in channels_last, and torch.compile (inductor), with the python
    of ../shared/peer/setup-peers.sh (--peers-python, found on its own where that script put it);
  - for inference, ONNX Runtime and OpenVINO from the same environment.
Each row prints every peer's figure and the ratio to the best peer of the group the issue judges
that row by (best PyTorch 2.x, or best of PyTorch 2.x, ONNX Runtime and OpenVINO). All sides time
`steps` steps after `warmup` untimed ones and report batch / (mean seconds per step), and
ru_maxrss * 1024 for memory, so the figures compare like for like.

  scripts/compare_pytorch.py [--quick] [--rounds N] [--threads T] [--steps S] [--isa avx2] [--densenet build/densenet]
                             [--peers-python PY] [--case TEXT]... [--skip PEER]... [--out runs/compare_peers.jsonl]
  (the peers' python: bash scripts/peers-venv.sh, which adds onnxscript for the ONNX export)

Every raw JSON line goes to --out. Measure with nothing else running: on a 2-core machine another
job stalls OpenMP's barriers and every figure becomes noise.

--isa avx2 holds every side to AVX2, as on a CPU without AVX-512: oneDNN in ours and in PyTorch
(DNNL_MAX_CPU_ISA, ONEDNN_MAX_CPU_ISA) and PyTorch's own kernels (ATEN_CPU_CAPABILITY). ONNX
Runtime and OpenVINO pick their kernels from the CPU and are not held (the table says so). On a
CPU whose AVX2 and AVX-512 FMA peaks are the same (AMD's Zen 4) that is a fair stand-in; a real
AVX2 CPU is better.

A shared machine's speed still drifts by a third within an hour, peers' and ours alike, so one run
of each side is one sample. --rounds N runs every side of a case N times, alternating (ours first
in odd rounds, last in even ones, so that a drift weighs on both sides alike); each cell is then the
median of its N figures, the ratio is that of the medians, and the range of the N rounds' own
ratios follows it.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PEERS_PYTHON = "/opt/densenet-peers/bin/python"

# Peers: name -> (which python runs pytorch_bench.py, its extra flags, the modes it measures).
PEERS = {
    "pt1.13": ("debian", [], ("train", "infer")),
    "pt2": ("peers", [], ("train", "infer")),
    "pt2 cl": ("peers", ["--channels-last"], ("train", "infer")),
    "pt2 compile": ("peers", ["--compile"], ("train", "infer")),
    "onnxruntime": ("peers", ["--runtime", "onnxruntime"], ("infer",)),
    "openvino": ("peers", ["--runtime", "openvino"], ("infer",)),
}
PYTORCH2 = ("pt2", "pt2 cl", "pt2 compile")
INFERENCE_PEERS = PYTORCH2 + ("onnxruntime", "openvino")

# name, what ours runs, the figure compared, the peers measured, the peers whose best is the bar.
B224 = dict(input_size=224, batch_size=32)
FULL = [
    ("fp32 train 224x224 b32", dict(mode="train", **B224), "speed", ("pt1.13",) + PYTORCH2, PYTORCH2),
    ("bf16 train 224x224 b32 (autocast)", dict(mode="train", precision="bf16", **B224), "speed", ("pt1.13",) + PYTORCH2, PYTORCH2),
    ("fp32 train 32x32 b64", dict(mode="train", input_size=32, batch_size=64, steps=10, warmup=2), "speed",
     ("pt1.13",) + PYTORCH2, PYTORCH2),
    ("fp32 infer 224x224 b32", dict(mode="infer", **B224), "speed", ("pt1.13",) + INFERENCE_PEERS, INFERENCE_PEERS),
    ("fp32 infer 224x224 b1", dict(mode="infer", input_size=224, batch_size=1, steps=20, warmup=3), "speed",
     ("pt1.13",) + INFERENCE_PEERS, INFERENCE_PEERS),
    ("bf16 infer 224x224 b32", dict(mode="infer", precision="bf16", **B224), "speed", ("openvino",), ("openvino",)),
    ("peak memory, fp32 train 224x224 b32", dict(mode="train", **B224), "memory", ("pt1.13",) + PYTORCH2, PYTORCH2),
]
SMALL = dict(input_size=32, batch_size=16, steps=10, warmup=2)
QUICK = [
    ("fp32 train 32x32 b16", dict(mode="train", **SMALL), "speed", ("pt1.13",) + PYTORCH2, PYTORCH2),
    ("fp32 infer 32x32 b16", dict(mode="infer", **SMALL), "speed", ("pt1.13",) + INFERENCE_PEERS, INFERENCE_PEERS),
    ("peak memory, fp32 train 32x32 b16", dict(mode="train", **SMALL), "memory", ("pt1.13",) + PYTORCH2, PYTORCH2),
]
# --isa avx2: what holds each library to AVX2 (ONNX Runtime and OpenVINO have no such switch).
HELD_TO_AVX2 = {"DNNL_MAX_CPU_ISA": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
NOT_HELD = ("onnxruntime", "openvino")

# The fields every side prints that must agree for a figure to be a comparison.
SHAPE_FIELDS = ("arch", "mode", "precision", "input_size", "batch_size", "threads")


def shared_args(case, a, warmup_at_least=0):
    steps = a.steps if a.steps else case.get("steps", 3)
    warmup = a.warmup if a.warmup is not None else case.get("warmup", 1)
    return ["--arch", a.arch, "--num-classes", "10", "--input-size", str(case["input_size"]),
            "--batch-size", str(case["batch_size"]), "--steps", str(steps), "--warmup", str(max(warmup, warmup_at_least)),
            "--mode", case["mode"], "--threads", str(a.threads)]


def ours_command(case, a):
    # The CPU engine, as the CPU peers: bench's default would take a visible GPU.
    cmd = [a.densenet, "bench", *shared_args(case, a), "--device", "cpu", "--precision", case.get("precision", "fp32"),
           "--json"]
    if case["mode"] == "train":
        cmd += ["--memory", "recompute"]
    return cmd


def peer_command(case, peer, a):
    which, flags, _ = PEERS[peer]
    python = a.debian_python if which == "debian" else a.peers_python
    # torch.compile compiles during its first steps: the reference script asks for 2 untimed ones.
    cmd = [python, a.peer, *shared_args(case, a, warmup_at_least=2 if "--compile" in flags else 0), *flags]
    if case.get("precision", "fp32") == "bf16":
        cmd += ["--precision", "bf16"]
    return cmd


def run(cmd, cache, log, round_index=0, held=None):
    """One run of cmd, with `held` (HELD_TO_AVX2, or none) added to its environment; the same
    command in the same round (the memory row reads the training row's run) is run once."""
    key = (tuple(cmd), round_index)
    if key in cache:
        return cache[key]
    print("running: " + " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(held or {})})
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    if p.returncode == 0 and lines:
        try:
            outcome = {"result": json.loads(lines[-1])}
        except json.JSONDecodeError:
            outcome = {"error": "the last line of its output is not JSON: " + lines[-1][:200]}
    else:
        errors = [l for l in p.stderr.splitlines() if l.strip()]
        outcome = {"error": (errors[-1] if errors else "exit status %d" % p.returncode)}
    log.write(json.dumps({"command": cmd, "round": round_index + 1, "held": held or {}, **outcome}) + "\n")
    log.flush()
    cache[key] = outcome
    return outcome


def figure_of(outcome, figure):
    r = outcome["result"]
    return r["images_per_second"] if figure == "speed" else r["peak_rss_bytes"]


def succeeded(runs):
    return bool(runs) and all("result" in o for o in runs)


def median_of(runs, figure):
    return statistics.median(figure_of(o, figure) for o in runs)


def cell(runs, figure):
    """A side's figure over its rounds: the median, or why there is none."""
    if not runs:
        return "-"
    if not succeeded(runs):
        errors = [o["error"] for o in runs if "error" in o]
        return "not implemented" if any("not implemented" in e for e in errors) else "failed"
    value = median_of(runs, figure)
    return "%.2f" % value if figure == "speed" else "%.2f GB" % (value / 1e9)


def better(figure):
    return max if figure == "speed" else min


def comparable(ours, peer_runs, judged_by):
    """The judged peers whose every round succeeded with ours's shape: name -> runs."""
    return {name: peer_runs[name] for name in judged_by
            if succeeded(peer_runs.get(name))
            and all(ours[0]["result"].get(f) == peer_runs[name][0]["result"].get(f) for f in SHAPE_FIELDS)}


def verdict(ours, peer_runs, judged_by, figure):
    """Ours against the judged peer with the best median: the ratio of the medians, and with
    several rounds the range of each round's ratio to that round's best judged peer."""
    if not succeeded(ours):
        return "-"
    usable = comparable(ours, peer_runs, judged_by)
    if not usable:
        return "-"
    pick = better(figure)
    name = pick(usable, key=lambda n: median_of(usable[n], figure))
    text = "%.2fx %s" % (median_of(ours, figure) / median_of(usable[name], figure), name)
    if len(ours) > 1:
        per_round = [figure_of(ours[r], figure) / pick(figure_of(runs[r], figure) for runs in usable.values())
                     for r in range(len(ours))]
        text += " (rounds %.2f-%.2fx)" % (min(per_round), max(per_round))
    return text


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="32x32 shapes only: a smoke run of a few minutes")
    p.add_argument("--arch", default="densenet121")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--rounds", type=int, default=1,
                   help="runs of every side of a case, alternating; each figure is then their median")
    p.add_argument("--steps", type=int, default=0, help="timed steps for every case (default: 3 at 224x224 b32, 10 at 32x32)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 1 at 224x224, 2 at 32x32)")
    p.add_argument("--densenet", default=os.path.join(ROOT, "build", "densenet"))
    p.add_argument("--peer", default=os.environ.get("PYTORCH_BENCH", os.path.normpath(os.path.join(ROOT, "..", "shared", "peer", "pytorch_bench.py"))),
                   help="the reference script (env PYTORCH_BENCH)")
    p.add_argument("--debian-python", default="/usr/bin/python3", help="the Python with Debian's torch 1.13")
    p.add_argument("--peers-python", default=DEFAULT_PEERS_PYTHON,
                   help="the Python of ../shared/peer/setup-peers.sh (PyTorch 2.x, ONNX Runtime, OpenVINO)")
    p.add_argument("--case", action="append", default=[], help="only the cases whose name holds this text (repeatable)")
    p.add_argument("--skip", action="append", default=[], choices=sorted(PEERS), help="leave a peer out (repeatable)")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "compare_peers.jsonl"), help="raw JSON lines")
    p.add_argument("--isa", choices=["native", "avx2"], default="native",
                   help="avx2: hold ours and PyTorch to AVX2, as on a CPU without AVX-512 (not ONNX Runtime or OpenVINO)")
    a = p.parse_args()
    if a.rounds < 1:
        sys.exit("error: --rounds must be at least 1")
    for path, what in ((a.densenet, "densenet program (build it, or pass --densenet)"),
                       (a.peer, "reference script (pass --peer or set PYTORCH_BENCH)"),
                       (a.debian_python, "Python with Debian's torch (pass --debian-python)")):
        if not os.path.isfile(path):
            sys.exit("error: %s not found: %s" % (what, path))
    if not os.path.isfile(a.peers_python):
        print("note: no peers' python at %s (run ../shared/peer/setup-peers.sh): PyTorch 2.x, ONNX Runtime and "
              "OpenVINO are left out" % a.peers_python, file=sys.stderr)
        a.skip += [name for name, (which, _, _) in PEERS.items() if which == "peers"]
    load = os.getloadavg()[0]
    if load > 0.5 * a.threads:
        print("warning: load average %.1f on %d threads: something else is running, the figures will be noise" % (load, a.threads),
              file=sys.stderr)

    cases = [c for c in (QUICK if a.quick else FULL) if not a.case or any(text in c[0] for text in a.case)]
    if not cases:
        sys.exit("error: no case's name holds " + " or ".join(repr(t) for t in a.case))
    columns = [name for name in PEERS if name not in a.skip and any(name in c[3] for c in cases)]
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    cache, rows = {}, []
    with open(a.out, "w") as log:
        for name, case, figure, measured, judged_by in cases:
            sides = [("ours", ours_command(case, a))] + [
                (peer, peer_command(case, peer, a)) for peer in measured
                if peer not in a.skip and case["mode"] in PEERS[peer][2]]
            runs = {side: [] for side, _ in sides}
            for r in range(a.rounds):
                for side, cmd in (sides if r % 2 == 0 else list(reversed(sides))):
                    held = HELD_TO_AVX2 if a.isa == "avx2" and side not in NOT_HELD else None
                    runs[side].append(run(cmd, cache, log, r, held))
            ours = runs.pop("ours")
            rows.append([name, cell(ours, figure)] + [cell(runs.get(c), figure) for c in columns] +
                        [verdict(ours, runs, judged_by, figure)])

    header = ["case", "ours"] + columns + ["ours / best judged peer"]
    print("%s, %d threads; images/s (higher is better) or peak resident memory (lower is better)%s"
          % (a.arch, a.threads, ", each the median of %d alternated rounds" % a.rounds if a.rounds > 1 else ""))
    if a.isa == "avx2":
        print("held to AVX2: ours and PyTorch (%s); not ONNX Runtime or OpenVINO, which pick their own kernels"
              % " ".join("%s=%s" % kv for kv in HELD_TO_AVX2.items()))
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print("raw JSON lines, with each peer's version: " + a.out)


if __name__ == "__main__":
    main()
