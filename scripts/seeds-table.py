#!/usr/bin/env python3
"""One table over several runs of `scripts/align-ml100k.sh` (one per seed): each preference
model's HR@1 (Wilson 95%), its paired difference from the run's SFT, and AvgPop@1 per seed, then
whether RosePO has lower AvgPop@1 than DPO at no lower HR@1 in every seed (the issue's test), and
the mean over seeds. Reads the runs' `eval-*-TAG.json`.
Usage: scripts/seeds-table.py TAG RUN_DIR...   (TAG e.g. validation5)"""
import json, pathlib, statistics, sys

if len(sys.argv) < 3:
    sys.exit(__doc__)
tag, runs = sys.argv[1], [pathlib.Path(r) for r in sys.argv[2:]]
models = ["sft", "dpo", "sdpo", "rosepo"]


def load(run, name):
    p = run / f"eval-{name}-{tag}.json"
    return json.loads(p.read_text()) if p.exists() else None


print(f"| run | model | HR@1 [95%] | vs SFT (paired) | AvgPop@1 | Tail@1 |")
print("|---|---|---|---|---|---|")
per = {m: [] for m in models}
checks = []
seen_sft = []
for run in runs:
    got = {m: load(run, m) for m in models}
    for m, v in got.items():
        if v is None:
            continue
        # Preference-stage seeds share one SFT (SFT_FROM): count it once in the means.
        shared = False
        if m == "sft":
            hits = v["report"]["hits_at_1"]
            shared = hits in seen_sft
            seen_sft.append(hits)
        h, r = v["hr_at_1"], v["report"]
        a = v["paired"].get("vs_against")
        diff = "–" if m == "sft" or not a else \
            f"{a['difference']['mean']:+.3f} [{a['difference']['low']:+.3f}, {a['difference']['high']:+.3f}] p={a['p_value']:.3f}"
        pop = r["bias_at_1"]["average_popularity"]
        if not shared:
            per[m].append((h["mean"], pop))
        print(f"| {run.name} | {m} | {h['mean']:.3f} [{h['low']:.3f}, {h['high']:.3f}] | {diff} | "
              f"{pop:.1f} | {r['bias_at_1']['tail_percentage']:.3f} |")
    d, ro = got["dpo"], got["rosepo"]
    if d and ro:
        hd, hr = d["hr_at_1"]["mean"], ro["hr_at_1"]["mean"]
        pd, pr = d["report"]["bias_at_1"]["average_popularity"], ro["report"]["bias_at_1"]["average_popularity"]
        checks.append((run.name, pr < pd and hr >= hd, hr - hd, pr - pd))

print("\nMean over runs:\n")
print("| model | runs (distinct) | HR@1 mean (sd) | AvgPop@1 mean |")
print("|---|---|---|---|")
for m in models:
    xs = per[m]
    if xs:
        hs = [x[0] for x in xs]
        sd = statistics.stdev(hs) if len(hs) > 1 else 0.0
        print(f"| {m} | {len(xs)} | {statistics.mean(hs):.3f} ({sd:.3f}) | {statistics.mean(x[1] for x in xs):.1f} |")
print("\nRosePO against DPO (AvgPop@1 lower at no lower HR@1):")
for name, ok, dh, dp in checks:
    print(f"  {name}: {'yes' if ok else 'no'} (HR@1 {dh:+.3f}, AvgPop@1 {dp:+.1f})")
if checks:
    print(f"  in {sum(c[1] for c in checks)} of {len(checks)} runs")
