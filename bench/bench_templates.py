"""Template families and benchmark matches over simulated traffic: prompts/s, peak RSS, quality.

Each size is simulated once (2 days, enough accounts) and cached as Parquet; the timed run happens
in a fresh process so that its peak RSS is the features' own (input frame included). ``--stress``
also times an all-distinct variant (a unique token inserted mid-prompt), the worst case for the
de-duplication both functions start with. Quality (per persona / attack style) is printed for the
largest size.

.venv/bin/python bench/bench_templates.py [--sizes 100000 1000000] [--corpora ../shared/data]
    [--cache /tmp/distillwatch-bench] [--stress]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from distillwatch.features.benchmarks import BenchmarkIndex, benchmark_matches
from distillwatch.features.templates import (
    account_template_features,
    family_stats,
    template_families,
)

CALLS_PER_ACCOUNT = 70  # over two simulated days, roughly, with the default scenario


def make(size: int, path: Path, corpora: Path | None) -> None:
    """Simulate at least ``size`` calls and keep the first ``size`` prompts with their labels."""
    from distillwatch.features import prompt_frame
    from distillwatch.sim import Simulator, load_corpora, load_scenario, shipped_fit

    pools = load_corpora(corpora)
    accounts = size // CALLS_PER_ACCOUNT + 100
    while True:
        res = Simulator(load_scenario(), pools, shipped_fit(), seed=1).run(accounts, 2)
        if res.calls.num_rows >= size:
            break
        accounts = int(accounts * 1.3)
    calls = pl.from_arrow(res.calls)
    assert isinstance(calls, pl.DataFrame)
    labels = pl.from_arrow(res.labels)
    assert isinstance(labels, pl.DataFrame)
    frame = prompt_frame(calls.lazy()).select("account_id", "prompt", "system").collect()
    frame.head(size).join(
        labels.select("account_id", "persona", "campaign_id"), on="account_id", how="left"
    ).write_parquet(path)


def stress(frame: pl.DataFrame) -> pl.DataFrame:
    """Every prompt made distinct by a unique token in its middle (ends untouched)."""
    mid = pl.col("prompt").str.len_chars() // 2
    return frame.with_row_index("i").with_columns(
        pl.concat_str(
            pl.col("prompt").str.slice(0, mid),
            pl.lit(" zq"),
            pl.col("i").cast(pl.String),
            pl.lit(" "),
            pl.col("prompt").str.slice(mid),
        ).alias("prompt")
    )


def timed(path: Path, all_distinct: bool, quality: bool) -> None:
    """Worker: time both features on one cached frame and print one JSON line (then quality)."""
    frame = pl.read_parquet(path)
    if all_distinct:
        frame = stress(frame).drop("i")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    fam = template_families(frame.select("account_id", "prompt", "system"))
    t1 = time.perf_counter()
    index = BenchmarkIndex.build()
    t2 = time.perf_counter()
    bench = benchmark_matches(frame.select("prompt"), index)
    t3 = time.perf_counter()
    stats = family_stats(fam)
    acct = account_template_features(fam)
    t4 = time.perf_counter()
    out = {
        "rows": frame.height,
        "distinct": frame.get_column("prompt").n_unique(),
        "mb_text": round(frame.get_column("prompt").str.len_bytes().sum() / 1e6),
        "families_s": round(t1 - t0, 2),
        "index_s": round(t2 - t1, 2),
        "benchmarks_s": round(t3 - t2, 2),
        "stats_s": round(t4 - t3, 2),
        "rss_input_mb": round(base),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(out), flush=True)
    if quality:
        report(frame, fam.with_columns(bench.get_column("benchmark")), stats, acct)


def report(
    frame: pl.DataFrame, calls: pl.DataFrame, stats: pl.DataFrame, acct: pl.DataFrame
) -> None:
    """Quality per persona / attack style."""
    pl.Config.set_tbl_rows(40)
    pl.Config.set_tbl_width_chars(160)
    pl.Config.set_fmt_str_lengths(70)
    personas = frame.select("account_id", "persona", "campaign_id").unique("account_id")
    per_account = (
        calls.group_by("account_id")
        .agg(pl.col("benchmark").is_not_null().mean().alias("benchmark_rate"))
        .join(acct, on="account_id")
        .join(personas, on="account_id")
    )
    print("\nper persona (means over accounts; K=5 other accounts)")
    print(
        per_account.group_by("persona")
        .agg(
            pl.len().alias("accounts"),
            pl.col("n_calls").sum().alias("calls"),
            pl.col("shared_template_share").mean().round(3),
            pl.col("shared_duplicate_share").mean().round(3),
            pl.col("top_family_share").mean().round(3),
            pl.col("n_families").median().alias("families_p50"),
            pl.col("benchmark_rate").mean().round(4),
        )
        .sort("persona")
    )
    labelled = calls.join(personas, on="account_id")
    cot = labelled.filter(pl.col("campaign_id") == "camp-cot", pl.col("family_kind") == "template")
    big = cot.group_by("family_id").len().filter(pl.col("len") >= 0.01 * cot.height)
    print(
        f"\ncamp-cot (12 wrappers in sim/templates.py): {cot.height:,} templated calls in "
        f"{cot.get_column('family_id').n_unique()} template families, {big.height} of them "
        f"holding >= 1% of those calls ({big.get_column('len').sum() / max(cot.height, 1):.1%})"
    )
    natural = labelled.filter(
        pl.col("persona").is_in(["casual_chat", "corporate_team", "passive_harvest"])
    )
    print(
        f"benchmark false-match rate on ShareGPT natural prompts (casual_chat, corporate_team, "
        f"passive_harvest): {natural.get_column('benchmark').is_not_null().mean():.5f} "
        f"over {natural.height:,} calls"
    )
    kinds = stats.group_by("family_kind").agg(pl.len().alias("families"), pl.col("n_calls").sum())
    print(f"\nfamilies by kind:\n{kinds.sort('family_kind')}")
    print("\nlargest template families:")
    print(
        stats.filter(pl.col("family_kind") == "template")
        .head(15)
        .select(
            "n_calls",
            "n_accounts",
            "n_prompts",
            pl.col("example").str.replace_all(r"\s+", " ").str.slice(0, 70),
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    ap.add_argument("--corpora", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/distillwatch-bench"))
    ap.add_argument("--stress", action="store_true")
    ap.add_argument("--_make", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--_time", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_distinct", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_quality", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._make:
        make(args._make, args._out, args.corpora)
        return
    if args._time:
        timed(args._time, args._distinct, args._quality)
        return

    from distillwatch.sim import find_corpus_dir

    corpora = find_corpus_dir(args.corpora)
    args.cache.mkdir(parents=True, exist_ok=True)
    me = [sys.executable, __file__]
    print(f"corpora: {corpora or 'bundled sample'}; benchmark index: shipped items")
    header = (
        f"{'traffic':>12} {'prompts':>9} {'distinct':>9} {'MB':>4} {'families s':>10} "
        f"{'bench s':>8} {'stats s':>8} {'total s':>8} {'prompts/s':>10} {'index s':>8} "
        f"{'RSS in/peak MB':>15}"
    )
    lines: list[str] = []
    quality = ""
    for size in sorted(args.sizes):
        path = args.cache / f"sim_{size}.parquet"
        if not path.is_file():
            extra = ["--corpora", str(corpora)] if corpora else []
            subprocess.run([*me, "--_make", str(size), "--_out", str(path), *extra], check=True)
        for distinct in [False, True] if args.stress else [False]:
            flags = ["--_distinct"] if distinct else []
            if size == max(args.sizes) and not distinct:
                flags.append("--_quality")
            run = subprocess.run(
                [*me, "--_time", str(path), *flags], check=True, capture_output=True, text=True
            )
            first, _, rest = run.stdout.partition("\n")
            quality = rest or quality
            r = json.loads(first)
            total = r["families_s"] + r["benchmarks_s"] + r["stats_s"]
            lines.append(
                f"{'all-distinct' if distinct else 'simulated':>12} {r['rows']:>9,} "
                f"{r['distinct']:>9,} {r['mb_text']:>4} {r['families_s']:>10.2f} "
                f"{r['benchmarks_s']:>8.2f} {r['stats_s']:>8.2f} {total:>8.2f} "
                f"{r['rows'] / total:>10,.0f} {r['index_s']:>8.2f} "
                f"{r['rss_input_mb']:>7}/{r['rss_peak_mb']:<7}"
            )
            print(lines[-1], flush=True)
    print("", header, *lines, sep="\n")
    print(quality)


if __name__ == "__main__":
    main()
