"""Data-parallel training against one process: mpirun -np 2 (one thread per process) must train the
model one process trains on the same global batch, resume across process counts, and stop the whole
job when a process dies. Usage: check_data_parallel.py DENSENET WORK_DIR

How the two runs can differ, and the bars that follow:
- Batch norm is synchronised: each process sends its batch moments in double and every process
  combines them in rank order, so the statistics round to the floats one process gets; the
  batch-norm gradient sums are summed in double too. What remains is float summation order: the
  convolutions' weight gradients are summed over 16 images by oneDNN in one process and over 2 x 8
  then added by MPI in two, and the two batch sizes may run different oneDNN kernels (Winograd
  runs a 3x3 convolution from 1,024 output pixels in the batch: at 8x8, one process of 32 images
  runs it and three of 11 don't). These differ at rounding level (about 1e-6).
- Adam turns such differences into whole steps: an element whose gradient is at rounding level
  moves by +-lr either way (two PyTorch runs of the same 10 steps differ by a relative 1.1 on a BN
  bias, see NOTES). Batch-norm biases start at zero and are a few lr in size after a few steps, so
  they carry these flips most; convolution weights barely notice them.
- The gradient of the next step then reads weights that differ by those flips: on this tiny,
  barely trained model (4 steps, 128 images) the 4th step's gradients, and so Adam's moments,
  differ by about 10% per tensor though the losses agree to 1e-5.
- Even the first step: Adam moves an element by lr g / (|g| + eps), so where |g| is near eps (1e-8)
  its step follows g's rounding. Measured on an AVX2 CPU: a BN bias element whose gradient was
  -5.8e-9 in one process and -6.2e-9 in two (6e-6 of its tensor's RMS, both rounding noise) moved
  0.366 lr and 0.381 lr, 1.4e-3 of its tensor.
- A tensor's gradient can be rounding noise as a whole: norm0's weight at initialisation, where its
  bias is zero and every consumer of its channels is another batch norm, so that the loss does not
  change with its scale. Its gradient (RMS 1e-6, against 1e-2 for norm0's bias) is what is left of
  sums of terms of 1e-2 after cancelling: 6e-8 apart in the two runs, 1.7e-2 of itself and 1.7e-5 of
  the whole gradient's RMS (4e-3).
So: the first step's loss to 1e-6; its gradients to 3e-5 per tensor (measured: 9.9e-6 on conv0's,
which sums over the most pixels), a tensor whose gradient RMS is under 1e-3 of the whole
gradient's to 1e-4 of the whole gradient's RMS, element by element; the weights it leaves to 1e-5
per tensor (measured: 4.4e-7), as the parity tests hold Adam's steps to PyTorch's: elements whose
gradient is under 1e-3 of their tensor's RMS only to Adam's bound (2 lr from each other). After 4
Adam steps and a test: the training loss to 1e-4 and the test loss to 1e-3; every convolution,
classifier and BN weight and running statistic to 2e-3 relative per tensor (measured: 2.4e-4 at
most), the BN biases to 0.1 (measured: 0.07), Adam's moments to 0.5 (measured: 0.17); the test
accuracy to one image. With per-process batch norm
instead, BN biases are off by 1.4 after one step.
Three processes with uneven shards: the first step's loss sum to 1e-6 (measured: 2e-8), the first
two steps' to 1e-4 (measured: 2.4e-5, from Adam's flips after a first step whose block-2 weight
gradients came from Winograd in one process and from the direct kernels in three).
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import safetensors_lite  # noqa: E402  (the project's safetensors reader for tests)

DENSENET, WORK = sys.argv[1], sys.argv[2]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
COMMON = ["--dataset", "fashion-mnist", "--input-size", "64", "--batch-size", "32", "--epochs", "1",
          "--limit-train", "128", "--limit-test", "64", "--threads", "1", "--loader-threads", "0"]


def train(processes, out, *extra, check=True):
    launcher = ["mpirun", "-np", str(processes), "--oversubscribe"] if processes > 1 else []
    # extra comes last: a repeated option takes its last value.
    cmd = launcher + [DENSENET, "train"] + ([] if "--resume" in extra else COMMON + ["--out", out]) + list(extra)
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def load(path):
    tensors, _ = safetensors_lite.load(path)
    return {k: t.double().numpy().ravel() for k, t in tensors.items()}


def relative(a, b):
    n = np.linalg.norm(a)
    return np.linalg.norm(a - b) / (n if n > 0 else 1.0)


def bar(name):
    if name.endswith(".bias") and "classifier" not in name:
        return 0.1  # BN biases: see above
    return 2e-3


def compare(run_a, run_b, what):
    failures, worst = [], {}
    for file in ("last.safetensors", "last.optim.safetensors"):
        a, b = load(os.path.join(run_a, file)), load(os.path.join(run_b, file))
        if a.keys() != b.keys():
            failures.append(f"{file}: different tensors")
            continue
        for k in a:
            r = relative(a[k], b[k])
            kind = "adam" if ".exp_avg" in k else "bias" if bar(k) > 2e-3 else "other"
            worst[kind] = max(worst.get(kind, 0.0), r)
            if r > (0.5 if kind == "adam" else bar(k)):
                failures.append(f"{file} {k}: relative difference {r:.2e}")
    sa = json.load(open(os.path.join(run_a, "state.json")))
    sb = json.load(open(os.path.join(run_b, "state.json")))
    # The finished epoch's mean training loss, and the totals of one in progress.
    la = sa["loss_sum"] + sum(h["train_loss"] for h in sa["history"])
    lb = sb["loss_sum"] + sum(h["train_loss"] for h in sb["history"])
    loss = abs(la - lb) / abs(la)
    if loss > 1e-4:
        failures.append(f"training loss {la} vs {lb}")
    for ha, hb in zip(sa["history"], sb["history"]):
        if abs(ha["test_acc"] - hb["test_acc"]) > 1.5 / 64:
            failures.append(f"test accuracy {ha['test_acc']} vs {hb['test_acc']}")
        if abs(ha["test_loss"] - hb["test_loss"]) > 1e-3 * abs(ha["test_loss"]):
            failures.append(f"test loss {ha['test_loss']} vs {hb['test_loss']}")
    if len(sa["history"]) != len(sb["history"]) or sa["optimizer_steps"] != sb["optimizer_steps"]:
        failures.append("different progress")
    print(f"{what}: training losses {la:.6f} / {lb:.6f} (relative {loss:.1e}); largest relative "
          f"differences: BN biases {worst.get('bias', 0):.1e}, other weights and statistics {worst.get('other', 0):.1e}, "
          f"Adam's moments {worst.get('adam', 0):.1e}")
    if failures:
        sys.exit(f"FAIL {what}:\n  " + "\n  ".join(failures[:20]))


os.makedirs(WORK, exist_ok=True)
run = lambda name: os.path.join(WORK, name)

# One step: the same loss, to rounding.
train(1, run("one_step_1"), "--max-steps", "1", "--overwrite")
train(2, run("one_step_2"), "--max-steps", "1", "--overwrite")
l1 = json.load(open(run("one_step_1") + "/state.json"))["loss_sum"]
l2 = json.load(open(run("one_step_2") + "/state.json"))["loss_sum"]
print(f"first step: loss sums {l1:.7f} / {l2:.7f}")
if abs(l1 - l2) > 1e-6 * abs(l1):
    sys.exit("FAIL: the first step's loss differs")
# ... and the same gradients (Adam's first moment is 0.1 g) and weights, per tensor; in the weights,
# the elements whose gradient is rounding noise (under 1e-3 of the tensor's RMS) only to Adam's bound.
LR = 1e-4  # train's default
moments = load(run("one_step_1") + "/last.optim.safetensors")
first_moments = [v for k, v in moments.items() if k.endswith(".exp_avg")]
gradient_rms = np.sqrt(sum(float(np.sum(v * v)) for v in first_moments) / sum(v.size for v in first_moments))
for file, limit in (("last.safetensors", 1e-5), ("last.optim.safetensors", 3e-5)):
    a, b = load(run("one_step_1") + "/" + file), load(run("one_step_2") + "/" + file)
    worst, noise_elements = (0.0, ""), 0
    for k in a:
        if k.endswith("exp_avg_sq"):
            continue
        strict = np.ones(a[k].shape, dtype=bool)
        if k.endswith(".exp_avg") and np.sqrt(np.mean(a[k] * a[k])) < 1e-3 * gradient_rms:
            if np.max(np.abs(a[k] - b[k])) > 1e-4 * gradient_rms:
                sys.exit(f"FAIL: after one step {k}, a gradient at rounding-noise level, differs by more than 1e-4 "
                         "of the whole gradient's RMS")
            continue
        if file == "last.safetensors" and k + ".exp_avg" in moments:
            g = moments[k + ".exp_avg"]
            strict = np.abs(g) >= 1e-3 * np.sqrt(np.mean(g * g))
            noise_elements += int((~strict).sum())
            if np.any(np.abs(a[k] - b[k])[~strict] > 2 * LR * 1.01):
                sys.exit(f"FAIL: after one step {k} is more than Adam's bound (2 lr) apart")
        worst = max(worst, (relative(a[k][strict], b[k][strict]), k))
    print(f"first step, {file}: largest relative difference {worst[0]:.1e} ({worst[1]})"
          + (f"; {noise_elements} elements with rounding-noise gradients held to Adam's bound" if noise_elements else ""))
    if worst[0] > limit:
        sys.exit(f"FAIL: after one step {worst[1]} differs by {worst[0]:.2e} (bar {limit:.0e})")

# A whole (short) epoch with its test, on 1 and on 2 processes.
train(1, run("alone"), "--overwrite")
train(2, run("two"), "--overwrite")
compare(run("alone"), run("two"), "1 vs 2 processes, 4 Adam steps and a test")

# Stopped on 2 processes, resumed on 1; stopped on 1, resumed on 2.
train(2, run("two_then_one"), "--max-steps", "2", "--overwrite")
train(1, None, "--resume", run("two_then_one"))
compare(run("alone"), run("two_then_one"), "2 processes resumed on 1")
train(1, run("one_then_two"), "--max-steps", "2", "--overwrite")
train(2, None, "--resume", run("one_then_two"))
compare(run("alone"), run("one_then_two"), "1 process resumed on 2")

# Three processes: shards of 11, 11 and 10 images, and a short last test batch (70 = 32 + 32 + 6).
for steps, tolerance in ((1, 1e-6), (2, 1e-4)):
    uneven = ["--limit-test", "70", "--max-steps", str(steps), "--overwrite"]
    train(1, run("uneven_1"), *uneven)
    train(3, run("uneven_3"), *uneven)
    ua = json.load(open(run("uneven_1") + "/state.json"))
    ub = json.load(open(run("uneven_3") + "/state.json"))
    print(f"3 processes, uneven shards, {steps} steps: loss sums {ua['loss_sum']:.6f} / {ub['loss_sum']:.6f}")
    if abs(ua["loss_sum"] - ub["loss_sum"]) > tolerance * abs(ua["loss_sum"]):
        sys.exit(f"FAIL: 3 processes with uneven shards train another model ({steps} steps)")
train(1, None, "--resume", run("uneven_1"))
train(3, None, "--resume", run("uneven_3"))
ha = json.load(open(run("uneven_1") + "/state.json"))["history"][0]
hb = json.load(open(run("uneven_3") + "/state.json"))["history"][0]
print(f"3 processes, a test of 70 images: accuracy {ha['test_acc']:.4f} / {hb['test_acc']:.4f}, "
      f"loss {ha['test_loss']:.6f} / {hb['test_loss']:.6f}")
if abs(ha["test_acc"] - hb["test_acc"]) > 1.5 / 70 or abs(ha["test_loss"] - hb["test_loss"]) > 1e-3 * ha["test_loss"]:
    sys.exit("FAIL: the sharded test of 70 images differs")

# Per-process batch norm runs, and says so.
r = train(2, run("per_process"), "--batch-norm-stats", "per-process", "--max-steps", "1", "--overwrite")
if "per process" not in r.stdout:
    sys.exit("FAIL: per-process batch norm is not announced")

# GPUs: each process takes a GPU of its own (NCCL), by its place on its machine, so a GPU named by
# number is refused; where no GPU is visible, --device cuda is a one-line error and auto the CPU.
r = train(2, run("gpu_named"), "--device", "cuda:1", "--max-steps", "1", "--overwrite", check=False)
if r.returncode == 0 or "give --device cuda" not in r.stderr:
    sys.exit(f"FAIL: --device cuda:1 on 2 processes was not refused:\n{r.stdout}\n{r.stderr}")
if subprocess.run(["sh", "-c", "nvidia-smi -L"], capture_output=True).returncode != 0:
    r = train(2, run("gpu_none"), "--device", "cuda", "--max-steps", "1", "--overwrite", check=False)
    if r.returncode == 0 or "no GPU is visible" not in r.stderr:
        sys.exit(f"FAIL: --device cuda on 2 processes without a GPU did not fail so:\n{r.stdout}\n{r.stderr}")
    r = train(2, run("gpu_auto"), "--device", "auto", "--max-steps", "1", "--overwrite")
    if "the CPU (no GPU is visible)" not in r.stdout:
        sys.exit(f"FAIL: --device auto on 2 processes without a GPU does not say it takes the CPU:\n{r.stdout}")
    print("2 processes: --device cuda:1 refused, --device cuda without a GPU a one-line error, auto the CPU")

# A process killed mid-epoch ends the job with a non-zero exit naming it; the run resumes.
long_run = COMMON[:COMMON.index("--limit-train") + 1] + ["100000"] + COMMON[COMMON.index("--limit-train") + 2:]
out = run("killed")
cmd = ["mpirun", "-np", "2", "--oversubscribe", DENSENET, "train"] + long_run + ["--out", out, "--overwrite"]
job = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
victim = None
for _ in range(600):  # the processes train once state.json is written
    time.sleep(0.1)
    if os.path.exists(os.path.join(out, "state.json")):
        pids = subprocess.run(["pgrep", "-f", f"{DENSENET} train .*--out {out}"], capture_output=True, text=True).stdout.split()
        pids = [p for p in pids if int(p) != job.pid]
        if len(pids) >= 2:
            victim = int(sorted(pids, key=int)[-1])
            break
if victim is None:
    job.kill()
    sys.exit("FAIL: the job never started training")
time.sleep(2.0)
killed_at = time.time()
os.kill(victim, signal.SIGKILL)
try:
    log, _ = job.communicate(timeout=60)
except subprocess.TimeoutExpired:
    job.kill()
    sys.exit("FAIL: the job went on for a minute after one of its processes was killed")
elapsed = time.time() - killed_at
print(f"a process killed: the job ended {elapsed:.1f} s later with exit status {job.returncode}")
if job.returncode == 0:
    sys.exit("FAIL: the job exited 0 after a process was killed")
if "rank" not in log and "process" not in log:
    sys.exit("FAIL: nothing says which process failed:\n" + log)
r = train(2, None, "--resume", out, "--max-steps", "2")
if "resuming" not in r.stdout:
    sys.exit("FAIL: the killed run did not resume:\n" + r.stdout)
print("OK")
