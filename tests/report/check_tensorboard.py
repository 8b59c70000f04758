#!/usr/bin/env python3
"""densenet train's TensorBoard event files, judged by TensorBoard's own readers.

Trains tiny runs on Fashion-MNIST (densenet121 at 32x32, 10 steps an epoch, one thread, so that
runs stopped and resumed give the very numbers of one never stopped) and loads each run folder
with tensorboard's EventAccumulator. Checks:
- the files: named events.out.tfevents.<seconds>.<host>, in name order as written, each opening
  with file_version brain.Event:2, every record passing TensorBoard's own CRC32C checks;
- per step: loss, learning rate and images/s at every step 1..N exactly once;
- per epoch: the four scalars equal metrics.csv's values (as float32), at the epoch's last step;
- the pictures: PNGs of the size the events say, the pixels of the run folder's PNGs;
- the histograms: num, min and max those of last.safetensors' tensor, exact bucket counts;
- a run killed past its checkpoint (simulated exactly, and with a real SIGKILL) and resumed shows
  every step once, with the values of the uninterrupted run: the resumed session's SessionLog
  START makes EventAccumulator forget what the killed one logged past the checkpoint;
- --overwrite leaves only the new run's events; a file that cannot be written is a warning.

Usage: check_tensorboard.py DENSENET WORK_DIR   (run with the test venv's python: tensorboard)
"""
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import errors
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import safetensors_lite  # noqa: E402

DENSENET, WORK = sys.argv[1], sys.argv[2]
FASHION = "/usr/share/datasets/fashion-mnist"
STEPS_PER_EPOCH = 10


def common(limit_train=16 * STEPS_PER_EPOCH):
    return ["--dataset", "fashion-mnist", "--data-dir", FASHION, "--input-size", 32, "--batch-size", 16,
            "--limit-train", limit_train, "--limit-test", 64, "--threads", 1]


STEP_TAGS = ["step/loss", "step/learning_rate", "step/images_per_second"]
EPOCH_TAGS = {"epoch/train_loss": "train_loss", "epoch/train_acc": "train_acc", "epoch/test_loss": "test_loss",
              "epoch/test_acc": "test_acc"}
PICTURES = ["conv0_trained", "conv0_diff", "denselayer1_conv1"]  # each epoch; conv0_init once, at step 0
HISTOGRAMS = ["features.conv0.weight", "features.denseblock1.denselayer1.conv1.weight",
              "features.transition1.conv.weight", "features.denseblock4.denselayer1.conv1.weight",
              "classifier.weight", "classifier.bias"]
FAILURES = []


def check(condition, what):
    if not condition:
        FAILURES.append(what)
        print("FAIL:", what, flush=True)


def train(*args, expect_rc=0):
    p = subprocess.run([DENSENET, "train", *map(str, args)], capture_output=True, text=True)
    if p.returncode != expect_rc:
        print(p.stdout[-3000:], p.stderr[-3000:], sep="\n")
        check(False, f"train {' '.join(map(str, args))}: exit {p.returncode}, expected {expect_rc}")
    return p


def event_files(folder):
    return sorted(f for f in os.listdir(folder) if f.startswith("events.out.tfevents."))


def records(path):
    """Every record's bytes, read by TensorBoard's own TFRecord reader, which checks both CRCs."""
    reader, out = PyRecordReader_New(path), []
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return out
        except errors.DataLossError as e:
            check(False, f"{path}: {e}")
            return out
        out.append(reader.record())


