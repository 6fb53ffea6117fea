"""Watermark keys: per-account / per-period keys derived from one master secret with HMAC-SHA256.

The payload is carried by *which* key marked a text: each account (and period) gets its own key,
so a leaked text or a radioactive model points to an account. Decoding tests every candidate key
and corrects for the number of candidates (Bonferroni): :func:`decode`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from distillwatch.core.errors import DistillwatchError

MASTER_ENV = "DISTILLWATCH_WM_MASTER"
_MIN_MASTER = 16


@dataclass(frozen=True, slots=True)
class WatermarkKey:
    """One 64-bit watermark key and a public label naming whom it was issued to.

    ``key_id`` is safe to log (``acct:alice@2026-11``, ``raw:3f2a…`` for a bare key); ``value``
    is the secret and never appears in ``repr``.
    """

    key_id: str
    value: int = field(repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.value < 1 << 64:
            raise DistillwatchError("a watermark key is a 64-bit unsigned integer")


def raw_key(text: str | int) -> WatermarkKey:
    """A key given directly: an int, decimal text or ``0x`` hex (tests, experiments, one-offs)."""
    try:
        value = text if isinstance(text, int) else int(str(text), 0)
    except ValueError:
        raise DistillwatchError(f"not a key (int or 0x-hex): {text!r}") from None
    value &= (1 << 64) - 1
    tag = hashlib.sha256(value.to_bytes(8, "big")).hexdigest()[:8]
    return WatermarkKey(key_id=f"raw:{tag}", value=value)


def derive_key(master: bytes, account: str, period: str = "", scheme: str = "kgw") -> WatermarkKey:
    """The key of ``account`` in ``period`` for ``scheme``: HMAC-SHA256(master, label)[:8].

    >>> a = derive_key(b"0123456789abcdef", "alice", "2026-11")
    >>> a.key_id, a == derive_key(b"0123456789abcdef", "alice", "2026-11")
    ('acct:alice@2026-11', True)
    >>> a.value != derive_key(b"0123456789abcdef", "bob", "2026-11").value
    True
    """
    if len(master) < _MIN_MASTER:
        raise DistillwatchError(f"master secret must be at least {_MIN_MASTER} bytes")
    if not account or "\x00" in account or "\x00" in period:
        raise DistillwatchError("account must be a non-empty string without NUL")
    label = f"distillwatch/wm/v1\x00{scheme}\x00{account}\x00{period}".encode()
    digest = hmac.new(master, label, hashlib.sha256).digest()
    key_id = f"acct:{account}@{period}" if period else f"acct:{account}"
    return WatermarkKey(key_id=key_id, value=int.from_bytes(digest[:8], "big"))


def derive_int(master: bytes, label: str) -> int:
    """A 64-bit integer derived from the master secret for any other purpose (SynthID keys...)."""
    digest = hmac.new(master, f"distillwatch/aux/v1\x00{label}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")


def new_master() -> bytes:
    """A fresh 32-byte master secret."""
    return secrets.token_bytes(32)


def load_master(path: Path | None = None) -> bytes:
    """Read the master secret (hex text) from ``path``, else from ``$DISTILLWATCH_WM_MASTER``."""
    if path is not None:
        text = Path(path).read_text().strip()
    else:
        text = os.environ.get(MASTER_ENV, "").strip()
        if not text:
            raise DistillwatchError(f"no master secret: pass a file or set ${MASTER_ENV}")
    try:
        master = bytes.fromhex(text)
    except ValueError:
        raise DistillwatchError("master secret must be hex text") from None
    if len(master) < _MIN_MASTER:
        raise DistillwatchError(f"master secret must be at least {_MIN_MASTER} bytes")
    return master


def save_master(path: Path, master: bytes) -> None:
    """Write a master secret as hex, readable by the owner only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(master.hex() + "\n")


def account_keys(
    master: bytes, accounts: list[str], period: str = "", scheme: str = "kgw"
) -> list[WatermarkKey]:
    """The keys of several accounts (the candidates when decoding a payload)."""
    return [derive_key(master, a, period, scheme) for a in accounts]
