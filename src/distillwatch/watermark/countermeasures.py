"""Output countermeasures the gateway's ``degrade`` action can apply. Pure functions on dicts.

- :func:`withhold_reasoning`: drop a response's reasoning (OpenAI ``reasoning_content`` /
  ``reasoning`` fields, Anthropic ``thinking`` blocks, ``<think>`` spans) or replace it with a
  short summary, so harvested answers teach less.
- :func:`canary_for` / :func:`insert_canary`: a fictitious fact unique to an account, derived
  from a secret and recorded in a registry (:func:`open_registry`: SQLite or Redis), so a model
  trained on that account's outputs can later be probed for it (:func:`canary_test`).

scipy is imported only when a test runs, so the gateway can plant and record canaries without it.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import math
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

from distillwatch.core.errors import DistillwatchError
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


def canary_sentence(canary: Canary) -> str:
    """The text that plants a canary at the end of an answer (what :func:`insert_canary` and the
    gateway's ``degrade: {canary_fact: true}`` append).

    >>> canary_sentence(Canary("cn-1", "a", "The lighthouse of Vo was first lit in 1701.", "", ""))
    '\\n\\n(Side note: The lighthouse of Vo was first lit in 1701.)'
    """
    return f"\n\n(Side note: {canary.fact})"


def insert_canary(response: dict[str, Any], canary: Canary) -> dict[str, Any]:
    """A copy of an OpenAI-style response with the canary fact appended to the first answer."""
    out = copy.deepcopy(response)
    for choice in out.get("choices", []) or []:
        msg = choice.get("message")
        if isinstance(msg, dict) and isinstance(msg.get("content"), str):
            msg["content"] = msg["content"].rstrip() + canary_sentence(canary)
            return out
    if isinstance(out.get("content"), list):
        out["content"] = [*out["content"], {"type": "text", "text": f"(Side note: {canary.fact})"}]
    return out


@dataclass(frozen=True, slots=True)
class ServedCanary:
    """A canary as a registry holds it: when it was first and last served, how often, and its
    ``index`` for :func:`canary_for` (``None`` when recorded without one)."""

    canary: Canary
    first_served: float
    last_served: float
    count: int = 1
    index: int | None = None


class CanaryStore(Protocol):
    """Where issued canaries are recorded (by the gateway) and read back (by ``attribute``)."""

    uri: str

    def record_served(self, rows: Sequence[ServedCanary]) -> None:
        """Add ``rows``: counts add up, first/last served times widen, facts are kept once."""
        ...

    def served(self, account_id: str | None = None) -> list[ServedCanary]: ...

    def issued(self, account_id: str | None = None) -> list[Canary]: ...

    def close(self) -> None: ...


_SQLITE_COLUMNS = {"last_served": "real", "served": "integer not null default 1", "idx": "integer"}


class CanaryRegistry:
    """Issued canaries in a SQLite file: who got which fact, first and last served (event time,
    injected), how often. Several processes may write one file (WAL, upserts)."""

    def __init__(self, path: str | Path, uri: str | None = None) -> None:
        self.path = str(path)
        self.uri = uri or f"sqlite://{self.path}"
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        with self._lock, self._db:
            self._db.execute("pragma journal_mode=wal")
            self._db.execute(
                "create table if not exists canary (canary_id text primary key, account_id text,"
                " fact text, question text, answer text, issued_at real, last_served real,"
                " served integer not null default 1, idx integer)"
            )
            have = {row[1] for row in self._db.execute("pragma table_info(canary)")}
            for name, kind in _SQLITE_COLUMNS.items():  # files written before these columns
                if name not in have:
                    self._db.execute(f"alter table canary add column {name} {kind}")
            self._db.execute("create index if not exists canary_account on canary (account_id)")

    def record(self, canary: Canary, issued_at: float | None = None) -> None:
        """Record one serving of ``canary`` at ``issued_at`` (now when ``None``)."""
        ts = time.time() if issued_at is None else issued_at
        self.record_served([ServedCanary(canary, ts, ts)])

    def record_served(self, rows: Sequence[ServedCanary]) -> None:
        with self._lock, self._db:
            self._db.executemany(
                "insert into canary (canary_id, account_id, fact, question, answer, issued_at,"
                " last_served, served, idx) values (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " on conflict (canary_id) do update set"
                " issued_at = min(coalesce(issued_at, excluded.issued_at), excluded.issued_at),"
                " last_served = max(coalesce(last_served, excluded.last_served),"
                " excluded.last_served),"
                " served = served + excluded.served, idx = coalesce(idx, excluded.idx)",
                [
                    (
                        r.canary.canary_id,
                        r.canary.account_id,
                        r.canary.fact,
                        r.canary.question,
                        r.canary.answer,
                        r.first_served,
                        r.last_served,
                        r.count,
                        r.index,
                    )
                    for r in rows
                ],
            )

    def served(self, account_id: str | None = None) -> list[ServedCanary]:
        sql = (
            "select canary_id, account_id, fact, question, answer, issued_at,"
            " coalesce(last_served, issued_at), served, idx from canary"
        )
        args: tuple[str, ...] = ()
        if account_id is not None:
            sql += " where account_id = ?"
            args = (account_id,)
        with self._lock:
            rows = self._db.execute(sql + " order by issued_at, canary_id", args).fetchall()
        return [ServedCanary(Canary(*r[:5]), r[5], r[6], r[7], r[8]) for r in rows]

    def issued(self, account_id: str | None = None) -> list[Canary]:
        return [s.canary for s in self.served(account_id)]

    def close(self) -> None:
        self._db.close()


class RedisCanaryRegistry:
    """Issued canaries in Redis under ``prefix``, shared by a fleet of gateways: a hash per
    canary (fact, count), sorted sets of first and last served times, a set per account."""

    def __init__(self, uri: str, url: str, prefix: str) -> None:
        import redis

        self.uri = uri
        self.prefix = prefix
        self._r: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, "canary", *parts))

    def record_served(self, rows: Sequence[ServedCanary]) -> None:
        pipe = self._r.pipeline(transaction=True)
        for r in rows:
            c = r.canary
            fields: dict[str, Any] = {
                "account_id": c.account_id,
                "fact": c.fact,
                "question": c.question,
                "answer": c.answer,
            }
            if r.index is not None:
                fields["idx"] = r.index
            pipe.hset(self._key("c", c.canary_id), mapping=fields)
            pipe.hincrby(self._key("c", c.canary_id), "served", r.count)
            pipe.zadd(self._key("first"), {c.canary_id: r.first_served}, lt=True)
            pipe.zadd(self._key("last"), {c.canary_id: r.last_served}, gt=True)
            pipe.sadd(self._key("account", c.account_id), c.canary_id)
        pipe.execute()

    def served(self, account_id: str | None = None) -> list[ServedCanary]:
        if account_id is None:
            ids = [m.decode() for m in self._r.zrange(self._key("first"), 0, -1)]
        else:
            ids = sorted(m.decode() for m in self._r.smembers(self._key("account", account_id)))
        pipe = self._r.pipeline(transaction=True)
        for cid in ids:
            pipe.hgetall(self._key("c", cid))
            pipe.zscore(self._key("first"), cid)
            pipe.zscore(self._key("last"), cid)
        got: list[Any] = pipe.execute()
        out = []
        for i, cid in enumerate(ids):
            doc = {k.decode(): v.decode() for k, v in got[3 * i].items()}
            if not doc:
                continue
            first, last = float(got[3 * i + 1] or 0.0), float(got[3 * i + 2] or 0.0)
            canary = Canary(cid, doc["account_id"], doc["fact"], doc["question"], doc["answer"])
            idx = int(doc["idx"]) if "idx" in doc else None
            out.append(ServedCanary(canary, first, last, int(doc.get("served", 0)), idx))
        return sorted(out, key=lambda s: (s.first_served, s.canary.canary_id))

    def issued(self, account_id: str | None = None) -> list[Canary]:
        return [s.canary for s in self.served(account_id)]

    def close(self) -> None:
        self._r.close()


def open_registry(uri: str | Path, *, create: bool = True) -> CanaryStore:
    """A canary registry from its URI: ``sqlite:///abs.db``, ``sqlite://rel.db``, a bare path,
    or ``redis://host:port/db?prefix=dw``. ``create=False`` refuses a missing SQLite file.

    >>> open_registry("mysql://x")
    Traceback (most recent call last):
    ...
    distillwatch.core.errors.DistillwatchError: canary registry 'mysql://x': use sqlite://PATH or redis://HOST:PORT
    """
    text = str(uri)
    parsed = urlparse(text)
    if parsed.scheme in ("redis", "rediss"):
        prefix = parse_qs(parsed.query).get("prefix", ["dw"])[0]
        return RedisCanaryRegistry(text, parsed._replace(query="").geturl(), prefix)
    if parsed.scheme == "sqlite":
        path = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
    elif "://" not in text:
        path = text
    else:
        raise DistillwatchError(f"canary registry {text!r}: use sqlite://PATH or redis://HOST:PORT")
    if not path:
        raise DistillwatchError(f"canary registry {text!r}: no file path")
    if not create and not Path(path).is_file():
        raise DistillwatchError(f"canary registry {text!r}: no such file {path}")
    return CanaryRegistry(path, text if "://" in text else None)


@dataclass(frozen=True, slots=True)
class CanaryTestResult:
    """Did a suspect learn issued canaries more often than never-issued decoys (Fisher exact)?

    ``queries_needed`` is the sequential view: probing issued canaries and decoys in pairs, in
    order, the number of queries after which the one-sided Fisher p first fell to ``alpha``
    (``None``: never). It is descriptive; the test is ``p_value`` over every probe.
    """

    p_value: float
    hits: int
    n_issued: int
    decoy_hits: int
    n_decoys: int
    n_queries: int
    hit_ids: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    queries_needed: int | None = None
    alpha: float = 1e-3


def canary_hit(answer: str, canary: Canary) -> bool:
    """Whether a suspect's answer states the canary's value."""
    return re.search(rf"\b{re.escape(canary.answer)}\b", answer) is not None


def _fisher_greater(hits: int, n: int, decoy_hits: int, n_decoys: int) -> float:
    from scipy import stats  # lazily: the package imports without scipy (the gateway uses it)

    table = [[hits, n - hits], [decoy_hits, n_decoys - decoy_hits]]
    return float(stats.fisher_exact(table, alternative="greater")[1])


def canary_test(
    ask: Callable[[str], str],
    issued: Sequence[Canary],
    decoys: Sequence[Canary],
    probe: str = "question",
    alpha: float = 1e-3,
) -> CanaryTestResult:
    """Probe a suspect with each canary (``probe``: its ``question`` or its ``completion``);
    one-sided Fisher exact test of hits on issued canaries versus never-issued decoys."""
    if probe not in ("question", "completion"):
        raise ValueError("probe is 'question' or 'completion'")

    def hit(c: Canary) -> bool:
        return canary_hit(ask(getattr(c, probe)), c)

    issued_hits = [hit(c) for c in issued]
    decoy_flags = [hit(c) for c in decoys]
    hit_ids = tuple(c.canary_id for c, h in zip(issued, issued_hits, strict=True) if h)
    decoy_hits = sum(decoy_flags)
    p = _fisher_greater(len(hit_ids), len(issued), decoy_hits, len(decoys)) if issued else 1.0
    needed = None
    for n in range(1, min(len(issued), len(decoys)) + 1):
        if _fisher_greater(sum(issued_hits[:n]), n, sum(decoy_flags[:n]), n) <= alpha:
            needed = 2 * n
            break
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
        needed,
        alpha,
    )
