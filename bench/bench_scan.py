"""`distillwatch scan` speed: wall time, calls/s and peak RSS at several log sizes.

Simulates (once, cached) populations of about 100k, 1M and 3M calls with the default scenario
(realistic prompt lengths from the staged corpora), then times `distillwatch scan` on each in a
fresh process, so the peak RSS is the scan's own.

    .venv/bin/python bench/bench_scan.py [--sizes 100000,1000000,3000000] [--cache /tmp/dw-bench]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

CALLS_PER_ACCOUNT_WEEK = 207  # measured on the default scenario (78,614 calls / 379 accounts)


def _simulate(cache: Path, calls: int, corpora: str | None) -> Path:
    accounts = max(50, round(calls / CALLS_PER_ACCOUNT_WEEK))
    out = cache / f"sim-{calls}"
    if not (out / "calls.parquet").is_file():
        cmd = [sys.executable, "-m", "distillwatch.cli.main", "simulate", "--accounts", str(accounts)]
        cmd += ["--days", "7", "--seed", "7", "--out", str(out), "--quiet"]
        if corpora:
            cmd += ["--corpora", corpora]
        subprocess.run(cmd, check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000,3000000")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/dw-bench"))
    ap.add_argument("--corpora", default=None)
    ap.add_argument("--detector", default=None)
    args = ap.parse_args()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        data = _simulate(args.cache, size, args.corpora)
        cmd = [sys.executable, "-m", "distillwatch.cli.main", "scan", str(data / "calls.parquet")]
        cmd += ["--accounts", str(data / "accounts.parquet"), "--models", str(data / "models.parquet")]
        cmd += ["--out", str(data / "scan"), "--quiet"]
        if args.detector:
            cmd += ["--detector", args.detector]
        # GNU time reports the scan process's own CPU seconds (user, system) and peak RSS (KB)
        # on its last stderr line. CPU seconds hardly change when other jobs share the machine;
        # wall time does, so the load average is printed with each row.
        t0 = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%U %S %M", *cmd], check=True, capture_output=True, text=True
        )
        wall = time.perf_counter() - t0
        user, system, kb = done.stderr.strip().splitlines()[-1].split()
        cpu, rss = float(user) + float(system), int(kb) / 1e6
        load = os.getloadavg()[0]
        n = pq.ParquetFile(data / "calls.parquet").metadata.num_rows
        rows.append((n, wall, n / wall, cpu, rss, load))
        print(
            f"{n:>10,} calls  {wall:7.1f} s  {n / wall:>9,.0f} calls/s  CPU {cpu:6.1f} s  "
            f"peak RSS {rss:.2f} GB  load {load:.1f}",
            flush=True,
        )
    print("\n| calls | wall s | calls/s | CPU s | peak RSS GB | load avg |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, wall, rate, cpu, rss, load in rows:
        print(f"| {n:,} | {wall:.1f} | {rate:,.0f} | {cpu:.1f} | {rss:.2f} | {load:.1f} |")


if __name__ == "__main__":
    main()
