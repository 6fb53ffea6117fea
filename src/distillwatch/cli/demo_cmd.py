"""``distillwatch demo``: simulate a small labelled population, scan it, evaluate, show the report."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from distillwatch.cli.scan_cmd import scan
from distillwatch.cli.simulate_cmd import CallFormat, simulate
from distillwatch.eval import evaluate, read_truth, read_verdicts, render_html, to_json
from distillwatch.sim import bundled_dir


def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", help="Folder for the demo's files."),
    accounts: int = typer.Option(1500, "--accounts", min=50, help="Accounts to simulate."),
    days: int = typer.Option(2, "--days", min=1, help="Days to simulate."),
    seed: int = typer.Option(1, "--seed", help="Simulator seed (the detector never saw it)."),
) -> None:
    """Simulate traffic from the bundled corpus sample, scan it, and evaluate against the truth."""
    console = Console(stderr=True)
    data, scanned = out / "data", out / "scan"
    simulate(
        out=data, accounts=accounts, days=days, seed=seed, scenario=None,
        corpora=bundled_dir(), fmt=CallFormat.parquet, quiet=False,
    )  # fmt: skip
    scan(
        logs=[data / "calls.parquet"], out=scanned, accounts=data / "accounts.parquet",
        models=data / "models.parquet", since=None, until=None, config=None, detector=None,
        cluster_detector=None, clusters=True, previous=None, quiet=False,
    )  # fmt: skip
    result = evaluate(
        read_truth(data / "labels.parquet"), read_verdicts(scanned / "accounts.parquet")
    )
    (scanned / "eval.json").write_text(json.dumps(to_json(result), indent=1) + "\n")
    (scanned / "eval.html").write_text(render_html(result, title="distillwatch demo: eval"))
    points = ", ".join(
        f"TPR {p.tpr:.1%} at FPR ≤ {p.target_fpr:.1%}" for p in result.operating_points
    )
    console.print(f"ROC-AUC {result.roc_auc:.4f}; {points}")
    console.print(f"report: {(scanned / 'report.html').resolve()}")
    console.print(f"eval:   {(scanned / 'eval.html').resolve()}")
