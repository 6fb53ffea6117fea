"""``distillwatch train``: fit the account detector on simulated traffic, reproducibly."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from distillwatch.core.errors import DistillwatchError
from distillwatch.detectors.gbm import GradientBoostedDetector
from distillwatch.detectors.train import (
    ClusterTrainSpec,
    TrainSpec,
    train_cluster_detector,
    train_detector,
)
from distillwatch.scoring.pipeline import default_cluster_detector_path, default_detector_path
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
    seeds: str | None = typer.Option(
        None, "--seeds", help="Simulator seeds to fit on (default 101,102; clusters 104,105)."
    ),
    calibration_seed: int | None = typer.Option(
        None, "--calibration-seed", help="Seed for calibration (default 103; clusters 106)."
    ),
    accounts: int = typer.Option(
        4000, "--accounts", min=100, help="Accounts per simulated population."
    ),
    days: int = typer.Option(7, "--days", min=1, help="Days per simulated population."),
    scenario: list[Path] = typer.Option(
        None, "--scenario", help="Extra training scenario (repeatable)."
    ),
    corpora: Path | None = typer.Option(None, "--corpora", help="Staged corpus folder."),
    clusters: bool = typer.Option(
        False,
        "--clusters",
        help="Fit the cluster detector instead (default seeds 104,105, calibration 106), on "
        "the scores of the account detector given by --detector (default: packaged).",
    ),
    detector: Path | None = typer.Option(
        None, "--detector", help="With --clusters: the account detector to score members with."
    ),
) -> None:
    """Simulate training and calibration populations and fit the account (or cluster) detector."""
    console = Console(stderr=True)
    if clusters:
        _train_clusters(console, out, seeds, calibration_seed, accounts, days, scenario, corpora,
                        detector)  # fmt: skip
        return
    spec = TrainSpec(
        seeds=_ints(seeds or "101,102"),
        calibration_seed=103 if calibration_seed is None else calibration_seed,
        accounts=accounts,
        days=days,
        scenarios=(None, *(str(s) for s in scenario or [])),
    )
    if spec.calibration_seed in spec.seeds:
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


def _train_clusters(
    console: Console, out: Path | None, seeds: str | None, calibration_seed: int | None,
    accounts: int,
    days: int, scenario: list[Path] | None, corpora: Path | None, detector: Path | None,
) -> None:  # fmt: skip
    seed_list = _ints(seeds or "104,105")
    cal = 106 if calibration_seed is None else calibration_seed
    spec = ClusterTrainSpec(
        seeds=seed_list,
        calibration_seed=cal,
        accounts=accounts,
        days=days,
        scenarios=(None, *(str(s) for s in scenario or [])),
    )
    if cal in spec.seeds:
        console.print("[red]error:[/red] the calibration seed must not be a training seed")
        raise typer.Exit(2)
    try:
        account_det = GradientBoostedDetector.load(detector or default_detector_path())
        meta = account_det.meta_
        used = {int(x) for x in [*meta.get("train_seeds", []), meta.get("calibration_seed", -1)]}
        if used & {*spec.seeds, cal}:
            console.print(
                f"[red]error:[/red] seeds {sorted(used & {*spec.seeds, cal})} trained the account "
                "detector: member scores on them would be in-sample"
            )
            raise typer.Exit(2)
        pools = load_corpora(find_corpus_dir(corpora))
        with console.status("training") as status:
            det = train_cluster_detector(spec, pools, account_det, lambda m: status.update(m))
    except DistillwatchError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    dest = out or default_cluster_detector_path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    det.save(dest)
    top = sorted(det.feature_importance().items(), key=lambda kv: -kv[1])[:10]
    console.print(
        f"cluster detector -> {dest} (trained on {det.meta_['train_clusters']:,} clusters, "
        f"{det.meta_['train_campaign_clusters']:,} of them campaigns)"
    )
    console.print("top features by gain: " + ", ".join(k for k, _ in top))
