"""Fashion-MNIST images as CIFAR-10 binary records: real pictures to learn from, in CIFAR-10's exact
format, quick to load. Each 28x28 image is padded to 32x32 and its grey plane repeated as R, G and B.
"""
import gzip
import os

import numpy as np

FASHION = "/usr/share/datasets/fashion-mnist"
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def read_idx(path):
    with gzip.open(path) as f:
        data = f.read()
    n = int.from_bytes(data[4:8], "big")
    if data[3] == 3:
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, 28, 28)
    return np.frombuffer(data, np.uint8, offset=8)


def write_cifar(dir, per_train_file, test_count):
    """data_batch_1..5.bin of per_train_file images each, test_batch.bin of test_count (images from
    50000 on, which no training file holds), and batches.meta.txt."""
    os.makedirs(dir, exist_ok=True)
    images = read_idx(f"{FASHION}/train-images-idx3-ubyte.gz")
    labels = read_idx(f"{FASHION}/train-labels-idx1-ubyte.gz")

    def records(first, count):
        out = bytearray()
        for i in range(first, first + count):
            img = np.pad(images[i], 2)
            out += bytes([labels[i]]) + np.stack([img, img, img]).tobytes()
        return bytes(out)

    for f in range(5):
        with open(f"{dir}/data_batch_{f + 1}.bin", "wb") as out:
            out.write(records(f * per_train_file, per_train_file))
    with open(f"{dir}/test_batch.bin", "wb") as out:
        out.write(records(50000, test_count))
    with open(f"{dir}/batches.meta.txt", "w") as out:
        out.write("\n".join(CLASSES) + "\n\n")
