"""Account graph at scale: template families, edges and Leiden clusters on ~10M calls.

The target (issue): graph + clustering for 100,000 accounts and 10M calls within 5 minutes on a
2-core, 24 GB machine, peak RSS reported.

The simulator holds every record of a run in memory (about 9 GB of RSS for 2.6M calls), so the
input is simulated in chunks: ``--chunks`` runs of ``--accounts-per-chunk`` accounts over the same
``--days`` with seeds ``--seed + i``. Account, org and campaign ids get a ``c<i>-`` prefix so they
stay unique across chunks; nothing else is shifted (every chunk covers the same days, its traffic
overlapping the others' like one population's). Each chunk keeps only the columns the graph reads
(the call frame's ``account_id``, ``org_id``, ``ts``, ``ip``, ``asn``, ``user_agent``,
``tls_fingerprint`` and ``prompt``, built with :func:`~distillwatch.features.calls.
call_frame_from_arrow` in slices) plus the account table and the labels, cached as Parquet under
``--cache`` so that reruns skip the simulation.

The timed part runs in a fresh process, so its peak RSS (``ru_maxrss``) is its own, input frames
included: load every chunk, ``template_families`` over all prompts (timed apart: the scan
pipeline computes families anyway), then ``account_edges`` and ``cluster_accounts`` with the
default :class:`~distillwatch.clusters.GraphConfig`, as ``ScanPipeline.graph_of`` calls them.

    .venv/bin/python bench/bench_graph_scale.py                       # 10 x 10,000 accounts x 3 days
    .venv/bin/python bench/bench_graph_scale.py --chunks 2 --accounts-per-chunk 2000 --days 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

GRAPH_COLUMNS = [
    "account_id",
    "org_id",
    "ts",
    "ip",
    "asn",
    "user_agent",
    "tls_fingerprint",
    "prompt",
]
SLICE_ROWS = 200_000  # call-frame conversion slice: bounds the Polars copy made at once


def _rss_gb() -> float:
    """Peak RSS of this process so far (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def _progress(text: str) -> None:
    print(f"  {text} (peak RSS {_rss_gb():.2f} GB, load average {_load()})", file=sys.stderr)


def make_chunk(index: int, accounts: int, days: int, seed: int, out: Path) -> None:
    """Worker: simulate one chunk and write its slim calls, accounts and labels to ``out``."""
    from distillwatch.features.calls import call_frame_from_arrow
    from distillwatch.sim import (
        Simulator,
        find_corpus_dir,
        load_corpora,
        load_scenario,
        shipped_fit,
    )

    t0 = time.perf_counter()
    corpora = load_corpora(find_corpus_dir(None))
    res = Simulator(load_scenario(), corpora, shipped_fit(), seed=seed).run(accounts, days)
    t_sim = time.perf_counter() - t0
    prefix = f"c{index:02d}-"
    unique = {
        name: (pl.lit(prefix) + pl.col(name)).alias(name)
        for name in ("account_id", "org_id", "campaign_id")
    }
    parts: list[pl.DataFrame] = []
    for start in range(0, res.calls.num_rows, SLICE_ROWS):
        frame = call_frame_from_arrow(res.calls.slice(start, SLICE_ROWS)).select(GRAPH_COLUMNS)
        parts.append(frame.with_columns(unique["account_id"], unique["org_id"]))
    calls = pl.concat(parts) if parts else pl.DataFrame()
    del parts
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    calls.write_parquet(tmp / "calls.parquet")
    for name, arrow in (("accounts", res.accounts), ("labels", res.labels)):
        table_frame = pl.from_arrow(arrow)
        assert isinstance(table_frame, pl.DataFrame)
        table_frame.with_columns(
            unique[c] for c in unique if c in table_frame.columns
        ).write_parquet(tmp / f"{name}.parquet")
    tmp.rename(out)  # a chunk folder exists only once it is complete
    print(
        f"  chunk {index}: seed {seed}, {calls.height:,} calls, simulated in {t_sim:.0f} s, "
        f"framed and written in {time.perf_counter() - t0 - t_sim:.0f} s, "
        f"peak RSS {_rss_gb():.1f} GB",
        flush=True,
    )


def timed(folders: list[Path], seed: int) -> None:
    """Worker: families, edges and clusters over every chunk; one JSON line of results."""
    from distillwatch.clusters import GraphConfig, account_edges, cluster_accounts, combined_edges
    from distillwatch.features.templates import template_families

    out: dict[str, object] = {"load_at_start": _load()}
    t0 = time.perf_counter()
    calls = pl.concat([pl.read_parquet(f / "calls.parquet") for f in folders])
    accounts = pl.concat([pl.read_parquet(f / "accounts.parquet") for f in folders])
    t1 = time.perf_counter()
    out.update(load_s=t1 - t0, rss_load_gb=_rss_gb())
    _progress(f"loaded {calls.height:,} calls in {t1 - t0:.1f} s")

    families = template_families(calls.select("account_id", "prompt"))
    slim = calls.drop("prompt").with_columns(families.select("family_id", "family_kind"))
    del calls, families
    t2 = time.perf_counter()
    out.update(families_s=t2 - t1, rss_families_gb=_rss_gb())
    _progress(f"template_families in {t2 - t1:.1f} s")

    config = GraphConfig()
    edges = account_edges(slim, accounts, config)
    t3 = time.perf_counter()
    out.update(edges_s=t3 - t2, rss_edges_gb=_rss_gb())
    _progress(f"account_edges: {edges.height:,} edges in {t3 - t2:.1f} s")

    ids = slim.get_column("account_id").unique().sort()
    clusters = cluster_accounts(edges, ids, config, seed=seed)
    t4 = time.perf_counter()
    out.update(cluster_s=t4 - t3, rss_peak_gb=_rss_gb(), load_at_end=_load())
    _progress(f"cluster_accounts in {t4 - t3:.1f} s")

    sizes = clusters.drop_nulls("cluster_id").group_by("cluster_id").len()
    out.update(
        calls=slim.height,
        accounts=ids.len(),
        accounts_in_table=accounts.height,
        edges=edges.height,
        edges_by_type=dict(edges.group_by("type").len().sort("type").iter_rows()),
        graph_edges=combined_edges(edges, config).height,
        clusters=sizes.height,
        clustered_accounts=int(sizes.get_column("len").sum()),
        largest_cluster=int(sizes.select(pl.col("len").max().fill_null(0)).item()),
    )
    print("RESULT " + json.dumps(out), flush=True)


def table(r: dict[str, object], command: str) -> str:
    """The results as a markdown table."""
    f = {k: v for k, v in r.items() if isinstance(v, float)}
    calls = int(r["calls"])  # type: ignore[call-overload]
    graph_s = f["edges_s"] + f["cluster_s"]
    total_s = f["families_s"] + graph_s
    by_type = r["edges_by_type"]
    assert isinstance(by_type, dict)
    lines = [
        f"`{command}`",
        "",
        f"{calls:,} calls, {r['accounts']:,} accounts with calls "
        f"({r['accounts_in_table']:,} in the account table); load average {r['load_at_start']} "
        f"at start, {r['load_at_end']} at end",
        "",
        "| stage | wall s | calls/s | peak RSS so far, GB |",
        "|---|---:|---:|---:|",
        f"| load Parquet | {f['load_s']:.1f} | | {f['rss_load_gb']:.2f} |",
    ]
    stages = (
        ("template_families", f["families_s"], f["rss_families_gb"]),
        ("account_edges", f["edges_s"], f["rss_edges_gb"]),
        ("cluster_accounts", f["cluster_s"], f["rss_peak_gb"]),
        ("**edges + clusters**", graph_s, f["rss_peak_gb"]),
        ("**families + edges + clusters**", total_s, f["rss_peak_gb"]),
    )
    lines += [f"| {name} | {s:.1f} | {calls / s:,.0f} | {rss:.2f} |" for name, s, rss in stages]
    lines += ["", "| edge type | edges |", "|---|---:|"]
    lines += [f"| {kind} | {n:,} |" for kind, n in by_type.items()]
    lines += [
        f"| **all** | {r['edges']:,} |",
        f"| pairs in the clustering graph | {r['graph_edges']:,} |",
        "",
        f"{r['clusters']:,} clusters of >= 3 accounts, holding {r['clustered_accounts']:,} "
        f"accounts; the largest has {r['largest_cluster']:,}.",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--accounts-per-chunk", type=int, default=10_000)
    ap.add_argument("--chunks", type=int, default=10)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--seed", type=int, default=100, help="chunk i is simulated with seed + i")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/dw-graph-scale"))
    ap.add_argument("--simulate-only", action="store_true", help="fill the cache, time nothing")
    ap.add_argument("--_chunk", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--_out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_time", type=Path, nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._chunk is not None:
        seed = args.seed + args._chunk
        make_chunk(args._chunk, args.accounts_per_chunk, args.days, seed, args._out)
        return
    if args._time:
        timed(args._time, args.seed)
        return

    from distillwatch.sim import find_corpus_dir

    corpora = find_corpus_dir(None)
    size = f"{args.accounts_per_chunk}x{args.days}d_seed{args.seed}"
    folders = [args.cache / size / f"chunk{i:02d}" for i in range(args.chunks)]
    print(f"corpora: {corpora or 'bundled sample'}; cache: {args.cache / size}", flush=True)
    base = [sys.executable, __file__, "--accounts-per-chunk", str(args.accounts_per_chunk)]
    base += ["--days", str(args.days), "--seed", str(args.seed)]
    for i, folder in enumerate(folders):
        if not (folder / "labels.parquet").is_file():  # one process per chunk: memory goes back
            subprocess.run([*base, "--_chunk", str(i), "--_out", str(folder)], check=True)
    if args.simulate_only:
        return
    print(f"timing in a fresh process (load average {_load()})", flush=True)
    done = subprocess.run(
        [*base, "--_time", *map(str, folders)], check=True, stdout=subprocess.PIPE, text=True
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    print(json.dumps(result, indent=1))
    shown = ["bench/bench_graph_scale.py", "--accounts-per-chunk", str(args.accounts_per_chunk)]
    shown += ["--chunks", str(args.chunks), "--days", str(args.days), "--seed", str(args.seed)]
    print("\n" + table(result, " ".join(shown)))


if __name__ == "__main__":
    main()
