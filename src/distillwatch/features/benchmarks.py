"""Benchmark items inside prompts: GSM8K, MMLU, HumanEval and MBPP questions, wrapped or not.

Campaigns and evaluation harnesses both sweep public benchmarks; a call that carries a benchmark
item is evidence of a sweep, whatever template surrounds it. Items and prompts are cut into the
same *segments* (sentences and lines: a break after ``. ? ! : ;`` followed by a space, and at
every line end; each segment stripped of surrounding white space and lower-cased); a
prompt carries an item when the item's distinctive segments (long enough, and found in one
benchmark only) that the prompt contains make up at least ``min_coverage`` of the item's text and
at least ``min_chars`` characters. Matching is one hash join of prompt segments against the index,
so a template wrapper, changed letter case, re-indented code, re-lettered choices or a prefix
such as ``Question:`` do not hide an item, while a paraphrase does not match.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Final

import polars as pl

__all__ = ["BENCHMARKS", "BenchmarkIndex", "benchmark_matches", "default_index", "read_items"]

BENCHMARKS: Final = ("gsm8k", "mmlu", "humaneval", "mbpp")
"""Benchmark names ``benchmark`` takes."""

_SEED: Final = 0x62656E63  # hashing seed shared by index and prompts (hashes never leave a run)
_SHIPPED: Final = "benchmark_items.parquet"  # index items shipped in data/benchmarks/

# (benchmark, file in a corpus folder of the ``shared/data`` layout, item-id prefix)
_SOURCES: Final = (
    ("gsm8k", "gsm8k/gsm8k_test.jsonl.gz", "gsm8k/test/"),
    ("gsm8k", "gsm8k/gsm8k_train.jsonl.gz", "gsm8k/train/"),
    ("mmlu", "mmlu/mmlu_all_splits.jsonl.gz", "mmlu/"),
    ("humaneval", "humaneval/HumanEval.jsonl.gz", "humaneval/"),
    ("mbpp", "mbpp_sanitized/sanitized-mbpp.jsonl.gz", "mbpp/"),
    ("mbpp", "mbppplus_prompts/mbppplus_prompts.jsonl.gz", "mbppplus/"),
)


_CUTS: Final = (". ", "? ", "! ", ": ", "; ", ".\t", "\r\n", "\r")
_CUT_TO: Final = (".\n", "?\n", "!\n", ":\n", ";\n", ".\n", "\n", "\n")


def _segments(frame: pl.DataFrame, text: str, keep: list[str], min_chars: int) -> pl.DataFrame:
    """One row per segment of ``frame[text]`` with at least ``min_chars`` characters: the
    ``keep`` columns, ``h`` (segment hash) and ``chars``. Segments are the lower-cased text cut
    after sentence punctuation followed by white space and at line ends, then stripped (literal
    replacement, not a regex: several times faster)."""
    seg = pl.col("s")
    return (
        frame.select(
            *keep,
            pl.col(text)
            .str.to_lowercase()
            .str.replace_many(list(_CUTS), list(_CUT_TO))
            .str.split("\n")
            .alias("s"),
        )
        .explode("s")
        .filter(seg.str.len_bytes() >= min_chars)
        .with_columns(seg.str.strip_chars())
        .filter(seg.str.len_chars() >= min_chars)
        .select(*keep, seg.hash(_SEED).alias("h"), seg.str.len_chars().alias("chars"))
    )


def _item_frame(bench: str, prefix: str, raw: pl.DataFrame) -> pl.DataFrame:
    """``benchmark``, ``item``, ``text`` of one benchmark file's records: the text a prompt would
    carry (GSM8K question; MMLU question and choices, one per line; HumanEval / MBPP prompt)."""
    row = pl.int_range(pl.len()).cast(pl.String)
    if bench == "gsm8k":
        item, text = row, pl.col("question")
    elif bench == "mmlu":
        item = pl.col("split") + "/" + row if "split" in raw.columns else row
        text = pl.concat_str(pl.col("question"), pl.col("choices").list.join("\n"), separator="\n")
    else:
        task = pl.col("task_id").cast(pl.String).str.split("/").list.last()
        item, text = (task if "task_id" in raw.columns else row), pl.col("prompt")
    return raw.select(
        pl.lit(bench).alias("benchmark"),
        (prefix + item).alias("item"),
        text.cast(pl.String).fill_null("").alias("text"),
    )


def read_items(folder: Path) -> pl.DataFrame:
    """``benchmark``, ``item``, ``text`` for every benchmark file present in a corpus folder of
    the ``shared/data`` layout (missing files are skipped)."""
    frames = [pl.DataFrame(schema={"benchmark": pl.String, "item": pl.String, "text": pl.String})]
    for bench, rel, prefix in _SOURCES:
        path = folder / rel
        if path.is_file():
            with gzip.open(path, "rb") as fh:
                raw = pl.read_ndjson(fh.read(), infer_schema_length=None)
            frames.append(_item_frame(bench, prefix, raw))
    return pl.concat(frames)


def _package_data(*parts: str) -> Path:
    return Path(str(resources.files("distillwatch").joinpath("data", *parts)))


@dataclass(frozen=True, slots=True)
class BenchmarkIndex:
    """Distinctive segments of benchmark items: ``segments`` (``h``: segment hash, ``item``,
    ``chars``) and ``items`` (``item``, ``benchmark``, ``chars``: the item's indexed length).
    Build with :meth:`build` or :meth:`from_items`; match with :meth:`match`."""

    segments: pl.DataFrame
    items: pl.DataFrame
    min_coverage: float = 0.5
    min_chars: int = 40
    min_segment_chars: int = 16

    @classmethod
    def build(
        cls, folder: Path | None = None, *, min_coverage: float = 0.5, min_chars: int = 40
    ) -> BenchmarkIndex:
        """The index of a staged corpus folder (``shared/data`` layout), else of the benchmark
        items shipped in ``data/benchmarks`` (full GSM8K, MMLU test, HumanEval, MBPP, MBPP+),
        else of the bundled corpus sample in ``data/corpora``."""
        if folder is not None:
            items = read_items(folder)
        elif (shipped := _package_data("benchmarks", _SHIPPED)).is_file():
            items = pl.read_parquet(shipped)
        else:
            items = read_items(_package_data("corpora"))
        return cls.from_items(items, min_coverage=min_coverage, min_chars=min_chars)

    @classmethod
    def from_items(
        cls,
        items: pl.DataFrame,
        *,
        min_coverage: float = 0.5,
        min_chars: int = 40,
        min_segment_chars: int = 16,
        max_items_per_segment: int = 3,
    ) -> BenchmarkIndex:
        """Index ``items`` (``benchmark``, ``item``, ``text``). A segment is kept when it has at
        least ``min_segment_chars`` characters and occurs in one benchmark and in at most
        ``max_items_per_segment`` items of it (a task shipped in two variants, as MBPP and MBPP+
        do); shorter or widely shared segments ("Which of the following is true?") are common
        text, not evidence of an item."""
        seg = _segments(items, "text", ["benchmark", "item"], min_segment_chars).unique(
            subset=["item", "h"]
        )
        ok = seg.group_by("h").agg(
            (
                (pl.col("benchmark").n_unique() == 1)
                & (pl.col("item").n_unique() <= max_items_per_segment)
            ).alias("keep")
        )
        seg = seg.join(ok.filter("keep").select("h"), on="h").sort("item", "h")
        per_item = (
            seg.group_by("item")
            .agg(pl.col("benchmark").first(), pl.col("chars").sum())
            .sort("item")
        )
        return cls(
            segments=seg.select("h", "item", "chars"),
            items=per_item,
            min_coverage=min_coverage,
            min_chars=min_chars,
            min_segment_chars=min_segment_chars,
        )

    def match(self, prompts: pl.DataFrame) -> pl.DataFrame:
        """``prompts`` with ``benchmark`` (a name of :data:`BENCHMARKS` or null) and
        ``benchmark_item`` (the best-covered item's id or null) added per call."""
        if prompts.height == 0:
            return prompts.with_columns(
                pl.lit(None, dtype=pl.String).alias("benchmark"),
                pl.lit(None, dtype=pl.String).alias("benchmark_item"),
            )
        ph = pl.col("prompt").fill_null("").hash(_SEED).alias("ph")
        distinct = prompts.select(ph, pl.col("prompt").fill_null("")).unique(subset="ph")
        hits = (
            _segments(distinct, "prompt", ["ph"], self.min_segment_chars)
            .select("ph", "h")
            .unique()
            .join(self.segments, on="h")
            .group_by("ph", "item")
            .agg(pl.col("chars").sum().alias("matched"))
            .join(self.items, on="item")
            .filter(
                (pl.col("matched") >= self.min_chars)
                & (pl.col("matched") >= self.min_coverage * pl.col("chars"))
            )
            .sort(
                [pl.col("matched") / pl.col("chars"), "matched", "item"],
                descending=[True, True, False],
            )
            .unique(subset="ph", keep="first")
            .select("ph", "benchmark", pl.col("item").alias("benchmark_item"))
        )
        return (
            prompts.with_columns(ph)
            .join(hits, on="ph", how="left", maintain_order="left")
            .drop("ph")
        )


@cache
def default_index() -> BenchmarkIndex:
    """The index of the benchmark items shipped with the package, built once per process."""
    return BenchmarkIndex.build()


def benchmark_matches(prompts: pl.DataFrame, index: BenchmarkIndex | None = None) -> pl.DataFrame:
    """``prompts`` (with a ``prompt`` column) with ``benchmark`` and ``benchmark_item`` added per
    call: the public benchmark item the prompt carries, or null. ``index`` defaults to the items
    shipped with the package (:func:`default_index`); pass ``BenchmarkIndex.build(folder)`` to use
    a staged corpus.

    >>> q = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many "
    ...      "clips in May. How many clips did Natalia sell altogether in April and May?")
    >>> index = BenchmarkIndex.from_items(pl.DataFrame(
    ...     {"benchmark": ["gsm8k"], "item": ["gsm8k/train/0"], "text": [q]}))
    >>> calls = pl.DataFrame({"prompt": [f"Solve step by step.\\n\\nQuestion: {q.upper()}",
    ...     "Natalia sold some clips in April and half as many in May; how many in total?"]})
    >>> benchmark_matches(calls, index)["benchmark"].to_list()
    ['gsm8k', None]
    """
    return (index if index is not None else default_index()).match(prompts)
