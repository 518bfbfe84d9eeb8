# Sourced by the alignment scripts (align-ml100k.sh, sweep-sft.sh, eval-held-out.sh): the CLI
# binary they run and the recipe's SFT arguments, so a sweep trains exactly what the recipe does.
# RECALIGN=BINARY runs a fixed build (one that later rebuilds do not replace mid-run); otherwise
# the release CLI is built into CARGO_TARGET_DIR (the one ./x and CI use).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/recalign-target}"
if [ -n "${RECALIGN:-}" ]; then R="$RECALIGN"; else
  cargo build -q --release -p recalign-cli
  R="$CARGO_TARGET_DIR/release/recalign"
fi
# The recipe's sequence SFT (docs/alignment.md, run C): compact documents with ONE_TARGET_SHARE
# LLaRA one-target examples, LoRA r LORA_RANK (alpha 2r) on every linear layer of the top 8
# blocks, batch 4, warm-up 10. The caller adds the seed, learning rate, steps and output.
SFT_RECIPE=(train sft --recipe sequence --max-examples 0 --lora-targets all --lora-layers 8
  --lora-rank "${LORA_RANK:-8}" --lora-alpha "$(( 2 * ${LORA_RANK:-8} ))" --warmup 10 --batch 4
  --checkpoint-every 100 --one-target-share "${ONE_TARGET_SHARE:-0.2}")
