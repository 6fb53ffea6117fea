"""Ingest throughput: write and read N synthetic ~1 KB call records in every format.

Run: ``.venv/bin/python bench/bench_ingest.py [--n 1000000] [--dir /tmp/dw-bench]``.
Prints records per second for the canonical (fast-path) JSONL, for "raw" JSONL that needs
the per-record path (content parts, tool objects, unknown fields), and for Parquet.
Numbers only; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from distillwatch.ingest import read_calls, write_table

_WORDS = [
    "the",
    "model",
    "should",
    "explain",
    "each",
    "step",
    "of",
    "its",
    "reasoning",
    "before",
    "answering",
    "about",
    "rates",
    "prices",
    "graphs",
    "proofs",
    "code",
    "tests",
    "translate",
    "summarise",
    "compare",
    "list",
    "why",
    "how",
    "what",
]


def synthetic_records(n: int, *, raw: bool, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``n`` call records of about 1 KB; ``raw`` adds the shapes only the slow path reads."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(n):
        prompt = " ".join(rng.choices(_WORDS, k=30))
        answer = " ".join(rng.choices(_WORDS, k=60))
        ts = start + timedelta(microseconds=i * 60_000_123)
        record: dict[str, Any] = {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "request_id": f"req_{i:010d}",
            "account_id": f"acct_{rng.randrange(20_000):06d}",
            "org_id": f"org_{rng.randrange(2_000):05d}",
            "api_key_id": f"key_{rng.randrange(40_000):06d}",
            "model": rng.choice(("frontier-1", "frontier-1-mini")),
            "endpoint": "chat.completions",
            "client": {
                "ip": f"203.0.{rng.randrange(256)}.{rng.randrange(256)}",
                "user_agent": "python-httpx/0.27.0",
                "asn": rng.randrange(1, 65_000),
                "country": rng.choice(("US", "DE", "SG", "BR")),
                "tls_fingerprint": "t13d1516h2_8daaf6152771_e5627efa2ab1",
            },
            "request": {
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": prompt},
                ],
                "temperature": round(rng.random(), 2),
                "max_tokens": rng.choice((256, 512, 1024)),
                "n": 1,
                "stream": False,
            },
            "response": {
                "status": 200,
                "output_text": answer,
                "finish_reason": "stop",
                "usage": {"input_tokens": 45, "output_tokens": 90, "reasoning_tokens": 0},
                "latency_ms": round(rng.uniform(200, 3000), 1),
            },
        }
        if raw:
            record["request"]["messages"][1]["content"] = [
                {"type": "text", "text": prompt},
                {"type": "image_url", "image_url": {"url": "https://example.invalid/x.png"}},
            ]
            record["request"]["tools"] = [{"type": "function", "function": {"name": "lookup"}}]
            record["client"]["asn"] = f"AS{record['client']['asn']}"
            record["trace_id"] = f"tr-{i:x}"
        yield record


def _write_jsonl_gz(path: Path, records: Iterator[dict[str, Any]]) -> None:
    with gzip.open(path, "wb", compresslevel=6) as out:
        for record in records:
            out.write(orjson.dumps(record) + b"\n")


def _timed(label: str, n: int, action: Callable[[], object]) -> object:
    start = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - start
    print(f"{label:<34} {seconds:7.2f} s  {n / seconds / 1000:8.1f} k records/s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    n: int = args.n
    folder = args.dir or Path(tempfile.mkdtemp(prefix="dw-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        raw_path = folder / "raw.jsonl.gz"
        _write_jsonl_gz(raw_path, synthetic_records(n, raw=True))
        plain = folder / "plain.jsonl.gz"
        _write_jsonl_gz(plain, synthetic_records(n, raw=False))
        size = plain.stat().st_size / 1e6
        print(f"{n} records; canonical JSONL.gz is {size:.0f} MB")

        result: Any = _timed("read raw JSONL.gz (per-record)", n, lambda: read_calls(raw_path))
        assert result.n_bad == 0, result.errors[:3]
        result = _timed("read canonical JSONL.gz", n, lambda: read_calls(plain))
        table = result.table
        for suffix in ("jsonl", "jsonl.gz", "jsonl.zst", "parquet"):
            target = folder / f"out.{suffix}"
            _timed(f"write {suffix}", n, functools.partial(write_table, table, target))
            back: Any = _timed(f"read {suffix}", n, functools.partial(read_calls, target))
            assert back.table.equals(table)
    finally:
        if args.dir is None:
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
