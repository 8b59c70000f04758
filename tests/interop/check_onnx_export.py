"""The ONNX export, judged by the real readers: onnx's checker (full_check, with shape inference)
and ONNX Runtime, against this engine's eval logits (the cases test_onnx_export wrote, at batch 1
and 8 from one model: the batch is dynamic) and against PyTorch's own torchvision model, exported
through the command line from a .pth.

Runs in the project's test environment (scripts/test-venv.sh), which sees Debian's torch.
Usage: check_onnx_export.py DENSENET CASES_DIR
"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision

DENSENET, DIR = sys.argv[1], sys.argv[2]
FAILURES = []


def check(condition, what):
    if not condition:
        FAILURES.append(what)
        print("FAIL:", what, flush=True)


def relative_error(a, b):
    return float(np.linalg.norm((a - b).ravel()) / max(np.linalg.norm(b.ravel()), 1e-30))


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, torch {torch.__version__}")

# 1. The engine's own logits, for each exported model at batch 1 and 8.
cases = json.load(open(os.path.join(DIR, "cases.json")))
check(len(cases) >= 6, "the C++ test wrote its cases")
checked = set()
for c in cases:
    path = os.path.join(DIR, c["model"])
    if path not in checked:
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        check(model.opset_import[0].version >= 13, f"{c['model']}: opset 13 or later")
        meta = {p.key: p.value for p in model.metadata_props}
        check(json.loads(meta["class_names"])[0] == "class 0" and len(json.loads(meta["class_names"])) == c["classes"],
              f"{c['model']}: class names in the metadata")
        check(model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch", f"{c['model']}: dynamic batch")
        checked.add(path)
    x = np.fromfile(os.path.join(DIR, c["input"]), dtype=np.float32).reshape(c["shape"])
    ours = np.fromfile(os.path.join(DIR, c["logits"]), dtype=np.float32).reshape(c["shape"][0], c["classes"])
    theirs = session(path).run(["logits"], {"input": x})[0]
    error = relative_error(theirs, ours)
    print(f"{c['model']} batch {c['shape'][0]}: ONNX Runtime vs engine, relative error {error:.2e}")
    check(error < 1e-4, f"{c['model']} batch {c['shape'][0]}: ONNX Runtime agrees with the engine ({error:.2e})")

# 2. PyTorch's own model: a torchvision densenet121 state_dict saved with torch.save, exported by
#    the command line, run by ONNX Runtime against torchvision in eval mode.
torch.manual_seed(3)
net = torchvision.models.densenet121(num_classes=10)
with torch.no_grad():  # running statistics that are not 0 and 1
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
net.eval()
torch.save(net.state_dict(), os.path.join(DIR, "torchvision121.pth"))
onnx_path = os.path.join(DIR, "torchvision121.onnx")
p = subprocess.run([DENSENET, "export", "--checkpoint", os.path.join(DIR, "torchvision121.pth"), "--onnx", onnx_path,
                    "--input-size", "64"], capture_output=True, text=True)
check(p.returncode == 0, f"densenet export exits 0: {p.stderr}")
onnx.checker.check_model(onnx.load(onnx_path), full_check=True)
x = torch.rand(3, 3, 64, 64)
with torch.no_grad():
    expected = net(x).numpy()
got = session(onnx_path).run(["logits"], {"input": x.numpy()})[0]
error = relative_error(got, expected)
print(f"torchvision densenet121 (10 classes) batch 3 at 64x64: ONNX Runtime vs PyTorch, relative error {error:.2e}")
check(error < 1e-4, f"the exported torchvision model agrees with PyTorch ({error:.2e})")
meta = {p.key: p.value for p in onnx.load(onnx_path).metadata_props}
check(meta["input_size"] == "64" and meta["arch"] == "densenet121", f"metadata of a .pth export: {meta}")

# 3. Bad input: one line, non-zero, nothing written.
p = subprocess.run([DENSENET, "export", "--checkpoint", os.path.join(DIR, "cases.json"), "--onnx",
                    os.path.join(DIR, "bad.onnx")], capture_output=True, text=True)
check(p.returncode == 1 and p.stderr.count("\n") == 1 and not os.path.exists(os.path.join(DIR, "bad.onnx")),
      f"export of a file that is no checkpoint: one line, exit 1, nothing written ({p.stderr!r})")

if FAILURES:
    print(f"{len(FAILURES)} failures")
    sys.exit(1)
print("all ONNX export checks passed")
