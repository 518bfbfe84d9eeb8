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
