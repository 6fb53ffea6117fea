"""Watermark detection on real prompts: TPR at FPR 1e-3 versus answer length, quality cost, and
robustness to word-level edits and paraphrase. SmolLM2-135M-Instruct, CPU, offline.

Reads the teacher answers of bench/exp_radioactivity.py (run it first, same --out) and, for the
other schemes, generates a few answers of its own:

    .venv/bin/python bench/eval_watermark.py --exp out/wm_exp
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wm_common import log, read_jsonl, real_prompts, write_jsonl

from distillwatch.watermark.detect import detect
from distillwatch.watermark.keys import raw_key
from distillwatch.watermark.spec import WatermarkSpec

LENGTHS = (8, 16, 24, 32, 48, 64)
ALPHA = 1e-3


def tpr_by_length(
    rows: list[dict], key: Any, spec: WatermarkSpec, field: str = "answer_ids"
) -> dict[str, float]:
    out = {}
    for n in LENGTHS:
        ps = [
            detect(r[field][:n], key, spec, prompt_ids=r.get("prompt_ids")).p_value
            for r in rows
            if len(r[field]) >= n
        ]
        out[str(n)] = float(np.mean(np.array(ps) <= ALPHA)) if ps else float("nan")
        out[f"{n}_count"] = len(ps)
    ps_all = [detect(r[field], key, spec, prompt_ids=r.get("prompt_ids")).p_value for r in rows]
    out["full"] = float(np.mean(np.array(ps_all) <= ALPHA))
    return out


def edit_words(text: str, rate: float, kind: str, vocab: list[str], rng: random.Random) -> str:
    words = text.split()
    out: list[str] = []
    for w in words:
        if rng.random() < rate:
            if kind == "delete":
                continue
            if kind == "substitute":
                out.append(rng.choice(vocab))
                continue
            if kind == "insert":
                out.extend([w, rng.choice(vocab)])
                continue
        out.append(w)
    if kind == "swap":
        for i in range(len(out) - 1):
            if rng.random() < rate:
                out[i], out[i + 1] = out[i + 1], out[i]
    return " ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exp", type=Path, default=Path("out/wm_exp"))
    ap.add_argument("--n-other", type=int, default=32, help="answers per extra scheme")
    ap.add_argument("--n-paraphrase", type=int, default=24)
    ap.add_argument("--null-keys", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-generation", action="store_true")
    args = ap.parse_args()
    cfg = json.loads((args.exp / "config.json").read_text())
    spec = WatermarkSpec.from_dict(cfg["spec"])
    key = raw_key(0xA11CE5EC12E7)
    assert key.key_id == cfg["keys"]["A"]
    wm = read_jsonl(args.exp / "teacher_train_wm.jsonl") + read_jsonl(
        args.exp / "teacher_heldout_wm.jsonl"
    )
    plain = read_jsonl(args.exp / "teacher_train_plain.jsonl")
    report: dict[str, Any] = {"spec": spec.to_dict(), "n_wm": len(wm), "n_plain": len(plain)}

    # 1. TPR vs length, FPR on unwatermarked answers with the true key and with many random keys
    report["tpr_kgw_ids"] = tpr_by_length(wm, key, spec)
    report["fpr_true_key_plain"] = tpr_by_length(plain, key, spec)
    rng = np.random.default_rng(0)
    null_ps = np.array(
        [
            detect(
                plain[i % len(plain)]["answer_ids"],
                raw_key(int(k)),
                spec,
                prompt_ids=plain[i % len(plain)]["prompt_ids"],
            ).p_value
            for i, k in enumerate(rng.integers(0, 2**63, args.null_keys))
        ]
    )
    report["fpr_random_keys"] = {
        "n": int(null_ps.size),
        "frac_p<=1e-3": float(np.mean(null_ps <= 1e-3)),
        "frac_p<=0.01": float(np.mean(null_ps <= 0.01)),
        "frac_p<=0.05": float(np.mean(null_ps <= 0.05)),
        "frac_p<=0.5": float(np.mean(null_ps <= 0.5)),
    }
    log(f"KGW TPR@{ALPHA:g} by length: {report['tpr_kgw_ids']}")
    log(
        f"FPR true key on plain: {report['fpr_true_key_plain']['full']}, random keys: "
        f"{report['fpr_random_keys']}"
    )

    import torch

    torch.set_num_threads(args.threads)
    from distillwatch.watermark.models import encode_answer, generate, load_model, load_tokenizer

    tok = load_tokenizer()
    # 2. re-tokenised text (the real detection path: only key + tokenizer)
    retok = [{"answer_ids": encode_answer(tok, r["text"])} for r in wm]
    report["tpr_kgw_text"] = tpr_by_length(retok, key, spec)
    # 3. quality: length and perplexity under the unwatermarked model (from the experiment)
    base_eval = json.loads((args.exp / "eval_base.json").read_text())["open"]
    report["quality"] = {
        "mean_tokens_wm": float(np.mean([len(r["answer_ids"]) for r in wm])),
        "mean_tokens_plain": float(np.mean([len(r["answer_ids"]) for r in plain])),
        "ppl_wm": math.exp(base_eval["train_wm/mean_nll"]),
        "ppl_plain": math.exp(base_eval["train_plain/mean_nll"]),
        "stopped_early_wm": float(np.mean([len(r["answer_ids"]) < cfg["max_new"] for r in wm])),
        "stopped_early_plain": float(
            np.mean([len(r["answer_ids"]) < cfg["max_new"] for r in plain])
        ),
    }
    log(f"quality: {report['quality']}")
    # 4. robustness: word-level edits, re-tokenised
    vocab = [w for r in plain for w in r["text"].split()]
    prng = random.Random(0)
    rob: dict[str, float] = {}
    for kind in ("delete", "substitute", "insert", "swap"):
        for rate in (0.1, 0.2, 0.3):
            ps = [
                detect(
                    encode_answer(tok, edit_words(r["text"], rate, kind, vocab, prng)), key, spec
                ).p_value
                for r in wm
            ]
            rob[f"{kind}@{rate:g}"] = float(np.mean(np.array(ps) <= ALPHA))
    report["robustness_word_edits"] = rob
    log(f"robustness: {rob}")
    model = None
    if not args.skip_generation:
        model = load_model()
        # paraphrase by the (unwatermarked) model itself
        sub = [r for r in wm if len(r["answer_ids"]) >= 48][: args.n_paraphrase]
        paras = generate(
            model,
            tok,
            [f"Rewrite the following text in your own words:\n\n{r['text']}" for r in sub],
            max_new_tokens=cfg["max_new"] + 16,
            batch_size=12,
            seed=5,
        )
        ps = [detect(encode_answer(tok, g.text), key, spec).p_value for g in paras]
        orig = [detect(encode_answer(tok, r["text"]), key, spec).p_value for r in sub]
        report["robustness_paraphrase"] = {
            "n": len(ps),
            "tpr_after": float(np.mean(np.array(ps) <= ALPHA)),
            "tpr_before": float(np.mean(np.array(orig) <= ALPHA)),
            "median_log10p_after": float(np.median(np.log10(np.maximum(ps, 1e-300)))),
        }
        write_jsonl(args.exp / "paraphrases.jsonl", [{"text": g.text} for g in paras])
        log(f"paraphrase: {report['robustness_paraphrase']}")
        report["other_schemes"] = other_schemes(args, model, tok, cfg)
    (args.exp / "eval_watermark.json").write_text(json.dumps(report, indent=1))
    log(f"wrote {args.exp / 'eval_watermark.json'}")


def other_schemes(args: argparse.Namespace, model: Any, tok: Any, cfg: dict) -> dict:
    """Production-default KGW (width 2), Gumbel and SynthID on a few fresh prompts."""
    from distillwatch.watermark.models import generate
    from distillwatch.watermark.processors import processor_for
    from distillwatch.watermark.synthid import (
        SynthIDSpec,
        synthid_config,
        synthid_detect,
        synthid_keys,
    )

    prompts = real_prompts(cfg["seed"])[-args.n_other :]
    out: dict[str, Any] = {}
    plain = generate(model, tok, prompts, max_new_tokens=cfg["max_new"], batch_size=16, seed=11)
    for name, spec in (
        ("kgw_w2_d2", WatermarkSpec(gamma=0.25, delta=2.0, width=2)),
        ("gumbel_w2", WatermarkSpec(scheme="gumbel", width=2)),
    ):
        key = raw_key(0x5EC0DD)
        gens = generate(
            model,
            tok,
            prompts,
            processors=[processor_for(key, spec)],
            max_new_tokens=cfg["max_new"],
            batch_size=16,
            seed=12,
        )
        rows = [{"answer_ids": list(g.answer_ids), "prompt_ids": list(g.prompt_ids)} for g in gens]
        prow = [{"answer_ids": list(g.answer_ids), "prompt_ids": list(g.prompt_ids)} for g in plain]
        out[name] = {
            "tpr": tpr_by_length(rows, key, spec),
            "fpr_plain": tpr_by_length(prow, key, spec)["full"],
            "mean_tokens": float(np.mean([len(g.answer_ids) for g in gens])),
            "distinct_4gram_ratio": distinct4([g.answer_ids for g in gens]),
        }
        log(f"{name}: {out[name]}")
    sspec = SynthIDSpec(ngram_len=3, depth=20)
    keys = synthid_keys(b"bench-master-secret-0123", "acct-1", sspec.depth)
    gens = generate(
        model,
        tok,
        prompts,
        max_new_tokens=cfg["max_new"],
        batch_size=16,
        seed=13,
        temperature=1.0,
        watermarking_config=synthid_config(keys, sspec),
    )
    ps = np.array([synthid_detect(list(g.answer_ids), keys, sspec).p_value for g in gens])
    pn = np.array([synthid_detect(list(g.answer_ids), keys, sspec).p_value for g in plain])
    out["synthid_n3_d20_t1"] = {
        "tpr@1e-3": float(np.mean(ps <= 1e-3)),
        "tpr@1e-2": float(np.mean(ps <= 1e-2)),
        "median_log10p": float(np.median(np.log10(np.maximum(ps, 1e-300)))),
        "fpr_plain@1e-2": float(np.mean(pn <= 1e-2)),
        "mean_tokens": float(np.mean([len(g.answer_ids) for g in gens])),
    }
    log(f"synthid: {out['synthid_n3_d20_t1']}")
    return out


def distinct4(seqs: list[tuple[int, ...]]) -> float:
    grams = [tuple(s[i : i + 4]) for s in seqs for i in range(len(s) - 3)]
    return len(set(grams)) / max(1, len(grams))


if __name__ == "__main__":
    main()
