#!/usr/bin/python3
"""densenet import against PyTorch's own torch.save: files written by Debian's torch 1.13 in both of
its formats (zip, and the legacy stream that torchvision's ImageNet weights use) import bit for
bit, whatever they hold (dtypes, views with offsets and strides, storages shared by several
tensors, nesting, torchvision's old names, nn.DataParallel's prefix); train --init, eval and
predict take a .pth directly; and hostile files (code, unknown globals, truncation, absurd sizes)
each get a one-line error, write nothing, and run nothing.

Usage: check_torch_import.py DENSENET WORK_DIR
"""
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import zipfile
from collections import OrderedDict

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import safetensors_lite  # noqa: E402

DENSENET, WORK = sys.argv[1], sys.argv[2]
FAILURES = []
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)


def check(condition, what):
    if not condition:
        FAILURES.append(what)
        print("FAIL:", what, flush=True)


def run(*args, expect_rc=0):
    p = subprocess.run([DENSENET, *map(str, args)], capture_output=True, text=True, timeout=600)
    if p.returncode != expect_rc:
        print(p.stdout, p.stderr)
        check(False, f"{' '.join(map(str, args))} exited {p.returncode}, expected {expect_rc}")
    return p


# safetensors' dtypes, beyond the three safetensors_lite knows: compared as raw bytes.
DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


def read_safetensors(path):
    import json
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (e["dtype"], e["shape"], raw[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]])
            for k, e in header.items()}


def raw_bytes(t):
    t = t.detach().contiguous()
    return t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()


def expect_same(path, expected, what):
    """The imported file holds exactly `expected` (name -> tensor): names, dtypes, shapes, bytes."""
    got = read_safetensors(path)
    check(sorted(got) == sorted(expected), f"{what}: names {sorted(set(got) ^ set(expected))[:5]} differ")
    for name, t in expected.items():
        if name not in got:
            continue
        dtype, shape, data = got[name]
        ok = DTYPES[dtype] == t.dtype and shape == list(t.shape) and data == raw_bytes(t)
        check(ok, f"{what}: {name} ({dtype} {shape}) is not bit for bit {t.dtype} {list(t.shape)}")


def save_both(obj, stem):
    torch.save(obj, f"{WORK}/{stem}.zip.pth")
    torch.save(obj, f"{WORK}/{stem}.legacy.pth", _use_new_zipfile_serialization=False)
    return [f"{WORK}/{stem}.zip.pth", f"{WORK}/{stem}.legacy.pth"]


def import_ok(path, expected, what):
    out = path + ".safetensors"
    p = run("import", "--torch", path, "--out", out)
    if p.returncode == 0:
        expect_same(out, expected, what)
    return p


torch.manual_seed(0)

# 1. A torchvision DenseNet's state_dict, in both formats.
small = torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2,
                                    num_classes=10)
small.train()
small(torch.rand(4, 3, 32, 32))  # running statistics and num_batches_tracked that are not the defaults
sd = small.state_dict()
for path in save_both(sd, "small"):
    p = import_ok(path, sd, path)
    check("custom with 10 classes" in p.stdout or "densenet" in p.stdout, f"{path}: import says what the model is")

# 2. Tensors that are views (offsets, strides, transposes) and storages shared between tensors,
#    in every dtype safetensors has.
base = torch.arange(48, dtype=torch.float32).reshape(6, 8)
views = OrderedDict([
    ("base", base), ("row", base[2]), ("slice", base[1:4, 2:7]), ("transposed", base.t()), ("strided", base[::2, ::3]),
    ("scalar", base[3, 5]), ("empty", base[:0]), ("expanded", torch.tensor([1.5, -2.0]).expand(3, 2)),
    ("f64", torch.randn(3, 2, dtype=torch.float64)), ("f16", torch.randn(5).half()), ("bf16", torch.randn(7).bfloat16()),
    ("i64", torch.tensor([-(2**62), 3])), ("i32", torch.tensor([-7, 2**30], dtype=torch.int32)),
    ("i16", torch.tensor([-300, 5], dtype=torch.int16)), ("i8", torch.tensor([-128, 127], dtype=torch.int8)),
    ("u8", torch.tensor([0, 255], dtype=torch.uint8)), ("bool", torch.tensor([True, False, True])),
])
for path in save_both(views, "views"):
    import_ok(path, views, path)

