"""End-to-end radioactivity experiment on SmolLM2-135M-Instruct (CPU, offline).

Teacher (SmolLM2 + KGW watermark, key A) answers real prompts; students are SmolLM2 fine-tuned
on those answers, a share of them watermarked (share 0 = the control student, trained on the
unwatermarked answers of the same prompts). Every suspect (base model and students) is then
tested for radioactivity in closed mode (sample it on unseen prompts) and open mode (its top-1
predictions on our watermarked texts), with key A and with keys that it never saw (B, C: real
served data of other keys; R random keys) to show the null distribution.

Stages are cached under --out, so a rerun resumes; sizes are flags, to rerun larger later:

    .venv/bin/python bench/exp_radioactivity.py --out out/wm_exp
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wm_common import SHARED, log, read_jsonl, real_prompts, write_jsonl

from distillwatch.watermark import radioactivity as ra
from distillwatch.watermark.detect import detect
from distillwatch.watermark.keys import raw_key
from distillwatch.watermark.spec import WatermarkSpec


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/wm_exp"))
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--n-heldout", type=int, default=48)
    ap.add_argument("--n-probe", type=int, default=64)
    ap.add_argument("--n-null", type=int, default=48, help="answers served under keys B and C")
    ap.add_argument("--n-open", type=int, default=128, help="training texts read in open mode")
    ap.add_argument(
        "--open-wm-sets",
        default="train_wm,heldout_wm,null_B,null_C",
        help="watermarked sets read in open mode (drop/keep echo) for each suspect",
    )
    ap.add_argument(
        "--open-extra",
        type=int,
        default=0,
        help="ShareGPT answers (first 128 tokens) also read in open mode: key-independent text",
    )
    ap.add_argument("--max-new", type=int, default=64)
    ap.add_argument("--gamma", type=float, default=0.25)
    ap.add_argument("--delta", type=float, default=2.0)
    ap.add_argument("--width", type=int, default=1)
    ap.add_argument("--shares", default="0,0.5,1")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--train-layers", type=int, default=8, help="top blocks trained; 0 = all")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--gen-batch", type=int, default=16)
    ap.add_argument("--random-keys", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-base", action="store_true", help="do not evaluate the base model")
    ap.add_argument(
        "--closed-repeats",
        type=int,
        default=0,
        help="extra closed-mode run sampling each probe prompt this many times (0 = off)",
    )
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


KEYS = {"A": raw_key(0xA11CE5EC12E7), "B": raw_key(0xB0B5EC12E7), "C": raw_key(0xC0FFEE5EC12E7)}


def teacher_stage(args: argparse.Namespace, spec: WatermarkSpec, tok: Any, base: Any) -> None:
    from distillwatch.watermark.models import generate
    from distillwatch.watermark.processors import processor_for

    prompts = real_prompts(args.seed)
    n0 = args.n_train
    sets = {
        "train_wm": (prompts[:n0], "A"),
        "train_plain": (prompts[:n0], None),
        "heldout_wm": (prompts[n0 : n0 + args.n_heldout], "A"),
        "null_B": (prompts[n0 + args.n_heldout : n0 + args.n_heldout + args.n_null], "B"),
        "null_C": (
            prompts[n0 + args.n_heldout + args.n_null : n0 + args.n_heldout + 2 * args.n_null],
            "C",
        ),
    }
    start = n0 + args.n_heldout + 2 * args.n_null
    write_jsonl(
        args.out / "probe_prompts.jsonl",
        [{"prompt": p} for p in prompts[start : start + args.n_probe]],
    )
    for name, (ps, key) in sets.items():
        path = args.out / f"teacher_{name}.jsonl"
        if path.exists():
            continue
        t = time.time()
        procs = [processor_for(KEYS[key], spec)] if key else []
        gens = generate(
            base,
            tok,
            ps,
            processors=procs,
            max_new_tokens=args.max_new,
            batch_size=args.gen_batch,
            seed=args.seed + list(sets).index(name),
        )
        write_jsonl(
            path,
            [
                {
                    "prompt": g.prompt,
                    "prompt_ids": list(g.prompt_ids),
                    "answer_ids": list(g.answer_ids),
                    "text": g.text,
                    "key": key,
                }
                for g in gens
            ],
        )
        ntok = sum(len(g.answer_ids) for g in gens)
        log(
            f"teacher {name}: {len(gens)} answers, {ntok} tokens, {time.time() - t:.0f}s "
            f"({ntok / (time.time() - t):.1f} tok/s)"
        )


def train_student(args: argparse.Namespace, share: float, tok: Any, base_state: dict) -> Path:
    import torch

    from distillwatch.watermark.models import finetune, trained_state

    path = args.out / f"student_{share:g}.pt"
    if path.exists():
        return path
    wm = read_jsonl(args.out / "teacher_train_wm.jsonl")
    plain = read_jsonl(args.out / "teacher_train_plain.jsonl")
    rng = np.random.default_rng(args.seed + 17)
    order = rng.permutation(len(wm))
    n_wm = round(share * len(wm))
    use_wm = set(order[:n_wm].tolist())
    eos = tok.eos_token_id
    rows = [(wm[i] if i in use_wm else plain[i]) for i in range(len(wm))]
    examples = [(r["prompt_ids"], r["answer_ids"] + [eos]) for r in rows]
    model = _fresh(base_state)
    t = time.time()
    step = finetune(
        model,
        examples,
        epochs=args.epochs,
        lr=args.lr,
        layers=args.train_layers,
        batch_size=args.batch,
        pad_id=eos,
        seed=args.seed + 17,
        log=lambda m: log(f"student {share:g}: {m}"),
    )
    torch.save(trained_state(model), path)
    log(
        f"student {share:g}: {n_wm}/{len(wm)} watermarked answers, {step} steps, "
        f"{time.time() - t:.0f}s"
    )
    return path


def _fresh(base_state: dict) -> Any:
    """A trainable copy of the base model, built from its config (no second GGUF load)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(_CONFIG["config"])
    model.load_state_dict(base_state, strict=False)
    model.tie_weights()
    return model


