"""Antidistillation sampling (Savani et al. 2025) on SmolLM2-135M-Instruct: does it hurt a student?

The teacher (SmolLM2) answers real prompts twice: plainly, and with
:class:`~distillwatch.watermark.antidistill.AntidistillationProcessor` biasing its logits by
λ·Δ, Δ the finite-difference derivative of a proxy student's log-probabilities along the unit
gradient of that proxy's downstream loss. The downstream task is imitating the teacher: the
proxy's loss on the teacher's plain answers to a separate set of prompts. The control ("rand")
perturbs the teacher the same way along a random direction of the proxy's parameters: a logit
shift not aimed at the student's loss. λ is set per arm so that λ·std(Δ) over the teacher's
top-20 first tokens is ``shift`` logits (``--arms ad:1,rand:1.6``: several sizes, to compare
arms at equal cost to the teacher). Students (SmolLM2, top blocks fine-tuned) learn from the
plain answers and from each arm's answers to the same prompts; all are scored on the teacher's
plain answers to held-out prompts and to the proxy's downstream prompts (token cross-entropy
and top-1 accuracy). The teacher's cost is the perplexity of each arm's answers under itself.

Proxy student, students and teacher all start as the same model (the only one offline here), so
plain distillation can teach little: the number to read is how much the antidistilled data
moves a student away from the teacher compared with plain data. CPU, one torch thread; stages
are cached under --out:

    .venv/bin/python bench/exp_antidistill.py --out out/ad_exp --arms ad,rand,ad:0.6,rand:1.6
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wm_common import log, read_jsonl, real_prompts, write_jsonl


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/ad_exp"))
    ap.add_argument("--n-grad", type=int, default=16, help="prompts of the proxy's downstream loss")
    ap.add_argument("--n-train", type=int, default=64)
    ap.add_argument("--n-heldout", type=int, default=32)
    ap.add_argument("--max-new", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--eps", type=float, default=1e-2, help="finite-difference step (unit g)")
    ap.add_argument(
        "--shift",
        type=float,
        default=1.0,
        help="λ is set so that λ·std(Δ) over the teacher's top-20 tokens is this many logits",
    )
    ap.add_argument(
        "--arms",
        default="ad,rand",
        help="comma list of DIRECTION[:SHIFT]: ad = the downstream gradient, rand = a random "
        "direction (control); SHIFT defaults to --shift",
    )
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--train-layers", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--gen-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


def examples(tok: Any, rows: list[dict[str, Any]]) -> list[tuple[list[int], list[int]]]:
    from distillwatch.watermark.models import chat_prompt

    eos = tok.eos_token_id
    return [(chat_prompt(tok, r["prompt"]), [*r["answer_ids"], eos]) for r in rows]


def batches(ex: list[tuple[list[int], list[int]]], pad: int, size: int) -> list[dict[str, Any]]:
    """Model inputs with labels on the answer only, ``size`` examples a batch."""
    from distillwatch.watermark.models import answer_batch

    return [answer_batch(ex[i : i + size], pad) for i in range(0, len(ex), size)]


def score(model: Any, bs: list[dict[str, Any]]) -> dict[str, float]:
    """Token-level cross-entropy (nats), perplexity and top-1 accuracy on the labelled tokens."""
    import torch

    nll, hits, n = 0.0, 0, 0
    with torch.no_grad():
        for b in bs:
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            logits, labels = logits[:, :-1].float(), b["labels"][:, 1:]
            mask = labels != -100
            lp = torch.log_softmax(logits, -1)
            tgt = labels.clamp(min=0)
            nll -= float(lp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)[mask].sum())
            hits += int((logits.argmax(-1) == tgt)[mask].sum())
            n += int(mask.sum())
    return {"loss": nll / n, "ppl": math.exp(nll / n), "acc": hits / n, "tokens": n}


def main() -> None:
    args = parse()
    import torch

    torch.set_num_threads(args.threads)
    from distillwatch.watermark.antidistill import AntidistillationProcessor, perturbed_pair
    from distillwatch.watermark.models import (
        chat_prompt,
        finetune,
        generate,
        load_model,
        load_tokenizer,
    )

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "report.json"
    report: dict[str, Any] = json.loads(report_path.read_text()) if report_path.exists() else {}
    report["args"] = {k: str(v) for k, v in vars(args).items()}
    prompts = real_prompts(args.seed)
    sets = {
        "grad": prompts[: args.n_grad],
        "train": prompts[args.n_grad : args.n_grad + args.n_train],
        "heldout": prompts[
            args.n_grad + args.n_train : args.n_grad + args.n_train + args.n_heldout
        ],
    }
    tok = load_tokenizer()
    pad = tok.pad_token_id
    teacher = load_model()

    def answers(name: str, ps: list[str], processors: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        path = out / f"{name}.jsonl"
        if path.exists():
            return read_jsonl(path)
        t = time.time()
        gens = generate(
            teacher,
            tok,
            ps,
            processors=processors,
            max_new_tokens=args.max_new,
            temperature=args.temperature,
            batch_size=args.gen_batch,
            seed=args.seed,
        )
        rows = [
            {"prompt": g.prompt, "answer_ids": list(g.answer_ids), "text": g.text} for g in gens
        ]
        write_jsonl(path, rows)
        n = sum(len(r["answer_ids"]) for r in rows)
        log(f"{name}: {len(rows)} answers, {n} tokens in {time.time() - t:.0f} s")
        report.setdefault("timing_s", {})[name] = round(time.time() - t, 1)
        return rows

    plain = {k: answers(f"plain_{k}", v) for k, v in sets.items()}

    # the proxy student's downstream loss: imitating the teacher on the 'grad' prompts
    grad_batches = batches(examples(tok, plain["grad"]), pad, args.batch)

    def pair(direction: str) -> tuple[Any, Any]:
        """θ±εg for the downstream gradient ("ad") or a random unit direction ("rand": the
        control, a logit shift as large but not aimed at the student's loss)."""
        proxy = load_model()
        t = time.time()
        if direction == "ad":
            pp = perturbed_pair(proxy, grad_batches, eps=args.eps)
        else:
            pp = perturbed_pair(proxy, [], eps=args.eps, random_seed=args.seed + 1)
        log(f"proxy pair ({direction}): {time.time() - t:.0f} s")
        return pp

    def calibrate(plus: Any, minus: Any, shift: float) -> tuple[float, float]:
        """λ such that λ·std(Δ) over the teacher's top-20 first tokens is ``shift`` logits."""
        probe = AntidistillationProcessor(plus, minus, 1.0, args.eps)
        spreads = []
        for p in sets["train"][:8]:
            ids = torch.tensor([chat_prompt(tok, p)])
            with torch.no_grad():
                top = teacher(input_ids=ids).logits[0, -1].topk(20).indices
            spreads.append(float(probe.delta(ids)[0, top].std()))
        spread = sum(spreads) / len(spreads)
        return shift / spread, spread

    arms: dict[str, list[dict[str, Any]]] = {}
    for spec in args.arms.split(","):
        direction, _, shift_s = spec.partition(":")
        shift = float(shift_s or args.shift)
        name = direction + ("" if shift == 1.0 else f"_s{shift:g}")
        plus, minus = pair(direction)
        lam, spread = calibrate(plus, minus, shift)
        report.setdefault("lambda", {})[name] = {
            "lam": lam,
            "delta_std_top20": spread,
            "shift_logits": shift,
        }
        log(f"{name}: Δ std over top-20 tokens {spread:.3g}: λ = {lam:.3g}")
        proc = AntidistillationProcessor(plus, minus, lam, args.eps)
        arms[name] = answers(f"{name}_train", sets["train"], (proc,))
        del plus, minus, proc

    # the teacher's cost: its own perplexity on what it served
    teacher_cost = report.setdefault("teacher", {})
    for name, rows in (("plain", plain["train"]), *arms.items()):
        teacher_cost[name] = {
            **score(teacher, batches(examples(tok, rows), pad, args.batch)),
            "mean_len": sum(len(r["answer_ids"]) for r in rows) / len(rows),
        }
        log(f"teacher on its {name} answers: {teacher_cost[name]}")
    heldout = batches(examples(tok, plain["heldout"]), pad, args.batch)
    downstream = grad_batches
    report["base"] = {"heldout": score(teacher, heldout), "downstream": score(teacher, downstream)}
    log(f"base: {report['base']}")

    for name, rows in (("plain", plain["train"]), *arms.items()):
        if f"student_{name}" in report.get("students", {}):
            continue
        student = load_model()
        t = time.time()
        steps = finetune(
            student,
            examples(tok, rows),
            epochs=args.epochs,
            lr=args.lr,
            layers=args.train_layers,
            batch_size=args.batch,
            pad_id=pad,
            seed=args.seed,
            log=lambda m, name=name: log(f"student_{name}: {m}"),
        )
        res = {
            "steps": steps,
            "train_s": round(time.time() - t, 1),
            "heldout": score(student, heldout),
            "downstream": score(student, downstream),
            "own_train": score(student, batches(examples(tok, rows), pad, args.batch)),
        }
        report.setdefault("students", {})[f"student_{name}"] = res
        report_path.write_text(json.dumps(report, indent=1))
        log(f"student_{name}: {res}")
        del student
    report_path.write_text(json.dumps(report, indent=1))
    s = report["students"]
    print(
        "\narm | teacher ppl on its answers | student loss gap vs plain (nats): heldout, downstream"
    )
    for name in report["teacher"]:
        if name == "plain" or f"student_{name}" not in s:
            continue
        gaps = [
            s[f"student_{name}"][split]["loss"] - s["student_plain"][split]["loss"]
            for split in ("heldout", "downstream")
        ]
        print(
            f"{name} | {report['teacher'][name]['ppl']:.2f} (plain "
            f"{report['teacher']['plain']['ppl']:.2f}) | {gaps[0]:+.4f}, {gaps[1]:+.4f}"
        )
    plot(report, out / "tradeoff.png")


def plot(report: dict[str, Any], path: Path) -> None:
    """Student harm against the teacher's cost, one line per direction and evaluation set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, teacher = report["students"], report["teacher"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, split in zip(axes, ("downstream", "heldout"), strict=True):
        for direction, style in (("ad", "o-"), ("rand", "s--")):
            pts = sorted(
                (
                    teacher[n]["ppl"],
                    s[f"student_{n}"][split]["loss"] - s["student_plain"][split]["loss"],
                )
                for n in teacher
                if n.split("_s")[0] == direction and f"student_{n}" in s
            )
            label = "antidistillation" if direction == "ad" else "random direction (control)"
            x0 = teacher["plain"]["ppl"]  # the plain student: no cost, no harm
            ax.plot([x0, *[x for x, _ in pts]], [0, *[y for _, y in pts]], style, label=label)
        ax.axvline(teacher["plain"]["ppl"], color="grey", lw=0.5)
        ax.set_title(f"{split} prompts" + (" (the proxy's own)" if split == "downstream" else ""))
        ax.set_xlabel("teacher perplexity on what it served")
        ax.set_xlim(left=teacher["plain"]["ppl"] - 0.5)
    axes[0].set_ylabel("student loss − plain student's (nats)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