# 3. Nested in a training checkpoint (epoch, optimizer state: floats, tuples, lists, bools), with
#    nn.DataParallel's "module." prefix.
optimizer = torch.optim.Adam(small.parameters(), lr=1e-3)
small(torch.rand(2, 3, 32, 32)).sum().backward()
optimizer.step()
wrapped = OrderedDict(("module." + k, v) for k, v in sd.items())
checkpoint = {"epoch": 7, "best_acc": 0.8125, "model": wrapped, "optimizer": optimizer.state_dict(), "note": "résumé"}
for path in save_both(checkpoint, "nested"):
    p = import_ok(path, sd, path)
    check("under 'model'" in p.stdout and "module." in p.stdout, f"{path}: says where the state_dict was and the prefix")

# 4. torchvision's old names (denselayer1.norm.1.weight) and no num_batches_tracked, as in the
#    ImageNet weights, which were saved by PyTorch 0.3 in the legacy format.
old = OrderedDict()
for k, v in sd.items():
    if k.endswith("num_batches_tracked"):
        continue
    for part in ("norm", "relu", "conv"):
        for i in ("1", "2"):
            k = k.replace(f".{part}{i}.", f".{part}.{i}.") if "denselayer" in k else k
    old[k] = v
check(any(".norm.1." in k for k in old), "the fixture has old names")
expected = OrderedDict((k, v if not k.endswith("num_batches_tracked") else torch.tensor(0)) for k, v in sd.items())
for path in save_both(old, "oldnames"):
    p = import_ok(path, expected, path)
    check("renamed" in p.stdout and "num_batches_tracked added" in p.stdout, f"{path}: says what it renamed and added")
    # The imported file loads into torchvision strictly, as torchvision's own loader would load the .pth.
    model = torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2,
                                        num_classes=10)
    model.load_state_dict(safetensors_lite.load(path + ".safetensors")[0], strict=True)

# 4b. The way torchvision's ImageNet weights were written (PyTorch 0.3 on Python 2): the legacy
#     stream, with Python 2's byte strings (SHORT_BINSTRING) for names and torch._utils._rebuild_tensor.
#     Written here by hand, after torch 0.3's serialization.py; torch.load itself must read it back.
class Python2Pickler(pickle._Pickler):
    dispatch = pickle._Pickler.dispatch.copy()

    def save_str(self, obj):
        b = obj.encode("latin-1")
        self.write(pickle.SHORT_BINSTRING + bytes([len(b)]) + b if len(b) < 256 else
                   pickle.BINSTRING + struct.pack("<i", len(b)) + b)
        self.memoize(obj)
    dispatch[str] = save_str


class StorageRef:  # a tensor's storage, as a persistent id names it
    def __init__(self, t, key):
        self.t, self.key = t, key


class OldTensor:  # what torch 0.3's Tensor.__reduce__ returned
    def __init__(self, t, key):
        self.t, self.storage = t, StorageRef(t, key)

    def __reduce__(self):
        return (torch._utils._rebuild_tensor, (self.storage, 0, tuple(self.t.size()), self.t.stride()))


def torch03_save(state_dict, path):
    tensors = OrderedDict((k, OldTensor(t.contiguous(), str(i))) for i, (k, t) in enumerate(state_dict.items()))
    storage_type = {torch.float32: torch.FloatStorage, torch.int64: torch.LongStorage}
    with open(path, "wb") as f:
        for header in (0x1950a86a20f9469cfc6c, 1001, {"protocol_version": 1001, "little_endian": True,
                                                      "type_sizes": {"short": 2, "int": 4, "long": 8}}):
            Python2Pickler(f, protocol=2).dump(header)
        p = Python2Pickler(f, protocol=2)
        p.persistent_id = lambda o: (("storage", storage_type[o.t.dtype], o.key, "cpu", o.t.numel(), None)
                                     if isinstance(o, StorageRef) else None)
        p.dump(tensors)
        Python2Pickler(f, protocol=2).dump([o.storage.key for o in tensors.values()])
        for o in tensors.values():
            f.write(struct.pack("<q", o.t.numel()))
            f.write(o.t.numpy().tobytes())