_CONFIG: dict[str, Any] = {}


def evaluate_suspect(
    args: argparse.Namespace, name: str, model: Any, tok: Any, spec: WatermarkSpec
) -> dict:
    from distillwatch.watermark.models import encode_answer, generate

    path = args.out / f"eval_{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    t = time.time()
    res: dict[str, Any] = {"suspect": name}
    sets = {
        k: read_jsonl(args.out / f"teacher_{k}.jsonl")
        for k in ("train_wm", "train_plain", "heldout_wm", "null_B", "null_C")
    }
    served = {
        k: ra.served_context_counts(
            [r["answer_ids"] for r in sets[s]], spec, [r["prompt_ids"] for r in sets[s]]
        )
        for k, s in (("A", "train_wm"), ("B", "null_B"), ("C", "null_C"))
    }
    # closed mode: sample the suspect on unseen prompts, re-tokenise its text as an API gives it
    probe = [r["prompt"] for r in read_jsonl(args.out / "probe_prompts.jsonl")]
    gens = generate(
        model,
        tok,
        probe,
        max_new_tokens=args.max_new,
        batch_size=args.gen_batch,
        seed=args.seed + 99,
        temperature=0.8,
    )
    texts = [encode_answer(tok, g.text) for g in gens]
    (args.out / f"samples_{name}.jsonl").write_text(
        "\n".join(json.dumps({"prompt": g.prompt, "text": g.text}) for g in gens) + "\n"
    )
    closed: dict[str, Any] = {}
    for key in ("A", "B", "C"):
        for min_count in (0, 1, 2):
            sc = None if min_count == 0 else served[key]
            r = ra.closed_mode(
                texts, KEYS[key], spec, served_contexts=sc, min_count=max(min_count, 1)
            )
            closed[f"{key}/min{min_count}"] = _brief(r)
    rng = np.random.default_rng(args.seed + 5)
    rand_keys = [raw_key(int(k)) for k in rng.integers(0, 2**63, args.random_keys)]
    closed["random_keys_log10p"] = [ra.closed_mode(texts, k, spec).log10_p for k in rand_keys]
    closed["random_keys_served_A_log10p"] = [
        ra.closed_mode(texts, k, spec, served_contexts=served["A"]).log10_p for k in rand_keys
    ]
    res["closed"] = closed
    res["closed_tokens"] = int(sum(len(x) for x in texts))
    log(f"{name}: closed mode done ({time.time() - t:.0f}s)")
    # open mode: top-1 predictions on our texts
    opened: dict[str, Any] = {}
    pad = tok.pad_token_id
    wanted = set(args.open_wm_sets.split(","))
    for setname, key, limit in (
        ("train_wm", "A", args.n_open),
        ("heldout_wm", "A", None),
        ("null_B", "B", None),
        ("null_C", "C", None),
    ):
        if setname not in wanted:
            continue
        rows = sets[setname][:limit]
        preds, nlls = ra.top1_predictions(
            model, [r["prompt_ids"] for r in rows], [r["answer_ids"] for r in rows], pad_id=pad
        )
        answers = [r["answer_ids"] for r in rows]
        prompts = [r["prompt_ids"] for r in rows]
        for drop in (True, False):
            r = ra.open_mode(answers, preds, KEYS[key], spec, prompts=prompts, drop_echo=drop)
            opened[f"{setname}/{key}/{'drop' if drop else 'keep'}-echo"] = _brief(r)
        opened[f"{setname}/random_keys_log10p"] = [
            ra.open_mode(answers, preds, k, spec, prompts=prompts).log10_p for k in rand_keys[:50]
        ]
        opened[f"{setname}/mean_nll"] = float(np.nanmean(nlls))
    if name == "base":
        rows = sets["train_plain"][: args.n_open]
        _, nlls = ra.top1_predictions(
            model, [r["prompt_ids"] for r in rows], [r["answer_ids"] for r in rows], pad_id=pad
        )
        opened["train_plain/mean_nll"] = float(np.nanmean(nlls))
    res["open"] = opened
    res["seconds"] = time.time() - t
    path.write_text(json.dumps(res, indent=1))
    log(
        f"{name}: evaluated in {time.time() - t:.0f}s: "
        f"closed A/min1 log10p={closed['A/min1']['log10_p']:.2f} "
        f"open train A log10p={opened['train_wm/A/drop-echo']['log10_p']:.2f}"
    )
    return res


