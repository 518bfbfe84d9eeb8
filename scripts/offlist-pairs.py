#!/usr/bin/env python3
"""Preference pairs against the model's own off-list answers (docs/alignment.md, "Where the
invalid answers come from"): for each training window whose greedy LLaRA answer names no listed
title, a pair with the target as chosen and that answer (its first line) as rejected.

It joins two files made from the same seeded draw of windows:
  recalign eval --split train --max-examples N --generate 32 --json --adapter A > gen.json
  recalign pairs build --split train --max-examples N --prompt llara --strategies self-hard \
      --no-smoothing --adapter A --out pairs.jsonl
and writes the off-list pairs (the prompt, items and candidates of `pairs.jsonl`, the rejected
answer replaced), ready for `recalign train pref --init A --pairs OUT`.

Usage: scripts/offlist-pairs.py gen.json pairs.jsonl OUT.jsonl
"""
import json
import sys


def named(answer, candidates):
    """The candidate the answer's first line names, if exactly one (recalign's eval rule)."""
    text = answer.strip().split("\n")[0].lower() if answer.strip() else ""
    low = [c.strip().lower() for c in candidates]
    present = [i for i, c in enumerate(low) if c and c in text]
    maximal = [i for i in present
               if not any(j != i and len(low[j]) > len(low[i]) and low[i] in low[j] for j in present)]
    return maximal[0] if len(maximal) == 1 else None


def main():
    gen_path, pairs_path, out_path = sys.argv[1:4]
    answers = json.load(open(gen_path))["report"]["generation"]["answers"]
    pairs = [json.loads(line) for line in open(pairs_path) if line.strip()]
    if len(answers) != len(pairs):
        sys.exit(f"{gen_path} holds {len(answers)} answers and {pairs_path} {len(pairs)} pairs: "
                 "make both with the same --max-examples and seed")
    out, counts = [], {"right": 0, "wrong": 0, "off-list": 0, "of them a history title": 0}
    for answer, pair in zip(answers, pairs):
        n = named(answer, pair["candidates"])
        if n is not None:
            counts["right" if pair["candidates"][n] == pair["chosen"] else "wrong"] += 1
            continue
        counts["off-list"] += 1
        first = answer.strip().split("\n")[0].strip()
        listed = [l[2:].strip().lower() for l in pair["prompt"].split("\n") if l.startswith("- ")]
        counts["of them a history title"] += first.lower() in listed[:len(pair["history_items"])]
        if first and first.lower() != pair["chosen"].lower():
            out.append(dict(pair, rejected=first))
    with open(out_path, "w") as f:
        for p in out:
            f.write(json.dumps(p) + "\n")
    print(f"{counts}; wrote {len(out)} pairs to {out_path}")


if __name__ == "__main__":
    main()