old_contiguous = OrderedDict((k, v.contiguous()) for k, v in old.items())
torch03_save(old_contiguous, f"{WORK}/torch03.pth")
reloaded = torch.load(f"{WORK}/torch03.pth")
check(list(reloaded) == list(old_contiguous) and all(torch.equal(reloaded[k], v) for k, v in old_contiguous.items()),
      "torch.load reads the hand-written PyTorch 0.3 file (the emulation is faithful)")
check(b"U\x15features.conv0.weight" in open(f"{WORK}/torch03.pth", "rb").read(), "the names are Python 2 byte strings")
p = import_ok(f"{WORK}/torch03.pth", expected, "a PyTorch 0.3 / Python 2 legacy file")
check("renamed" in p.stdout and "num_batches_tracked added" in p.stdout, "torch03.pth: renamed and added")

# 5. train --init, eval and visualize read a .pth directly: torchvision's densenet121, ImageNet-shaped.
torch.manual_seed(1)
d121 = torchvision.models.densenet121().state_dict()
torch.save(d121, f"{WORK}/densenet121_like.pth", _use_new_zipfile_serialization=False)
p = run("train", "--dataset", "fashion-mnist", "--input-size", 32, "--batch-size", 8, "--epochs", 1,
        "--limit-train", 16, "--limit-test", 8, "--out", f"{WORK}/finetune", "--init", f"{WORK}/densenet121_like.pth")
check("replaced" in p.stdout, "train --init x.pth replaces the 1000-class classifier")
init = safetensors_lite.load(f"{WORK}/finetune/init.safetensors")[0]
check(all(torch.equal(init[k], d121[k]) for k in d121 if not k.startswith("classifier")),
      "train --init x.pth starts from the .pth's features, bit for bit")
p = run("eval", "--checkpoint", f"{WORK}/small.zip.pth", "--dataset", "cifar10", "--data-dir", f"{WORK}/nowhere",
        expect_rc=1)
check("nowhere" in p.stderr, "eval reads a .pth (and then reports the missing data, not the checkpoint)")
p = run("visualize", "--checkpoint", f"{WORK}/small.legacy.pth", "--out", f"{WORK}/pictures")
check(os.path.exists(f"{WORK}/pictures/conv0.png"), "visualize reads a .pth")


# 6. Hostile files: a one-line error, a non-zero exit, nothing written, nothing run.
class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {WORK}/pwned",))


def refused(path, words, what):
    out = f"{WORK}/refused.safetensors"
    p = run("import", "--torch", path, "--out", out, expect_rc=1)
    check(p.stderr.count("\n") == 1 and p.stderr.startswith("error: "), f"{what}: one line on stderr: {p.stderr!r}")
    check(any(w in p.stderr for w in words), f"{what}: the error says why ({words}): {p.stderr.strip()}")
    check(not os.path.exists(out) and not any(f.startswith("refused.") for f in os.listdir(WORK)),
          f"{what}: nothing written")
    check(not os.path.exists(f"{WORK}/pwned"), f"{what}: the file's code never ran")


for path in save_both({"weight": torch.ones(2), "payload": Exploit()}, "exploit"):
    refused(path, ["posix.system", "os.system"], f"{path} (calls os.system)")
for path in save_both({"weight": torch.ones(2), "counts": __import__("collections").Counter("ab")}, "counter"):
    refused(path, ["collections.Counter"], f"{path} (an unknown global)")
p = run("eval", "--checkpoint", f"{WORK}/exploit.zip.pth", "--dataset", "cifar10", expect_rc=1)
check("system" in p.stderr and not os.path.exists(f"{WORK}/pwned"), "eval refuses a .pth that holds code")

