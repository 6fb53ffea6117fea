"""``distillwatch train``: fit the account detector on simulated traffic, reproducibly."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from distillwatch.core.errors import DistillwatchError
from distillwatch.detectors.train import TrainSpec, train_detector
from distillwatch.scoring import default_detector_path
from distillwatch.sim import find_corpus_dir, load_corpora


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}") from None


def train(
    out: Path = typer.Option(
        None, "--out", help="Where to write the detector (default: the packaged one)."
    ),
    seeds: str = typer.Option("101,102", "--seeds", help="Simulator seeds to fit the trees on."),
    calibration_seed: int = typer.Option(103, "--calibration-seed", help="Seed for calibration."),
    accounts: int = typer.Option(
        4000, "--accounts", min=100, help="Accounts per simulated population."
    ),
    days: int = typer.Option(7, "--days", min=1, help="Days per simulated population."),
    scenario: list[Path] = typer.Option(
        None, "--scenario", help="Extra training scenario (repeatable)."
    ),
    corpora: Path | None = typer.Option(None, "--corpora", help="Staged corpus folder."),
) -> None:
    """Simulate training and calibration populations and fit the account detector."""
    console = Console(stderr=True)
    spec = TrainSpec(
        seeds=_ints(seeds),
        calibration_seed=calibration_seed,
        accounts=accounts,
        days=days,
        scenarios=(None, *(str(s) for s in scenario or [])),
    )
    if calibration_seed in spec.seeds:
        console.print("[red]error:[/red] the calibration seed must not be a training seed")
        raise typer.Exit(2)
    try:
        pools = load_corpora(find_corpus_dir(corpora))
        with console.status("training") as status:
            det = train_detector(spec, pools, progress=lambda m: status.update(m))
    except DistillwatchError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    dest = out or default_detector_path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    det.save(dest)
    top = sorted(det.feature_importance().items(), key=lambda kv: -kv[1])[:10]
    console.print(f"detector -> {dest} (trained on {det.meta_['train_accounts']:,} accounts)")
    console.print("top features by gain: " + ", ".join(k for k, _ in top))
