#!/usr/bin/env bash
# The native end-to-end alignment run of docs/alignment.md: SmolLM2-135M on ML-100K, zero-shot,
# SFT, DPO, S-DPO and RosePO, each evaluated on the same test users. Sized for a 2-core CPU:
# N training prompts (default 128) for one epoch of SFT and one of each preference loss.
# Usage: [GENERATE=32] scripts/align-ml100k.sh [N] [RUN_DIR]   (after `./x fetch`)
# GENERATE: new tokens generated per test user for ValidRatio / HitRatio@1 (0: rank only).
# A step whose output exists is skipped, so an interrupted run continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-128}"
RUN="${2:-runs/ml100k-$N}"
STEPS=$(( N / 4 ))
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/recalign-target}"
cargo build --release -p recalign-cli
R="$CARGO_TARGET_DIR/release/recalign"
mkdir -p "$RUN"
t() { local t0=$SECONDS; "$@"; echo "  ($(( SECONDS - t0 )) s) $*" | tee -a "$RUN/times.txt" >&2; }
# Runs "$@" unless $1 (an output file) already exists and is not empty.
once() { local out="$1"; shift; [ -s "$out" ] || t "$@"; }
EVAL=(eval --split test --generate "${GENERATE:-32}" --json)

[ -f models/sasrec-ml-100k.safetensors ] || t "$R" oracle train
# Evaluates on the test users into eval-$1.json (skipped when it exists).
ev() {
  local name="$1" out="$RUN/eval-$1.json"; shift
  if [ ! -s "$out" ]; then t "$R" "${EVAL[@]}" "$@" > "$out.tmp"; mv "$out.tmp" "$out"; fi
}
ev zero-shot
once "$RUN/sft.safetensors" "$R" train sft --max-examples "$N" --steps "$STEPS" --batch 4 --lr 5e-4 \
  --warmup 2 --out "$RUN/sft.safetensors"
ev sft --adapter "$RUN/sft.safetensors"

# Pairs from the same N training prompts (the same seeded draw as SFT's).
once "$RUN/pairs-random.jsonl" "$R" pairs build --max-examples "$N" --strategies random --negatives 1 \
  --out "$RUN/pairs-random.jsonl"
once "$RUN/pairs-random-k3.jsonl" "$R" pairs build --max-examples "$N" --strategies random --negatives 3 \
  --out "$RUN/pairs-random-k3.jsonl"
once "$RUN/pairs-rosepo.jsonl" "$R" pairs build --max-examples "$N" --strategies self-hard,popular,semantic-similar \
  --weights 0.5,0.25,0.25 --negatives 1 --adapter "$RUN/sft.safetensors" --out "$RUN/pairs-rosepo.jsonl"

PREF=(train pref --init "$RUN/sft.safetensors" --steps "$STEPS" --batch 4 --lr 2e-4 --warmup 2 --beta 1)
once "$RUN/dpo.safetensors" "$R" "${PREF[@]}" --type dpo --pairs "$RUN/pairs-random.jsonl" \
  --out "$RUN/dpo.safetensors"
once "$RUN/sdpo.safetensors" "$R" "${PREF[@]}" --type sdpo --negatives 3 \
  --pairs "$RUN/pairs-random-k3.jsonl" --out "$RUN/sdpo.safetensors"
once "$RUN/rosepo.safetensors" "$R" "${PREF[@]}" --type rosepo --pairs "$RUN/pairs-rosepo.jsonl" \
  --out "$RUN/rosepo.safetensors"
for m in dpo sdpo rosepo; do
  ev "$m" --adapter "$RUN/$m.safetensors"
done
echo "done: $RUN" >&2
