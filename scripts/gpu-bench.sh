#!/usr/bin/env bash
# Native wgpu (Vulkan) figures on a lent GPU machine, in one short run (docs/benchmarks.md,
# "WebGPU where it is real"). Two halves:
#
#   scripts/gpu-bench.sh prepare   # here: a wgpu build of the CLI, the model's header, the
#                                  # Vulkan loader and the gguf wheel, all under ignored folders
#   scripts/gpu-bench.sh run       # there, from the repo root, carrying .gpu .gl .whl; $OUT
#                                  # receives every figure (results.tgz)
#
# FEATURES=wgpu-tuned (prepare) builds with Burn's fusion and autotune; CPU=0 (run) skips the
# comparison on the machine's CPU.
#
# The device machine takes 64 MiB per call and reaches no network, so the real 94 MiB GGUF does
# not travel: `run` rebuilds a file of the same size, tensor table and metadata with random
# weights (scripts/gguf-synth.py). Speed does not depend on the weights' values; scores are
# only compared between devices (recalign wgpu against the PyTorch peer on the same file).
set -uo pipefail
cd "$(dirname "$0")/.."

prepare() {
  set -e
  : "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR as for ./x}"
  cargo build --release -p recalign-cli --features "${FEATURES:-wgpu}"
  mkdir -p .gpu .gl .whl
  for d in .gpu .gl .whl; do grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >>.git/info/exclude; done
  # Stripped and gzipped: the wgpu build is ~67 MB, over what one call carries.
  strip -o /tmp/recalign-gpu "$CARGO_TARGET_DIR/release/recalign"
  gzip -9 -c /tmp/recalign-gpu >.gpu/recalign.gz
  local gguf=models/SmolLM2-135M-Instruct.Q4_1.gguf
  [ -f "$gguf" ] || gguf=../shared/data/smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf
  python3 scripts/gguf-synth.py strip "$gguf" .gpu/smollm2.header
  local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  # shellcheck disable=SC2086
  apt-get $o update -qq && (cd .gl && apt-get $o download libvulkan1)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform any -d .whl gguf==0.19.0
  du -sh .gpu .gl .whl
}

step() { # name, seconds, command...: one measurement, its output kept even when it fails
  local name=$1 secs=$2
  shift 2
  echo "== $name" >&2
  local t0=$SECONDS
  timeout "$secs" "$@" >"$RES/$name.out" 2>"$RES/$name.log"
  echo "   rc $? in $((SECONDS - t0)) s" >&2
  tail -3 "$RES/$name.log" >&2
  # At most 8 files come back from $OUT: one archive, rewritten after every step so that a run
  # cut off at its limit still returns what it measured.
  tar czf "$OUT/results.tgz" -C "$RES" .
}

run() {
  : "${OUT:?run this on the device machine (OUT is its result folder)}"
  RES=/tmp/gpu-results
  mkdir -p "$RES"
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f "$icd" ] && export VK_DRIVER_FILES=$icd
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl &&
    export PYTHONPATH=/tmp/site
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$RES/gpu.txt" >&2
  nproc >>"$RES/gpu.txt"
  python3 scripts/gguf-synth.py fill .gpu/smollm2.header /tmp/smollm2.gguf >&2 || exit 1
  # GPU use over the whole run: memory and load every half second.
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -lms 500 >"$RES/smi.csv" &
  local smi=$!
  local bin=/tmp/recalign m=/tmp/smollm2.gguf
  gunzip -c .gpu/recalign.gz >"$bin" && chmod +x "$bin" || exit 1
  export PYTHONUNBUFFERED=1

  # 1. recalign on wgpu against PyTorch on CUDA, the same file and token ids.
  step compare-gpu 240 python3 scripts/bench-compare.py --recalign "$bin" --model "$m" \
    --device wgpu --peer-device cuda --json "$RES/compare-gpu-report.json"

  # 2. Dispatches: CubeCL logs every kernel it runs (profiling level "minimal"); the difference
  #    between 1 and 3 timed rankings (1 and 2 training steps) is per ranking (per step).
  mkdir -p /tmp/prof && cd /tmp/prof || exit 1
  logged() { # log name, step seconds, command...: one run with every kernel launch logged
    printf '[profiling.logger]\nlevel = "minimal"\nfile = "/tmp/prof/%s.log"\nappend = false\n' "$1" >cubecl.toml
    step "dispatch-$1" "${@:2}"
  }
  for n in 1 3; do logged "rank$n" 60 "$bin" bench rank --model "$m" --device wgpu --repeats "$n" --separate-repeats 1; done
  for n in 1 2; do logged "train$n" 90 "$bin" bench train --model "$m" --device wgpu --steps "$n"; done
  rm -f cubecl.toml
  for f in /tmp/prof/*.log; do
    b=$(basename "$f" .log)
    grep -c '^Executing' "$f" >"$RES/$b.count" || true
    grep '^Executing' "$f" | sed 's/^Executing //; s/[<({].*//' | sort | uniq -c | sort -rn | head -40 >"$RES/$b.kernels"
  done
  cd - >/dev/null || exit 1

  # 3. The same comparison on this machine's CPU (every core), for the scaling question.
  [ "${CPU:-1}" = 0 ] || step compare-cpu 120 python3 scripts/bench-compare.py --recalign "$bin" --model "$m" \
    --json "$RES/compare-cpu-report.json"
  kill "$smi" 2>/dev/null
  tar czf "$OUT/results.tgz" -C "$RES" .
  ls -la "$RES" >&2
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: scripts/gpu-bench.sh prepare|run" >&2; exit 2 ;;
esac
