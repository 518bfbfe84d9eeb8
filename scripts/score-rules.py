#!/usr/bin/env python3
"""Offline scoring rules on `recalign eval --scores-out` output: HR@1 of the summed log-prob,
the per-token mean, and the summed log-prob minus alpha times the header-only prior (a
PMI-style calibration), each with its AvgPop@1, on the same candidates.
Usage: scripts/score-rules.py SCORES.jsonl [ALPHA ...]"""
import json, math, sys

rows = [json.loads(l) for l in open(sys.argv[1])]
alphas = [float(a) for a in sys.argv[2:]] or [0.25, 0.5, 0.75, 1.0]

def evaluate(name, rule):
    hits, pops = [], []
    for r in rows:
        s = rule(r)
        best = max(s)
        top = [i for i, v in enumerate(s) if v == best]
        hits.append(sum(1 for i in top if i == r["target"]) / len(top))
        pops.append(sum(r["popularity"][i] for i in top) / len(top))
    n = len(hits); h = sum(hits) / n
    se = math.sqrt(h * (1 - h) / n)
    print(f"{name:<22} HR@1 {h:.4f} ±{1.96*se:.4f}  AvgPop@1 {sum(pops)/n:6.1f}")
    return hits

base = evaluate("sum", lambda r: r["scores"])
evaluate("mean per token", lambda r: [s / l for s, l in zip(r["scores"], r["lengths"])])
evaluate("popularity", lambda r: r["popularity"])
if all(p is not None for r in rows for p in r["prior"]):
    for a in alphas:
        evaluate(f"sum - {a} prior", lambda r, a=a: [s - a * p for s, p in zip(r["scores"], r["prior"])])
