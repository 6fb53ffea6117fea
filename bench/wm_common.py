"""Shared helpers of the watermark benchmarks: real prompts and the experiment's cached files.

Prompts are read from ../shared/data (CC BY-NC Alpaca-style and Apache-2.0 OASST sets) and are
never copied into the repository.
"""

from __future__ import annotations

import gzip
import json
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ALPACA = SHARED / "llamafactory_alpaca_en_demo" / "alpaca_en_demo_1k.jsonl.gz"
T0 = time.time()


def log(msg: str) -> None:
    """A progress line stamped with the seconds since the benchmark started."""
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


def alpaca_records() -> Iterator[dict[str, Any]]:
    """The Alpaca-style demo set's records (instruction, input, output), in file order."""
    with gzip.open(ALPACA, "rt") as fh:
        for line in fh:
            yield json.loads(line)


def real_prompts(seed: int = 0, max_chars: int = 300) -> list[str]:
    """Alpaca-style instructions (with their input) and OASST prompts, shuffled, deduplicated."""
    out: list[str] = []
    for rec in alpaca_records():
        text = rec["instruction"].strip()
        if rec.get("input"):
            text += "\n\n" + rec["input"].strip()
        out.append(text)
    oasst = SHARED / "oasst_prompt_lottery" / "prompt_lottery_en_250.jsonl.gz"
    with gzip.open(oasst, "rt") as fh:
        out.extend(json.loads(line)["prompt"].strip() for line in fh)
    seen: set[str] = set()
    uniq = [p for p in out if p and len(p) <= max_chars and not (p in seen or seen.add(p))]
    random.Random(seed).shuffle(uniq)
    return uniq


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    tmp.replace(path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as fh:
        return [json.loads(line) for line in fh]


def text_student(
    model: Any,
    tok: Any,
    pairs: Sequence[tuple[str, str]],
    path: Path,
    *,
    epochs: int,
    lr: float,
    layers: int,
    batch: int,
    seed: int,
    label: str,
    max_tokens: int = 96,
) -> Any:
    """``model`` fine-tuned on (question, answer text) pairs in its own tokenizer, or loaded
    from ``path`` where an earlier run saved its trained parameters; left in eval mode."""
    import torch

    from distillwatch.watermark.models import chat_prompt, finetune, trained_state

    if path.exists():
        model.load_state_dict(torch.load(path), strict=False)
    else:
        eos = tok.eos_token_id
        examples = [
            (
                chat_prompt(tok, q),
                [*tok(a, add_special_tokens=False)["input_ids"][:max_tokens], eos],
            )
            for q, a in pairs
        ]
        t = time.time()
        finetune(
            model,
            examples,
            epochs=epochs,
            lr=lr,
            layers=layers,
            batch_size=batch,
            pad_id=tok.pad_token_id,
            seed=seed,
            log=lambda m: log(f"{label}: {m}"),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(trained_state(model), path)
        log(f"{label}: trained in {time.time() - t:.0f}s")
    model.eval()
    return model
