#!/usr/bin/python3
"""`densenet train --recipe fast` done in PyTorch, for the comparison the recipes issue asks for:
the same network (torchvision's DenseNet as densenet-bc-28-16: growth 16, three blocks of 4 layers,
32 initial features, the small-inputs 3x3 stem), the same data (Fashion-MNIST at 28x28, grey repeated
to RGB, RandomHorizontalFlip; RandomCrop(28, padding=3) first with --augment crop,flip, the
recipe's choice before session 6), SGD with momentum 0.9, OneCycleLR to
0.15 per batch, weight decay 1e-4 (5e-4 before session 6) without batch norm and biases, label smoothing 0.1, batch 64,
bf16 autocast, a test with flip averaging after each epoch; and the same way of fitting the steps
to a wall-clock budget: the median of 30 timed steps and of 5 test batches (after untimed ones), then as many
steps, with their epochs' tests, as fit in 94% of what is left, the last epoch ending early (as
fit_to_budget in src/train/time_budget.cpp). A benchmark, not a test: run it alone on the machine.

  /usr/bin/python3 scripts/fast_recipe_pytorch.py [--time-budget 900] [--seed 0] [--threads 2] [--json]
  (or with the peers' python from ../shared/peer/setup-peers.sh for PyTorch 2.x)
"""
import argparse
import gzip
import json
import math
import os
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torchvision

START = time.time()
p = argparse.ArgumentParser()
p.add_argument("--time-budget", type=float, default=900.0, help="seconds of wall time, testing included")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
p.add_argument("--json", action="store_true", help="end with one JSON line")
p.add_argument("--limit", type=int, default=0, help="only the first N training and test images (a smoke run)")
p.add_argument("--augment", choices=["flip", "crop,flip"], default="flip")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)


def idx(name):
    with gzip.open(os.path.join(a.data, name)) as f:
        data = f.read()
    n = int.from_bytes(data[4:8], "big")
    return np.frombuffer(data, np.uint8, offset=16 if data[3] == 3 else 8).reshape((n, 28, 28) if data[3] == 3 else (n,))


train_x = torch.from_numpy(idx("train-images-idx3-ubyte.gz").copy())
train_y = torch.from_numpy(idx("train-labels-idx1-ubyte.gz").astype(np.int64))
test_x = torch.from_numpy(idx("t10k-images-idx3-ubyte.gz").copy()).float().div(255).unsqueeze(1).expand(-1, 3, -1, -1)
test_y = torch.from_numpy(idx("t10k-labels-idx1-ubyte.gz").astype(np.int64))
if a.limit:
    train_x, train_y, test_x, test_y = train_x[:a.limit], train_y[:a.limit], test_x[:a.limit], test_y[:a.limit]

net = torchvision.models.DenseNet(growth_rate=16, block_config=(4, 4, 4), num_init_features=32, bn_size=4, num_classes=10)
net.features.conv0 = nn.Conv2d(3, 32, 3, stride=1, padding=1, bias=False)
del net.features.norm0, net.features.relu0, net.features.pool0
nn.init.kaiming_normal_(net.features.conv0.weight)
BATCH, MAX_LR, PAD = 64, 0.15, 28 // 8
decay = [q for q in net.parameters() if q.ndim > 1]
no_decay = [q for q in net.parameters() if q.ndim <= 1]
criterion = nn.CrossEntropyLoss(label_smoothing=0.1)


def augmented(indices, generator):
    """RandomHorizontalFlip, after RandomCrop(28, padding=3) with --augment crop,flip, on a batch
    of uint8 images, as floats."""
    images = nn.functional.pad(train_x[indices], (PAD, PAD, PAD, PAD))
    out = torch.empty(len(indices), 28, 28, dtype=torch.uint8)
    if a.augment == "crop,flip":
        shifts = torch.randint(0, 2 * PAD + 1, (len(indices), 2), generator=generator)
    else:
        shifts = torch.full((len(indices), 2), PAD)
    flips = torch.rand(len(indices), generator=generator) < 0.5
    for k in range(len(indices)):
        crop = images[k, shifts[k, 0]:shifts[k, 0] + 28, shifts[k, 1]:shifts[k, 1] + 28]
        out[k] = crop.flip(1) if flips[k] else crop
    return out.float().div(255).unsqueeze(1).expand(-1, 3, -1, -1)


def step(opt, scheduler, x, y):
    net.train()
    opt.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = criterion(net(x).float(), y)
    loss.backward()
    opt.step()
    if scheduler:
        scheduler.step()
    return loss.item()


def test():
    net.eval()
    correct, loss = 0, 0.0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for s in range(0, len(test_x), BATCH):
            # Test-time flip: the probabilities of each image and its mirror, averaged.
            x = test_x[s:s + BATCH]
            probs = (net(x).float().softmax(1) + net(x.flip(3)).float().softmax(1)) / 2
            logits = probs.log()
            loss += float(nn.functional.cross_entropy(logits, test_y[s:s + BATCH], reduction="sum"))
            correct += int((logits.argmax(1) == test_y[s:s + BATCH]).sum())
    return loss / len(test_x), correct / len(test_x)


