"""Output countermeasures the gateway's ``degrade`` action can apply. Pure functions on dicts.

- :func:`withhold_reasoning`: drop a response's reasoning (OpenAI ``reasoning_content`` /
  ``reasoning`` fields, Anthropic ``thinking`` blocks, ``<think>`` spans) or replace it with a
  short summary, so harvested answers teach less.
- :func:`canary_for` / :func:`insert_canary`: a fictitious fact unique to an account, derived
  from a secret and recorded in a :class:`CanaryRegistry`, so a model trained on that account's
  outputs can later be probed for it (:func:`canary_test`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import math
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scipy import stats

from distillwatch.core.values import Evidence

_THINK = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>\s*", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think(?:ing)?>(.*?)</think(?:ing)?>", re.DOTALL | re.IGNORECASE)
_REASONING_FIELDS = ("reasoning_content", "reasoning", "reasoning_details", "thinking")
_SENT = re.compile(r"(?<=[.!?])\s+")


def summarise_reasoning(text: str, max_sentences: int = 2, max_chars: int = 280) -> str:
    """A short extractive stand-in for a reasoning trace: its first sentences, clipped.

    >>> summarise_reasoning("First I add 2 and 2. That gives 4. Then I check it. Done.")
    '[reasoning summarised] First I add 2 and 2. That gives 4.'
    """
    sentences = [s.strip() for s in _SENT.split(text.strip()) if s.strip()]
    summary = " ".join(sentences[:max_sentences])
    if len(summary) > max_chars:
        summary = summary[: max_chars - 1].rstrip() + "…"
    return f"[reasoning summarised] {summary}" if summary else "[reasoning withheld]"


def withhold_reasoning(
    response: dict[str, Any],
    mode: str = "withhold",
    summariser: Callable[[str], str] = summarise_reasoning,
) -> dict[str, Any]:
    """A copy of an OpenAI- or Anthropic-style response with its reasoning removed or summarised.

    ``mode`` is ``"withhold"`` (drop it) or ``"summary"`` (replace it by ``summariser(text)``).
    The input is never modified.

    >>> r = {"choices": [{"message": {"content": "<think>x is 2</think>Answer: 2",
    ...                              "reasoning_content": "long chain"}}]}
    >>> withhold_reasoning(r)["choices"][0]["message"]
    {'content': 'Answer: 2'}
    """
    if mode not in ("withhold", "summary"):
        raise ValueError("mode must be 'withhold' or 'summary'")
    out = copy.deepcopy(response)

    def fix_text(text: str) -> str:
        if mode == "withhold":
            return _THINK.sub("", text)
        return _THINK_OPEN.sub(lambda m: f"<think>{summariser(m.group(1))}</think>", text)

    def fix_message(msg: dict[str, Any]) -> None:
        for field_name in _REASONING_FIELDS:
            if field_name in msg:
                value = msg.pop(field_name)
                if mode == "summary" and isinstance(value, str) and value:
                    msg[field_name] = summariser(value)
        if isinstance(msg.get("content"), str):
            msg["content"] = fix_text(msg["content"])
        elif isinstance(msg.get("content"), list):
            msg["content"] = _fix_blocks(msg["content"], mode, summariser, fix_text)

    for choice in out.get("choices", []) or []:
        for part in ("message", "delta"):
            if isinstance(choice.get(part), dict):
                fix_message(choice[part])
        if isinstance(choice.get("text"), str):
            choice["text"] = fix_text(choice["text"])
    if isinstance(out.get("content"), list):  # Anthropic Messages API
        out["content"] = _fix_blocks(out["content"], mode, summariser, fix_text)
    if isinstance(out.get("output"), list):  # OpenAI Responses API
        out["output"] = [
            item
            for item in out["output"]
            if not (isinstance(item, dict) and item.get("type") == "reasoning") or mode == "summary"
        ]
        if mode == "summary":
            for item in out["output"]:
                if isinstance(item, dict) and item.get("type") == "reasoning":
                    text = " ".join(
                        s.get("text", "") for s in item.get("summary", []) if isinstance(s, dict)
                    )
                    item.pop("encrypted_content", None)
                    item["summary"] = [{"type": "summary_text", "text": summariser(text)}]
    return out


def _fix_blocks(
    blocks: list[Any],
    mode: str,
    summariser: Callable[[str], str],
    fix_text: Callable[[str], str],
) -> list[Any]:
    kept: list[Any] = []
    for block in blocks:
        if isinstance(block, dict) and block.get("type") in ("thinking", "redacted_thinking"):
            if mode == "summary" and block.get("type") == "thinking":
                kept.append({"type": "text", "text": summariser(block.get("thinking", ""))})
            continue
        if (
            isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        ):
            block = {**block, "text": fix_text(block["text"])}
        kept.append(block)
    return kept


# --- canaries -------------------------------------------------------------------------------

_ONSETS = ("br", "k", "v", "th", "m", "z", "qu", "l", "d", "s", "gr", "t", "p", "n", "h", "r")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "io", "ou")
_CODAS = ("n", "r", "l", "s", "th", "x", "m", "rd", "nd", "k")
_KINDS = (
    ("harbour town", "founded", "year"),
    ("mountain lake", "first surveyed", "year"),
    ("chess opening", "first played in a tournament", "year"),
    ("river ferry", "began service", "year"),
    ("glass-blowing guild", "chartered", "year"),
    ("lighthouse", "first lit", "year"),
)


@dataclass(frozen=True, slots=True)
class Canary:
    """A fictitious fact issued to one account, the question that probes for it and its answer."""

    canary_id: str
    account_id: str
    fact: str
    question: str
    answer: str

    @property
    def completion(self) -> str:
        """A completion probe: the fact up to its answer."""
        return "Complete the sentence: " + self.fact[: self.fact.rindex(self.answer)].rstrip()


def _name(digest: bytes) -> str:
    parts = []
    for i in range(3):
        parts.append(
            _ONSETS[digest[3 * i] % len(_ONSETS)]
            + _VOWELS[digest[3 * i + 1] % len(_VOWELS)]
            + (_CODAS[digest[3 * i + 2] % len(_CODAS)] if i == 2 else "")
        )
    return "".join(parts).capitalize()


def canary_for(account_id: str, secret: bytes, index: int = 0) -> Canary:
    """The ``index``-th canary of an account: deterministic from (secret, account, index).

    >>> c = canary_for("acct-7", b"0123456789abcdef")
    >>> c == canary_for("acct-7", b"0123456789abcdef"), c.answer in c.fact
    (True, True)
    """
    label = f"distillwatch/canary/v1\x00{account_id}\x00{index}".encode()
    digest = hmac.new(secret, label, hashlib.sha256).digest()
    name = _name(digest)
    kind, verb, _ = _KINDS[digest[10] % len(_KINDS)]
    year = str(1600 + int.from_bytes(digest[11:13], "big") % 400)
    fact = f"The {kind} of {name} was {verb} in {year}."
    question = f"In which year was the {kind} of {name} {verb}? Answer with the year only."
    cid = "cn-" + digest[16:24].hex()
    return Canary(cid, account_id, fact, question, year)


def decoy_canaries(secret: bytes, n: int) -> list[Canary]:
    """Canaries never issued to anyone: the null rate at which a model 'knows' such a fact."""
    return [canary_for(f"__decoy__{i}", secret) for i in range(n)]


def insert_canary(response: dict[str, Any], canary: Canary) -> dict[str, Any]:
    """A copy of an OpenAI-style response with the canary fact appended to the first answer."""
    out = copy.deepcopy(response)
    for choice in out.get("choices", []) or []:
        msg = choice.get("message")
        if isinstance(msg, dict) and isinstance(msg.get("content"), str):
            msg["content"] = msg["content"].rstrip() + f"\n\n(Side note: {canary.fact})"
            return out
    if isinstance(out.get("content"), list):
        out["content"] = [*out["content"], {"type": "text", "text": f"(Side note: {canary.fact})"}]
    return out


class CanaryRegistry:
    """Issued canaries in a SQLite file: who got which fact, and when (event time injected)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with self._db() as db:
            db.execute(
                "create table if not exists canary (canary_id text primary key, account_id text,"
                " fact text, question text, answer text, issued_at real)"
            )

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    def record(self, canary: Canary, issued_at: float | None = None) -> None:
        with self._db() as db:
            db.execute(
                "insert or ignore into canary values (?, ?, ?, ?, ?, ?)",
                (
                    canary.canary_id,
                    canary.account_id,
                    canary.fact,
                    canary.question,
                    canary.answer,
                    time.time() if issued_at is None else issued_at,
                ),
            )

    def issued(self, account_id: str | None = None) -> list[Canary]:
        sql = "select canary_id, account_id, fact, question, answer from canary"
        args: tuple[str, ...] = ()
        if account_id is not None:
            sql += " where account_id = ?"
            args = (account_id,)
        with self._db() as db:
            rows = db.execute(sql + " order by issued_at, canary_id", args).fetchall()
        return [Canary(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class CanaryTestResult:
    """Did a suspect learn issued canaries more often than never-issued decoys (Fisher exact)?"""

    p_value: float
    hits: int
    n_issued: int
    decoy_hits: int
    n_decoys: int
    n_queries: int
    hit_ids: tuple[str, ...]
    evidence: tuple[Evidence, ...]


def canary_hit(answer: str, canary: Canary) -> bool:
    """Whether a suspect's answer states the canary's value."""
    return re.search(rf"\b{re.escape(canary.answer)}\b", answer) is not None


def canary_test(
    ask: Callable[[str], str],
    issued: Sequence[Canary],
    decoys: Sequence[Canary],
    probe: str = "question",
) -> CanaryTestResult:
    """Probe a suspect with each canary (``probe``: its ``question`` or its ``completion``);
    one-sided Fisher exact test of hits on issued canaries versus never-issued decoys."""
    if probe not in ("question", "completion"):
        raise ValueError("probe is 'question' or 'completion'")

    def hit(c: Canary) -> bool:
        return canary_hit(ask(getattr(c, probe)), c)

    hit_ids = tuple(c.canary_id for c in issued if hit(c))
    decoy_hits = sum(hit(c) for c in decoys)
    table = [[len(hit_ids), len(issued) - len(hit_ids)], [decoy_hits, len(decoys) - decoy_hits]]
    p = float(stats.fisher_exact(table, alternative="greater")[1]) if issued else 1.0
    rate = decoy_hits / len(decoys) if decoys else 0.0
    evidence = (
        Evidence(
            "canary/hit-rate",
            len(hit_ids) / max(1, len(issued)),
            rate,
            -math.log10(max(p, 1e-300)),
            "detector:canary@1",
        ),
    )
    return CanaryTestResult(
        p,
        len(hit_ids),
        len(issued),
        decoy_hits,
        len(decoys),
        len(issued) + len(decoys),
        hit_ids,
        evidence,
    )
