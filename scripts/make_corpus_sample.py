"""Build the small, permissively licensed corpus sample that ships in the package.

Reads the staged third-party corpora (``../shared/data``) and writes a deterministic sample of the
MIT / Apache-2.0 / CC-BY sets to ``src/distillwatch/data/corpora`` in the same layout, so the one
corpus loader reads either. CC BY-NC sets (Alpaca, Code Alpaca) are never copied.

    python scripts/make_corpus_sample.py ../shared/data
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import orjson

OUT = Path(__file__).resolve().parents[1] / "src" / "distillwatch" / "data" / "corpora"

# file -> (records kept, max chars per text field); all permissive licences (see ATTRIBUTION.md)
SAMPLES = {
    "sharegpt_v3/sharegpt_v3_prefix.jsonl.gz": (700, 2500),
    "oasst_prompt_lottery/prompt_lottery_en_250.jsonl.gz": (250, 4000),
    "gsm8k/gsm8k_train.jsonl.gz": (600, 4000),
    "mmlu/mmlu_all_splits.jsonl.gz": (800, 4000),
    "humaneval/HumanEval.jsonl.gz": (164, 4000),
    "mbpp_sanitized/sanitized-mbpp.jsonl.gz": (427, 4000),
}


def _clip(value: object, limit: int) -> object:
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, list):
        return [_clip(v, limit) for v in value]
    if isinstance(value, dict):
        return {k: _clip(v, limit) for k, v in value.items()}
    return value


def main(src: Path) -> None:
    for rel, (keep, limit) in SAMPLES.items():
        with gzip.open(src / rel, "rb") as fh:
            rows = [orjson.loads(line) for line in fh if line.strip()]
        if rel.startswith("sharegpt"):
            # whole first segments of conversations that have at least one human turn
            rows = [
                r
                for r in rows
                if r.get("segment") == 0
                and any(m.get("from") == "human" for m in r.get("conversations", []))
            ]
        step = max(1, len(rows) // keep)
        picked = [_clip(r, limit) for r in rows[::step][:keep]]
        dest = OUT / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        payload = b"".join(orjson.dumps(r) + b"\n" for r in picked)
        with dest.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(payload)
        print(f"{rel}: {len(picked)} records, {dest.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