def make_optimizer(lr):
    return torch.optim.SGD([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
                           lr=lr, momentum=0.9)


# Time steps and test batches for the budget fit, then put the weights back (as densenet train does).
generator = torch.Generator().manual_seed(a.seed)
steps_per_epoch = len(train_x) // BATCH
test_batches = math.ceil(len(test_x) / BATCH)
saved = {k: v.clone() for k, v in net.state_dict().items()}
probe = make_optimizer(0.0)
order = torch.randperm(len(train_x), generator=generator)
step_times = []
for s in range(35):  # 30 timed steps after 5 untimed ones, each on its own; their median is the pace
    t0 = time.perf_counter()
    batch = order[s * BATCH:(s + 1) * BATCH]
    step(probe, None, augmented(batch, generator), train_y[batch])
    step_times.append(time.perf_counter() - t0)
step_seconds = float(np.median(step_times[5:]))
net.eval()
test_times = []
with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
    for s in range(6):  # 5 timed test batches after 1 untimed one
        t0 = time.perf_counter()
        net(test_x[s * BATCH:(s + 1) * BATCH])
        test_times.append(time.perf_counter() - t0)
test_batch_seconds = 2 * float(np.median(test_times[1:]))  # each test batch runs twice (flip)
net.load_state_dict(saved)


def fit(spent, step_seconds, epoch_end_seconds):
    """fit_to_budget (src/train/time_budget.cpp): the most steps, each epoch with its end (the
    test), in 96% of the budget left; a last epoch under a tenth of one is not worth its test."""
    left = 0.96 * a.time_budget - spent
    epoch_seconds = steps_per_epoch * step_seconds + epoch_end_seconds
    whole = max(0, int(left // epoch_seconds))
    extra = max(0, int((left - whole * epoch_seconds - epoch_end_seconds) // step_seconds))
    shortest = max(1, (steps_per_epoch + 9) // 10)
    if whole == 0:
        return 1, min(max(extra, shortest), steps_per_epoch)
    if extra < shortest:
        return whole, steps_per_epoch
    return whole + 1, min(extra, steps_per_epoch)


def one_cycle(total, done):
    """OneCycleLR over `total` steps, at step `done`: refitted, it goes on from the same step."""
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=MAX_LR, total_steps=total,
                                               last_epoch=done - 1 if done else -1)


warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*")  # a refitted scheduler's first step
epochs, last = fit(time.time() - START, step_seconds, test_batches * test_batch_seconds)
total_steps = (epochs - 1) * steps_per_epoch + last
print(f"PyTorch {torch.__version__}: {step_seconds:.3f} s a step, {test_batch_seconds:.3f} s a test batch: "
      f"{total_steps} steps, {epochs} epochs (the last of {last} steps) in {a.time_budget:.0f} s", flush=True)

opt = make_optimizer(MAX_LR)
scheduler = one_cycle(total_steps, 0)
history, done, train_seconds, end_seconds = [], 0, 0.0, 0.0
epoch = 0
while epoch < epochs:
    epoch += 1
    order = torch.randperm(len(train_x), generator=generator)
    losses = []
    started = time.time()
    for s in range(steps_per_epoch if epoch < epochs else last):
        batch = order[s * BATCH:(s + 1) * BATCH]
        losses.append(step(opt, scheduler, augmented(batch, generator), train_y[batch]))
    done += len(losses)
    trained = time.time()
    train_seconds += trained - started
    test_loss, accuracy = test()
    history.append({"epoch": epoch, "train_loss": sum(losses) / len(losses), "test_loss": test_loss,
                    "test_acc": accuracy, "elapsed": time.time() - START})
    print(f"epoch {epoch}/{epochs}: train loss {history[-1]['train_loss']:.4f}, test accuracy {100 * accuracy:.2f}%, "
          f"{time.time() - START:.0f} s", flush=True)
    end_seconds += time.time() - trained
    if epoch < epochs:  # refit_to_budget: the rest at the run's mean pace so far
        more, last = fit(time.time() - START, train_seconds / done, end_seconds / epoch)
        new_total = (epoch + more - 1) * steps_per_epoch + last
        if new_total != total_steps:
            epochs, total_steps = epoch + more, new_total
            scheduler = one_cycle(total_steps, done)
            print(f"refitted at {train_seconds / done:.3f} s a step, {end_seconds / epoch:.1f} s after each epoch: "
                  f"{total_steps} steps, {epochs} epochs (the last of {last} steps)", flush=True)
if a.json:
    print(json.dumps({"torch": torch.__version__, "seed": a.seed, "augment": a.augment, "time_budget": a.time_budget,
                      "epochs": epochs, "steps": total_steps,
                      "test_acc": history[-1]["test_acc"], "seconds": time.time() - START, "history": history}))
