#!/usr/bin/python3
"""What a run does when the machine refuses: a disk that fills in the middle of a save, a run folder
that turns read-only, data files that disappear while it runs, and SIGTERM (as a service manager
or `kill` sends). Each time: a clear one-line error (or a clean stop), a non-zero exit where the run
could not go on, and the previous checkpoint intact, loadable, and resumable once the cause is gone.

The disk is a small tmpfs mounted for the test, so it needs root (CI runs as root); without it the
test says so and is skipped (exit 77).
Usage: check_refusals.py DENSENET WORK_DIR
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import safetensors_lite  # noqa: E402

DENSENET, WORK = sys.argv[1], sys.argv[2]
FAILURES = []
FASHION = "/usr/share/datasets/fashion-mnist"


def check(condition, what):
    if not condition:
        FAILURES.append(what)
    print(("ok:   " if condition else "FAIL: ") + what, flush=True)


def run(*args):
    return subprocess.run([DENSENET, *map(str, args)], capture_output=True, text=True, timeout=900)


def mount(*args):
    try:
        return subprocess.run(["mount", *args], capture_output=True, text=True).returncode == 0
    except FileNotFoundError:  # no mount(8) on this machine
        return False


def loads(path):
    try:
        safetensors_lite.load(path)
        return True
    except Exception:
        return False


if os.path.ismount(WORK):
    subprocess.run(["umount", WORK])
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
data = f"{WORK}/data"
shutil.copytree(FASHION, data)
TRAIN = ["train", "--dataset", "fashion-mnist", "--data-dir", data, "--input-size", 32, "--batch-size", 16,
         "--limit-train", 64, "--limit-test", 32, "--threads", 1]

# 0. A batch that cannot fit in memory is refused before anything is allocated, naming the largest
#    that fits (read back and checked against the complexity report's own figure).
import re  # noqa: E402
out = f"{WORK}/too_big"
start = time.time()
p = run("train", "--dataset", "fashion-mnist", "--data-dir", data, "--batch-size", 200000, "--out", out)
error = p.stderr.strip()
check(p.returncode == 1 and error.count("\n") == 0 and "largest batch that fits is" in error,
      f"an impossible batch: one line naming the largest that fits ({error})")
check(not os.path.exists(out) and time.time() - start < 60, "refused before anything is allocated or written")
fits = int(re.search(r"largest batch that fits is (\d+)", error).group(1)) if "fits is" in error else 0
available = int(re.search(r"but ([\d,]+) B", error).group(1).replace(",", "")) if " B " in error else 0
report = json.loads(run("complexity", "--num-classes", 10, "--batch-size", max(fits, 1), "--memory-gib", available / 2**30,
                        "--no-scratchpad", "--json").stdout.strip().splitlines()[-1])
check(0 < fits <= report["max_batch"]["training"] and report["engine_memory_bytes"]["training"]["total"] <= available,
      f"the largest batch named ({fits}; the report's, without the loaders' buffers: {report['max_batch']['training']}) "
      "fits by the complexity report's count")
# A weight average is counted: its Parameters (an inference network's state, by the report), and
# with --test-ema the second inference network that tests it (its arena and its weights in oneDNN's
# layouts, at least the 4 bytes of each parameter).
def needed(*flags):
    p = run("train", "--dataset", "fashion-mnist", "--data-dir", data, "--batch-size", 200000, *flags, "--out", out)
    found = re.search(r"needs ([\d,]+) B", p.stderr)
    return int(found.group(1).replace(",", "")) if p.returncode == 1 and found else 0


plain, kept, tested = needed(), needed("--ema-decay", 0.99), needed("--ema-decay", 0.99, "--test-ema")
check(plain > 0 and kept - plain == report["engine_memory_bytes"]["inference"]["state"],
      f"--ema-decay adds the average's parameters and buffers to what a run needs ({kept - plain} B more)")
check(tested - kept >= 4 * report["parameters"],
      f"--test-ema adds the network that tests the average ({tested - kept} B more)")

# 1. SIGTERM is Ctrl-C: the run stops after its step, saves, exits 130, and resumes.
out = f"{WORK}/term"
proc = subprocess.Popen([DENSENET, *map(str, [*TRAIN, "--epochs", 50, "--limit-train", 640, "--out", out])],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
for line in proc.stderr:
    if line.startswith("epoch 2/50"):  # one save behind it, and mid-epoch
        break
proc.send_signal(signal.SIGTERM)
stdout, _ = proc.communicate(timeout=300)
check(proc.returncode == 130 and "--resume" in stdout, f"SIGTERM stops the run cleanly (exit {proc.returncode})")
state = json.load(open(f"{out}/state.json"))
check(state["epoch"] == 2 and state["next_batch"] > 0, "SIGTERM's save is of the batch it stopped at")
p = run("train", "--resume", out, "--epochs", 2)
check(p.returncode == 0 and "Iteration: 2 / 2" in p.stdout, "a run stopped by SIGTERM resumes")
p = run("eval", "--checkpoint", f"{out}/last.safetensors", "--data-dir", data, "--batch-size", 10**7)
check(p.returncode == 1 and p.stderr.count("\n") == 1 and "largest batch that fits" in p.stderr,
      f"eval refuses a batch that cannot fit, too ({p.stderr.strip()[-80:]})")

# 2. Data that disappears mid-run: the data set is read whole at the start, so the run goes on; a
#    later resume names the missing file.
out = f"{WORK}/vanishing"
proc = subprocess.Popen([DENSENET, *map(str, [*TRAIN, "--epochs", 2, "--out", out])], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
for line in proc.stderr:
    if line.startswith("epoch 1/2"):
        break
images = f"{data}/train-images-idx3-ubyte.gz"
os.rename(images, images + ".moved")
stdout, stderr = proc.communicate(timeout=300)
check(proc.returncode == 0 and "Iteration: 2 / 2" in stdout, "a run whose data files disappear goes on (read at the start)")
p = run("train", "--resume", out, "--epochs", 3)
check(p.returncode == 1 and p.stderr.count("\n") == 1 and "train-images-idx3-ubyte" in p.stderr,
      f"a resume without its data: one line naming the missing file ({p.stderr.strip()})")
os.rename(images + ".moved", images)

# 3. A disk that fills mid-save, and a run folder that turns read-only: on a small tmpfs.
disk = f"{WORK}/disk"
os.makedirs(disk)
if not mount("-t", "tmpfs", "-o", "size=150m", "tmpfs", disk):
    print("SKIP: cannot mount a tmpfs (not root?): the full-disk and read-only checks need one")
    sys.exit(77 if not FAILURES else 1)
try:
    # densenet121's weights are 28 MB and Adam's state 56: the start (init, last and its state,
    # 112 MB) fits in 150 MB, the first epoch's save (last and best with their states) does not.
    out = f"{disk}/run"
    p = run(*TRAIN, "--epochs", 2, "--out", out)
    check(p.returncode == 1, f"a full disk stops the run (exit {p.returncode})")
    error = p.stderr.strip().splitlines()[-1]  # after the progress bars
    check(error.startswith("error:") and "disk full" in error, f"with one line saying why ({error})")
    state = json.load(open(f"{out}/state.json"))
    check(state["epoch"] == 1 and state["optimizer_steps"] == 0, "state.json is still the last committed save's")
    check(loads(f"{out}/last.safetensors") and loads(f"{out}/init.safetensors"), "the previous checkpoint loads")
    leftovers = [f for f in os.listdir(out) if ".tmp." in f]
    check(not leftovers, f"no half-written temporaries left ({leftovers})")
    mount("-o", "remount,size=400m", disk)
    p = run("train", "--resume", out)
    check(p.returncode == 0 and "Iteration: 2 / 2" in p.stdout, "with room again, the run resumes and finishes")
    p = run("eval", "--checkpoint", f"{out}/last.safetensors", "--data-dir", data, "--limit", 16)
    check(p.returncode == 0, "and its checkpoint evaluates")

    # Read-only: the run folder turns read-only (a read-only bind mount over it) after the first
    # epoch's save.
    shutil.rmtree(out)  # room for the next run
    out = f"{disk}/readonly"
    proc = subprocess.Popen([DENSENET, *map(str, [*TRAIN, "--epochs", 3, "--limit-train", 320, "--out", out])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if line.startswith("epoch 2/3"):
            break
    check(mount("--bind", out, out) and mount("-o", "remount,bind,ro", out), "the run folder is made read-only")
    stdout, stderr = proc.communicate(timeout=300)
    subprocess.run(["umount", out])
    error = (stderr.strip().splitlines() or [""])[-1]
    check(proc.returncode == 1 and error.startswith("error:") and "Read-only" in error,
          f"a read-only run folder stops the run with an error (exit {proc.returncode}: {error})")
    state = json.load(open(f"{out}/state.json"))
    check(state["epoch"] == 2 and loads(f"{out}/last.safetensors"), "the epoch-1 checkpoint is intact")
    p = run("train", "--resume", out)
    check(p.returncode == 0 and "Iteration: 3 / 3" in p.stdout, "writable again, the run resumes and finishes")
finally:
    subprocess.run(["umount", "-l", disk])

if FAILURES:
    print(f"{len(FAILURES)} failures")
    sys.exit(1)
print("every refusal handled")