good_zip, good_legacy = open(f"{WORK}/small.zip.pth", "rb").read(), open(f"{WORK}/small.legacy.pth", "rb").read()
for name, data, words in [
    ("zip_half", good_zip[:len(good_zip) // 2], ["zip", "truncated", "missing", "damaged"]),
    ("zip_head", good_zip[:100], ["zip", "truncated", "damaged", "data.pkl"]),
    ("legacy_half", good_legacy[:len(good_legacy) // 2], ["truncated"]),
    ("legacy_in_pickle", good_legacy[:300], ["truncated"]),
    ("empty", b"", ["not a PyTorch checkpoint", "safetensors"]),
    ("text", b"hello, world\n" * 10, ["not a PyTorch checkpoint", "safetensors"]),
]:
    with open(f"{WORK}/{name}.pth", "wb") as f:
        f.write(data)
    refused(f"{WORK}/{name}.pth", words, name)


# Absurd sizes, in a zip built by hand around a pickle that torch.save's own code would write.
def torch_zip(path, pickled, storages):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickled)
        for key, data in storages.items():
            z.writestr(f"archive/data/{key}", data)


class Storage:  # stands for a storage in persistent_id
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


def pickled_tensor(size, stride, offset, numel):
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=2)
    p.persistent_id = lambda o: ("storage", torch.FloatStorage, o.key, "cpu", o.numel) if isinstance(o, Storage) else None

    class Rebuild:
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, (Storage("0", numel), offset, size, stride, False, OrderedDict()))
    p.dump({"w": Rebuild()})
    return buf.getvalue()


four = struct.pack("<4f", 1, 2, 3, 4)
torch_zip(f"{WORK}/fine.pth", pickled_tensor((2, 2), (2, 1), 0, 4), {"0": four})
p = run("import", "--torch", f"{WORK}/fine.pth", "--out", f"{WORK}/fine.safetensors")
check(read_safetensors(f"{WORK}/fine.safetensors")["w"][2] == four, "a hand-built zip imports (the cases below are real)")
for name, pickled, storages, words in [
    ("huge_size", pickled_tensor((2**40, 2**40), (1, 1), 0, 4), {"0": four}, ["absurdly large", "outside"]),
    ("outside", pickled_tensor((4,), (2,), 0, 4), {"0": four}, ["reads element"]),
    ("offset", pickled_tensor((2,), (1,), 3, 4), {"0": four}, ["reads element"]),
    ("negative", pickled_tensor((-1,), (1,), 0, 4), {"0": four}, ["negative"]),
    ("storage_short", pickled_tensor((4,), (1,), 0, 4), {"0": four[:12]}, ["holds 12 bytes"]),
    ("storage_huge", pickled_tensor((4,), (1,), 0, 2**62), {"0": four}, ["bytes, not the"]),
    ("storage_missing", pickled_tensor((4,), (1,), 0, 4), {}, ["missing"]),
]:
    torch_zip(f"{WORK}/{name}.pth", pickled, storages)
    refused(f"{WORK}/{name}.pth", words, name)

# A legacy file whose storage claims more elements than the file holds.
torch.save(OrderedDict(w=torch.ones(3)), f"{WORK}/one.legacy.pth", _use_new_zipfile_serialization=False)
one = open(f"{WORK}/one.legacy.pth", "rb").read()
size_at = len(one) - 12 - 8  # the 8-byte element count before the last (only) storage's 12 bytes
check(struct.unpack("<q", one[size_at:size_at + 8])[0] == 3, "the legacy layout is as expected")
with open(f"{WORK}/legacy_count.pth", "wb") as f:
    f.write(one[:size_at] + struct.pack("<q", 2**61) + one[size_at + 8:])
refused(f"{WORK}/legacy_count.pth", ["another size"], "a legacy storage whose count is absurd")

if FAILURES:
    print(f"{len(FAILURES)} failures")
    sys.exit(1)
print("all torch import checks passed")
