"""JSON, HTML and the ``distillwatch eval`` command end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import distillwatch.eval
from distillwatch.cli.main import app
from distillwatch.eval import EvalResult, evaluate, render_html, rich_tables, text_tables, to_json

LEGIT = ["casual_chat", "power_user", "education", "batch_job"]


def labelled() -> tuple[pl.DataFrame, pl.DataFrame]:
    """200 legit accounts (4 personas) scored 0..199, 10 distill in 2 campaigns, 2 unscored."""
    ids = [f"acct-{i:03d}" for i in range(212)]
    truth = pl.DataFrame(
        {
            "account_id": ids,
            "label": ["legit"] * 200 + ["distill"] * 12,
            "persona": [LEGIT[i % 4] for i in range(200)]
            + ["cot_coercion"] * 6
            + ["alpaca_sweep"] * 6,
            "campaign_id": [None] * 200 + ["camp-cot"] * 6 + ["camp-alpaca"] * 6,
            "org_id": [f"org-{i}" for i in range(212)],
            "mundane_share": [0.0] * 212,
        }
    )
    pos = [250.0, 240.0, 199.5, 198.5, 197.5, 196.5, 150.0, 100.0, 50.0, 10.0]
    verdicts = pl.DataFrame(
        {
            "account_id": [*ids[:210], "not-in-truth"],
            "score": [float(i) for i in range(200)] + pos + [1e9],
            "tier": ["allow"] * 197 + ["throttle"] * 3 + ["block"] * 8 + ["watch"] * 2 + ["block"],
            "cluster_id": [None] * 200 + ["k1"] * 6 + ["k2"] * 4 + [None],
        }
    )
    return truth, verdicts


@pytest.fixture(scope="module")
def result() -> EvalResult:
    return evaluate(*labelled())


def test_json_holds_every_number_and_is_strict_json(result: EvalResult) -> None:
    data = to_json(result)
    text = json.dumps(data, allow_nan=False)  # inf and nan became null
    back = json.loads(text)
    assert back["format"] == "distillwatch.eval/1"
    assert (back["n_accounts"], back["n_positive"], back["n_unscored"], back["n_ignored"]) == (
        212,
        12,
        2,
        1,
    )
    assert [p["threshold"] for p in back["operating_points"]] == [199.5, 197.5]
    assert back["roc"]["threshold"][0] is None  # +inf: nothing flagged
    assert len(back["histogram"]["edges"]) == len(back["histogram"]["legit"]) + 1
    assert back["tiers"]["confusion"][0] == {"tier": "allow", "legit": 197, "distill": 0}
    assert back["clusters"]["truth_partition"].startswith("distill accounts grouped by campaign_id")


def test_json_of_a_degenerate_result_has_nulls_not_nan() -> None:
    truth = pl.DataFrame({"account_id": ["a"], "label": ["legit"], "persona": ["p"]})
    data = to_json(evaluate(truth, pl.DataFrame({"account_id": ["a"], "score": [0.5]})))
    json.dumps(data, allow_nan=False)
    assert data["roc_auc"] is None
    assert data["operating_points"][0]["threshold"] is None
    assert data["legit_personas"][0]["rate"] == [None, None]


def test_html_is_self_contained_with_inline_svg_plots(result: EvalResult) -> None:
    page = render_html(result)
    assert page.startswith("<!doctype html>")
    assert page.count("<svg") == 4  # ROC, score histogram, persona FPR, style recall
    assert not re.search(r"<script|<link|<img|@import|src=", page)
    assert not re.search(r"""(href|src)=["']https?:""", page)
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # four figures, no clashing ids
    for name in ("casual_chat", "camp-alpaca", "cot_coercion", "throttle", "k1"):
        assert name in page
    assert render_html(result) == page  # same result, same bytes


def test_html_escapes_names_and_survives_missing_sections() -> None:
    truth = pl.DataFrame(
        {"account_id": ["a", "b"], "label": ["legit", "legit"], "persona": ["<b>x</b>", "y"]}
    )
    page = render_html(evaluate(truth, pl.DataFrame({"account_id": ["a"], "score": [1.0]})))
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "no ROC curve" in page


def test_text_tables_line_up_with_their_columns(result: EvalResult) -> None:
    tables = text_tables(result)
    assert list(tables) == [
        "summary", "operating_points", "legit_personas", "attack_styles", "campaigns",
        "tiers", "clusters", "cluster_list",
    ]  # fmt: skip
    for t in tables.values():
        assert all(len(row) == len(t.columns) for row in t.rows)
    assert tables["legit_personas"].rows[0] == (
        "batch_job",
        "50",
        "0.00 % (0)",
        "2.00 % (1)",
        "2.00 % (1)",
    )
    assert len(rich_tables(result)) == len(tables)


