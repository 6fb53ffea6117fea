"""Intent rules on real legitimate prompts: false-positive rate per rule, and signals() throughput.

Run: ``.venv/bin/python bench/bench_rules.py [--n 1000000] [--show intent/cot-elicitation]``.
Reads the ShareGPT human turns and OASST prompts in ``../shared/data`` (never copied into the
repository), prints per rule the share of those prompts it fires on (legitimate traffic, so
every hit is a false positive or at best a borderline case), then times ``RuleSet.signals`` on
``--n`` prompts sampled with replacement from both sets. ``--check-anchors`` also runs every
rule without its anchor gate on ShareGPT and reports any prompt where the gate changed the
result. Numbers only; nothing here asserts a time. Set ``POLARS_MAX_THREADS`` to pin threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import polars as pl

from distillwatch.rules import RuleSet, load_rules

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHAREGPT = Path("sharegpt_v3") / "sharegpt_v3_prefix.jsonl.gz"
OASST = Path("oasst_prompt_lottery") / "prompt_lottery_en_250.jsonl.gz"


def _records(path: Path) -> Iterator[dict[str, object]]:
    with gzip.open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)


def sharegpt_human_turns(path: Path) -> list[str]:
    """Every human turn of every ShareGPT conversation."""
    out: list[str] = []
    for record in _records(path):
        turns = record.get("conversations")
        if isinstance(turns, list):
            out += [
                str(t["value"]) for t in turns if isinstance(t, dict) and t.get("from") == "human"
            ]
    return out


def oasst_prompts(path: Path) -> list[str]:
    return [str(r["prompt"]) for r in _records(path) if "prompt" in r]


def frame(texts: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"prompt": texts, "system": [None] * len(texts)},
        schema={"prompt": pl.String, "system": pl.String},
    )


def fire_rates(rules: RuleSet, texts: list[str]) -> pl.DataFrame:
    """Per rule: how many of ``texts`` it fires on, and the share."""
    fired = rules.signals(frame(texts)).select(rules.columns)
    counts = fired.sum().row(0)
    return pl.DataFrame(
        {
            "rule": list(rules.ids),
            "strength": [rule.strength for rule in rules],
            "fired": list(counts),
            "share": [c / len(texts) for c in counts],
        }
    )


def show_hits(rules: RuleSet, rule_id: str, texts: list[str], limit: int) -> None:
    column = rules[rule_id].column
    hits = rules.signals(frame(texts)).filter(pl.col(column))["prompt"].to_list()
    print(f"\n{len(hits)} ShareGPT human turns fire {rule_id}; the first {min(limit, len(hits))}:")
    for text in hits[:limit]:
        print("  -", " ".join(text.split())[:300])


def check_anchors(rules: RuleSet, texts: list[str]) -> None:
    """Anchors are a pure speed-up: report any text where the gate changes a rule's result."""
    data = frame(texts)
    gated = rules.signals(data)
    for rule in rules:
        ungated = RuleSet((dataclasses.replace(rule, anchors=()),)).signals(data)
        diff = (gated[rule.column] != ungated[rule.column]).sum()
        print(f"  {rule.id:28s} anchor gate changed {diff} of {len(texts):,} results")


def throughput(rules: RuleSet, texts: list[str], n: int, seed: int) -> None:
    sample = frame(texts).sample(n, with_replacement=True, seed=seed)
    megabytes = sample["prompt"].str.len_bytes().sum() / 1e6
    start = time.perf_counter()
    out = rules.signals(sample)
    wall = time.perf_counter() - start
    assert out.height == n
    threads = os.environ.get("POLARS_MAX_THREADS", str(pl.thread_pool_size()))
    print(
        f"\nsignals() on {n:,} sampled prompts ({megabytes:,.0f} MB, {len(rules)} rules, "
        f"{threads} Polars threads): {wall:.2f} s = {n / wall:,.0f} prompts/s, "
        f"{megabytes / wall:,.0f} MB/s"
    )
    for rule in rules:
        single = RuleSet((rule,))
        start = time.perf_counter()
        single.signals(sample)
        took = time.perf_counter() - start
        print(f"  {rule.id:28s} alone: {n / took:>12,.0f} prompts/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--n", type=int, default=1_000_000, help="prompts for the timing")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--show", action="append", default=[], help="print hits of this rule")
    parser.add_argument("--limit", type=int, default=30, help="hits printed per --show")
    parser.add_argument("--check-anchors", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args()

    rules = load_rules()
    sharegpt = sharegpt_human_turns(args.data / SHAREGPT)
    oasst = oasst_prompts(args.data / OASST)
    print(f"{len(sharegpt):,} ShareGPT human turns, {len(oasst):,} OASST prompts")
    rates = fire_rates(rules, sharegpt).join(
        fire_rates(rules, oasst).select(
            "rule", pl.col("fired").alias("oasst_fired"), pl.col("share").alias("oasst_share")
        ),
        on="rule",
    )
    print(f"\n{'rule':28s} {'strength':8s} {'ShareGPT':>18s} {'OASST':>14s}")
    for row in rates.iter_rows(named=True):
        print(
            f"{row['rule']:28s} {row['strength']:8s} {row['fired']:>6,} {row['share']:>10.4%}"
            f" {row['oasst_fired']:>5,} {row['oasst_share']:>7.2%}"
        )
    for rule_id in args.show:
        show_hits(rules, rule_id, sharegpt, args.limit)
    if args.check_anchors:
        print("\nanchor contract on ShareGPT:")
        check_anchors(rules, sharegpt)
    if not args.no_timing:
        throughput(rules, sharegpt + oasst, args.n, args.seed)


if __name__ == "__main__":
    main()
