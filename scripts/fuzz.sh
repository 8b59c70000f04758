#!/usr/bin/env bash
# Fuzzes every reader of outside bytes with libFuzzer under ASan and UBSan (fuzz/): builds
# build-fuzz with clang, then runs each target for SECONDS on a scratch copy of its seed corpus
# (fuzz/corpus/<target>, which stays as committed), with a 2 GB memory limit and a 10 s limit per
# input. Any crash, leak, hang or out-of-memory fails the run, and the input that caused it is
# kept in build-fuzz/findings/<target>/.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]   (default: 20 s each, every target; CI runs this)
# FUZZ_MAX_RUNS=N stops a target after N executions if that comes before SECONDS (a campaign:
# FUZZ_MAX_RUNS=10000000 bash scripts/fuzz.sh 1800 is 10 million runs or 30 minutes, each).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}; shift || true
jobs=$(nproc)
# clang and its libFuzzer runtime: a fuzzing tool, not one of the program's dependencies.
if ! command -v clang++ >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev >/dev/null
fi
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DDENSENET_FUZZ=ON >/dev/null
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(ls fuzz/corpus))
cmake --build build-fuzz -j "$jobs" --target "${targets[@]}"
failed=()
for target in "${targets[@]}"; do
  work=build-fuzz/work/$target findings=build-fuzz/findings/$target
  rm -rf "$work" && mkdir -p "$work" "$findings"
  cp fuzz/corpus/"$target"/* "$work"/
  # oneDNN's OpenMP runtime keeps thread-local state that LeakSanitizer would report at exit; the
  # readers fuzzed here never reach oneDNN, so leaks stay on.
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     TMPDIR=${TMPDIR:-/dev/shm} build-fuzz/fuzz/"$target" "$work" -max_total_time="$seconds" -rss_limit_mb=2048 \
       -timeout=10 -max_len=65536 -artifact_prefix="$findings/" -print_final_stats=1 \
       ${FUZZ_MAX_RUNS:+-runs=$FUZZ_MAX_RUNS} \
       >build-fuzz/"$target".log 2>&1; then
    echo "$target: $(grep -o 'stat::number_of_executed_units: *[0-9]*' build-fuzz/"$target".log | grep -o '[0-9]*$') runs," \
         "$(grep -o 'cov: [0-9]*' build-fuzz/"$target".log | tail -1), no finding"
  else
    echo "$target: FINDING, see build-fuzz/$target.log and $findings/" >&2
    tail -30 build-fuzz/"$target".log >&2
    failed+=("$target")
  fi
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzzing found problems in: ${failed[*]}" >&2; exit 1; }
