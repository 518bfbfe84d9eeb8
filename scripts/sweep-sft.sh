#!/usr/bin/env bash
# The SFT learning-rate sweep of docs/alignment.md: the recipe's SFT (SFT_RECIPE, scripts/recipe.sh)
# at a fixed step budget for each learning rate, then every adapter in one evaluation
# pass on the validation users' last 5 windows (the frozen lower layers run once per example),
# each with popularity and random on the same candidates, Wilson intervals and the paired test
# against popularity.
# Usage: [SEED=2024] [SFT_STEPS=200] [LRS="2e-3 3e-3 5e-3"] scripts/sweep-sft.sh [RUN_DIR]
# (after `./x fetch`). A trained adapter is kept, so an interrupted sweep continues.
set -euo pipefail
cd "$(dirname "$0")/.."
SEED="${SEED:-2024}"; STEPS="${SFT_STEPS:-200}"; read -r -a LRS <<< "${LRS:-2e-3 3e-3 5e-3}"
RUN="${1:-runs/sweep-sft-$STEPS}"
source scripts/recipe.sh # R and SFT_RECIPE
mkdir -p "$RUN"
args=() names=()
for lr in "${LRS[@]}"; do
  out="$RUN/sft-lr$lr.safetensors"
  if [ ! -s "$out" ]; then
    t0=$SECONDS
    "$R" "${SFT_RECIPE[@]}" --train-seed "$SEED" --lr "$lr" --steps "$STEPS" --out "$out" \
      2> "$RUN/train-lr$lr.log"
    echo "($(( SECONDS - t0 )) s) train sft --lr $lr" | tee -a "$RUN/times.txt" >&2
  fi
  if [ ! -s "$RUN/eval-lr$lr-validation5.json" ]; then args+=(--adapter "$out"); names+=("lr$lr"); fi
done
if [ ${#names[@]} -gt 0 ]; then
  t0=$SECONDS
  "$R" eval --split validation --eval-windows 5 --json "${args[@]}" > "$RUN/eval-batch.tmp"
  python3 scripts/split-eval-lines.py "$RUN" validation5 "$RUN/eval-batch.tmp" "${names[@]}"
  rm "$RUN/eval-batch.tmp"
  echo "($(( SECONDS - t0 )) s) eval ${names[*]}" | tee -a "$RUN/times.txt" >&2
fi
python3 - "$RUN" "${LRS[@]}" <<'PY'
import json, sys
run = sys.argv[1]
print(f"SFT steps as given, validation5 (470 examples); Wilson 95%; paired sign-flip vs popularity")
print("| lr | HR@1 [95%] | HR@5 | MRR | AvgPop@1 | vs popularity |\n|---|---|---|---|---|---|")
for lr in sys.argv[2:]:
    v = json.load(open(f"{run}/eval-lr{lr}-validation5.json")); r = v["report"]; h = v["hr_at_1"]
    p = v["paired"]["vs_popularity"]
    print(f'| {lr} | {h["mean"]:.3f} [{h["low"]:.3f}, {h["high"]:.3f}] | {r["ranking"]["hr"][2]:.3f} '
          f'| {r["ranking"]["mrr"]:.3f} | {r["bias_at_1"]["average_popularity"]:.1f} '
          f'| {p["difference"]["mean"]:+.3f} p={p["p_value"]:.3f} |')
b = r["baselines"]
print(f'popularity HR@1 {b["popularity"]["ranking"]["hr"][0]:.3f} (AvgPop@1 {b["popularity"]["average_popularity_at_1"]:.1f}), random 0.050')
PY
