"""Loads a recalign adapter, exported in PEFT's layout, with Hugging Face PEFT and checks that it
scores candidates like recalign does.

The base model is the GGUF recalign uses, read by transformers (`gguf_file=`, which dequantises
it and undoes llama.cpp's q/k permutation); PEFT attaches the adapter with
`PeftModel.from_pretrained`, which fails on unknown module names and on shape mismatches. The
script then scores each candidate's summed log-probability after the same ChatML prompt and
compares with `recalign rank --json` (base and adapter).

    pip install torch transformers peft gguf safetensors numpy
    recalign adapter export runs/sft.safetensors --out runs/sft-peft
    recalign rank --json --history "..." --candidates "..." > base.json
    recalign rank --json --adapter runs/sft.safetensors --history "..." --candidates "..." > tuned.json
    python scripts/peft_check.py models/SmolLM2-135M-Instruct.Q4_1.gguf runs/sft-peft base.json tuned.json
"""
import json
import os
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer


def scores(model, tokenizer, prompt, titles):
    """Summed log-probability of each `title` + eos after `prompt` (recalign's candidate score)."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    out = []
    for title in titles:
        answer = tokenizer(title, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = torch.tensor([prompt_ids + answer])
        with torch.no_grad():
            logits = model(ids).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        start = len(prompt_ids)
        out.append(sum(logp[start - 1 + j, t].item() for j, t in enumerate(answer)))
    return out


def main():
    gguf, adapter_dir, base_json, tuned_json = sys.argv[1:5]
    folder, name = os.path.split(os.path.abspath(gguf))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model.eval()
    report = {}
    for label, path, m in [("base", base_json, None), ("adapter", tuned_json, "peft")]:
        ranking = json.load(open(path))
        if m == "peft":
            model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False)
            model.eval()
            names = [n for n, _ in model.named_parameters() if "lora_" in n]
            report["peft_lora_tensors"] = len(names)
        ranked = ranking["ranked"]
        titles = [r["candidate"]["title"] for r in ranked]
        ours = [r["candidate"]["log_prob"] for r in ranked]
        theirs = scores(model, tokenizer, ranking["prompt"], titles)
        diff = max(abs(a - b) for a, b in zip(ours, theirs))
        order_ours = sorted(range(len(titles)), key=lambda i: -ours[i])
        order_theirs = sorted(range(len(titles)), key=lambda i: -theirs[i])
        report[label] = {
            "candidates": len(titles),
            "max_abs_log_prob_diff": diff,
            "same_order": order_ours == order_theirs,
            "recalign": ours,
            "transformers": theirs,
        }
    base, tuned = report["base"]["recalign"], report["adapter"]["recalign"]
    report["adapter_moves_scores_by"] = max(abs(a - b) for a, b in zip(base, tuned))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
