#!/usr/bin/env bash
# The recipe of scripts/align-ml100k.sh on the papers' own LastFM files, as published: LLaRA's
# training windows (`train_data.jsonl` with `id2name.txt`) and S-DPO's validation entries with
# their fixed 20 candidates (`lastfm-val.json`, 2,767 examples). Popularity comes from the
# training file. The files are not in the repository (Last.fm's terms): SHARED points at a folder
# with `llara-lastfm/` and `sdpo-lastfm/` (default ../shared/data). EVAL_MAX caps the evaluated
# examples (a seeded sample; 0: all 2,767). Other variables as in align-ml100k.sh.
# Usage: [SHARED=DIR] [EVAL_MAX=0] [SEED=2024] [SFT_STEPS=900] scripts/align-lastfm.sh [RUN_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
S="${SHARED:-../shared/data}"
for f in "$S/llara-lastfm/train_data.jsonl" "$S/llara-lastfm/id2name.txt" "$S/sdpo-lastfm/lastfm-val.json"; do
  [ -f "$f" ] || { echo "missing $f (set SHARED to the folder with LLaRA's and S-DPO's LastFM files)" >&2; exit 1; }
done
export DATA="--interactions $S/llara-lastfm/train_data.jsonl --held-out $S/sdpo-lastfm/lastfm-val.json --domain music"
export ORACLE="${ORACLE:-models/sasrec-lastfm.safetensors}"
exec scripts/align-ml100k.sh "${1:-runs/lastfm-seed${SEED:-2024}}"