def load(folder):
    acc = EventAccumulator(folder, size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    acc.Reload()
    return acc


def metrics(folder):
    with open(f"{folder}/metrics.csv") as f:
        rows = [line.strip().split(",") for line in f]
    return [dict(zip(rows[0], row)) for row in rows[1:]]


def f32(x):
    return float(np.float32(x))


def check_files(folder, sessions):
    names = event_files(folder)
    check(len(names) == sessions, f"{folder}: {sessions} events files, one a session (got {names})")
    host = re.escape(socket.gethostname())
    check(all(re.fullmatch(rf"events\.out\.tfevents\.\d+\.{host}", n) for n in names),
          f"{folder}: files named as TensorFlow names them: {names}")
    first_times = []
    for name in names:
        recs = records(f"{folder}/{name}")
        events = [event_pb2.Event.FromString(r) for r in recs]
        check(bool(events) and events[0].file_version == "brain.Event:2", f"{name}: starts with brain.Event:2")
        check(len(events) > 1 and events[1].session_log.status == event_pb2.SessionLog.START,
              f"{name}: then a SessionLog START")
        first_times.append(events[0].wall_time)
        # The framing itself, byte for byte: every byte of the file belongs to a record.
        check(os.path.getsize(f"{folder}/{name}") == sum(len(r) + 16 for r in recs), f"{name}: no stray bytes")
    check(first_times == sorted(first_times), f"{folder}: the files' name order is the order they were written")
    return names


def check_run(folder, epochs, reference=None):
    """Everything a finished run of `epochs` epochs logged; against another run's events if given."""
    acc = load(folder)
    tags = acc.Tags()
    last = epochs * STEPS_PER_EPOCH
    epoch_steps = [e * STEPS_PER_EPOCH for e in range(1, epochs + 1)]
    for tag in STEP_TAGS:
        steps = [e.step for e in acc.Scalars(tag)] if tag in tags["scalars"] else []
        check(steps == list(range(1, last + 1)), f"{folder}: {tag} at every step 1..{last} once (got {steps})")
    check(all(e.value == f32(1e-4) for e in acc.Scalars("step/learning_rate")), f"{folder}: learning rate 1e-4")
    check(all(e.value > 0 for e in acc.Scalars("step/images_per_second")), f"{folder}: images/s positive")
    losses = [e.value for e in acc.Scalars("step/loss")]
    check(all(np.isfinite(losses)) and 0 < min(losses), f"{folder}: step losses are finite NLLs")

    rows = metrics(folder)
    for tag, column in EPOCH_TAGS.items():
        events = acc.Scalars(tag)
        check([e.step for e in events] == epoch_steps, f"{folder}: {tag} at steps {epoch_steps}")
        # metrics.csv prints each double's shortest round-trip text: the comparison is exact.
        check([e.value for e in events] == [f32(r[column]) for r in rows],
              f"{folder}: {tag} = metrics.csv's {column} ({[e.value for e in events]} vs {[r[column] for r in rows]})")

    # Pictures: the run folder's PNGs are these, enlarged by an integer factor.
    for name in ["conv0_init"] + PICTURES:
        events = acc.Images(f"pictures/{name}")
        check([e.step for e in events] == ([0] if name == "conv0_init" else epoch_steps),
              f"{folder}: pictures/{name} at the right steps")
        image = Image.open(io.BytesIO(events[-1].encoded_image_string))
        check(image.format == "PNG" and image.size == (events[-1].width, events[-1].height),
              f"{folder}: pictures/{name} is a PNG of the size its event gives")
        pixels = np.asarray(image.convert("RGB"))
        drawn = np.asarray(Image.open(f"{folder}/{name}.png").convert("RGB"))
        factor = drawn.shape[0] // pixels.shape[0]
        check(factor >= 1 and drawn.shape == (pixels.shape[0] * factor, pixels.shape[1] * factor, 3)
              and np.array_equal(drawn[::factor, ::factor], pixels), f"{folder}: pictures/{name} = {name}.png")

    # Histograms of the last epoch against the last checkpoint.
    tensors = safetensors_lite.load(f"{folder}/last.safetensors")[0]
    for name in HISTOGRAMS:
        events = acc.Histograms(f"weights/{name}")
        check([e.step for e in events] == epoch_steps, f"{folder}: weights/{name} at steps {epoch_steps}")
        h = events[-1].histogram_value
        t = tensors[name].double().numpy().ravel()
        check(h.num == t.size and h.min == t.min() and h.max == t.max(),
              f"{folder}: weights/{name}: num, min, max of the checkpoint's tensor")
        check(abs(h.sum - t.sum()) <= 1e-9 * np.abs(t).sum() and abs(h.sum_squares - (t * t).sum()) <= 1e-9 * (t * t).sum(),
              f"{folder}: weights/{name}: sum and sum of squares")
        limits = np.array(h.bucket_limit)
        check(len(limits) == 30 and np.all(np.diff(limits) > 0) and limits[-1] == t.max(),
              f"{folder}: weights/{name}: 30 increasing buckets up to the max")
        edges = np.concatenate([[-np.inf], limits])
        counts = [np.count_nonzero((t > lo) & (t <= hi)) for lo, hi in zip(edges[:-1], edges[1:])]
        check(list(h.bucket) == counts, f"{folder}: weights/{name}: bucket counts")

    if reference:
        # One thread: a run stopped and resumed computes what an uninterrupted one does.
        for tag in ["step/loss", *EPOCH_TAGS]:
            check([(e.step, e.value) for e in acc.Scalars(tag)] == [(e.step, e.value) for e in reference.Scalars(tag)],
                  f"{folder}: {tag} as the uninterrupted run's")
        for name in PICTURES:
            check([e.encoded_image_string for e in acc.Images(f"pictures/{name}")] ==
                  [e.encoded_image_string for e in reference.Images(f"pictures/{name}")],
                  f"{folder}: pictures/{name} as the uninterrupted run's")
        for name in HISTOGRAMS:
            check([e.histogram_value for e in acc.Histograms(f"weights/{name}")] ==
                  [e.histogram_value for e in reference.Histograms(f"weights/{name}")],
                  f"{folder}: weights/{name} as the uninterrupted run's")
    return acc


def without_events(folder, copy):
    shutil.copytree(folder, copy, ignore=lambda _, names: [n for n in names if n.startswith("events.out.tfevents.")])


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)

