"""Labelled API traffic simulator on real prompt corpora (legitimate personas and campaigns)."""

from __future__ import annotations

import os
from pathlib import Path

from distillwatch.sim.corpora import Corpora, bundled_dir, load_corpora
from distillwatch.sim.engine import SimResult, Simulator
from distillwatch.sim.scenario import ATTACK_STYLES, LEGIT_PERSONAS, Scenario, load_scenario
from distillwatch.sim.summary import summarize
from distillwatch.sim.traces import TraceFit, fit_traces, shipped_fit

__all__ = [
    "ATTACK_STYLES",
    "LEGIT_PERSONAS",
    "Corpora",
    "Scenario",
    "SimResult",
    "Simulator",
    "TraceFit",
    "bundled_dir",
    "find_corpus_dir",
    "fit_traces",
    "load_corpora",
    "load_scenario",
    "shipped_fit",
    "summarize",
]

CORPUS_ENV = "DISTILLWATCH_CORPORA"


def find_corpus_dir(explicit: Path | None = None, cwd: Path | None = None) -> Path | None:
    """Where the staged corpora are: ``explicit``, ``$DISTILLWATCH_CORPORA``, or a ``shared/data``
    (or ``../shared/data``) beside the working directory; ``None`` means the bundled sample."""
    if explicit is not None:
        return explicit
    env = os.environ.get(CORPUS_ENV)
    if env:
        return Path(env)
    here = cwd or Path.cwd()
    for cand in (here / "shared" / "data", here.parent / "shared" / "data"):
        if (cand / "sharegpt_v3").is_dir():
            return cand
    return None
