"""Template families: wrappers group, unrelated prompts do not, duplicates group, ids are stable."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import polars as pl
import pytest

from distillwatch.features.templates import (
    FAMILY_KINDS,
    account_template_features,
    family_stats,
    template_families,
)
from distillwatch.sim import bundled_dir
from distillwatch.sim.templates import COT_COERCION

COT_PREFIX = COT_COERCION[0]  # "Solve the following problem. ... \n\n{task}"
COT_SUFFIX = COT_COERCION[1]  # "{task}\n\nShow your full chain of thought ..."


def _jsonl(rel: str) -> list[dict[str, object]]:
    with gzip.open(Path(bundled_dir()) / rel, "rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def questions() -> list[str]:
    return [str(r["question"]) for r in _jsonl("gsm8k/gsm8k_train.jsonl.gz")[:120]]


@pytest.fixture(scope="module")
def natural() -> list[str]:
    return [str(r["prompt"]) for r in _jsonl("oasst_prompt_lottery/prompt_lottery_en_250.jsonl.gz")]


def _frame(prompts: list[str], accounts: list[str] | None = None) -> pl.DataFrame:
    accounts = accounts or [f"acct-{i % 7}" for i in range(len(prompts))]
    return pl.DataFrame({"account_id": accounts, "prompt": prompts})


def test_one_wrapper_around_fifty_questions_is_one_family(
    questions: list[str], natural: list[str]
) -> None:
    wrapped = [COT_PREFIX.format(task=q) for q in questions[:50]]
    out = template_families(_frame(wrapped + natural[:100]))
    fam = out.head(50)
    assert fam.get_column("family_id").null_count() == 0
    assert fam.get_column("family_id").n_unique() == 1
    assert set(fam.get_column("family_kind")) == {"template"}
    # unrelated natural prompts join no template family
    rest = out.tail(100)
    assert rest.filter(pl.col("family_kind") == "template").height == 0
    assert not set(rest.get_column("family_id").drop_nulls()) & set(fam.get_column("family_id"))


def test_suffix_and_prefix_wrappers_are_separate_families(questions: list[str]) -> None:
    prompts = [COT_PREFIX.format(task=q) for q in questions[:40]]
    prompts += [COT_SUFFIX.format(task=q) for q in questions[40:80]]
    out = template_families(_frame(prompts))
    ids = out.get_column("family_id")
    assert ids.null_count() == 0
    assert ids.head(40).n_unique() == 1
    assert ids.tail(40).n_unique() == 1
    assert ids[0] != ids[40]


def test_reused_seed_tasks_do_not_become_families(questions: list[str]) -> None:
    # the same 30 questions inside 25 wrappers: 25 families, one per wrapper, not 30 per question
    wrappers = [
        f"Wrapper number {w}: think hard about this task and answer it.\n\n{{task}}"
        for w in "abcdefghijklmnopqrstuvwxy"
    ]
    prompts = [w.format(task=q) for w in wrappers for q in questions[:30]]
    prompts += [f"{q}\n\nGive only the final number, nothing else at all." for q in questions[:30]]
    out = template_families(_frame(prompts))
    assert out.get_column("family_id").null_count() == 0
    assert out.get_column("family_id").n_unique() == len(wrappers) + 1
    per_wrapper = out.with_columns((pl.int_range(pl.len()) // 30).alias("w"))
    assert per_wrapper.group_by("w").agg(pl.col("family_id").n_unique()).get_column(
        "family_id"
    ).to_list() == [1] * (len(wrappers) + 1)


def test_exact_and_near_duplicates_group(natural: list[str]) -> None:
    long = natural[3] if len(natural[3].split()) > 20 else " ".join(natural[:3])
    words = long.split()
    edited = " ".join([*words[: len(words) // 2], "really", *words[len(words) // 2 :]])
    prompts = ["hi", "hi", "hi", long, edited, "continue", "what is love", "tell me a joke"]
    out = template_families(_frame(prompts, [f"a{i}" for i in range(len(prompts))]))
    ids = out.get_column("family_id").to_list()
    assert ids[0] == ids[1] == ids[2] is not None
    assert ids[3] == ids[4] is not None
    assert ids[3] != ids[0]
    assert ids[5:] == [None, None, None]
    assert set(out.get_column("family_kind").drop_nulls()) == {"duplicate"}
    exact_only = template_families(_frame(prompts), near_duplicates=False).get_column("family_id")
    assert exact_only[3] is None and exact_only[0] is not None


def test_families_are_deterministic_under_a_seed(questions: list[str], natural: list[str]) -> None:
    prompts = [COT_PREFIX.format(task=q) for q in questions[:60]] + natural[:60] + ["hi"] * 5
    frame = _frame(prompts)
    a = template_families(frame, seed=7)
    assert a.equals(template_families(frame, seed=7))
    shuffled = template_families(frame.sample(fraction=1.0, shuffle=True, seed=3), seed=7)
    assert a.sort("prompt", "account_id").equals(shuffled.sort("prompt", "account_id"))
    other = template_families(frame, seed=8)
    assert other.get_column("family_id").to_list() != a.get_column("family_id").to_list()

    # another seed changes the ids, not the grouping
    def partition(df: pl.DataFrame) -> set[frozenset[int]]:
        rows = df.with_row_index("i").filter(pl.col("family_id").is_not_null())
        groups = rows.group_by("family_id").agg("i").get_column("i").to_list()
        return {frozenset(g) for g in groups}

    assert partition(a) == partition(other)


def test_family_stats_and_account_features_count_by_hand(questions: list[str]) -> None:
    # accounts a..f send the wrapper (a: 30 calls, b..f: 2 each); a also says "hi" twice,
    # g says "hi" once and sends one unrelated prompt
    wrapped = [COT_PREFIX.format(task=q) for q in questions[:40]]
    accounts = ["a"] * 30 + ["b", "b", "c", "c", "d", "d", "e", "e", "f", "f"]
    prompts = [*wrapped, "hi", "hi", "hi", "Why is the sky blue at noon but red at dusk?"]
    accounts += ["a", "a", "g", "g"]
    fam = template_families(_frame(prompts, accounts))
    stats = family_stats(fam)
    assert stats.columns == [
        "family_id",
        "family_kind",
        "n_calls",
        "n_accounts",
        "n_prompts",
        "example",
    ]
    assert stats.select("family_kind", "n_calls", "n_accounts", "n_prompts").rows() == [
        ("template", 40, 6, 40),
        ("duplicate", 3, 2, 1),
    ]
    feats = account_template_features(fam, k=5).sort("account_id")
    a, g = feats.row(0, named=True), feats.row(6, named=True)
    assert feats.get_column("account_id").to_list() == list("abcdefg")
    assert a["n_calls"] == 32 and a["n_families"] == 2
    assert a["top_family_share"] == pytest.approx(30 / 32)
    assert a["shared_template_share"] == pytest.approx(30 / 32)  # 5 other accounts share it
    assert a["shared_duplicate_share"] == 0.0  # "hi" is shared by one other account only
    assert a["max_family_accounts"] == 6
    assert g["family_share"] == pytest.approx(0.5) and g["n_families"] == 1
    assert g["max_family_accounts"] == 2 and g["shared_template_share"] == 0.0
    strict = account_template_features(fam, k=6).sort("account_id")
    assert strict.get_column("shared_template_share").to_list() == [0.0] * 7


def test_empty_and_missing_values() -> None:
    empty = pl.DataFrame(schema={"account_id": pl.String, "prompt": pl.String})
    out = template_families(empty)
    assert out.height == 0
    assert out.schema["family_id"] == pl.UInt64 and out.schema["family_kind"] == pl.String
    assert family_stats(out).height == 0
    assert account_template_features(out).height == 0
    nulls = template_families(_frame([None, None, "", "x"], ["a", "b", "c", "d"]))  # type: ignore[list-item]
    assert nulls.height == 4
    assert set(nulls.get_column("family_kind").drop_nulls()) <= set(FAMILY_KINDS)
