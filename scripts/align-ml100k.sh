#!/usr/bin/env bash
# The native alignment recipe of docs/alignment.md on ML-100K with SmolLM2-135M, sized for a
# 2-core CPU (about 2 hours with its evaluations): sequence SFT over the training users'
# histories (compact documents with a fifth LLaRA one-target examples mixed in; LoRA r 8 on
# every linear layer of the top 8 blocks; 900 steps of 4), then DPO, S-DPO (3 random
# negatives) and RosePO on compact pairs, each starting from and referenced to the SFT adapter.
# Each model is evaluated on the validation users' last EVAL_WINDOWS windows (never trained on)
# with the random and popularity rankers on the same candidates, Wilson intervals and paired
# sign-flip tests (against popularity, and preference runs against SFT), and the SFT adapter's
# ValidRatio with LLaRA's prompt on 47 validation users. The final figures on the held-out
# users: scripts/eval-held-out.sh RUN_DIR, once.
# SEED is the training seed (LoRA init, data order); the split and its held-out users stay fixed.
# ONE_TARGET_SHARE: the share of one-target examples in SFT (0: documents only).
# DATA="..." are dataset options for every command that reads data (default: ML-100K), e.g.
# the papers' pre-windowed files (scripts/align-lastfm.sh); ORACLE the SASRec file for them;
# EVAL_MAX=N evaluates a seeded sample of N examples (0: all).
# SFT_FROM=DIR starts from DIR's SFT adapter and its evaluations (copied), so only the preference
# stage runs, with SEED's pairs and order: preference-stage seeds on one SFT.
# PREF_STEPS (64) and ROSEPO_PAIRS (256) size the preference stage, PREF_LR (2e-4) is its learning
# rate; SFT_LR (1e-3) is SFT's; `BUDGET=20` is the 20-minute preset (SFT 200 steps at lr 5e-3, the best of
# scripts/sweep-sft.sh at that length, with LLaRA's hybrid item tokens from the oracle; 24
# preference steps each at lr 5e-5, 128 RosePO pairs; at 2e-4 every loss lost accuracy on the
# hybrid SFT, docs/alignment.md). HYBRID=1 trains SFT with the hybrid item tokens
# (`train sft --hybrid ORACLE`; the preset's default), HYBRID=0 text-only (the default otherwise).
# Usage: [BUDGET=20] [SFT_LR=1e-3] [PREF_LR=2e-4] [SEED=2024] [DATA=...] [ORACLE=FILE] [EVAL_MAX=0] [SFT_FROM=DIR] [SFT_STEPS=900] [LORA_RANK=8] [ONE_TARGET_SHARE=0.2] [SPLIT=validation] \
#   [EVAL_WINDOWS=5] scripts/align-ml100k.sh [RUN_DIR]
# (after `./x fetch`). A step whose output exists is skipped, so an interrupted run continues
# where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
SEED="${SEED:-2024}"
if [ "${BUDGET:-}" = 20 ]; then
  SFT_STEPS="${SFT_STEPS:-200}"; SFT_LR="${SFT_LR:-5e-3}"; PREF_STEPS="${PREF_STEPS:-24}"; ROSEPO_PAIRS="${ROSEPO_PAIRS:-128}"
  PREF_LR="${PREF_LR:-5e-5}"
  HYBRID="${HYBRID:-1}"