def open_plain(
    args: argparse.Namespace, name: str, model: Any, tok: Any, spec: WatermarkSpec
) -> dict:
    """Open mode on key-independent text: the suspect's top-1 predictions on the unwatermarked
    teacher answers (exact null for any suspect, including one sharing our base model)."""
    path = args.out / f"eval_{name}.json"
    res = json.loads(path.read_text())
    if "open_plain" in res and ("open_extra" in res or not args.open_extra):
        return res
    t = time.time()
    rows = read_jsonl(args.out / "teacher_train_plain.jsonl")
    preds, _ = ra.top1_predictions(
        model,
        [r["prompt_ids"] for r in rows],
        [r["answer_ids"] for r in rows],
        pad_id=tok.pad_token_id,
    )
    answers = [r["answer_ids"] for r in rows]
    prompts = [r["prompt_ids"] for r in rows]
    served = {
        k: ra.served_context_counts(
            [r["answer_ids"] for r in read_jsonl(args.out / f"teacher_{s}.jsonl")], spec
        )
        for k, s in (("A", "train_wm"), ("B", "null_B"), ("C", "null_C"))
    }
    out: dict[str, Any] = {}
    for key in ("A", "B", "C"):
        for min_count in (0, 1, 2):
            r = ra.open_mode(
                answers,
                preds,
                KEYS[key],
                spec,
                prompts=prompts,
                drop_echo=False,
                served_contexts=None if min_count == 0 else served[key],
                min_count=max(1, min_count),
            )
            out[f"{key}/min{min_count}"] = _brief(r)
    rng = np.random.default_rng(args.seed + 6)
    rand_keys = [raw_key(int(k)) for k in rng.integers(0, 2**63, args.random_keys)]
    out["random_keys_log10p"] = [
        ra.open_mode(answers, preds, k, spec, prompts=prompts, drop_echo=False).log10_p
        for k in rand_keys
    ]
    res["open_plain"] = out
    if args.open_extra:
        res["open_extra"] = open_extra(args, model, tok, spec, served, preds, answers, prompts)
    path.write_text(json.dumps(res, indent=1))
    log(
        f"{name}: open mode on plain text ({time.time() - t:.0f}s): "
        f"A log10p={out['A/min0']['log10_p']:.2f}, served>=1 {out['A/min1']['log10_p']:.2f}"
    )
    return res


