"""The doctests of the template and benchmark feature modules run here."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["templates", "benchmarks"])
def test_doctests(name: str) -> None:
    failures, tried = doctest.testmod(importlib.import_module(f"distillwatch.features.{name}"))
    assert tried > 0 and failures == 0
