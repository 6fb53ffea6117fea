"""Builders for call records and input files; every test writes real files under tmp_path."""

from __future__ import annotations

import copy
import gzip
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard

Record = dict[str, Any]

_BASE: Record = {
    "ts": "2025-03-01T12:00:00.250000Z",
    "request_id": "req_0",
    "account_id": "acct_0",
    "org_id": "org_1",
    "api_key_id": "key_1",
    "model": "frontier-1",
    "endpoint": "chat.completions",
    "client": {
        "ip": "203.0.113.7",
        "user_agent": "python-httpx/0.27.0",
        "asn": 64500,
        "country": "DE",
        "tls_fingerprint": "t13d1516h2",
    },
    "request": {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Explain step by step."},
        ],
        "temperature": 0.7,
        "max_tokens": 512,
        "n": 1,
        "logprobs": False,
        "tools": ['{"type":"function","function":{"name":"f"}}'],
        "stream": False,
    },
    "response": {
        "status": 200,
        "output_text": "Step 1.",
        "finish_reason": "stop",
        "usage": {"input_tokens": 12, "output_tokens": 3, "reasoning_tokens": 0},
        "latency_ms": 812.5,
    },
}


def call(i: int = 0, **changes: Any) -> Record:
    """A valid, canonical call record; ``changes`` replace top-level fields."""
    record = copy.deepcopy(_BASE)
    record["request_id"] = f"req_{i}"
    record["account_id"] = f"acct_{i}"
    record["ts"] = f"2025-03-01T12:00:{i % 60:02d}.250000Z"
    record.update(changes)
    return record


def write_lines(path: Path, lines: Iterable[bytes | str | Record]) -> Path:
    """Write JSONL lines (records are dumped, bytes/str written as they are), compressing by
    suffix."""
    raw = b"".join(_line(item) + b"\n" for item in lines)
    if path.suffix == ".gz":
        raw = gzip.compress(raw, mtime=0)
    elif path.suffix == ".zst":
        raw = zstandard.ZstdCompressor().compress(raw)
    path.write_bytes(raw)
    return path


def _line(item: bytes | str | Record) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    return orjson.dumps(item)


@pytest.fixture
def make_call() -> Callable[..., Record]:
    return call


@pytest.fixture
def jsonl() -> Callable[[Path, Iterable[bytes | str | Record]], Path]:
    return write_lines
