#!/usr/bin/python3
"""Writes PIL's and torchvision's results for the image tests (resize, decoding, image folders).

Into OUT/images/ (built in a temporary folder, then renamed into place):
  resize/manifest.txt   one case a line: name channels in_h in_w out_h out_w
  resize/<name>.in      random uint8 image, planar (channels, in_h, in_w)
  resize/<name>.out     PIL's Image.resize((out_w, out_h), BILINEAR) of it, planar
  files/manifest.txt    one image file a line: file channels height width
  files/<file>          PNGs and JPEGs of every kind PIL opens: written by PIL, or by write_png
                        below for what PIL does not write (16-bit colour, 2-bit grey, interlaced)
  files/<file>.expected PIL's decoded pixels, converted to RGB or L as torchvision's loader does
  files/rgb.png.L       rgb.png converted by PIL's convert("L")
  files/truncated.png, files/text.png, files/truncated.jpg   files that must not decode
  folder/               an ImageFolder tree; folder_samples.txt: relative path and label per sample,
                        folder_classes.txt: class names; folder_rgb_<S>.raw and folder_gray_<S>.raw:
                        torchvision's ImageFolder with Resize((S, S)), and Grayscale() first, as uint8
  folder_empty/, folder_bad/, folder_noimages/   trees the loader must reject
"""
import os
import shutil
import struct
import sys
import zlib

import numpy as np
from PIL import Image
import torchvision
import torchvision.transforms as T

RESIZE_CASES = [  # (in_h, in_w, out_h, out_w)
    (32, 32, 224, 224),  # CIFAR-10 for densenet121
    (28, 28, 32, 32),
    (28, 28, 224, 224),  # Fashion-MNIST for densenet121
    (100, 100, 37, 37),  # shrinking by a non-integer factor
    (224, 224, 32, 32),
    (30, 50, 224, 96),  # non-square, up on both axes by different factors
    (48, 20, 20, 48),  # down on one axis, up on the other
    (32, 40, 32, 17),  # height unchanged: Pillow skips the vertical pass
    (40, 32, 17, 32),  # width unchanged: Pillow skips the horizontal pass
    (1, 5, 3, 1),  # degenerate sizes
]
FOLDER_SIZE = 24


def planar(img):
    a = np.asarray(img)
    return (a[None] if a.ndim == 2 else a.transpose(2, 0, 1)).copy()


