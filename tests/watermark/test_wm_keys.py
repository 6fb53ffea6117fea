"""Key handling: HMAC derivation, secrecy in repr, master files, raw keys."""

from __future__ import annotations

import os
import stat

import pytest

from distillwatch.core.errors import DistillwatchError
from distillwatch.watermark.keys import (
    account_keys,
    derive_int,
    derive_key,
    load_master,
    new_master,
    raw_key,
    save_master,
)

MASTER = b"k" * 32


def test_derivation_is_deterministic_and_separates_accounts_periods_schemes() -> None:
    a = derive_key(MASTER, "alice", "2026-11")
    assert a == derive_key(MASTER, "alice", "2026-11")
    others = {
        derive_key(MASTER, "bob", "2026-11").value,
        derive_key(MASTER, "alice", "2026-12").value,
        derive_key(MASTER, "alice", "2026-11", scheme="gumbel").value,
        derive_key(b"j" * 32, "alice", "2026-11").value,
    }
    assert a.value not in others and len(others) == 4
    assert a.key_id == "acct:alice@2026-11"
    assert derive_key(MASTER, "alice").key_id == "acct:alice"
    # no ambiguity from concatenation
    assert derive_key(MASTER, "ab", "c").value != derive_key(MASTER, "a", "bc").value


def test_repr_never_shows_the_secret() -> None:
    k = derive_key(MASTER, "alice")
    assert str(k.value) not in repr(k) and hex(k.value) not in repr(k)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(DistillwatchError):
        derive_key(b"short", "alice")
    with pytest.raises(DistillwatchError):
        derive_key(MASTER, "")
    with pytest.raises(DistillwatchError):
        raw_key("not-a-key")


def test_raw_keys_parse_int_and_hex() -> None:
    assert raw_key("0x10").value == 16 == raw_key(16).value == raw_key("16").value
    assert raw_key("0x10").key_id.startswith("raw:")


def test_master_file_round_trip_is_private(tmp_path, monkeypatch) -> None:
    path = tmp_path / "sub" / "master.hex"
    m = new_master()
    save_master(path, m)
    assert load_master(path) == m
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    monkeypatch.setenv("DISTILLWATCH_WM_MASTER", m.hex())
    assert load_master() == m
    monkeypatch.delenv("DISTILLWATCH_WM_MASTER")
    with pytest.raises(DistillwatchError):
        load_master()
    (tmp_path / "bad").write_text("zz")
    with pytest.raises(DistillwatchError):
        load_master(tmp_path / "bad")


def test_account_keys_and_aux_ints() -> None:
    ks = account_keys(MASTER, ["a", "b", "c"], "p")
    assert [k.key_id for k in ks] == ["acct:a@p", "acct:b@p", "acct:c@p"]
    assert derive_int(MASTER, "x") != derive_int(MASTER, "y")
