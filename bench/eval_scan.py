"""Quality of `distillwatch scan` on held-out simulator seeds (never used for training).

Simulates each seed with the default scenario, scans it with the packaged detector and
evaluates against the truth; optionally compares, on the same accounts, with the MMD baseline's
scores written by bench/bench_mmd_baseline.py.

    .venv/bin/python bench/eval_scan.py --seeds 201,202 --accounts 5000 --days 7 \
        [--corpora ../shared/data] [--mmd /tmp/mmd_run/mmd_baseline.parquet --mmd-seed 201]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import polars as pl

from distillwatch.eval import evaluate, render_html, to_json
from distillwatch.scoring import ScanPipeline
from distillwatch.sim import Simulator, find_corpus_dir, load_corpora, load_scenario, shipped_fit


def _print(name: str, r: object) -> None:
    from distillwatch.eval import EvalResult

    assert isinstance(r, EvalResult)
    pts = "; ".join(f"TPR {p.tpr:.1%} at FPR≤{p.target_fpr:.1%} (FP {p.false_positives})" for p in r.operating_points)
    print(f"\n== {name}: ROC-AUC {r.roc_auc:.4f}, PR-AUC {r.average_precision:.4f}; {pts}")
    for g in r.legit_personas:
        print(f"   legit {g.group:<24} n={g.n:>5}  FPR " + "  ".join(f"{x:.2%}" for x in g.rate))
    for g in r.attack_styles:
        print(f"   style {g.group:<24} n={g.n:>5}  TPR " + "  ".join(f"{x:.2%}" for x in g.rate))
    if r.tiers is not None:
        print(f"   tiers: actioned TPR {r.tiers.tpr:.2%}, FPR {r.tiers.fpr:.3%}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="201,202")
    ap.add_argument("--accounts", type=int, default=5000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--scenario", type=Path, default=None, help="scenario file (default: default)")
    ap.add_argument("--corpora", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("/tmp/dw-eval"))
    ap.add_argument("--mmd", type=Path, default=None, help="MMD baseline scores (parquet)")
    ap.add_argument("--mmd-seed", type=int, default=201)
    ap.add_argument("--mmd-accounts", type=int, default=3000)
    args = ap.parse_args()
    pools = load_corpora(find_corpus_dir(args.corpora))
    pipe = ScanPipeline()
    pipe.load_detector()
    print(f"detector trained on: {json.dumps(pipe.detector.meta_ if pipe.detector else {})}")
    runs = [(int(s), args.accounts) for s in args.seeds.split(",")]
    if args.mmd is not None and (args.mmd_seed, args.mmd_accounts) not in runs:
        runs.append((args.mmd_seed, args.mmd_accounts))
    for seed, n in runs:
        t0 = time.perf_counter()
        sc = load_scenario(args.scenario)
        res = Simulator(sc, pools, shipped_fit(), seed=seed).run(n, args.days)
        t1 = time.perf_counter()
        calls = pl.from_arrow(res.calls).lazy()  # type: ignore[union-attr]
        verdicts = pipe.scan(
            calls, pl.from_arrow(res.accounts).lazy(), pl.from_arrow(res.models).lazy()  # type: ignore[union-attr]
        ).verdicts
        t2 = time.perf_counter()
        truth = pl.from_arrow(res.labels)
        assert isinstance(truth, pl.DataFrame)
        r = evaluate(truth, verdicts)
        out = args.out / f"seed{seed}-{n}"
        out.mkdir(parents=True, exist_ok=True)
        verdicts.write_parquet(out / "accounts.parquet")
        truth.write_parquet(out / "labels.parquet")
        (out / "eval.json").write_text(json.dumps(to_json(r), indent=1) + "\n")
        (out / "eval.html").write_text(render_html(r, title=f"scan on held-out seed {seed}"))
        print(f"\nseed {seed}: {n} accounts, {res.calls.num_rows:,} calls; simulate {t1 - t0:.0f} s, scan {t2 - t1:.0f} s")
        _print(f"distillwatch scan, seed {seed}", r)
        if args.mmd is not None and seed == args.mmd_seed and n == args.mmd_accounts:
            mmd = pl.read_parquet(args.mmd)
            ids = mmd.select("account_id")
            sub_truth = truth.join(ids, on="account_id")
            _print("MMD baseline (same accounts)", evaluate(sub_truth, mmd.select("account_id", "score")))
            _print("distillwatch (same accounts)", evaluate(sub_truth, verdicts.join(ids, on="account_id")))


if __name__ == "__main__":
    main()
