"""Build the benchmark items that ship in the package for ``features.benchmarks``.

Reads the staged third-party corpora (``../shared/data``) and writes the text of every item of the
permissively licensed benchmarks (GSM8K train + test, MMLU all splits, HumanEval, MBPP sanitized,
MBPP+ prompts) to ``src/distillwatch/data/benchmarks/benchmark_items.parquet`` (columns
``benchmark``, ``item``, ``text``; zstd), so that ``BenchmarkIndex.build()`` covers the full
benchmarks without a staged folder. Deterministic: same input, same bytes.

    python scripts/build_benchmark_index.py ../shared/data
"""

from __future__ import annotations

import sys
from pathlib import Path

from distillwatch.features.benchmarks import read_items

OUT = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "distillwatch"
    / "data"
    / "benchmarks"
    / "benchmark_items.parquet"
)
MAX_BYTES = 3_000_000


def main(folder: Path) -> None:
    items = read_items(folder).sort("benchmark", "item")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    items.write_parquet(OUT, compression="zstd", compression_level=22, statistics=False)
    size = OUT.stat().st_size
    print(f"{OUT}: {items.height} items, {size / 1e6:.2f} MB")
    for bench, n in items.group_by("benchmark").len().sort("benchmark").iter_rows():
        print(f"  {bench}: {n}")
    if size > MAX_BYTES:
        raise SystemExit(f"{OUT} is over {MAX_BYTES} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