fi
SPLIT="${SPLIT:-validation}"
W="${EVAL_WINDOWS:-5}"
RUN="${1:-runs/ml100k-seed$SEED}"
# R (the CLI; RECALIGN=BINARY for a fixed build) and SFT_RECIPE.
source scripts/recipe.sh
mkdir -p "$RUN"
read -r -a D <<< "${DATA:-}"
ORACLE="${ORACLE:-models/sasrec-ml-100k.safetensors}"
EM=(); [ "${EVAL_MAX:-0}" = 0 ] || EM=(--max-examples "$EVAL_MAX")
t() { local t0=$SECONDS; "$@"; echo "  ($(( SECONDS - t0 )) s) $*" | tee -a "$RUN/times.txt" >&2; }
once() { local out="$1"; shift; [ -s "$out" ] || t "$@"; }
show() {
  python3 - "$1" "$2" <<'PY'
import json, sys
v = json.load(open(sys.argv[2])); r = v["report"]; h = v["hr_at_1"]; b = r["baselines"]
p = v["paired"]["vs_popularity"]; a = v["paired"]["vs_against"]
line = (f'{sys.argv[1]:<10} n={v["examples"]} HR@1 {h["mean"]:.4f} [{h["low"]:.4f}, {h["high"]:.4f}]'
        f'  HR@5 {r["ranking"]["hr"][2]:.4f}  NDCG@5 {r["ranking"]["ndcg"][2]:.4f}  MRR {r["ranking"]["mrr"]:.4f}'
        f'  AvgPop@1 {r["bias_at_1"]["average_popularity"]:.1f}  Tail@1 {r["bias_at_1"]["tail_percentage"]:.3f}'
        f'  tail-target HR@1 {r["tail_hr_at_1"]:.4f}'
        f'  | popularity HR@1 {b["popularity"]["ranking"]["hr"][0]:.4f} (AvgPop@1 {b["popularity"]["average_popularity_at_1"]:.1f})'
        f'  random AvgPop@1 {b["random"]["average_popularity_at_1"]:.1f} Tail@1 {b["random"]["tail_at_1"]:.3f}'
        f'  | vs popularity {p["difference"]["mean"]:+.4f} p={p["p_value"]:.4f}')
if a: line += f'  | vs SFT {a["difference"]["mean"]:+.4f} p={a["p_value"]:.4f}'
print(line)
PY
}
# ev NAME EVAL-ARGS...: one model on the evaluation split, kept as eval-NAME-SPLITW.json.
ev() {
  local name="$1" out="$RUN/eval-$1-$SPLIT$W.json"; shift
  if [ ! -s "$out" ]; then
    t "$R" eval "${D[@]}" "${EM[@]}" --split "$SPLIT" --eval-windows "$W" --json "$@" > "$out.tmp"
    mv "$out.tmp" "$out"
  fi
  show "$name" "$out"
}
# ev_adapters NAME...: the adapters RUN/NAME.safetensors in one pass (their frozen lower layers
# run once per example) against the SFT adapter, one eval-NAME-SPLITW.json each.
ev_adapters() {
  local todo=() args=() n
  for n in "$@"; do
    if [ ! -s "$RUN/eval-$n-$SPLIT$W.json" ]; then todo+=("$n"); args+=(--adapter "$RUN/$n.safetensors"); fi
  done
  if [ ${#todo[@]} -gt 0 ]; then
    t "$R" eval "${D[@]}" "${EM[@]}" --split "$SPLIT" --eval-windows "$W" --json --against "$RUN/eval-sft-$SPLIT$W.json" \
      "${args[@]}" > "$RUN/eval-batch.tmp"
    python3 scripts/split-eval-lines.py "$RUN" "$SPLIT$W" "$RUN/eval-batch.tmp" "${todo[@]}"
    rm "$RUN/eval-batch.tmp"
  fi
  for n in "$@"; do show "$n" "$RUN/eval-$n-$SPLIT$W.json"; done
}

[ -f "$ORACLE" ] || t "$R" oracle train "${D[@]}" --out "$ORACLE"
if [ -n "${SFT_FROM:-}" ]; then
  for f in sft.safetensors "eval-zero-shot-$SPLIT$W.json" "eval-sft-$SPLIT$W.json" validratio-sft-47.json; do
    [ -s "$RUN/$f" ] || cp "$SFT_FROM/$f" "$RUN/$f"
  done
fi
ev zero-shot --prompt compact
HY=(); [ "${HYBRID:-0}" = 1 ] && HY=(--hybrid "$ORACLE")
once "$RUN/sft.safetensors" "$R" "${SFT_RECIPE[@]}" "${D[@]}" "${HY[@]}" --train-seed "$SEED" --lr "${SFT_LR:-1e-3}" \
  --steps "${SFT_STEPS:-900}" --out "$RUN/sft.safetensors"
ev sft --adapter "$RUN/sft.safetensors"
VR="$RUN/validratio-sft-47.json"
if [ ! -s "$VR" ]; then
  t "$R" eval "${D[@]}" --split validation --max-examples 47 --generate 32 --json \
    --adapter "$RUN/sft.safetensors" > "$VR.tmp"
  mv "$VR.tmp" "$VR"
fi
python3 -c 'import json, sys; g = json.load(open(sys.argv[1]))["report"]["generation"]; print("SFT ValidRatio %.3f on %d validation users (LLaRA prompt, greedy)" % (g["valid_ratio"], g["examples"]))' "$VR"

once "$RUN/pairs-random.jsonl" "$R" pairs build "${D[@]}" --oracle "$ORACLE" --train-seed "$SEED" --prompt compact --max-examples 512 \
  --strategies random --negatives 1 --out "$RUN/pairs-random.jsonl"
once "$RUN/pairs-sdpo.jsonl" "$R" pairs build "${D[@]}" --oracle "$ORACLE" --train-seed "$SEED" --prompt compact --max-examples 512 \
  --strategies random --negatives 3 --out "$RUN/pairs-sdpo.jsonl"
once "$RUN/pairs-rosepo.jsonl" "$R" pairs build "${D[@]}" --oracle "$ORACLE" --train-seed "$SEED" --prompt compact --max-examples "${ROSEPO_PAIRS:-256}" \
  --strategies self-hard,popular --weights 0.5,0.5 --negatives 1 --adapter "$RUN/sft.safetensors" \
  --out "$RUN/pairs-rosepo.jsonl"
PREF=(train pref --train-seed "$SEED" --init "$RUN/sft.safetensors" --steps "${PREF_STEPS:-64}" --batch 4 --lr "${PREF_LR:-2e-4}" --warmup 4 --beta 1)
once "$RUN/dpo.safetensors" "$R" "${PREF[@]}" --type dpo --pairs "$RUN/pairs-random.jsonl" \
  --out "$RUN/dpo.safetensors"
once "$RUN/sdpo.safetensors" "$R" "${PREF[@]}" --type sdpo --negatives 3 \
  --pairs "$RUN/pairs-sdpo.jsonl" --out "$RUN/sdpo.safetensors"
once "$RUN/rosepo.safetensors" "$R" "${PREF[@]}" --type rosepo --pairs "$RUN/pairs-rosepo.jsonl" \
  --out "$RUN/rosepo.safetensors"
ev_adapters dpo sdpo rosepo
python3 scripts/align-table.py "$RUN" "$SPLIT$W"
# The training budget: every step but the evaluations, as times.txt recorded them.
awk '!/ eval /{gsub(/[()s]/, "", $1); t += $1} END {printf "training (oracle, SFT, pairs, preference): %d s\n", t}' \
  "$RUN/times.txt" >&2
echo "done: $RUN" >&2
