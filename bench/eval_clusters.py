"""Hydra clusters on held-out simulator traffic: cluster precision/recall, attribution, the
hard negatives, and what cluster evidence adds to the account-level operating points.

Simulates a scenario (default: the hydra scenario, campaigns of 50, 500 and 5,000 accounts) on
a seed no detector was trained or calibrated on, scans it with the packaged detectors (or the
given ones), compares with the accounts' own scores (what a scan without clustering returns:
same features, same detector, so no second scan), and prints:

- cluster precision: of the clusters tiered above ``allow``, the share whose members are mostly
  campaign accounts; and the same over accounts;
- recall: campaign accounts, and campaign calls, inside a flagged cluster; per campaign and style;
- purity: clusters mixing a legitimate organisation's accounts with a campaign's;
- adjusted Rand index of cluster ids against campaign ids (campaign accounts only);
- false-positive rates of the hard-negative personas, with and without cluster evidence;
- ROC-AUC and TPR at 0.1 % and 1 % FPR, with and without cluster evidence.

    .venv/bin/python bench/eval_clusters.py [--scenario hydra] [--accounts 26050] [--days 3] \
        [--seed 301] [--corpora ../shared/data] [--out /tmp/dw-eval-clusters] \
        [--cache /tmp/dw-hydra-301]   # simulate once, reuse the tables on later runs
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import polars as pl
from sklearn.metrics import adjusted_rand_score

from distillwatch.eval import evaluate, render_html, to_json
from distillwatch.scoring import ScanPipeline
from distillwatch.scoring.accounts import score_accounts
from distillwatch.scoring.pipeline import ScanResult
from distillwatch.sim import Simulator, find_corpus_dir, load_corpora, load_scenario, shipped_fit

HARD_NEGATIVES = ("reseller", "agent_platform", "education", "corporate_team", "eval_harness")


def _scenario(name: str) -> Path | None:
    if name == "default":
        return None
    path = Path(name)
    if path.is_file():
        return path
    import distillwatch.sim as sim

    return Path(sim.__file__).parent / "scenarios" / f"{name}.yaml"


def _simulated(args: argparse.Namespace, pools: Any) -> dict[str, pl.DataFrame]:
    """The scenario's tables (calls, accounts, models, labels): read from ``args.cache`` when it
    holds them, else simulated (and written there when ``args.cache`` is set)."""
    names = ("calls", "accounts", "models", "labels")
    folder = args.cache
    if folder is not None and all((folder / f"{n}.parquet").is_file() for n in names):
        return {n: pl.read_parquet(folder / f"{n}.parquet") for n in names}
    sc = load_scenario(_scenario(args.scenario))
    res = Simulator(sc, pools, shipped_fit(), seed=args.seed).run(args.accounts, args.days)
    tables = {}
    for n in names:
        frame = pl.from_arrow(getattr(res, n))
        assert isinstance(frame, pl.DataFrame)
        tables[n] = frame
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for n, frame in tables.items():
            frame.write_parquet(folder / f"{n}.parquet")
    return tables


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="hydra")
    ap.add_argument("--accounts", type=int, default=26050)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--seed", type=int, default=301)
    ap.add_argument("--corpora", type=Path, default=None)
    ap.add_argument("--detector", type=Path, default=None)
    ap.add_argument("--cluster-detector", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("/tmp/dw-eval-clusters"))
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="folder for the simulated tables of this scenario, seed and size: read when "
        "present, else written",
    )
    args = ap.parse_args()
    pools = load_corpora(find_corpus_dir(args.corpora))
    t0 = time.perf_counter()
    tables = _simulated(args, pools)
    calls = tables["calls"]
    print(f"simulated {args.accounts:,} accounts x {args.days} d: {calls.height:,} calls "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
    pipe = ScanPipeline()
    pipe.load_detector(args.detector)
    if pipe.load_cluster_detector(args.cluster_detector) is None:
        raise SystemExit("no cluster detector: train one with `distillwatch train --clusters`")
    acc, mod = tables["accounts"].lazy(), tables["models"].lazy()
    cf = pipe.call_frame(calls.lazy())
    del calls
    t1 = time.perf_counter()
    result = pipe.scan(cf, acc, mod)
    # without clusters, a scan's verdicts are its accounts' own scores: the same features and
    # detector, no second scan needed
    assert pipe.detector is not None
    alone = score_accounts(result.features, pipe.detector, pipe.config)
    print(f"scan with clusters {time.perf_counter() - t1:.0f} s")
    report(result, alone, tables["labels"], pipe.graph.min_cluster_size, args.out, args.seed)


def report(
    result: ScanResult,
    alone: pl.DataFrame,
    truth: pl.DataFrame,
    min_cluster_size: int,
    out: Path,
    seed: int,
) -> None:
    """Print the cluster and account metrics of ``result`` (a scan with clusters) against the
    simulator's ``truth``, ``alone`` being the accounts' own verdicts; write tables to ``out``."""
    v = result.verdicts
    per_acct = v.join(truth, on="account_id")
    flagged_ids = result.clusters.filter(pl.col("tier") != "allow")["cluster_id"]
    members = per_acct.filter(pl.col("cluster_id").is_not_null())
    comp = members.group_by("cluster_id").agg(
        (pl.col("label") == "distill").mean().alias("distill_share"),
        pl.len().alias("n"),
        pl.col("n_calls").sum().alias("calls"),
        (pl.col("label") == "legit").sum().alias("legit"),
        (pl.col("label") == "distill").sum().alias("distill"),
        pl.col("persona").filter(pl.col("label") == "legit").unique().alias("legit_personas"),
    )
    flagged = comp.filter(pl.col("cluster_id").is_in(flagged_ids.implode()))
    pure = flagged.filter(pl.col("distill_share") >= 0.5)
    print(f"\nclusters: {comp.height:,} with >= {min_cluster_size} accounts; "
          f"{flagged.height} flagged (tier above allow)")  # fmt: skip
    print(f"cluster precision (flagged clusters mostly campaign): {pure.height}/{flagged.height}"
          f" = {pure.height / max(flagged.height, 1):.1%}")  # fmt: skip
    acc_prec = flagged["distill"].sum() / max(flagged["n"].sum(), 1)
    print(f"account precision inside flagged clusters: {acc_prec:.2%} "
          f"({flagged['legit'].sum()} legit of {flagged['n'].sum()})")  # fmt: skip
    mixed = comp.filter((pl.col("legit") > 0) & (pl.col("distill") > 0))
    print(f"clusters mixing legit and campaign accounts: {mixed.height} "
          f"(legit accounts in them: {mixed['legit'].sum()}; personas "
          f"{sorted({p for ps in mixed['legit_personas'] for p in ps})})")  # fmt: skip
    camp = per_acct.filter(pl.col("label") == "distill").with_columns(
        pl.col("cluster_id").is_in(flagged_ids.implode()).fill_null(False).alias("in_flagged")
    )
    print(f"campaign accounts in a flagged cluster: {camp['in_flagged'].mean():.1%}; "
          f"campaign calls attributed to a flagged cluster: "
          f"{camp.filter('in_flagged')['n_calls'].sum() / camp['n_calls'].sum():.1%}")  # fmt: skip
    by = camp.group_by("campaign_id", "persona").agg(
        pl.len().alias("accounts"),
        pl.col("in_flagged").mean().alias("acct_recall"),
        (pl.col("n_calls").filter("in_flagged").sum() / pl.col("n_calls").sum()).alias("call_share"),
        pl.col("cluster_id").drop_nulls().n_unique().alias("clusters"),
    )
    print("\n| campaign | style | accounts | clusters | accounts in flagged | calls attributed |")
    print("|---|---|---:|---:|---:|---:|")
    for r in by.sort("accounts", descending=True).iter_rows(named=True):
        print(f"| {r['campaign_id']} | {r['persona']} | {r['accounts']:,} | {r['clusters']} | "
              f"{r['acct_recall']:.1%} | {r['call_share']:.1%} |")  # fmt: skip
    ids = camp.with_columns(
        pl.col("cluster_id").fill_null(pl.concat_str(pl.lit("single-"), "account_id"))
    )
    ari = adjusted_rand_score(ids["campaign_id"].to_list(), ids["cluster_id"].to_list())
    print(f"\nadjusted Rand index (campaign accounts, cluster vs campaign): {ari:.3f}")
    with_c, without = evaluate(truth, v), evaluate(truth, alone)
    print("\n| | ROC-AUC | TPR @0.1% FPR | TPR @1% FPR |\n|---|---:|---:|---:|")
    for name, r in (("accounts alone", without), ("with cluster evidence", with_c)):
        pts = " | ".join(f"{p.tpr:.1%} ({p.false_positives} FP)" for p in r.operating_points)
        print(f"| {name} | {r.roc_auc:.4f} | {pts} |")
    print("\n| persona | accounts | FPR@0.1% alone | with clusters | FPR@1% alone | with clusters | flagged tier alone | with clusters |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    tier_alone = alone.join(truth, on="account_id")
    for g0, g1 in zip(without.legit_personas, with_c.legit_personas, strict=True):
        t_a = tier_alone.filter((pl.col("persona") == g0.group) & (pl.col("tier") != "allow")).height
        t_c = per_acct.filter((pl.col("persona") == g0.group) & (pl.col("tier") != "allow")).height
        mark = " (hard negative)" if g0.group in HARD_NEGATIVES else ""
        print(f"| {g0.group}{mark} | {g0.n} | {g0.rate[0]:.2%} | {g1.rate[0]:.2%} | "
              f"{g0.rate[1]:.2%} | {g1.rate[1]:.2%} | {t_a} | {t_c} |")  # fmt: skip
    print("\n| style | accounts | recall@1% alone | with clusters |\n|---|---:|---:|---:|")
    for g0, g1 in zip(without.attack_styles, with_c.attack_styles, strict=True):
        print(f"| {g0.group} | {g0.n} | {g0.rate[1]:.1%} | {g1.rate[1]:.1%} |")
    out.mkdir(parents=True, exist_ok=True)
    v.write_parquet(out / "accounts.parquet")
    result.clusters.write_parquet(out / "clusters.parquet")
    result.edges.write_parquet(out / "edges.parquet")
    truth.write_parquet(out / "labels.parquet")
    (out / "eval.json").write_text(json.dumps(to_json(with_c), indent=1) + "\n")
    (out / "eval.html").write_text(render_html(with_c, title=f"scan with clusters, seed {seed}"))


if __name__ == "__main__":
    main()
