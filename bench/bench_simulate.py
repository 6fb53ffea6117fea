"""Simulator throughput: wall time, calls/s and peak RSS for a few population sizes.

.venv/bin/python bench/bench_simulate.py [ACCOUNTS ...] [--days 7] [--corpora ../shared/data]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from distillwatch.sim import Simulator, find_corpus_dir, load_corpora, load_scenario, shipped_fit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("accounts", nargs="*", type=int, default=[1000, 3000])
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--corpora", type=Path, default=None)
    args = ap.parse_args()
    corpus = find_corpus_dir(args.corpora)
    pools = load_corpora(corpus)
    print(f"corpora: {corpus or 'bundled sample'}; days={args.days}")
    print(f"{'accounts':>9} {'calls':>10} {'seconds':>8} {'calls/s':>9} {'peak RSS GB':>12}")
    for n in args.accounts:
        t0 = time.perf_counter()
        res = Simulator(load_scenario(), pools, shipped_fit(), seed=n).run(n, args.days)
        dt = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(
            f"{n:>9,} {res.calls.num_rows:>10,} {dt:>8.1f} {res.calls.num_rows / dt:>9,.0f} {rss:>12.2f}"
        )


if __name__ == "__main__":
    main()