def write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    truth, verdicts = labelled()
    truth.write_parquet(tmp_path / "labels.parquet")
    verdicts.write_parquet(tmp_path / "accounts.parquet")
    return tmp_path / "labels.parquet", tmp_path / "accounts.parquet"


def test_cli_end_to_end(tmp_path: Path) -> None:
    truth, verdicts = write_inputs(tmp_path)
    out = tmp_path / "report"
    run = CliRunner().invoke(
        app, ["eval", "--truth", str(truth), "--verdicts", str(verdicts), "--out", str(out)]
    )
    assert run.exit_code == 0, run.output
    assert "ROC-AUC" in run.stdout and "2 truth account(s) have no score" in run.stderr
    data = json.loads((out / "eval.json").read_text())
    assert data["target_fprs"] == [0.001, 0.01]
    at01, at1 = data["operating_points"]
    assert (at01["tpr"], at01["false_positives"]) == (0.25, 0)  # 3 of 12 positives
    assert (at1["tpr"], at1["fpr"], at1["threshold"]) == (5 / 12, 0.01, 197.5)
    assert data["inputs"] == {"truth": str(truth), "verdicts": str(verdicts)}
    clusters = data["clusters"]
    # distill only: k1 = camp-cot (6), k2 = 4 of camp-alpaca, 2 unscored singletons;
    # pairs together in both 15 + 6 = 21, predicted 21, truth 30, of 66: (21 - 105/11) / (51/2 - 105/11)
    assert clusters["ari_distill"] == pytest.approx(28 / 39)
    assert (clusters["purity"], clusters["distill_clustered_share"]) == (
        1.0,
        pytest.approx(10 / 12),
    )
    assert "<svg" in (out / "eval.html").read_text()


def test_cli_custom_targets_and_csv(tmp_path: Path) -> None:
    truth, verdicts = labelled()
    truth.write_csv(tmp_path / "labels.csv")
    verdicts.write_csv(tmp_path / "v.csv")
    run = CliRunner().invoke(
        app,
        ["eval", "--truth", str(tmp_path / "labels.csv"), "--verdicts", str(tmp_path / "v.csv"),
         "--fpr", "5%", "--out", str(tmp_path), "--quiet"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert run.stdout == ""
    (point,) = json.loads((tmp_path / "eval.json").read_text())["operating_points"]
    # 5 % of 200 allows 10 FP, but below 196.5 (3 FP) no positive comes until 150 (50 FP)
    assert (point["target_fpr"], point["threshold"], point["false_positives"]) == (0.05, 196.5, 3)


def test_cli_missing_column_is_a_clear_error(tmp_path: Path) -> None:
    truth, _ = write_inputs(tmp_path)
    pl.DataFrame({"account_id": ["acct-000"], "risk": [0.3]}).write_parquet(
        tmp_path / "bad.parquet"
    )
    run = CliRunner().invoke(
        app, ["eval", "--truth", str(truth), "--verdicts", str(tmp_path / "bad.parquet")]
    )
    assert run.exit_code == 2
    assert f"{tmp_path / 'bad.parquet'}: missing column score (has: account_id, risk)" in run.stderr
    assert not (tmp_path / "eval.json").exists()


def test_cli_bad_fpr(tmp_path: Path) -> None:
    truth, verdicts = write_inputs(tmp_path)
    run = CliRunner().invoke(
        app, ["eval", "--truth", str(truth), "--verdicts", str(verdicts), "--fpr", "2"]
    )
    assert run.exit_code == 2 and "--fpr" in run.stderr


def test_public_api_is_pinned() -> None:
    assert sorted(distillwatch.eval.__all__) == [
        "ACTIONED_TIERS", "ClusterRow", "ClusterSummary", "DEFAULT_FPRS", "EvalResult",
        "GroupRate", "OperatingPoint", "RocCurve", "ScoreHistogram", "TierCount", "TierSummary",
        "evaluate", "parse_fprs", "read_table", "read_truth", "read_verdicts", "render_html",
        "rich_tables", "text_tables", "to_json",
    ]  # fmt: skip
    for name in distillwatch.eval.__all__:
        assert hasattr(distillwatch.eval, name)


@pytest.mark.parametrize("module", ["inputs", "metrics", "report", "result", "page"])
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    failures, _ = doctest.testmod(importlib.import_module(f"distillwatch.eval.{module}"))
    assert failures == 0
