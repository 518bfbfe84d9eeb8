#!/usr/bin/env bash
# The final figures of a finished `scripts/align-ml100k.sh` run: the zero-shot model and every
# adapter of RUN_DIR (sft, dpo, sdpo, rosepo, those present) on the held-out users, validation
# then test (their last EVAL_WINDOWS windows each: 945 examples with 5 on ML-100K; no run
# trains on them), all in the compact prompt and in one pass, so the frozen lower layers run
# once per example for all the models. Paired tests against popularity and against the SFT
# adapter; the results table at the end. Run it once per recipe, after the choices made on
# validation. Usage: [EVAL_WINDOWS=5] scripts/eval-held-out.sh RUN_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${1:?usage: scripts/eval-held-out.sh RUN_DIR}"
W="${EVAL_WINDOWS:-5}"
source scripts/recipe.sh # R
[ -s "$RUN/sft.safetensors" ] || { echo "$RUN/sft.safetensors is missing: run scripts/align-ml100k.sh $RUN first" >&2; exit 1; }
names=(zero-shot) args=(--adapter none)
for n in sft dpo sdpo rosepo; do
  if [ -s "$RUN/$n.safetensors" ]; then names+=("$n"); args+=(--adapter "$RUN/$n.safetensors"); fi
done
out="$RUN/eval-held-out$W.jsonl"
if [ ! -s "$out" ]; then
  t0=$SECONDS
  "$R" eval --split held-out --eval-windows "$W" --prompt compact --json --against-model 2 \
    "${args[@]}" > "$out.tmp"
  mv "$out.tmp" "$out"
  echo "  ($(( SECONDS - t0 )) s) held-out evaluation of ${names[*]}" | tee -a "$RUN/times.txt" >&2
fi
python3 scripts/split-eval-lines.py "$RUN" "held-out$W" "$out" "${names[@]}"
python3 scripts/align-table.py "$RUN" "held-out$W"
