#!/usr/bin/python3
"""Writes the fuzzers' seed corpora into fuzz/corpus/<target>/: small real files of every format
each reader takes, made by the tools that make them in the wild (torch.save, PIL, gzip), so that the
fuzzer starts from valid inputs and mutates its way into the corners. The files are committed;
this script says where they came from. Usage: /usr/bin/python3 fuzz/make_seed_corpus.py
"""
import gzip
import io
import json
import os
import struct
import sys
import tempfile

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "python"))
import safetensors_lite  # noqa: E402
from make_image_reference import write_png  # noqa: E402  (the PNG kinds PIL does not write)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
# Seeds are rewritten; inputs that once found a bug (regression-*, added by hand) stay.
for target in os.listdir(ROOT) if os.path.isdir(ROOT) else []:
    for name in os.listdir(os.path.join(ROOT, target)):
        if not name.startswith("regression-"):
            os.remove(os.path.join(ROOT, target, name))


def put(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


def split(first, second):  # fuzz_split's layout: a ratio byte, then both files
    return bytes([min(255, round(255 * len(first) / max(1, len(first) + len(second))))]) + first + second


torch.manual_seed(0)
tiny = torchvision.models.DenseNet(growth_rate=4, block_config=(1, 1), num_init_features=8, bn_size=1, num_classes=2)
sd = tiny.state_dict()

# safetensors: a state_dict, and one with the metadata densenet train writes.
buf = os.path.join(ROOT, "tmp.safetensors")
os.makedirs(ROOT, exist_ok=True)
safetensors_lite.save(sd, buf)
put("fuzz_safetensors", "tiny.safetensors", open(buf, "rb").read())
safetensors_lite.save(sd, buf, {"format": "densenet.cpp", "arch": "custom", "input_size": "32",
                                "class_names": json.dumps(["a", "b"]), "normalize": "none"})
put("fuzz_safetensors", "tiny_metadata.safetensors", open(buf, "rb").read())
os.remove(buf)

# .pth: both formats, nested, and a view.
for name, obj in [("state_dict", sd), ("nested", {"epoch": 1, "model": sd}),
                  ("views", {"a": torch.arange(6.0).reshape(2, 3).t(), "b": torch.tensor([1, 2])})]:
    for fmt, zip_format in [("zip", True), ("legacy", False)]:
        f = io.BytesIO()
        torch.save(obj, f, _use_new_zipfile_serialization=zip_format)
        put("fuzz_torch_file", f"{name}.{fmt}.pth", f.getvalue())

# IDX: three Fashion-MNIST test images and their labels, gzipped and raw.
with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
    images = f.read(16 + 3 * 784)
with gzip.open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") as f:
    labels = f.read(8 + 3)
images = images[:4] + struct.pack(">I", 3) + images[8:]
labels = labels[:4] + struct.pack(">I", 3) + labels[8:]
put("fuzz_idx", "raw", split(images, labels))
put("fuzz_idx", "gzip", split(gzip.compress(images, mtime=0), gzip.compress(labels, mtime=0)))

# CIFAR-10: two records (label byte, 3072 pixel bytes) and batches.meta.txt.
records = bytes([3]) + bytes(range(256)) * 12 + bytes([7]) + bytes(reversed(range(256))) * 12
meta = "\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]).encode() + b"\n"
put("fuzz_cifar10", "two_records", split(records, meta))

# Images: PNG in each colour type and bit depth, interlaced too; JPEG baseline, progressive, grey, CMYK.
def picture(mode, size=(9, 7)):
    img = Image.new("RGB", size)
    img.putdata([(x * 28 % 256, y * 36 % 256, (x * y * 5) % 256) for y in range(size[1]) for x in range(size[0])])
    return img.convert(mode)


pictures = {}
for mode in ["1", "L", "LA", "RGB", "RGBA", "P", "I"]:  # "I" is saved as 16-bit grey
    f = io.BytesIO()
    picture(mode).save(f, "PNG")
    pictures[f"{mode}.png"] = f.getvalue()
for name, mode, options in [("baseline.jpg", "RGB", {}), ("progressive.jpg", "RGB", {"progressive": True}),
                            ("grey.jpg", "L", {}), ("cmyk.jpg", "CMYK", {})]:
    f = io.BytesIO()
    picture(mode, (17, 11)).save(f, "JPEG", quality=80, **options)
    pictures[name] = f.getvalue()
for name, samples, color_type, bit_depth, interlaced in [
        ("RGB16_interlaced.png", np.arange(5 * 6 * 3, dtype=np.uint16).reshape(5, 6, 3) * 601, 2, 16, True),
        ("grey2.png", np.arange(4 * 9, dtype=np.uint8).reshape(4, 9) % 4, 0, 2, False)]:
    with tempfile.TemporaryDirectory() as tmp:
        write_png(os.path.join(tmp, name), samples, color_type, bit_depth, interlaced)
        with open(os.path.join(tmp, name), "rb") as f:
            pictures[name] = f.read()
for name, data in pictures.items():
    put("fuzz_image", name.replace(";", ""), data)

# An image folder: two classes, a nested folder, PNG and JPEG.
tree = b""
for path, data in [("cat/a.png", pictures["RGB.png"]), ("cat/nested/b.jpg", pictures["baseline.jpg"]),
                   ("dog/c.png", pictures["L.png"])]:
    tree += f"{path}\t{len(data)}\n".encode() + data
put("fuzz_image_folder", "two_classes", tree)

# state.json as densenet train writes it (one epoch done, stopped in the second).
state = {"best_accuracy": 0.5, "correct": 3, "data_wait_seconds": 0.1, "epoch": 2,
         "history": [{"epoch": 1, "seconds": 1.5, "test_acc": 0.5, "test_loss": 0.7, "train_acc": 0.25, "train_loss": 0.9}],
         "loader_busy_seconds": 0.0, "loss_sum": 2.5, "next_batch": 2, "optimizer_steps": 6, "seconds": 0.4, "seen": 8,
         "options": {"arch": "densenet121", "augment": "none", "batch_size": 4, "data_dir": "", "dataset": "cifar10",
                     "epochs": 2, "init": "", "input_size": 32, "limit_test": 0, "limit_train": 0, "lr": 0.0001,
                     "memory": "recompute", "momentum": 0.9, "no_shuffle": False, "normalize": "none",
                     "optimizer": "adam", "precision": "fp32", "seed": 0, "weight_decay": 0.0}}
put("fuzz_run_state", "state.json", json.dumps(state, indent=2).encode())
print("seed corpora written to", ROOT)
