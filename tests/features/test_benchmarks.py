"""Benchmark matches: wrapped and reformatted items match, paraphrases and chat do not."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import polars as pl
import pytest

from distillwatch.features.benchmarks import BENCHMARKS, BenchmarkIndex, benchmark_matches
from distillwatch.sim import bundled_dir
from distillwatch.sim.templates import COT_COERCION, EVAL_HARNESS

JANET = (
    "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
    "muffins for her friends every day with four. She sells the remainder at the farmers' market "
    "daily for $2 per fresh duck egg. How much in dollars does she make every day at the "
    "farmers' market?"
)  # GSM8K test item 0


def _jsonl(rel: str) -> list[dict[str, object]]:
    with gzip.open(Path(bundled_dir()) / rel, "rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]


def _match(prompts: list[str], index: BenchmarkIndex | None = None) -> list[str | None]:
    out = benchmark_matches(pl.DataFrame({"prompt": prompts}), index)
    return out.get_column("benchmark").to_list()


def test_gsm8k_question_in_a_cot_template_matches_and_a_paraphrase_does_not() -> None:
    calls = pl.DataFrame(
        {
            "account_id": ["a", "b", "c"],
            "prompt": [
                COT_COERCION[0].format(task=JANET),
                "My duck lays like 16 eggs a day, I eat 3 and bake with 4, sell the rest at $2 "
                "each - how much do I make?",
                COT_COERCION[5].format(task=JANET.lower()),  # same line as the wrapper, lower case
            ],
        }
    )
    out = benchmark_matches(calls)
    assert out.columns == ["account_id", "prompt", "benchmark", "benchmark_item"]
    assert out.get_column("benchmark").to_list() == ["gsm8k", None, "gsm8k"]
    assert out.get_column("benchmark_item")[0] == "gsm8k/test/0"


def test_reformatted_mmlu_and_code_items_match() -> None:
    mmlu = _jsonl("mmlu/mmlu_all_splits.jsonl.gz")
    long_q = next(r for r in mmlu if len(str(r["question"])) > 120)
    choices = "\n".join(f"({'abcd'[i]}) {c}" for i, c in enumerate(long_q["choices"]))  # type: ignore[arg-type]
    mcq = f"Q: {str(long_q['question']).upper()}\n{choices}\nThe answer is"
    human = _jsonl("humaneval/HumanEval.jsonl.gz")[10]
    reindented = "\n".join("  " + line.strip() for line in str(human["prompt"]).splitlines())
    code = EVAL_HARNESS["code"].format(task=reindented)
    mbpp = _jsonl("mbpp_sanitized/sanitized-mbpp.jsonl.gz")[5]
    agent = f"You are an autonomous coding agent.\n\n{mbpp['prompt']}\nUse tests."
    assert _match([mcq, code, agent]) == ["mmlu", "humaneval", "mbpp"]


def test_natural_chat_prompts_do_not_match() -> None:
    chats = _jsonl("sharegpt_v3/sharegpt_v3_prefix.jsonl.gz")
    prompts = [
        str(m["value"])
        for r in chats
        for m in r["conversations"]  # type: ignore[attr-defined]
        if m["from"] == "human"
    ]
    prompts += [
        str(r["prompt"]) for r in _jsonl("oasst_prompt_lottery/prompt_lottery_en_250.jsonl.gz")
    ]
    assert len(prompts) > 1000
    matched = [b for b in _match(prompts) if b is not None]
    assert len(matched) <= len(prompts) // 1000


def test_index_from_a_staged_folder(tmp_path: Path) -> None:
    (tmp_path / "gsm8k").mkdir()
    with gzip.open(tmp_path / "gsm8k" / "gsm8k_test.jsonl.gz", "wb") as fh:
        fh.write(orjson.dumps({"question": JANET, "answer": "18"}) + b"\n")
    index = BenchmarkIndex.build(tmp_path)
    assert index.items.get_column("item").to_list() == ["gsm8k/test/0"]
    assert _match([f"Question: {JANET}\nLet's think step by step.", "hello"], index) == [
        "gsm8k",
        None,
    ]
    # a folder without benchmark files is an empty index that matches nothing
    (tmp_path / "empty").mkdir()
    assert _match([JANET], BenchmarkIndex.build(tmp_path / "empty")) == [None]


def test_index_covers_every_benchmark_and_stays_small() -> None:
    index = BenchmarkIndex.build()
    counts = dict(index.items.group_by("benchmark").len().iter_rows())
    assert set(counts) == set(BENCHMARKS)
    assert counts["gsm8k"] > 8000 and counts["mmlu"] > 14000
    shipped = Path(bundled_dir()).parent / "benchmarks" / "benchmark_items.parquet"
    assert shipped.stat().st_size < 3_000_000


def test_empty_input() -> None:
    out = benchmark_matches(pl.DataFrame(schema={"prompt": pl.String}))
    assert out.height == 0
    assert out.schema["benchmark"] == pl.String and out.schema["benchmark_item"] == pl.String


@pytest.mark.parametrize("prompt", ["", "hi", "1 + 1 = ?"])
def test_short_prompts_do_not_match(prompt: str) -> None:
    assert _match([prompt]) == [None]


def test_index_reads_the_bundled_corpus_layout() -> None:
    index = BenchmarkIndex.build(Path(bundled_dir()))
    counts = dict(index.items.group_by("benchmark").len().iter_rows())
    assert set(counts) == set(BENCHMARKS)
    assert counts["humaneval"] == 164
    items = set(index.items.get_column("item"))
    assert {"humaneval/0", "mbpp/2", "gsm8k/train/0"} <= items
    assert any(i.startswith("mmlu/") for i in items)