# 1. An uninterrupted run.
A = f"{WORK}/uninterrupted"
train(*common(), "--epochs", 2, "--out", A)
check_files(A, sessions=1)
reference = check_run(A, epochs=2)

# 2. A kill past a checkpoint, simulated exactly: the run stops at step 7 (a checkpoint), goes on
# to step 13 (past the end of epoch 1, whose records it logs), and then its folder is put back as
# it was at step 7, as if it had been killed at step 13 and its last save were step 7's. The
# resumed session starts at step 8: steps 8..13 and epoch 1's records are logged twice, and
# EventAccumulator must keep only the second.
B = f"{WORK}/killed"
train(*common(), "--epochs", 2, "--out", B, "--max-steps", 7)
without_events(B, f"{WORK}/killed-at-7")
train("--resume", B, "--max-steps", 6, "--threads", 1)
orphans = load(B)
check([e.step for e in orphans.Scalars("step/loss")] == list(range(1, 14)), "before the kill: steps 1..13 logged")
for name in os.listdir(B):
    if not name.startswith("events.out.tfevents."):
        os.remove(f"{B}/{name}")
for name in os.listdir(f"{WORK}/killed-at-7"):
    shutil.copy(f"{WORK}/killed-at-7/{name}", B)
train("--resume", B, "--threads", 1)
names = check_files(B, sessions=3)
starts = [[e.step for e in map(event_pb2.Event.FromString, records(f"{B}/{n}")) if e.HasField("session_log")]
          for n in names]
check(starts == [[0], [8], [8]], f"sessions start at steps 0, 8, 8 (got {starts})")
check_run(B, epochs=2, reference=reference)

# 3. A real SIGKILL mid-epoch, before any save but the first (30 steps an epoch here, killed
# after 3 or more are logged): all it logged past step 0 goes.
C = f"{WORK}/sigkill"
proc = subprocess.Popen([DENSENET, "train", *map(str, common(limit_train=480)), "--epochs", "1", "--out", C],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
killed_steps = []
while proc.poll() is None and len(killed_steps) < 3:
    time.sleep(0.02)
    if os.path.isdir(C) and event_files(C):
        acc = load(C)
        killed_steps = [e.step for e in acc.Scalars("step/loss")] if "step/loss" in acc.Tags()["scalars"] else []
proc.send_signal(signal.SIGKILL)
proc.wait()
killed_steps = [e.step for e in load(C).Scalars("step/loss")]
check(3 <= len(killed_steps) < 30, f"killed mid-epoch, after {len(killed_steps)} logged steps")
train("--resume", C, "--threads", 1)
check_files(C, sessions=2)
resumed = load(C)
check([e.step for e in resumed.Scalars("step/loss")] == list(range(1, 31)), "after a SIGKILL and --resume: every step once")
check(len(resumed.Images("pictures/conv0_init")) == 1, "conv0_init logged once")

# 4. --overwrite: only the new run's events remain.
train(*common(), "--epochs", 1, "--out", A, "--overwrite")
check_files(A, sessions=1)
check([e.step for e in load(A).Scalars("step/loss")] == list(range(1, STEPS_PER_EPOCH + 1)), "--overwrite starts afresh")

# 5. An events file that cannot be created is a warning, and the run goes on. The name it must
# take is taken by a folder: one whose seconds cannot be stepped past.
D = f"{WORK}/unwritable"
os.makedirs(f"{D}/events.out.tfevents.{2**63 - 1}.{socket.gethostname()}")
p = train(*common(limit_train=32), "--epochs", 1, "--out", D)
check("warning: no TensorBoard logs" in p.stderr, f"a warning when the events file cannot be created: {p.stderr[-500:]!r}")
check(len(metrics(D)) == 1, "and the run goes on")

if FAILURES:
    print(f"{len(FAILURES)} check(s) failed")
    sys.exit(1)
print("TensorBoard's EventAccumulator reads every step, epoch, picture and histogram of the runs")