def sharegpt_answers(n: int, tok: Any, max_tokens: int = 128) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, answer ids) of the first ``n`` English ShareGPT exchanges: real assistant
    text our model never wrote, so its green share is exactly γ for any model not trained on
    our outputs (from ../shared/data, never copied into the repo)."""
    import gzip

    from distillwatch.watermark.models import chat_prompt, encode_answer

    out: list[tuple[list[int], list[int]]] = []
    path = SHARED / "sharegpt_v3" / "sharegpt_v3_prefix.jsonl.gz"
    with gzip.open(path, "rt") as fh:
        for line in fh:
            turns = json.loads(line).get("conversations") or []
            if len(turns) < 2 or turns[0].get("from") != "human" or turns[1].get("from") != "gpt":
                continue
            q, a = turns[0]["value"].strip(), turns[1]["value"].strip()
            if not q or len(a) < 200 or len(q) > 1000 or not a.isascii():
                continue
            out.append((chat_prompt(tok, q), encode_answer(tok, a)[:max_tokens]))
            if len(out) >= n:
                break
    return out


def open_extra(
    args: argparse.Namespace,
    model: Any,
    tok: Any,
    spec: WatermarkSpec,
    served: dict[str, Any],
    plain_preds: list[Any],
    plain_answers: list[Any],
    plain_prompts: list[Any],
) -> dict[str, Any]:
    """Open mode on ``--open-extra`` ShareGPT answers, alone and pooled with the teacher's
    unwatermarked answers (each (context, token) tuple is scored once over the pool)."""
    t = time.time()
    rows = sharegpt_answers(args.open_extra, tok)
    prompts = [p for p, _ in rows]
    answers = [a for _, a in rows]
    preds, _ = ra.top1_predictions(model, prompts, answers, pad_id=tok.pad_token_id)
    out: dict[str, Any] = {"texts": len(rows), "tokens": int(sum(len(a) for a in answers))}
    pooled = (plain_answers + answers, list(plain_preds) + list(preds), plain_prompts + prompts)
    for label, (ans, prd, pro) in (("extra", (answers, preds, prompts)), ("pooled", pooled)):
        for key in ("A", "B", "C"):
            r = ra.open_mode(
                ans,
                prd,
                KEYS[key],
                spec,
                prompts=pro,
                drop_echo=False,
                served_contexts=served[key],
                min_count=1,
            )
            out[f"{label}/{key}"] = _brief(r)
        rng = np.random.default_rng(args.seed + 8)
        out[f"{label}/random_keys_log10p"] = [
            ra.open_mode(ans, prd, raw_key(int(k)), spec, prompts=pro, drop_echo=False).log10_p
            for k in rng.integers(0, 2**63, args.random_keys)
        ]
    log(
        f"open mode on {len(rows)} ShareGPT answers ({out['tokens']} tokens, "
        f"{time.time() - t:.0f}s): A log10p={out['extra/A']['log10_p']:.2f}, "
        f"pooled with the teacher's plain answers {out['pooled/A']['log10_p']:.2f}"
    )
    return out


def closed_more(
    args: argparse.Namespace, name: str, model: Any, tok: Any, spec: WatermarkSpec
) -> None:
    """Closed mode with more queries: each probe prompt sampled ``--closed-repeats`` times."""
    from distillwatch.watermark.models import encode_answer, generate

    path = args.out / f"eval_{name}.json"
    res = json.loads(path.read_text())
    tag = f"closed_x{args.closed_repeats}"
    if args.closed_repeats <= 0 or tag in res:
        return
    t = time.time()
    probe = [r["prompt"] for r in read_jsonl(args.out / "probe_prompts.jsonl")]
    prompts = [p for p in probe for _ in range(args.closed_repeats)]
    gens = generate(
        model,
        tok,
        prompts,
        max_new_tokens=args.max_new,
        batch_size=args.gen_batch,
        seed=args.seed + 199,
        temperature=0.8,
    )
    texts = [encode_answer(tok, g.text) for g in gens]
    out: dict[str, Any] = {"tokens": int(sum(len(x) for x in texts)), "queries": len(prompts)}
    for key, setname in (("A", "train_wm"), ("B", "null_B"), ("C", "null_C")):
        served = ra.served_context_counts(
            [r["answer_ids"] for r in read_jsonl(args.out / f"teacher_{setname}.jsonl")], spec
        )
        for min_count in (0, 1, 2):
            r = ra.closed_mode(
                texts,
                KEYS[key],
                spec,
                served_contexts=None if min_count == 0 else served,
                min_count=max(1, min_count),
            )
            out[f"{key}/min{min_count}"] = _brief(r)
    rng = np.random.default_rng(args.seed + 7)
    out["random_keys_log10p"] = [
        ra.closed_mode(texts, raw_key(int(k)), spec).log10_p
        for k in rng.integers(0, 2**63, args.random_keys)
    ]
    res = json.loads(path.read_text())
    res[tag] = out
    path.write_text(json.dumps(res, indent=1))
    log(
        f"{name}: closed mode x{args.closed_repeats} ({out['tokens']} tokens, "
        f"{time.time() - t:.0f}s): A served log10p={out['A/min1']['log10_p']:.2f}"
    )


def _brief(r: ra.RadioactivityResult) -> dict:
    d = r.detection
    return {
        "log10_p": d.log10_p,
        "p": d.p_value,
        "n_scored": d.n_scored,
        "score": d.score,
        "expected": d.expected,
        "n_candidates": r.n_candidate_tuples,
        "filtered_out": r.n_filtered_out,
    }


def main() -> None:
    args = parse()
    import torch

    torch.set_num_threads(args.threads)
    from distillwatch.watermark.models import load_model, load_tokenizer

    args.out.mkdir(parents=True, exist_ok=True)
    spec = WatermarkSpec(gamma=args.gamma, delta=args.delta, width=args.width)
    (args.out / "config.json").write_text(
        json.dumps(
            {
                **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "spec": spec.to_dict(),
                "keys": {k: v.key_id for k, v in KEYS.items()},
            },
            indent=1,
        )
    )
    tok = load_tokenizer()
    base = load_model()
    _CONFIG["config"] = base.config
    base_cache = args.out / "base_state.pt"
    if not base_cache.exists():
        torch.save(base.state_dict(), base_cache)
    log("base model loaded")
    teacher_stage(args, spec, tok, base)
    # sanity: detection on the teacher's own answers
    wm = read_jsonl(args.out / "teacher_train_wm.jsonl")
    det = [detect(r["answer_ids"], KEYS["A"], spec, prompt_ids=r["prompt_ids"]).p_value for r in wm]
    log(f"teacher watermark detected (p<1e-3) in {np.mean(np.array(det) < 1e-3):.1%} of answers")
    if not args.skip_base:
        evaluate_suspect(args, "base", base, tok, spec)
        open_plain(args, "base", base, tok, spec)
        closed_more(args, "base", base, tok, spec)
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    for share in [float(s) for s in args.shares.split(",") if s]:
        path = train_student(args, share, tok, base_state)
        base.load_state_dict(base_state)
        base.load_state_dict(torch.load(path), strict=False)
        base.eval()
        evaluate_suspect(args, f"student_{share:g}", base, tok, spec)
        open_plain(args, f"student_{share:g}", base, tok, spec)
        closed_more(args, f"student_{share:g}", base, tok, spec)
        base.load_state_dict(base_state)
    summarise(args)


def _get(o: dict, name: str) -> float:
    return float(o[name]["log10_p"]) if name in o else float("nan")


def _plain_columns(r: dict) -> dict[str, float]:
    """Open mode on unwatermarked text, and the null over random keys (KS test, tail mass)."""
    op = r.get("open_plain")
    if op is None:
        return {}
    ps = 10.0 ** np.array(op["random_keys_log10p"])
    cl = 10.0 ** np.array(r["closed"]["random_keys_log10p"])
    ex = r.get("open_extra") or {}
    extra = {
        f"open{label}_{key}": ex[f"{label}/{key}"]["log10_p"]
        for label in ("extra", "pooled")
        for key in ("A", "B", "C")
        if f"{label}/{key}" in ex
    }
    if ex:
        pr = 10.0 ** np.array(ex["pooled/random_keys_log10p"])
        extra["openpooled_random_frac_p<0.01"] = float(np.mean(pr < 0.01))
        extra["openpooled_random_median_p"] = float(np.median(pr))
    return {
        **extra,
        "openplain_A": op["A/min0"]["log10_p"],
        "openplain_A_served": op["A/min1"]["log10_p"],
        "openplain_A_served2": op["A/min2"]["log10_p"],
        "openplain_B_served": op["B/min1"]["log10_p"],
        "openplain_C_served": op["C/min1"]["log10_p"],
        "openplain_random_frac_p<0.05": float(np.mean(ps < 0.05)),
        "openplain_random_frac_p<0.01": float(np.mean(ps < 0.01)),
        "openplain_random_median_p": float(np.median(ps)),
        "closed_random_frac_p<0.01": float(np.mean(cl < 0.01)),
        "closed_random_median_p": float(np.median(cl)),
    }


def summarise(args: argparse.Namespace) -> None:
    rows = []
    for path in sorted(args.out.glob("eval_*.json")):
        r = json.loads(path.read_text())
        if "closed" not in r:  # eval_watermark.json lives here too
            continue
        c, o = r["closed"], r["open"]
        rk = np.array(c["random_keys_log10p"])
        rows.append(
            {
                "suspect": r["suspect"],
                "closed_A_all": c["A/min0"]["log10_p"],
                "closed_A_served": c["A/min1"]["log10_p"],
                "closed_A_served2": c["A/min2"]["log10_p"],
                "closed_B_served": c["B/min1"]["log10_p"],
                "closed_C_served": c["C/min1"]["log10_p"],
                "closed_random_frac_p<0.05": float(np.mean(rk < math.log10(0.05))),
                "open_train_A": o["train_wm/A/drop-echo"]["log10_p"],
                "open_train_A_keepecho": o["train_wm/A/keep-echo"]["log10_p"],
                "open_heldout_A": _get(o, "heldout_wm/A/drop-echo"),
                "open_null_B": _get(o, "null_B/B/drop-echo"),
                "open_null_C": _get(o, "null_C/C/drop-echo"),
                "open_null_B_keepecho": _get(o, "null_B/B/keep-echo"),
                **_plain_columns(r),
                **{
                    f"closed_x{k.split('_x')[1]}_{key}_served": r[k][f"{key}/min1"]["log10_p"]
                    for k in r
                    if k.startswith("closed_x")
                    for key in ("A", "B", "C")
                },
            }
        )
    (args.out / "summary.json").write_text(json.dumps(rows, indent=1))
    cols = list(rows[0]) if rows else []
    print("\nlog10 p-values (more negative = more evidence of training on key A's outputs)")
    print(" | ".join(cols))
    for row in rows:
        print(
            " | ".join(f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in cols)
        )


if __name__ == "__main__":
    main()
