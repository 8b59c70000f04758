"""`densenet bench` end to end on a tiny case: the JSON line, the profile, and one-line errors.

Usage: check_bench.py path/to/densenet. No timing is checked: a benchmark's figures are noise on a
shared machine, and CI must not fail on them.
"""
import json
import os
import subprocess
import sys

densenet = sys.argv[1]
TINY = {"--input-size": "32", "--batch-size": "2", "--steps": "1", "--warmup": "1", "--threads": "1"}
failures = []


def run(options, *flags, env=None):
    """Runs `densenet bench` on the tiny case with `options` replacing or adding to its own."""
    args = [x for kv in {**TINY, **options}.items() for x in kv]
    return subprocess.run([densenet, "bench", *args, *flags], capture_output=True, text=True, timeout=300,
                          env=None if env is None else {**os.environ, **env})


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL: " + what)


def last_json(p, what):
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    check(p.returncode == 0, what + " exits 0 (stderr: %s)" % p.stderr.strip())
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        check(False, what + ": the last line parses as JSON")
        return {}


for mode in ("train", "infer"):
    r = last_json(run({"--mode": mode}, "--json"), mode)
    check(r.get("images_per_second", 0) > 0, mode + ": images_per_second > 0")
    check(r.get("peak_rss_bytes", 0) > 0, mode + ": peak_rss_bytes > 0")
    check(r.get("seconds_per_step", 0) > 0, mode + ": seconds_per_step > 0")
    for field, want in (("mode", mode), ("precision", "fp32"), ("input_size", 32), ("batch_size", 2), ("threads", 1),
                        ("arch", "densenet121")):
        check(r.get(field) == want, "%s: %s is %r, not %r" % (mode, field, r.get(field), want))

p = run({"--memory": "keep"}, "--profile", "--json")
r = last_json(p, "--profile")
check("unaccounted" in p.stdout and "conv backward-weights" in p.stdout, "--profile prints the phase table")
phases = r.get("profile", {}).get("phases", [])
check(len(phases) >= 10, "--profile: the JSON has the phases")
step = r.get("seconds_per_step", 0)
accounted = sum(ph["seconds_per_step"] for ph in phases) + r.get("profile", {}).get("unaccounted_seconds_per_step", 0)
check(abs(accounted - step) <= 1e-9 + 1e-6 * step, "--profile: phases + remainder = the measured step")
conv = next((ph for ph in phases if ph["phase"] == "conv forward"), {})
check(conv.get("flops_per_step", 0) > 0 and conv.get("calls_per_step", 0) > 0, "--profile: conv forward has calls and FLOPs")

# bf16 runs where the CPU has AVX512-BF16; elsewhere it says so in one line and runs fp32.
FALLBACK = "no AVX512-BF16"
for mode in ("train", "infer"):
    p = run({"--mode": mode, "--precision": "bf16"}, "--json")
    r = last_json(p, "bf16 " + mode)
    check(r.get("images_per_second", 0) > 0, "bf16 %s: images_per_second > 0" % mode)
    if r.get("precision") == "fp32":
        check(FALLBACK in p.stderr, "bf16 %s ran fp32 without saying why: %r" % (mode, p.stderr))
    else:
        check(r.get("precision") == "bf16" and FALLBACK not in p.stderr, "bf16 %s: precision bf16, no fallback" % mode)
# oneDNN's own ISA limit stands in for a CPU without AVX512-BF16.
p = run({"--precision": "bf16"}, "--json", env={"DNNL_MAX_CPU_ISA": "AVX512_CORE"})
r = last_json(p, "bf16 on a CPU without AVX512-BF16")
err = [l for l in p.stderr.splitlines() if l.strip()]
check(r.get("precision") == "fp32", "without AVX512-BF16, bf16 falls back to fp32 (got %r)" % r.get("precision"))
check(len(err) == 1 and FALLBACK in err[0], "without AVX512-BF16: one line says so, got %r" % err)

for bad in (["--batch-size", "0"], ["--steps", "0"], ["--arch", "densenet0"], ["--input-size", "8"],
            ["--precision", "fp16"], ["--mode", "eval"], ["--memory", "none"]):
    p = run(dict([bad]))
    err = [l for l in p.stderr.splitlines() if l.strip()]
    check(p.returncode != 0, " ".join(bad) + ": exits non-zero")
    check(len(err) == 1 and err[0].startswith("error: "), " ".join(bad) + ": one 'error:' line, got %r" % err)

# --device: auto takes a GPU where one is visible, so the GPU is hidden to make it mean the CPU here.
NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}
p = run({}, "--json", env=NO_GPU)
r = last_json(p, "--device auto without a GPU")
check(r.get("device") == "cpu" and "on the CPU" in p.stdout, "--device auto without a GPU runs on the CPU and says so")
r = last_json(run({"--device": "cpu"}, "--json"), "--device cpu")
check(r.get("device") == "cpu", "--device cpu: device is cpu")
for bad, env in ((["--device", "gpu"], None), (["--device", "cuda:x"], None), (["--device", "cuda:-1"], None),
                 (["--device", "cuda"], NO_GPU), (["--device", "cuda:0"], NO_GPU), (["--device", "cpu", "--no-tf32"], None)):
    p = run({}, *bad, env=env)
    err = [l for l in p.stderr.splitlines() if l.strip()]
    check(p.returncode != 0, " ".join(bad) + ": exits non-zero")
    check(len(err) == 1 and err[0].startswith("error: ") and "--" in err[0],
          " ".join(bad) + ": one 'error:' line naming the option, got %r" % err)

print("%d failures" % len(failures) if failures else "densenet bench: all checks passed")
sys.exit(1 if failures else 0)
