"""The doctests of the watermark modules run here."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["keys", "countermeasures", "lineage"])
def test_doctests(name: str) -> None:
    failures, tried = doctest.testmod(importlib.import_module(f"distillwatch.watermark.{name}"))
    assert tried > 0 and failures == 0
