"""Generalisation to an attack style never seen in training (leave one style out).

Trains trees and calibration on default-scenario seeds with one attack style's campaigns
removed, then scans a held-out seed of the full default scenario and prints recall per style
(the left-out one included) and false positives per legitimate persona.

    .venv/bin/python bench/eval_leave_one_out.py --style passive_harvest [--accounts 2500] \
        [--eval-accounts 5000] [--corpora ../shared/data]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import polars as pl
import yaml

from distillwatch.detectors import GradientBoostedDetector
from distillwatch.detectors.train import _xy, simulated_features
from distillwatch.eval import evaluate
from distillwatch.scoring import ScanPipeline
from distillwatch.sim import (
    ATTACK_STYLES,
    Simulator,
    find_corpus_dir,
    load_corpora,
    load_scenario,
    shipped_fit,
)
from distillwatch.sim.scenario import default_scenario_text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--style", required=True, choices=ATTACK_STYLES)
    ap.add_argument("--accounts", type=int, default=2500)
    ap.add_argument("--eval-accounts", type=int, default=5000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--eval-seed", type=int, default=201)
    ap.add_argument("--corpora", type=Path, default=None)
    args = ap.parse_args()
    pools = load_corpora(find_corpus_dir(args.corpora))
    campaigns = yaml.safe_load(default_scenario_text())["campaigns"]
    kept = [c for c in campaigns if c["style"] != args.style]
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "without.yaml"
        scenario.write_text(yaml.safe_dump({"campaigns": kept}))
        pipe = ScanPipeline()
        t0 = time.perf_counter()
        train = [
            simulated_features(pipe, pools, s, args.accounts, args.days, str(scenario))
            for s in (101, 102)
        ]
        cal = simulated_features(pipe, pools, 103, args.accounts, args.days, str(scenario))
    X, y = _xy(pipe, train)
    X_cal, y_cal = _xy(pipe, [cal])
    pipe.detector = GradientBoostedDetector(seed=101).fit(X, y, X_cal.select(X.columns), y_cal)
    print(f"trained without {args.style} in {time.perf_counter() - t0:.0f} s")
    res = Simulator(load_scenario(), pools, shipped_fit(), seed=args.eval_seed).run(
        args.eval_accounts, args.days
    )
    verdicts, _ = pipe.scan(
        pl.from_arrow(res.calls).lazy(),  # type: ignore[union-attr]
        pl.from_arrow(res.accounts).lazy(),  # type: ignore[union-attr]
        pl.from_arrow(res.models).lazy(),  # type: ignore[union-attr]
    )
    truth = pl.from_arrow(res.labels)
    assert isinstance(truth, pl.DataFrame)
    r = evaluate(truth, verdicts)
    pts = "; ".join(
        f"TPR {p.tpr:.1%} at FPR≤{p.target_fpr:.1%} ({p.false_positives} FP)"
        for p in r.operating_points
    )
    print(f"held-out seed {args.eval_seed}: ROC-AUC {r.roc_auc:.4f}; {pts}")
    for g in r.attack_styles:
        mark = "  <- never seen in training" if g.group == args.style else ""
        print(f"  recall {g.group:<18} n={g.n:>4}  " + "  ".join(f"{x:.1%}" for x in g.rate) + mark)
    for g in r.legit_personas:
        if max(g.rate) > 0:
            print(f"  FPR    {g.group:<18} n={g.n:>4}  " + "  ".join(f"{x:.2%}" for x in g.rate))


if __name__ == "__main__":
    main()
