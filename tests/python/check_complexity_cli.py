#!/usr/bin/python3
"""End to end: `densenet summary` prints torchvision's print(net) line for line, `densenet complexity
--json` ends with the figures, and bad input gets one line of error and exit code 1.

usage: check_complexity_cli.py path/to/densenet
"""
import json
import os
import subprocess
import sys

import torchvision


def run(*args, env=None):
    return subprocess.run([sys.argv[1], *args], capture_output=True, text=True, env=env)


def check_summary(arch, num_classes):
    net = getattr(torchvision.models, arch)(num_classes=num_classes)
    expected = str(net).splitlines()
    p = run("summary", "--arch", arch, "--num-classes", str(num_classes))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    for i, (ours, theirs) in enumerate(zip(lines, expected)):
        assert ours == theirs, f"{arch} line {i + 1}: {ours!r} != {theirs!r}"
    assert len(lines) > len(expected), "nothing after the module tree"
    total = sum(p.numel() for p in net.parameters())
    assert f"Total number of parameters: {total}" in lines, "no parameter count line"
    print(f"summary {arch}/{num_classes}: {len(expected)} lines as print(net), {total} parameters")


def check_complexity():
    p = run("complexity", "--arch", "densenet121", "--num-classes", "1000", "--input-size", "224", "--batch-size",
            "32", "--memory-gib", "16", "--device-tflops", "100", "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout.splitlines()[-1])
    assert report["macs"] == 2834161664, report["macs"]
    assert report["flops"] == 2 * 2834161664
    assert report["parameters"] == 7978856
    assert report["model_bytes"]["fp32"] > 4 * 7978856
    for key in ("naive", "pytorch_saved_for_backward", "engine_inference", "engine_training_recompute",
                "engine_training_keep"):
        assert report["activation_bytes"][key] > 0, key
    for key in ("inference", "training", "training_keep"):
        assert report["max_batch"][key] > 0, key
    assert report["time"]["training_step_s"] > 0
    assert report["precision"] == "fp32"
    print("complexity --json:", report["macs"], "MACs,", report["max_batch"])

    # bf16 mixed precision: the same model and MACs, a smaller training arena, a larger batch.
    p = run("complexity", "--arch", "densenet121", "--num-classes", "1000", "--input-size", "224", "--batch-size",
            "32", "--memory-gib", "16", "--no-scratchpad", "--precision", "bf16", "--json")
    assert p.returncode == 0, p.stderr
    bf16 = json.loads(p.stdout.splitlines()[-1])
    assert bf16["precision"] == "bf16" and bf16["macs"] == report["macs"]
    fp32_arena, bf16_arena = (r["activation_bytes"]["engine_training_recompute"] for r in (report, bf16))
    assert bf16_arena < fp32_arena, (bf16_arena, fp32_arena)
    assert bf16["max_batch"]["training"] > report["max_batch"]["training"]
    print("complexity --precision bf16: training arena", bf16_arena, "bytes against fp32's", fp32_arena)

    # Where the CPU has no bf16 kernels (hidden here), the bf16 primitives cannot be built to measure
    # their scratchpad: the report says so and leaves it out.
    p = run("complexity", "--num-classes", "10", "--input-size", "64", "--batch-size", "4", "--memory-gib", "1",
            "--precision", "bf16", "--json", env={**os.environ, "DNNL_MAX_CPU_ISA": "AVX2"})
    assert p.returncode == 0, p.stderr
    assert "not measured" in p.stderr, p.stderr
    assert json.loads(p.stdout.splitlines()[-1])["scratchpad_measured"] is False


def check_rejected(args, mention, env=None):
    p = run(*args, env=env)
    assert p.returncode == 1, f"{args}: exit code {p.returncode}"
    assert p.stdout == "", f"{args}: printed {p.stdout[:200]!r}"
    err = p.stderr.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and mention in err[0], f"{args}: {p.stderr!r}"
    print("rejected", " ".join(args), "->", err[0])


def main():
    check_summary("densenet121", 1000)
    check_summary("densenet169", 10)
    check_complexity()
    check_rejected(["complexity", "--arch", "densenet122"], "densenet121")
    check_rejected(["complexity", "--batch-size", "0"], "batch")
    check_rejected(["complexity", "--input-size", "28"], "at least 29x29")
    check_rejected(["complexity", "--num-classes", "0"], "classes")
    check_rejected(["complexity", "--precision", "fp16"], "precision")
    check_rejected(["summary", "--input-size", "28"], "at least 29x29")
    # --device cuda with no GPU visible (hidden, in case the machine has one): one line, nothing printed.
    check_rejected(["complexity", "--device", "cuda"], "--device", env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})


if __name__ == "__main__":
    main()