def write_resize(out, rng):
    os.makedirs(out)
    lines = []
    for mode, channels in (("L", 1), ("RGB", 3)):
        for in_h, in_w, out_h, out_w in RESIZE_CASES:
            shape = (in_h, in_w) if channels == 1 else (in_h, in_w, 3)
            img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
            name = f"{mode}_{in_h}x{in_w}_{out_h}x{out_w}"
            planar(img).tofile(os.path.join(out, name + ".in"))
            planar(img.resize((out_w, out_h), Image.BILINEAR)).tofile(os.path.join(out, name + ".out"))
            lines.append(f"{name} {channels} {in_h} {in_w} {out_h} {out_w}")
    # What users actually run: torchvision's Resize(224) on a CIFAR-sized PIL image.
    img = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "RGB")
    planar(img).tofile(os.path.join(out, "torchvision_resize224.in"))
    planar(T.Resize(224)(img)).tofile(os.path.join(out, "torchvision_resize224.out"))
    lines.append("torchvision_resize224 3 32 32 224 224")
    with open(os.path.join(out, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def smooth_rgb(rng, h, w):
    """A photo-like image (gradients plus mild noise): JPEG decoders are compared on what JPEG is for."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([255 * x / w, 255 * y / h, 128 + 100 * np.sin((x + y) / 5.0)], axis=2)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def write_png(path, samples, color_type, bit_depth, interlaced=False):
    """A PNG of samples (height, width[, components]) as given, unfiltered; Adam7 when interlaced."""
    height, width = samples.shape[:2]
    rows = samples.reshape(height, width, -1)

    def scanlines(part):
        if part.size == 0:
            return b""
        if bit_depth < 8:  # pack grey samples, most significant bits first
            per_byte = 8 // bit_depth
            padded = np.zeros((part.shape[0], -(-part.shape[1] // per_byte) * per_byte), np.uint8)
            padded[:, : part.shape[1]] = part[..., 0]
            shifts = np.arange(per_byte - 1, -1, -1) * bit_depth
            data = (padded.reshape(part.shape[0], -1, per_byte) << shifts).sum(axis=2).astype(np.uint8)
        else:
            data = part.astype(">u2" if bit_depth == 16 else np.uint8).reshape(part.shape[0], -1).view(np.uint8)
        return b"".join(b"\0" + row.tobytes() for row in data)

    if interlaced:  # Adam7: (x0, y0, dx, dy) of each pass
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        raw = b"".join(scanlines(rows[y0::dy, x0::dx]) for x0, y0, dx, dy in passes)
    else:
        raw = scanlines(rows)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, int(interlaced))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_files(out, rng):
    os.makedirs(out)
    rgb = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (13, 17), dtype=np.uint8)
    images = {
        "rgb.png": Image.fromarray(rgb, "RGB"),
        "gray.png": Image.fromarray(rng.integers(0, 256, (19, 11), dtype=np.uint8), "L"),
        "rgba.png": Image.fromarray(np.dstack([rgb, alpha]), "RGBA"),
        "la.png": Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA"),
        "palette.png": Image.fromarray(rgb, "RGB").quantize(16),
        "rgb.jpg": Image.fromarray(smooth_rgb(rng, 37, 29), "RGB"),
        "gray.jpg": Image.fromarray(smooth_rgb(rng, 29, 37)[..., 1], "L"),
        "bilevel.png": Image.fromarray(rng.integers(0, 2, (9, 21), dtype=np.uint8) * 255, "L").convert("1"),
        "gray16.png": Image.fromarray(rng.integers(0, 1000, (7, 9), dtype=np.uint16)),  # PIL clips above 255
        "palette_trns.png": Image.fromarray(rgb, "RGB").quantize(8),
        "palette256.png": Image.fromarray(rgb, "RGB").quantize(200),  # 8 bits an index (palette.png has 4)
        "progressive.jpg": Image.fromarray(smooth_rgb(rng, 45, 33), "RGB"),
        "subsampled444.jpg": Image.fromarray(smooth_rgb(rng, 21, 26), "RGB"),
        "cmyk.jpg": Image.fromarray(smooth_rgb(rng, 23, 19), "RGB").convert("CMYK"),
    }
    save_options = {"palette_trns.png": {"transparency": 3}, "progressive.jpg": {"progressive": True},
                    "subsampled444.jpg": {"subsampling": 0, "quality": 95}}
    lines = []
    written_by_hand = {  # name: (samples, colour type, bit depth, interlaced)
        "rgb16.png": (rng.integers(0, 65536, (6, 11, 3), dtype=np.uint16), 2, 16, False),
        "la16.png": (rng.integers(0, 65536, (5, 7, 2), dtype=np.uint16), 4, 16, False),
        "rgba16.png": (rng.integers(0, 65536, (4, 9, 4), dtype=np.uint16), 6, 16, False),
        "gray2.png": (rng.integers(0, 4, (5, 13), dtype=np.uint8), 0, 2, False),
        "interlaced.png": (rng.integers(0, 256, (19, 23, 3), dtype=np.uint8), 2, 8, True),
        "interlaced_gray.png": (rng.integers(0, 256, (3, 2), dtype=np.uint8), 0, 8, True),
    }
    for name, (samples, color_type, bit_depth, interlaced) in written_by_hand.items():
        write_png(os.path.join(out, name), samples, color_type, bit_depth, interlaced)
    for name in list(images) + list(written_by_hand):
        if name in images:
            images[name].save(os.path.join(out, name), **save_options.get(name, {}))
        # torchvision's loader opens the file and converts to RGB; grey files compared as L.
        with Image.open(os.path.join(out, name)) as decoded:
            grey = decoded.mode in ("1", "L", "LA", "I") or name == "la16.png"  # PIL opens 16-bit LA as RGBA
            mode = "L" if grey else "RGB"
            pixels = planar(decoded.convert(mode))
        pixels.tofile(os.path.join(out, name + ".expected"))
        lines.append(f"{name} {pixels.shape[0]} {pixels.shape[1]} {pixels.shape[2]}")
    planar(images["rgb.png"].convert("L")).tofile(os.path.join(out, "rgb.png.L"))
    with open(os.path.join(out, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "rgb.png"), "rb") as f:
        png = f.read()
    with open(os.path.join(out, "truncated.png"), "wb") as f:
        f.write(png[: len(png) // 2])
    with open(os.path.join(out, "text.png"), "w") as f:
        f.write("this is not a PNG\n")
    with open(os.path.join(out, "rgb.jpg"), "rb") as f:
        jpeg = f.read()
    with open(os.path.join(out, "truncated.jpg"), "wb") as f:
        f.write(jpeg[: len(jpeg) * 2 // 3])


def save(img, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path)


def write_folders(out, rng):
    root = os.path.join(out, "folder")
    rand = lambda h, w, mode: Image.fromarray(  # noqa: E731
        rng.integers(0, 256, (h, w) if mode == "L" else (h, w, 3), dtype=np.uint8), mode)
    # Class names out of order on disk, an upper-case extension, a nested folder, files to skip,
    # grey and RGB images of several sizes (one already at FOLDER_SIZE).
    save(rand(20, 30, "RGB"), os.path.join(root, "zebra", "b.png"))
    save(rand(24, 24, "RGB"), os.path.join(root, "zebra", "a.PNG"))
    save(Image.fromarray(smooth_rgb(rng, 40, 40), "RGB"), os.path.join(root, "zebra", "c.jpeg"))
    save(rand(16, 16, "L"), os.path.join(root, "ant", "img10.png"))
    save(rand(33, 17, "RGB"), os.path.join(root, "ant", "img2.png"))
    save(rand(12, 12, "RGB"), os.path.join(root, "ant", "deeper", "x.png"))
    save(Image.fromarray(smooth_rgb(rng, 30, 30), "RGB"), os.path.join(root, "Bee", "one.JPG"))
    with open(os.path.join(root, "ant", "notes.txt"), "w") as f:
        f.write("not an image\n")
    with open(os.path.join(root, "README"), "w") as f:
        f.write("a file beside the class folders\n")

    rgb = torchvision.datasets.ImageFolder(root, transform=T.Resize((FOLDER_SIZE, FOLDER_SIZE)))
    gray = torchvision.datasets.ImageFolder(root, transform=T.Compose([T.Grayscale(), T.Resize((FOLDER_SIZE, FOLDER_SIZE))]))
    with open(os.path.join(out, "folder_classes.txt"), "w") as f:
        f.write("\n".join(rgb.classes) + "\n")
    with open(os.path.join(out, "folder_samples.txt"), "w") as f:
        f.write("".join(f"{os.path.relpath(p, root)} {label}\n" for p, label in rgb.samples))
    for name, ds in (("rgb", rgb), ("gray", gray)):
        np.stack([planar(ds[i][0]) for i in range(len(ds))]).tofile(os.path.join(out, f"folder_{name}_{FOLDER_SIZE}.raw"))

    os.makedirs(os.path.join(out, "folder_empty"))
    save(rand(8, 8, "RGB"), os.path.join(out, "folder_bad", "cls", "good.png"))
    with open(os.path.join(out, "folder_bad", "cls", "broken.png"), "w") as f:
        f.write("not a PNG\n")
    save(rand(8, 8, "RGB"), os.path.join(out, "folder_noimages", "full", "a.png"))
    os.makedirs(os.path.join(out, "folder_noimages", "empty"))
    with open(os.path.join(out, "folder_noimages", "empty", "notes.txt"), "w") as f:
        f.write("not an image\n")


def main():
    out = os.path.join(sys.argv[1], "images")
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(2024)
    write_resize(os.path.join(tmp, "resize"), rng)
    write_files(os.path.join(tmp, "files"), rng)
    write_folders(tmp, rng)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    print("wrote", out)


if __name__ == "__main__":
    main()
