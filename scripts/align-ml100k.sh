#!/usr/bin/env bash
# The native end-to-end alignment run of docs/alignment.md: SmolLM2-135M on ML-100K, zero-shot,
# SFT, DPO, S-DPO and RosePO, each evaluated on the same test users. Sized for a 2-core CPU:
# N training prompts (default 128) for one epoch of SFT and one of each preference loss.
# Usage: scripts/align-ml100k.sh [N] [RUN_DIR]   (after `./x fetch`; ~1 h at N=128 on 2 cores)
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
EVAL=(eval --split test --generate 32 --json)

[ -f models/sasrec-ml-100k.safetensors ] || t "$R" oracle train
t "$R" "${EVAL[@]}" > "$RUN/eval-zero-shot.json"
t "$R" train sft --max-examples "$N" --steps "$STEPS" --batch 4 --lr 5e-4 --warmup 2 \
  --out "$RUN/sft.safetensors"
t "$R" "${EVAL[@]}" --adapter "$RUN/sft.safetensors" > "$RUN/eval-sft.json"

# Pairs from the same N training prompts (the same seeded draw as SFT's).
t "$R" pairs build --max-examples "$N" --strategies random --negatives 1 --out "$RUN/pairs-random.jsonl"
t "$R" pairs build --max-examples "$N" --strategies random --negatives 3 --out "$RUN/pairs-random-k3.jsonl"
t "$R" pairs build --max-examples "$N" --strategies self-hard,popular,semantic-similar \
  --weights 0.5,0.25,0.25 --negatives 1 --adapter "$RUN/sft.safetensors" --out "$RUN/pairs-rosepo.jsonl"

PREF=(train pref --init "$RUN/sft.safetensors" --steps "$STEPS" --batch 4 --lr 2e-4 --warmup 2 --beta 1)
t "$R" "${PREF[@]}" --type dpo --pairs "$RUN/pairs-random.jsonl" --out "$RUN/dpo.safetensors"
t "$R" "${PREF[@]}" --type sdpo --negatives 3 --pairs "$RUN/pairs-random-k3.jsonl" --out "$RUN/sdpo.safetensors"
t "$R" "${PREF[@]}" --type rosepo --pairs "$RUN/pairs-rosepo.jsonl" --out "$RUN/rosepo.safetensors"
for m in dpo sdpo rosepo; do
  t "$R" "${EVAL[@]}" --adapter "$RUN/$m.safetensors" > "$RUN/eval-$m.json"
done
echo "done: $RUN" >&2
