#!/usr/bin/env python3
"""The results table of one `scripts/align-ml100k.sh` run directory, as Markdown: every model's
HR@1 with its Wilson 95% interval, HR@5, NDCG@5, MRR, AvgPop@1, Tail@1 and HR@1 on tail targets,
the random and popularity rankers on the same candidates, and the paired sign-flip tests
(against popularity, and preference runs against SFT). Reads the `eval-*.json` files
`recalign eval --json` wrote. Usage: scripts/align-table.py RUN_DIR [SPLIT_AND_WINDOWS]"""
import json, pathlib, sys

run = pathlib.Path(sys.argv[1])
tag = sys.argv[2] if len(sys.argv) > 2 else "validation5"
order = ["zero-shot", "sft", "dpo", "sdpo", "rosepo"]
found = {p.name[len("eval-"):-len(f"-{tag}.json")]: json.loads(p.read_text())
         for p in run.glob(f"eval-*-{tag}.json")}
names = [n for n in order if n in found] + sorted(set(found) - set(order))
if not names:
    sys.exit(f"no eval-*-{tag}.json in {run}")
first = found[names[0]]["report"]
b = first["baselines"]
n = found[names[0]]["examples"]
print(f"{n} examples ({tag}); Wilson 95% intervals; paired sign-flip tests (20k resamples)\n")
print("| model | HR@1 [95%] | HR@5 | NDCG@5 | MRR | AvgPop@1 | Tail@1 | HR@1 tail targets | vs popularity | vs SFT |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name, x in [("random", b["random"]), ("popularity", b["popularity"])]:
    r = x["ranking"]
    print(f"| {name} | {r['hr'][0]:.3f} | {r['hr'][2]:.3f} | {r['ndcg'][2]:.3f} | {r['mrr']:.3f} | "
          f"{x['average_popularity_at_1']:.1f} | {x['tail_at_1']:.3f} | {x['tail_hr_at_1']:.3f} | – | – |")
def test(p):
    if not p:
        return "–"
    d = p["difference"]
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] p={p['p_value']:.3f}"
for name in names:
    v = found[name]; r = v["report"]; m = r["ranking"]; h = v["hr_at_1"]
    print(f"| {name} | {h['mean']:.3f} [{h['low']:.3f}, {h['high']:.3f}] | {m['hr'][2]:.3f} | {m['ndcg'][2]:.3f} | "
          f"{m['mrr']:.3f} | {r['bias_at_1']['average_popularity']:.1f} | {r['bias_at_1']['tail_percentage']:.3f} | "
          f"{r['tail_hr_at_1']:.3f} | {test(v['paired']['vs_popularity'])} | {test(v['paired']['vs_against'])} |")

# A held-out table (validation then test users, `eval --split held-out`) broken into its parts:
# HR@1 per part from the per-example hits, with Wilson intervals and the same paired sign-flip
# test as `recalign eval` (20k resamples; p = (extreme + 1) / (20k + 1)), here with Python's RNG
# rather than ChaCha8, so p-values agree with the CLI's to resampling noise only.
parts = found[names[0]].get("parts") or []
if len(parts) > 1:
    import math, random
    def wilson(xs):
        n = len(xs); p = sum(xs) / n; z = 1.959963984540054; z2 = z * z
        c = (p + z2 / (2 * n)) / (1 + z2 / n)
        h = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
        return p, max(0.0, c - h), min(1.0, c + h)
    def sign_flip(a, b, resamples=20000):
        d = [x - y for x, y in zip(a, b)]
        observed = abs(sum(d)); rng = random.Random(0x5157); extreme = 0
        nz = [x for x in d if x != 0]
        for _ in range(resamples):
            if abs(sum(x if rng.random() < 0.5 else -x for x in nz)) >= observed - 1e-9:
                extreme += 1
        return sum(d) / len(d), (extreme + 1) / (resamples + 1)
    against = next((nm for nm in names if found[nm].get("against") is None
                    and found[nm]["paired"]["vs_against"] is None and nm != names[0]), None)
    print(f"\nBy part (paired tests on each part's examples; 'vs {against or '–'}' is the reference model):\n")
    print("| model | " + " | ".join(f"{p['split']} HR@1 [95%] (n={p['examples']}) | vs popularity | vs {against}"
                                   for p in parts) + " |")
    print("|---|" + "---|---|---|" * len(parts))
    start = 0; spans = []
    for p in parts:
        spans.append((start, start + p["examples"])); start += p["examples"]
    pop_hits = first["baselines"]["popularity"]["hits_at_1"]
    rows = [("popularity", pop_hits)] + [(nm, found[nm]["report"]["hits_at_1"]) for nm in names]
    for nm, hits in rows:
        cells = []
        for lo, hi in spans:
            h = hits[lo:hi]; m, l, u = wilson(h)
            cells.append(f"{m:.3f} [{l:.3f}, {u:.3f}]")
            if nm == "popularity":
                cells += ["–", "–"]
                continue
            d, pv = sign_flip(h, pop_hits[lo:hi]); cells.append(f"{d:+.3f} p={pv:.3f}")
            if against and nm != against:
                d, pv = sign_flip(h, found[against]["report"]["hits_at_1"][lo:hi])
                cells.append(f"{d:+.3f} p={pv:.3f}")
            else:
                cells.append("–")
        print(f"| {nm} | " + " | ".join(cells) + " |")
