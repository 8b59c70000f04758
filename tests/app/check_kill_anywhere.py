#!/usr/bin/python3
"""Kill anywhere: `densenet train` killed with SIGKILL at random moments (mid-epoch, during the test
pass, inside a save), resumed each time, ends with the weights, Adam state, average of the weights
and metrics of a run that was never killed (one compute thread: bit for bit).

A kill before the first save leaves no run to resume; the run is then started again, as a user
would (`--resume` says so). A kill inside a save leaves pending files behind, which the resume
finishes or discards (see RunFolder); the test counts those kills.

Usage: check_kill_anywhere.py DENSENET WORK_DIR [KILLS]   (default 12; the full check is 50)
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import safetensors_lite  # noqa: E402
from fashion_as_cifar import write_cifar  # noqa: E402

DENSENET, WORK = sys.argv[1], sys.argv[2]
KILLS = int(sys.argv[3]) if len(sys.argv) > 3 else 12
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)


CIFAR = f"{WORK}/cifar"
write_cifar(CIFAR, 32, 48)  # 160 training images: 10 steps of 16 an epoch
# With a per-batch schedule and an average of the weights, so that they too are shown to resume
# exactly (the schedule from the step count, the average from ema.safetensors, saved in the journal).
TRAIN = ["train", "--dataset", "cifar10", "--data-dir", CIFAR, "--input-size", "32", "--batch-size", "16",
         "--epochs", "3", "--threads", "1", "--schedule", "onecycle", "--lr", "1e-3", "--ema-decay", "0.9"]

# The run that is never killed.
start = time.time()
reference = f"{WORK}/reference"
p = subprocess.run([DENSENET, *TRAIN, "--out", reference], capture_output=True, text=True)
assert p.returncode == 0, p.stderr
duration = time.time() - start
print(f"uninterrupted run: {duration:.1f} s", flush=True)


def metrics_without_times(path):
    # Every column but seconds (wall time) must match.
    rows = [line.rstrip("\n").split(",") for line in open(path)]
    drop = rows[0].index("seconds")
    return [[v for i, v in enumerate(r) if i != drop] for r in rows]


def same_run(folder):
    problems = []
    for name in ["last.safetensors", "last.optim.safetensors", "best.safetensors", "init.safetensors", "ema.safetensors"]:
        a, b = safetensors_lite.load(f"{folder}/{name}")[0], safetensors_lite.load(f"{reference}/{name}")[0]
        if a.keys() != b.keys() or any(not (a[k] == b[k]).all() for k in a):
            problems.append(name)
    if metrics_without_times(f"{folder}/metrics.csv") != metrics_without_times(f"{reference}/metrics.csv"):
        problems.append("metrics.csv")
    leftovers = [f for f in os.listdir(folder) if f.endswith(".pending") or ".tmp." in f]
    if leftovers:
        problems.append("files a killed save left behind: " + ", ".join(leftovers))
    return problems


rng = random.Random(int(os.environ.get("KILL_SEED", "1")))
kills = mid_save = restarts = runs = 0
failures = []
while kills < KILLS:
    runs += 1
    folder = f"{WORK}/killed{runs}"
    finished = False
    while not finished:
        resume = os.path.exists(f"{folder}/state.json")
        if not resume and os.path.exists(folder):
            restarts += 1
        command = ["train", "--resume", folder, "--threads", "1"] if resume else [*TRAIN, "--out", folder, "--overwrite"]
        proc = subprocess.Popen([DENSENET, *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        delay = rng.uniform(0.05, duration * 0.6) if kills < KILLS else None
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            if os.path.exists(folder) and any(f.endswith(".pending") or ".tmp" in f for f in os.listdir(folder)):
                mid_save += 1
            continue
        err = proc.stderr.read()
        if proc.returncode != 0:
            failures.append(f"{folder}: {'resume' if resume else 'start'} exited {proc.returncode}: {err.strip()[-300:]}")
            break
        finished = True
    if finished:
        problems = same_run(folder)
        if problems:
            failures.append(f"{folder}: differs from the uninterrupted run in {', '.join(problems)}")
    if failures:
        break

print(f"{kills} kills over {runs} runs ({mid_save} inside a save, {restarts} before the first save): "
      f"{'every run ended as the uninterrupted one' if not failures else 'FAILED'}")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
