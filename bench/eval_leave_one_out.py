"""Generalisation to an attack style never seen in training (leave one style out).

Simulates the training (seeds 101, 102), calibration (103) and held-out (``--eval-seed``)
populations of the default scenario once. For each style asked for, fits trees and calibration
on the training and calibration accounts with that style's campaign accounts removed, scans the
held-out population and prints recall per style (the left-out one included) and false positives
per legitimate persona, then a summary table over the styles.

Removing a style's accounts after simulation (rather than simulating without the campaign)
leaves their prompts in the population that template-family sharing is counted over; it lets
every style reuse one set of simulations.

    .venv/bin/python bench/eval_leave_one_out.py --style all [--accounts 2500] \
        [--eval-accounts 5000] [--corpora ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from distillwatch.detectors import GradientBoostedDetector
from distillwatch.detectors.train import _xy, simulated_population
from distillwatch.eval import evaluate
from distillwatch.scoring import ScanPipeline, score_accounts
from distillwatch.sim import (
    ATTACK_STYLES,
    find_corpus_dir,
    load_corpora,
)
from distillwatch.sim.corpora import Corpora


def _labelled(pipe: ScanPipeline, pools: Corpora, seed: int, n: int, days: int) -> pl.DataFrame:
    calls, accounts, models, labels = simulated_population(pools, seed, n, days)
    feats = pipe.features(calls, accounts, models)
    return feats.join(labels, on=["account_id"], how="inner", suffix="_label")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--style", required=True, help="an attack style, a comma list, or 'all'")
    ap.add_argument("--accounts", type=int, default=2500)
    ap.add_argument("--eval-accounts", type=int, default=5000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--eval-seed", type=int, default=201)
    ap.add_argument("--corpora", type=Path, default=None)
    args = ap.parse_args()
    styles = ATTACK_STYLES if args.style == "all" else tuple(args.style.split(","))
    unknown = set(styles) - set(ATTACK_STYLES)
    if unknown:
        ap.error(f"unknown style(s) {sorted(unknown)}; choose from {ATTACK_STYLES}")
    pools = load_corpora(find_corpus_dir(args.corpora))
    pipe = ScanPipeline()
    t0 = time.perf_counter()
    train = pl.concat(
        [_labelled(pipe, pools, s, args.accounts, args.days) for s in (101, 102)],
        how="diagonal_relaxed",
    )
    cal = _labelled(pipe, pools, 103, args.accounts, args.days)
    held = _labelled(pipe, pools, args.eval_seed, args.eval_accounts, args.days)
    print(f"simulated and featurised in {time.perf_counter() - t0:.0f} s", flush=True)
    truth = held.select("account_id", "label", "persona", "campaign_id", "org_id_label").rename(
        {"org_id_label": "org_id"}
    )
    summary = []
    for style in styles:
        t1 = time.perf_counter()
        X, y = _xy(pipe, [train.filter(pl.col("persona") != style).drop(_LABEL_EXTRA)])
        X_cal, y_cal = _xy(pipe, [cal.filter(pl.col("persona") != style).drop(_LABEL_EXTRA)])
        det = GradientBoostedDetector(seed=101).fit(X, y, X_cal.select(X.columns), y_cal)
        verdicts = score_accounts(held.drop("label", *_LABEL_EXTRA), det, pipe.config)
        r = evaluate(truth, verdicts)
        pts = "; ".join(
            f"TPR {p.tpr:.1%} at FPR≤{p.target_fpr:.1%} ({p.false_positives} FP)"
            for p in r.operating_points
        )
        print(f"\nwithout {style} ({time.perf_counter() - t1:.0f} s): held-out seed "
              f"{args.eval_seed}: ROC-AUC {r.roc_auc:.4f}; {pts}")  # fmt: skip
        for g in r.attack_styles:
            mark = "  <- never seen in training" if g.group == style else ""
            print(f"  recall {g.group:<18} n={g.n:>4}  " + "  ".join(f"{x:.1%}" for x in g.rate) + mark)
            if g.group == style:
                summary.append((style, g.n, *g.rate, r.roc_auc))
        for g in r.legit_personas:
            if max(g.rate) > 0:
                print(f"  FPR    {g.group:<18} n={g.n:>4}  " + "  ".join(f"{x:.2%}" for x in g.rate))
    print("\n| left-out style | accounts | recall @0.1% FPR | recall @1% FPR | ROC-AUC |")
    print("|---|---:|---:|---:|---:|")
    for style, n, *rest in summary:
        *rates, auc = rest
        print(f"| {style} | {n} | " + " | ".join(f"{x:.1%}" for x in rates) + f" | {auc:.4f} |")


_LABEL_EXTRA = ("persona", "campaign_id", "org_id_label", "mundane_share")


if __name__ == "__main__":
    main()
