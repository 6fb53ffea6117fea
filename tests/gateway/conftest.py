"""Session fixtures for the gateway tests: one stub upstream for all of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway_procs import Stub


@pytest.fixture(scope="session")
def stub() -> Iterator[Stub]:
    s = Stub()
    yield s
    s.stop()
