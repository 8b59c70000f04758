#!/usr/bin/python3
"""End to end: densenet train, eval and predict as a user runs them, on CIFAR-10-format files made
from real Fashion-MNIST images (so there is something to learn), and on Fashion-MNIST itself.

Checks every output of a run, that a run stopped mid-epoch (--max-steps, and a real Ctrl-C) and
resumed ends with the weights of one never stopped, that `eval` agrees with the run's own test,
that checkpoints start other runs, and that bad input gets a one-line error and a non-zero exit.

Usage: check_train_cli.py DENSENET WORK_DIR
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import safetensors_lite  # noqa: E402
from fashion_as_cifar import read_idx, write_cifar  # noqa: E402

DENSENET, WORK = sys.argv[1], sys.argv[2]
FASHION = "/usr/share/datasets/fashion-mnist"
FAILURES = []


def check(condition, what):
    if not condition:
        FAILURES.append(what)
        print("FAIL:", what, flush=True)


def run(*args, expect_rc=0, **kw):
    p = subprocess.run([DENSENET, *map(str, args)], capture_output=True, text=True, **kw)
    if expect_rc is not None and p.returncode != expect_rc:
        print(p.stdout[-3000:], p.stderr[-3000:], sep="\n")
        check(False, f"{' '.join(map(str, args))}: exit {p.returncode}, expected {expect_rc}")
    return p


def tensors(path):
    return safetensors_lite.load(path)[0]


def same_tensors(a, b):
    ta, tb = tensors(a), tensors(b)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def metrics(path):
    with open(path) as f:
        rows = [line.strip().split(",") for line in f]
    return rows[0], rows[1:]


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
CIFAR = f"{WORK}/cifar"
write_cifar(CIFAR, 64, 96)  # 320 training images, 20 steps of 16 an epoch
COMMON = ["--dataset", "cifar10", "--data-dir", CIFAR, "--input-size", 32, "--batch-size", 16, "--threads", 1]

# 1. A whole run, and everything it writes.
A = f"{WORK}/uninterrupted"
p = run("train", *COMMON, "--epochs", 2, "--out", A)
lines = re.findall(r"^Iteration: (\d+) / 2 ; Training Loss: ([\d.]+) ; Testing Acc: ([\d.]+) ; Time consumed: \d+m \d+s$",
                   p.stdout, re.M)
check(len(lines) == 2, "two lecture-style epoch lines")
for name in ["init.safetensors", "last.safetensors", "last.optim.safetensors", "best.safetensors",
             "best.optim.safetensors", "metrics.csv", "state.json", "loss.png", "loss.svg", "accuracy.png",
             "accuracy.svg", "conv0_init.png", "conv0_trained.png", "conv0_diff.png", "denselayer1_conv1.png"]:
    check(os.path.getsize(f"{A}/{name}") > 0, f"run folder holds {name}")
check(not [f for f in os.listdir(A) if ".tmp" in f or ".part" in f or ".pending" in f], "no temporary files left")
header, rows = metrics(f"{A}/metrics.csv")
check(header == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "lr"], "metrics.csv columns")
check(len(rows) == 2 and float(rows[1][1]) < float(rows[0][1]), "two epochs, training loss falls")
check(abs(float(rows[1][4]) * 100 - float(lines[1][2])) < 1e-3, "metrics.csv test_acc is the printed one")
check(float(rows[1][4]) > 0.3, f"learns something in 2 short epochs (test acc {rows[1][4]}; chance 0.1)")
meta = safetensors_lite.load(f"{A}/last.safetensors")[1]
check(meta.get("arch") == "densenet121" and meta.get("input_size") == "32", "checkpoint metadata: arch, input size")
check(json.loads(meta["class_names"])[9] == "boot", "checkpoint metadata: class names from batches.meta.txt")
# The checkpoint loads in torchvision as it is.
net = torchvision.models.densenet121(num_classes=10)
net.load_state_dict(tensors(f"{A}/last.safetensors"), strict=True)

# 2. Stopped after 13 steps (mid-epoch 1), then resumed: the same weights, optimizer and metrics.
B = f"{WORK}/stopped"
p = run("train", *COMMON, "--epochs", 2, "--out", B, "--max-steps", 13)
check("--resume" in p.stdout, "a stopped run says how to resume")
state = json.load(open(f"{B}/state.json"))
check(state["epoch"] == 1 and state["next_batch"] == 13, "state.json records the position in the epoch")
# Kills in the middle of a save (simulated on copies): a save that never reached state.json is
# discarded; one that did is completed. Either way the run goes on as if nothing had happened.
shutil.copytree(B, f"{WORK}/rolled_back")
shutil.copy(f"{B}/init.safetensors", f"{WORK}/rolled_back/last.safetensors.pending")
shutil.copy(f"{B}/last.optim.safetensors", f"{WORK}/rolled_back/last.optim.safetensors.pending")
shutil.copytree(B, f"{WORK}/rolled_forward")
for name in ["last.safetensors", "last.optim.safetensors"]:
    os.rename(f"{WORK}/rolled_forward/{name}", f"{WORK}/rolled_forward/{name}.pending")
shutil.copy(f"{B}/init.safetensors", f"{WORK}/rolled_forward/last.safetensors")  # an older save's file
run("train", "--resume", B, "--threads", 1)
check(same_tensors(f"{A}/last.safetensors", f"{B}/last.safetensors"), "resumed run ends with the same weights")
for folder in ["rolled_back", "rolled_forward"]:
    run("train", "--resume", f"{WORK}/{folder}", "--threads", 1)
    check(same_tensors(f"{A}/last.safetensors", f"{WORK}/{folder}/last.safetensors"),
          f"a save cut short by a kill is {folder.replace('_', ' ')} on resume")
    check(not [f for f in os.listdir(f"{WORK}/{folder}") if ".pending" in f], f"{folder}: no pending files left")
check(same_tensors(f"{A}/last.optim.safetensors", f"{B}/last.optim.safetensors"), "and the same Adam state")
check([r[:5] for r in metrics(f"{B}/metrics.csv")[1]] == [r[:5] for r in rows], "and the same metrics")
# A kill between the saves of the weights, the optimizer state and state.json is detected.
shutil.copytree(B, f"{WORK}/torn")
shutil.copy(f"{WORK}/torn/init.safetensors", f"{WORK}/torn/last.safetensors")
p = run("train", "--resume", f"{WORK}/torn", expect_rc=1)
check("different steps" in p.stderr, "a resume from files of different moments is refused")
p = run("train", "--resume", B, "--lr", 0.1, expect_rc=1)
check(p.stderr.startswith("error:") and "cannot be changed" in p.stderr, "--resume refuses changed options")

# 2b. A recipe beyond the lecture's (AdamW without decay on BN and biases, OneCycleLR per batch,
# label smoothing, clipping), stopped mid-epoch and resumed: the schedule picks up at the step
# where it stopped, so the run ends as an uninterrupted one; metrics.csv's lr is OneCycleLR's.
RECIPE = ["--optimizer", "adamw", "--no-decay-bn-bias", "--schedule", "onecycle", "--lr", 2e-3, "--label-smoothing", 0.1,
          "--clip-grad-norm", 2.0, "--ema-decay", 0.9, "--test-ema", "--limit-train", 160, "--limit-test", 64,
          "--epochs", 2]
R1, R2 = f"{WORK}/recipe", f"{WORK}/recipe_stopped"
p = run("train", *COMMON, *RECIPE, "--out", R1)
check("recipe: OneCycleLR per batch, max lr 0.002" in p.stdout and "decoupled weight decay 0.01 (not on batch norm" in
      p.stdout and "label smoothing 0.1" in p.stdout and "clipped to norm 2" in p.stdout,
      f"the recipe's choices are printed, with AdamW's default decay: {p.stdout[:600]}")
run("train", *COMMON, *RECIPE, "--out", R2, "--max-steps", 7)
run("train", "--resume", R2, "--threads", 1)
check(same_tensors(f"{R1}/last.safetensors", f"{R2}/last.safetensors") and
      same_tensors(f"{R1}/last.optim.safetensors", f"{R2}/last.optim.safetensors") and
      same_tensors(f"{R1}/ema.safetensors", f"{R2}/ema.safetensors"),
      "a recipe run stopped and resumed ends with the weights, AdamW state and EMA of one never stopped")
check("EMA of the weights and batch norm statistics, decay 0.9, tested" in p.stdout, "the EMA is announced")
p = run("eval", "--checkpoint", f"{R1}/ema.safetensors", "--dataset", "cifar10", "--data-dir", CIFAR, "--limit", 64,
        "--json")
ema_eval, last_epoch = json.loads(p.stdout.strip().splitlines()[-1]), metrics(f"{R1}/metrics.csv")[1][-1]
check(abs(ema_eval["loss"] - float(last_epoch[3])) <= 1e-4 * float(last_epoch[3]),
      f"--test-ema tests ema.safetensors: eval of it gives the last epoch's test loss ({ema_eval['loss']} vs "
      f"{last_epoch[3]})")
opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2e-3)
one_cycle = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=20)
torch_lrs = []
for _ in range(20):
    torch_lrs.append(opt.param_groups[0]["lr"])
    opt.step()
    one_cycle.step()
recipe_rows = metrics(f"{R1}/metrics.csv")[1]
check([float(r[6]) for r in recipe_rows] == [torch_lrs[9], torch_lrs[19]],
      f"metrics.csv's lr is OneCycleLR's at each epoch's last step ({[r[6] for r in recipe_rows]} vs "
      f"{[torch_lrs[9], torch_lrs[19]]})")
check(json.load(open(f"{R1}/state.json"))["options"]["schedule"] == "onecycle", "state.json records the recipe")
p = run("train", "--resume", R2, "--schedule", "cosine", expect_rc=1)
check("cannot be changed" in p.stderr, "--resume refuses another schedule")
p = run("train", *COMMON, *RECIPE, "--warmup-epochs", 1, "--out", f"{WORK}/bad", expect_rc=1)
check(p.stderr.startswith("error:") and "warms up" in p.stderr, f"OneCycleLR with a warmup is refused: {p.stderr}")

# 2c. --recipe fast with a time budget: its choices are printed and recorded, the flags given
# override them, and the number of epochs comes from the measured speed of the first steps.
FAST = f"{WORK}/fast"
p = run("train", *COMMON, "--recipe", "fast", "--time-budget", "25s", "--limit-train", 320, "--limit-test", 96,
        "--out", FAST)
options = json.load(open(f"{FAST}/state.json"))["options"]
check("recipe fast chose: --arch densenet-bc-28-16" in p.stdout and "--schedule onecycle" in p.stdout and
      "--batch-size" not in p.stdout.split("recipe fast chose:")[1].split("\n")[0],
      f"the fast recipe's choices are printed, without those the command line made: {p.stdout[:500]}")
check(options["recipe"] == "fast" and options["arch"] == "densenet-bc-28-16" and options["batch_size"] == 16 and
      options["input_size"] == 32 and options["time_budget"] == 25 and options["precision"] == "bf16",
      f"state.json records the recipe's choices and the flags given: {options}")
budget = re.search(r"time budget 0m 25s: ([\d.]+) s a step \(20 an epoch\), ([\d.]+) s a test batch \(6\): (\d+) steps, "
                   r"(\d+) epochs(?:, the last of (\d+) steps)?\n", p.stdout)
# After each epoch the rest is fitted again at the run's pace so far; the last fit is the one run.
refits = re.findall(r"time budget: [\d.]+ s a step and [\d.]+ s after each epoch so far: now (\d+) steps, (\d+) epochs"
                    r"(?:, the last of (\d+) steps)?\n", p.stdout)
state = json.load(open(f"{FAST}/state.json"))
if budget:
    fitted = int(budget[3]) * float(budget[1]) + int(budget[4]) * 6 * float(budget[2])
    check(fitted <= 25 or int(budget[3]) <= 2, f"the fitted steps' estimated time ({fitted:.1f} s) is within the budget")
    steps, epochs, last = refits[-1] if refits else budget.groups()[2:5]
    steps, epochs, last = int(steps), int(epochs), int(last or 20)
    check(epochs == options["epochs"] == len(metrics(f"{FAST}/metrics.csv")[1]) and
          options["last_epoch_batches"] == (last if last < 20 else 0) and steps == 20 * (epochs - 1) + last and
          state["optimizer_steps"] == steps,
          f"the steps are fitted to the budget, all of them run, the last epoch ending early where it must: {p.stdout[-800:]}")
else:
    check(False, f"the time budget's fit is printed: {p.stdout[:800]}")
# The run's own fit is kept through a stop: resumed, it trains the steps it fitted and no more.
FAST_STOPPED = f"{WORK}/fast_stopped"
p = run("train", *COMMON, "--recipe", "fast", "--time-budget", "25s", "--limit-train", 320, "--limit-test", 96,
        "--out", FAST_STOPPED, "--max-steps", 30)
fitted = json.load(open(f"{FAST_STOPPED}/state.json"))["options"]
run("train", "--resume", FAST_STOPPED)
resumed = json.load(open(f"{FAST_STOPPED}/state.json"))
check(resumed["optimizer_steps"] == 20 * (fitted["epochs"] - 1) + (fitted["last_epoch_batches"] or 20) and
      len(metrics(f"{FAST_STOPPED}/metrics.csv")[1]) == fitted["epochs"],
      f"a budget run stopped and resumed trains the steps it fitted: {resumed['optimizer_steps']} steps, {fitted}")
# The recipe tests with flip averaging (--test-tta flip): its last test is eval --tta flip's of its
# last weights, at the run's precision.
check(options["test_tta"] == "flip" and options["memory"] == "keep", f"the fast recipe keeps activations and tests with flips: {options}")
p = run("eval", "--checkpoint", f"{FAST}/last.safetensors", "--dataset", "cifar10", "--data-dir", CIFAR, "--json",
        "--tta", "flip", "--precision", "bf16", "--batch-size", 16, "--threads", 1)
flipped, last = json.loads(p.stdout.strip().splitlines()[-1]), metrics(f"{FAST}/metrics.csv")[1][-1]
check(abs(flipped["accuracy"] - float(last[4])) <= 1.5 / 96 and abs(flipped["loss"] - float(last[3])) <= 1e-3 * float(last[3]),
      f"the run's test with --test-tta flip is eval --tta flip's: {flipped['accuracy']}, {flipped['loss']} vs {last}")
p = run("train", *COMMON, "--epochs", 2, "--time-budget", "1m", "--out", f"{WORK}/bad", expect_rc=1)
check("not both" in p.stderr, "--epochs and --time-budget together are refused")
p = run("train", *COMMON, "--time-budget", "soon", "--out", f"{WORK}/bad", expect_rc=1)
check("not a duration" in p.stderr, "a budget that is not a duration is refused")

# 3. A real Ctrl-C mid-epoch leaves a checkpoint that --resume continues from.
C = f"{WORK}/interrupted"
proc = subprocess.Popen([DENSENET, "train", *map(str, COMMON), "--epochs", "1", "--out", C], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
for line in proc.stderr:  # the bar's first line is drawn after the first step
    if line.startswith("epoch 1/1"):
        break
proc.send_signal(signal.SIGINT)
out, _ = proc.communicate(timeout=300)
check(proc.returncode == 130, f"Ctrl-C exits with 130 (got {proc.returncode})")
state = json.load(open(f"{C}/state.json"))
check(state["epoch"] == 1 and 1 <= state["next_batch"] < 20, f"interrupted mid-epoch ({state['next_batch']} batches)")
run("train", "--resume", C)
check(len(metrics(f"{C}/metrics.csv")[1]) == 1, "the interrupted run finishes its epoch when resumed")

# 4. eval agrees with the run's own test of the same weights.
p = run("eval", "--checkpoint", f"{A}/last.safetensors", "--dataset", "cifar10", "--data-dir", CIFAR, "--json")
result = json.loads(p.stdout.strip().splitlines()[-1])
check(abs(result["accuracy"] - float(rows[1][4])) <= 1.5 / 96, "eval accuracy = the run's last test accuracy")
check(abs(result["loss"] - float(rows[1][3])) <= 1e-3 * float(rows[1][3]), "eval loss = the run's last test loss")
check(result["images"] == 96 and len(result["confusion"]) == 10, "eval sees every test image")
check(sum(map(sum, result["confusion"])) == 96, "the confusion matrix counts every image")
check("confusion matrix" in p.stdout and "trouser" in p.stdout, "eval prints the matrix with class names")
check(result["precision"] == "fp32", "eval runs fp32 by default")
# Test-time flip averaging, against torchvision computing it: the mean of the softmax of each image
# and of its mirror image.
p = run("eval", "--checkpoint", f"{A}/last.safetensors", "--dataset", "cifar10", "--data-dir", CIFAR, "--json",
        "--tta", "flip")
tta = json.loads(p.stdout.strip().splitlines()[-1])
raw = np.frombuffer(open(f"{CIFAR}/test_batch.bin", "rb").read(), np.uint8).reshape(-1, 3073)
x, y = torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255), torch.from_numpy(raw[:, 0].astype(np.int64))
net.load_state_dict(tensors(f"{A}/last.safetensors"))
net.eval()
with torch.no_grad():
    probs = (torch.softmax(net(x), 1) + torch.softmax(net(torch.flip(x, [3])), 1)) / 2
torch_loss = float(torch.nn.functional.nll_loss(torch.log(probs), y))
torch_acc = float((probs.argmax(1) == y).float().mean())
check(tta["tta"] == "flip" and abs(tta["loss"] - torch_loss) <= 1e-4 * torch_loss and abs(tta["accuracy"] - torch_acc) <= 1.5 / 96,
      f"eval --tta flip is torchvision's flip averaging: loss {tta['loss']} vs {torch_loss}, accuracy {tta['accuracy']} "
      f"vs {torch_acc}")
check(tta["loss"] != result["loss"], "and differs from the plain test")
# bf16 mixed precision rounds the activations: the same test within a few images and a few percent of loss.
p = run("eval", "--checkpoint", f"{A}/last.safetensors", "--dataset", "cifar10", "--data-dir", CIFAR, "--json",
        "--precision", "bf16")
bf16 = json.loads(p.stdout.strip().splitlines()[-1])
check(bf16["precision"] in ("bf16", "fp32") and bf16["images"] == 96, "eval --precision bf16 sees every test image")
check(abs(bf16["accuracy"] - result["accuracy"]) <= 4.5 / 96 and abs(bf16["loss"] - result["loss"]) <= 0.05 * result["loss"],
      f"eval --precision bf16 agrees with fp32 (accuracy {bf16['accuracy']} vs {result['accuracy']}, "
      f"loss {bf16['loss']} vs {result['loss']})")

# 5. predict on a PNG and a JPEG; an undecodable file is an error.
img = np.pad(read_idx(f"{FASHION}/t10k-images-idx3-ubyte.gz")[0], 2)
Image.fromarray(img).save(f"{WORK}/grey.png")
Image.fromarray(np.stack([img] * 3, -1)).save(f"{WORK}/rgb.jpg", quality=95)
p = run("predict", "--checkpoint", f"{A}/last.safetensors", f"{WORK}/grey.png", f"{WORK}/rgb.jpg", "--json")
ranked = json.loads(p.stdout.strip().splitlines()[-1])
check(len(ranked) == 2 and all(len(r["top"]) == 5 for r in ranked), "predict gives the top 5 for each image")
probs = [t["probability"] for t in ranked[0]["top"]]
check(probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6, "ranked probabilities")
check(ranked[0]["top"][0]["class"] == ranked[1]["top"][0]["class"], "the same picture as PNG and JPEG agrees")
with open(f"{WORK}/broken.png", "wb") as f:
    f.write(open(f"{WORK}/grey.png", "rb").read()[:60])
p = run("predict", "--checkpoint", f"{A}/last.safetensors", f"{WORK}/broken.png", expect_rc=1)
check(p.stderr.count("\n") == 1 and "broken.png" in p.stderr, "an undecodable image: one line naming it")

# 6. --init: another checkpoint's weights, its classifier replaced when the classes differ.
torch.manual_seed(0)
safetensors_lite.save(torchvision.models.densenet121().state_dict(), f"{WORK}/imagenet_like.safetensors")
safetensors_lite.save(torchvision.models.densenet169(num_classes=10).state_dict(), f"{WORK}/d169.safetensors")
p = run("train", *COMMON, "--epochs", 1, "--limit-train", 32, "--limit-test", 16, "--out", f"{WORK}/init",
        "--init", f"{WORK}/imagenet_like.safetensors")
check("replaced" in p.stdout, "--init says it replaces a 1000-class classifier")
init = tensors(f"{WORK}/init/init.safetensors")
source = tensors(f"{WORK}/imagenet_like.safetensors")
check(torch.equal(init["features.conv0.weight"], source["features.conv0.weight"]), "--init loads the features")
p = run("train", *COMMON, "--out", f"{WORK}/init169", "--init", f"{WORK}/d169.safetensors", expect_rc=1)
check("densenet169" in p.stderr, "--init refuses another architecture")
p = run("eval", "--checkpoint", f"{WORK}/d169.safetensors", "--dataset", "cifar10", "--data-dir", CIFAR,
        "--input-size", 32, "--json")
check(json.loads(p.stdout.strip().splitlines()[-1])["images"] == 96, "eval takes a torchvision state_dict")

# 7. The real Fashion-MNIST, from Debian's package, resized to 32.
p = run("train", "--dataset", "fashion-mnist", "--input-size", 32, "--batch-size", 16, "--epochs", 1,
        "--limit-train", 64, "--limit-test", 32, "--out", f"{WORK}/fashion")
check("Iteration: 1 / 1" in p.stdout, "trains on Fashion-MNIST")
check(json.loads(safetensors_lite.load(f"{WORK}/fashion/best.safetensors")[1]["class_names"])[9] == "Ankle boot",
      "Fashion-MNIST's class names")

# 8. Bad input: one line on stderr, a non-zero exit, nothing half-written.
shutil.copytree(CIFAR, f"{WORK}/truncated")
os.truncate(f"{WORK}/truncated/test_batch.bin", 3073 * 10 - 5)
with open(f"{WORK}/corrupt.safetensors", "wb") as f:
    f.write(open(f"{A}/last.safetensors", "rb").read()[:5000])
os.makedirs(f"{WORK}/not_writable", exist_ok=True)
os.chmod(f"{WORK}/not_writable", 0o500)
cases = [
    (["train", *COMMON, "--batch-size", 0, "--out", f"{WORK}/bad"], "batch-size"),
    (["train", *COMMON, "--arch", "densenet999", "--out", f"{WORK}/bad"], "densenet999"),
    (["train", *COMMON, "--input-size", 16, "--out", f"{WORK}/bad"], "29"),
    (["train", "--dataset", "cifar10", "--data-dir", f"{WORK}/nowhere", "--out", f"{WORK}/bad"], "nowhere"),
    (["train", *COMMON, "--data-dir", f"{WORK}/truncated", "--out", f"{WORK}/bad"], "truncated"),
    (["train", *COMMON, "--out", A], "already holds a run"),
    (["eval", "--checkpoint", f"{WORK}/fashion/best.safetensors", "--dataset", "cifar10", "--data-dir", CIFAR],
     "other classes"),
    (["eval", "--checkpoint", f"{WORK}/corrupt.safetensors", "--dataset", "cifar10", "--data-dir", CIFAR], "corrupt"),
    (["eval", "--checkpoint", f"{WORK}/missing.safetensors", "--dataset", "cifar10", "--data-dir", CIFAR], "missing"),
    (["eval", "--checkpoint", f"{A}/last.safetensors", "--dataset", "cifar10", "--data-dir", CIFAR, "--precision",
      "fp16"], "fp16"),
]
if os.geteuid() != 0:  # root writes anywhere
    cases.append((["train", *COMMON, "--out", f"{WORK}/not_writable/run"], "not_writable"))
cases.append((["train", *COMMON, "--out", "/proc/densenet-run"], "densenet-run"))
for args, fragment in cases:
    p = run(*args, expect_rc=1)
    check(p.stderr.startswith("error:") and p.stderr.count("\n") == 1 and fragment in p.stderr,
          f"{' '.join(map(str, args[:1] + args[-2:]))}: one-line error mentioning '{fragment}', got: {p.stderr[-300:]}")
# --device asks for a GPU: with none visible (hidden here, in case the machine has one), auto is the
# CPU, and cuda is a one-line error.
NO_GPU = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
for args in (["eval", "--checkpoint", f"{A}/last.safetensors", "--dataset", "cifar10", "--data-dir", CIFAR, "--device", "cuda"],
             ["predict", "--checkpoint", f"{A}/last.safetensors", f"{WORK}/grey.png", "--device", "cuda:1"],
             ["eval", "--checkpoint", f"{A}/last.safetensors", "--dataset", "cifar10", "--data-dir", CIFAR, "--device", "tpu"],
             ["train", *COMMON, "--out", f"{WORK}/bad", "--device", "cuda"],
             ["train", "--resume", A, "--epochs", 3, "--device", "cuda:0"]):
    p = run(*args, expect_rc=1, env=NO_GPU)
    check(p.stderr.startswith("error:") and p.stderr.count("\n") == 1 and "--device" in p.stderr,
          f"{' '.join(map(str, args[:1] + args[-2:]))}: one-line error about --device, got: {p.stderr[-300:]}")
p = run("train", *COMMON, "--out", f"{WORK}/bad", "--device", "cpu", "--no-tf32", expect_rc=1)
check(p.stderr.startswith("error:") and p.stderr.count("\n") == 1 and "--no-tf32" in p.stderr,
      f"train --no-tf32 on the CPU: one-line error, got: {p.stderr[-300:]}")
p = run("eval", "--checkpoint", f"{A}/last.safetensors", "--dataset", "cifar10", "--data-dir", CIFAR, "--json",
        "--limit", 16, env=NO_GPU)
check("on the CPU (no GPU is visible)" in p.stdout and json.loads(p.stdout.strip().splitlines()[-1])["device"] == "cpu",
      "eval --device auto without a GPU runs on the CPU and says so")
check(not os.path.exists(f"{WORK}/bad"), "a rejected run writes nothing")
shutil.copytree(A, f"{WORK}/overwritten")
run("train", *COMMON, "--epochs", 1, "--limit-train", 32, "--limit-test", 16, "--out", f"{WORK}/overwritten",
    "--overwrite")
check(len(metrics(f"{WORK}/overwritten/metrics.csv")[1]) == 1, "--overwrite starts the run afresh")
p = run("train", "--no-such-flag", expect_rc=None)
check(p.returncode != 0 and "no-such-flag" in p.stderr, "an unknown flag is refused")
for command in ["train", "eval", "predict", "summary", "complexity", "visualize", "bench"]:
    p = run(command, "--help")
    check("Usage:" in p.stdout and command in p.stdout and "--" in p.stdout, f"{command} --help")
os.chmod(f"{WORK}/not_writable", 0o700)

print(f"{len(FAILURES)} failure(s)")
sys.exit(1 if FAILURES else 0)
