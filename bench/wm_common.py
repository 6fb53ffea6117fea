"""Shared helpers of the watermark benchmarks: real prompts and the experiment's cached files.

Prompts are read from ../shared/data (CC BY-NC Alpaca-style and Apache-2.0 OASST sets) and are
never copied into the repository.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def real_prompts(seed: int = 0, max_chars: int = 300) -> list[str]:
    """Alpaca-style instructions (with their input) and OASST prompts, shuffled, deduplicated."""
    out: list[str] = []
    alpaca = SHARED / "llamafactory_alpaca_en_demo" / "alpaca_en_demo_1k.jsonl.gz"
    with gzip.open(alpaca, "rt") as fh:
        for line in fh:
            rec = json.loads(line)
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
