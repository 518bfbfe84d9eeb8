"""recalign against PyTorch + transformers + PEFT on the same CPU, in one run: one ranking (shared
prefix and separate full sequences) and one LoRA SFT step, f32 and bf16 autocast for the peer.

recalign runs first (`recalign bench rank` / `bench train`, which print the exact token ids they
used); the peer then runs the same ids with the same thread count, checks that its candidate
scores agree with recalign's, and the script prints one table of times and ratios (and writes
the figures as JSON). Without torch, transformers and peft the peer is skipped with a message and
only recalign's figures are printed.

    python3 -m venv /tmp/peer && /tmp/peer/bin/pip install torch transformers peft gguf
    /tmp/peer/bin/python scripts/bench-compare.py [--recalign BINARY] [--json OUT] [--quick]

On a GPU machine (scripts/gpu-bench.sh): `--device wgpu --peer-device cuda` puts recalign on
Burn's wgpu (Vulkan) and the peer on CUDA; times then include each side's own synchronisation
(scores read back, `loss.item()`), and peak RSS says nothing about GPU memory.

The peer's setup mirrors recalign's bench: the GGUF read by transformers (dequantised to f32),
KV cache of the prompt repeated over the 20 candidates, LoRA r 8 (alpha 16) on q,v of every
layer, and the recipe's shape (every linear layer of the top 8 blocks), AdamW, batch 4, the
loss on the answer tokens. Peak RSS is the whole process's high-water mark (ru_maxrss), so the
peer's includes transformers itself.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def run_recalign(binary, args):
    out = subprocess.run([binary, *args], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"recalign {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def autocast(torch, dev, bf16):
    return torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else torch.autocast(dev.type, enabled=False)


def sync(torch, dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def peer_rank(torch, model, inputs, repeats, bf16, dev):
    """Shared-prefix ranking and separate full sequences: times (ms) and scores."""
    prompt = inputs["prompt_ids"]
    answers = inputs["answer_ids"]
    n, longest = len(answers), max(len(a) for a in answers)
    ctx = autocast(torch, dev, bf16)

    def shared():
        with torch.inference_mode(), ctx:
            out = model(torch.tensor([prompt], device=dev), use_cache=True)
            first = torch.log_softmax(out.logits[0, -1].float(), -1)
            cache = out.past_key_values
            cache.batch_repeat_interleave(n)
            cont = torch.zeros((n, longest - 1), dtype=torch.long)
            for i, a in enumerate(answers):
                cont[i, : len(a) - 1] = torch.tensor(a[:-1])
            mask = torch.ones((n, len(prompt) + longest - 1), dtype=torch.long)
            logp = torch.log_softmax(
                model(cont.to(dev), past_key_values=cache, attention_mask=mask.to(dev)).logits.float(), -1
            ).cpu()
            first = first.cpu()
            scores = []
            for i, a in enumerate(answers):
                s = first[a[0]].item()
                s += sum(logp[i, j - 1, t].item() for j, t in enumerate(a) if j > 0)
                scores.append(s)
            return scores

    def separate():
        rows = [prompt + a for a in answers]
        width = max(len(r) for r in rows)
        ids = torch.zeros((n, width), dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        with torch.inference_mode(), ctx:
            model(ids.to(dev), attention_mask=mask.to(dev))
        sync(torch, dev)

    shared()  # warm-up
    separate()
    times, scores = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        scores = shared()
        times.append((time.perf_counter() - t) * 1e3)
    t = time.perf_counter()
    separate()
    sep = (time.perf_counter() - t) * 1e3
    return {"shared_ms": median(times), "runs_ms": times, "separate_ms": sep, "scores": scores}


def peer_train(torch, base, examples, lr, steps, bf16, targets, layers, dev):
    """LoRA SFT steps at the bench's batch: ms per step and tokens/s."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets, layers_to_transform=layers
    )
    model = get_peft_model(base, config)
    model.train()
    rows = [e["prompt_ids"] + e["answer_ids"] for e in examples]
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (e, r) in enumerate(zip(examples, rows)):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
        p = len(e["prompt_ids"])
        labels[i, p : len(r)] = torch.tensor(e["answer_ids"])
    tokens = sum(len(r) for r in rows)
    ids, mask, labels = ids.to(dev), mask.to(dev), labels.to(dev)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    ctx = autocast(torch, dev, bf16)

    def step():
        with ctx:
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    step()  # warm-up
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    model.unload()  # the base model comes back without LoRA layers for the next configuration
    return {"ms_per_step": median(times) * 1e3, "tokens_per_s": tokens * len(times) / sum(times)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--recalign", default=os.path.join(target, "release", "recalign"))
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    ap.add_argument("--model", default=GGUF, help="GGUF file for both sides")
    ap.add_argument("--device", choices=["flex", "wgpu"], default="flex", help="recalign's device")
    ap.add_argument("--peer-device", choices=["cpu", "cuda"], default="cpu", help="the peer's device")
    a = ap.parse_args()
    if not os.path.exists(a.recalign):
        sys.exit(f"no recalign binary at {a.recalign}: cargo build --release -p recalign-cli")
    if not os.path.exists(a.model):
        sys.exit(f"no model at {a.model}: run ./x fetch")
    repeats, steps = (2, 1) if a.quick else (5, 3)
    common = ["--model", a.model, "--device", a.device]

    print("recalign bench rank ...", file=sys.stderr)
    rank = run_recalign(a.recalign, ["bench", "rank", "--repeats", str(repeats), "--separate-repeats", "1", *common])
    print("recalign bench train (q,v) ...", file=sys.stderr)
    train_qv = run_recalign(a.recalign, ["bench", "train", "--steps", str(steps), *common])
    print("recalign bench train (recipe: all linear, top 8) ...", file=sys.stderr)
    train_top = run_recalign(
        a.recalign, ["bench", "train", "--steps", str(steps), "--all-linear", "--top-layers", "8", *common]
    )
    threads = rank["threads"]
    ours = {
        "rank_shared_ms": rank["shared_prefix"]["ms_per_ranking"],
        "rank_separate_ms": rank["separate_sequences"]["ms_per_ranking"],
        "rank_peak_rss_mib": rank["peak_rss_mib"],
        "sft_qv": train_qv["sft"],
        "sft_top8": train_top["sft"],
    }
    report = {"threads": threads, "device": a.device, "peer_device": a.peer_device, "recalign": ours, "peer": None}

    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM
        import peft  # noqa: F401
    except ImportError as e:
        print(f"PyTorch peer skipped ({e}); install it with:\n"
              "  python3 -m venv /tmp/peer && /tmp/peer/bin/pip install torch transformers peft gguf\n"
              "and run this script with /tmp/peer/bin/python", file=sys.stderr)
        torch = None

    if torch is not None:
        torch.set_num_threads(threads)
        dev = torch.device(a.peer_device)
        folder, name = os.path.split(os.path.abspath(a.model))
        print(f"peer: torch {torch.__version__}, transformers {transformers.__version__}, "
              f"{threads} threads, {dev} ...", file=sys.stderr)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
        model.to(dev).eval()
        peer = {"torch": torch.__version__, "transformers": transformers.__version__, "device": str(dev)}
        if dev.type == "cuda":
            peer["gpu"] = torch.cuda.get_device_name(dev)
        for label, bf16 in [("f32", False), ("bf16", True)]:
            r = peer_rank(torch, model, rank["inputs"], repeats, bf16, dev)
            diff = max(abs(x - y) for x, y in zip(r["scores"], rank["inputs"]["log_probs"]))
            peer[f"rank_{label}"] = {**{k: v for k, v in r.items() if k != "scores"}, "max_abs_score_diff": diff}
        layers = model.config.num_hidden_layers
        examples = train_qv["inputs"]["sft_examples"]
        lr = train_qv["inputs"]["learning_rate"]
        all_linear = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        for label, bf16 in [("f32", False), ("bf16", True)]:
            peer[f"sft_qv_{label}"] = peer_train(torch, model, examples, lr, steps, bf16, ["q_proj", "v_proj"], None, dev)
            peer[f"sft_top8_{label}"] = peer_train(
                torch, model, examples, lr, steps, bf16, all_linear, list(range(layers - 8, layers)), dev
            )
        peer["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        report["peer"] = peer

    rows = [
        ("one ranking, shared prefix (ms)", ours["rank_shared_ms"], "rank_{}", "shared_ms", False),
        ("one ranking, separate full sequences (ms)", ours["rank_separate_ms"], "rank_{}", "separate_ms", False),
        ("LoRA SFT step, batch 4, r 8 on q,v (tokens/s)", ours["sft_qv"]["tokens_per_s"], "sft_qv_{}", "tokens_per_s", True),
        ("LoRA SFT step, batch 4, r 8 all linear, top 8 (tokens/s)", ours["sft_top8"]["tokens_per_s"], "sft_top8_{}", "tokens_per_s", True),
    ]
    print(f"\nrecalign on {a.device}, peer on {a.peer_device}; {threads} threads; recalign peak RSS: ranking {ours['rank_peak_rss_mib']:.0f} MiB, "
          f"training {train_qv['sft']['peak_rss_mib_so_far']:.0f} MiB")
    p = report["peer"]
    if p:
        print(f"peer: torch {p['torch']}, transformers {p['transformers']}, peak RSS {p['peak_rss_mib']:.0f} MiB; "
              f"scores agree within {p['rank_f32']['max_abs_score_diff']:.2e} (f32), "
              f"{p['rank_bf16']['max_abs_score_diff']:.2e} (bf16)")
        print("\n| work | recalign | PyTorch f32 | recalign / f32 | PyTorch bf16 | recalign / bf16 |")
        print("|---|---|---|---|---|---|")
        for title, mine, key, field, higher_better in rows:
            f32, bf = p[key.format("f32")][field], p[key.format("bf16")][field]
            # Ratios read as "how many times faster recalign is" (> 1: ahead).
            r32 = mine / f32 if higher_better else f32 / mine
            rbf = mine / bf if higher_better else bf / mine
            print(f"| {title} | {mine:,.0f} | {f32:,.0f} | {r32:.2f}x | {bf:,.0f} | {rbf:.2f}x |")
        print("\n(ratios: recalign's speed over the peer's; above 1 means recalign is faster)")
    else:
        print("\n| work | recalign |\n|---|---|")
        for title, mine, *_ in rows:
            print(f"| {title} | {mine:,.0f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
