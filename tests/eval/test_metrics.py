"""`evaluate`: numbers worked out by hand, exact ties, unscored accounts, tiers, clusters."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import polars as pl
import pytest

from distillwatch.core.errors import DistillwatchError
from distillwatch.eval import EvalResult, evaluate


def frames(
    rows: Sequence[tuple[str, str, float | None]],
    campaigns: dict[str, str] | None = None,
    **extra: Sequence[str | None],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(truth, verdicts) from (label, persona, score) rows; account ids a0, a1, ...

    A score of None leaves the account out of the verdicts. ``campaigns`` maps account id to
    campaign; ``extra`` adds verdict columns (``tier``, ``cluster_id``) aligned with ``rows``.
    """
    ids = [f"a{i}" for i in range(len(rows))]
    campaigns = campaigns or {}
    truth = pl.DataFrame(
        {
            "account_id": ids,
            "label": [r[0] for r in rows],
            "persona": [r[1] for r in rows],
            "campaign_id": [campaigns.get(i) for i in ids],
        },
        schema={c: pl.String for c in ("account_id", "label", "persona", "campaign_id")},
    )
    keep = [i for i, r in enumerate(rows) if r[2] is not None]
    verdicts = pl.DataFrame(
        {
            "account_id": [ids[i] for i in keep],
            "score": [rows[i][2] for i in keep],
            **{k: [v[i] for i in keep] for k, v in extra.items()},
        },
        schema_overrides={k: pl.String for k in extra},
    )
    return truth, verdicts


L, D = "legit", "distill"


def test_perfect_separation() -> None:
    rows = [(L, "casual_chat", s) for s in (0.1, 0.2, 0.3)] + [
        (D, "cot_coercion", 0.8),
        (D, "cot_coercion", 0.9),
    ]
    r = evaluate(*frames(rows), fprs=(0.001, 0.01))
    assert r.roc_auc == 1.0
    assert r.average_precision == 1.0
    for p in r.operating_points:
        assert (p.tpr, p.fpr, p.precision) == (1.0, 0.0, 1.0)
        assert p.threshold == 0.8  # the lowest threshold that keeps every legit account out
        assert (p.true_positives, p.false_positives, p.n_flagged) == (2, 0, 2)
    assert r.warnings == ()


def test_ties_by_hand() -> None:
    # legit 0.9 0.5 0.5 0.1, distill 0.9 0.5 0.3
    rows = [(L, "p", 0.9), (L, "p", 0.5), (L, "p", 0.5), (L, "p", 0.1)]
    rows += [(D, "s", 0.9), (D, "s", 0.5), (D, "s", 0.3)]
    r = evaluate(*frames(rows), fprs=(0.25, 0.5, 0.75))
    # pairs won by the distill account, ties half: (3.5 + 2 + 1) / 12
    assert r.roc_auc == pytest.approx(6.5 / 12)
    # precision at 0.9, 0.5, 0.3 is 1/2, 2/5, 3/6; each step adds a third of recall
    assert r.average_precision == pytest.approx((0.5 + 0.4 + 0.5) / 3)
    at25, at50, at75 = r.operating_points
    # 0.25 and 0.5 allow 1 and 2 false positives, but the two legit 0.5 come together (3 FP)
    assert (at25.threshold, at25.true_positives, at25.false_positives) == (0.9, 1, 1)
    assert (at50.threshold, at50.true_positives, at50.false_positives) == (0.9, 1, 1)
    assert at50.tpr == pytest.approx(1 / 3)
    assert at50.fpr == 0.25
    assert (at75.threshold, at75.true_positives, at75.false_positives) == (0.3, 3, 3)
    assert at75.tpr == 1.0


def test_equal_tpr_prefers_the_lower_fpr() -> None:
    rows = [(D, "s", 0.9), (L, "p", 0.8), (L, "p", 0.7)]
    (p,) = evaluate(*frames(rows), fprs=(0.5,)).operating_points
    assert (p.threshold, p.tpr, p.fpr) == (0.9, 1.0, 0.0)


def test_tpr_at_one_percent_of_200_negatives() -> None:
    legit = [(L, "casual_chat", float(i)) for i in range(200)]  # scores 0 .. 199
    pos = [250, 240, 199.5, 198.5, 197.5, 196.5, 150, 100, 50, 10]
    r = evaluate(*frames(legit + [(D, "alpaca_sweep", float(s)) for s in pos]))
    at01, at1 = r.operating_points
    # 0.1 % of 200 = 0.2 false positives: none allowed -> flag down to 199.5 (3 positives)
    assert (at01.threshold, at01.true_positives, at01.false_positives) == (199.5, 3, 0)
    assert at01.tpr == pytest.approx(0.3)
    # 1 % of 200 = 2 false positives (199, 198): flag down to 197.5 (5 positives); 197 is a 3rd
    assert (at1.threshold, at1.true_positives, at1.false_positives) == (197.5, 5, 2)
    assert (at1.tpr, at1.fpr) == (0.5, 0.01)
    assert at1.precision == pytest.approx(5 / 7)


def brute_force(y: np.ndarray, s: np.ndarray, target: float) -> tuple[float, int, int]:
    """Every distinct score as a threshold, plus 'flag nothing': best (TP, -FP) within target."""
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    best = (math.inf, 0, 0)
    for t in sorted(set(s.tolist()), reverse=True):
        flagged = s >= t
        tp, fp = int((flagged & y).sum()), int((flagged & ~y).sum())
        if Fraction(fp, n_neg) <= Fraction(repr(target)) and (
            tp > best[1] or (tp == best[1] and fp < best[2])
        ):
            best = (t, tp, fp)
    assert n_pos
    return best


@pytest.mark.parametrize("seed", range(12))
def test_operating_points_match_brute_force_under_heavy_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    y = rng.random(n) < 0.3
    y[:2] = [True, False]
    s = rng.integers(0, 12, n) + 4 * y  # a dozen distinct values: ties everywhere
    rows = [(D if yi else L, "x", float(si)) for yi, si in zip(y, s, strict=True)]
    targets = (0.01, 0.05, 0.1, 0.3)
    r = evaluate(*frames(rows), fprs=targets)
    for p, target in zip(r.operating_points, targets, strict=True):
        t, tp, fp = brute_force(y, s.astype(float), target)
        assert (p.threshold, p.true_positives, p.false_positives) == (t, tp, fp)
        # ties: every account with the threshold's score is on the same side
        assert p.n_flagged == int((s >= p.threshold).sum())


def test_per_persona_false_positive_counts() -> None:
    rows = [(L, "casual_chat", 0.1)] * 98 + [(L, "casual_chat", 0.95)] * 2
    rows += [(L, "batch_job", 0.2)] * 49 + [(L, "batch_job", 0.97)]
    rows += [(L, "reseller", 0.3)] * 50
    rows += (
        [(D, "cot_coercion", 0.99)] * 3
        + [(D, "low_and_slow", 0.96)] * 2
        + [(D, "low_and_slow", 0.5)]
    )
    campaigns = {f"a{i}": ("camp-cot" if i < 203 else "camp-slow") for i in range(200, 206)}
    r = evaluate(*frames(rows, campaigns), fprs=(0.01, 0.05))
    at1, at5 = r.operating_points
    # 200 negatives: 1 % allows 2 FP -> 0.96 flags batch_job's 0.97 and keeps casual_chat out
    assert (at1.threshold, at1.false_positives, at1.true_positives) == (0.96, 1, 5)
    assert (at5.threshold, at5.false_positives, at5.true_positives) == (0.5, 3, 6)
    personas = {g.group: g for g in r.legit_personas}
    assert [g.group for g in r.legit_personas] == ["batch_job", "casual_chat", "reseller"]
    assert (personas["casual_chat"].n, personas["casual_chat"].flagged) == (100, (0, 2))
    assert personas["casual_chat"].rate == (0.0, 0.02)
    assert (personas["batch_job"].n, personas["batch_job"].flagged) == (50, (1, 1))
    assert personas["reseller"].flagged == (0, 0)
    assert personas["reseller"].actioned is None  # no tier column
    styles = {g.group: g for g in r.attack_styles}
    assert styles["low_and_slow"].flagged == (2, 3)
    assert styles["low_and_slow"].rate == (2 / 3, 1.0)
    camps = {g.group: g for g in r.campaigns}
    assert camps["camp-cot"].styles == "cot_coercion"
    assert camps["camp-slow"].styles == "low_and_slow"
    assert (camps["camp-slow"].n, camps["camp-slow"].flagged) == (3, (2, 3))


def test_missing_verdicts_are_unscored_and_never_flagged() -> None:
    rows = [(L, "p", 0.1), (L, "p", None), (L, "p", 0.3), (D, "s", 0.9), (D, "s", None)]
    truth, verdicts = frames(rows)
    verdicts = pl.concat(
        [verdicts, pl.DataFrame({"account_id": ["ghost", "ghost2"], "score": [1.0, 0.0]})]
    )
    r = evaluate(truth, verdicts, fprs=(0.5,))
    assert (r.n_accounts, r.n_unscored, r.n_unscored_positive, r.n_ignored) == (5, 2, 1, 2)
    # unscored rank lowest: d(0.9) beats 3 legit; d(unscored) beats none and ties the unscored legit
    assert r.roc_auc == pytest.approx((3 + 0.5) / 6)
    (p,) = r.operating_points
    # 50 % of 3 negatives allows 1 FP, but going down to 0.3 finds no more positives
    assert (p.threshold, p.true_positives, p.false_positives) == (0.9, 1, 0)
    assert any("2 truth account(s) have no score (1 distill)" in w for w in r.warnings)
    assert any("2 verdict row(s)" in w for w in r.warnings)


def test_unscored_are_not_flagged_even_when_every_scored_account_is() -> None:
    rows = [(L, "p", 0.1), (L, "p", None), (D, "s", 0.9), (D, "s", 0.05), (D, "t", None)]
    r = evaluate(*frames(rows), fprs=(0.9,))
    (p,) = r.operating_points
    # 0.9 of 2 negatives allows 1 FP: flag every scored account, never an unscored one
    assert (p.threshold, p.n_flagged, p.true_positives, p.false_positives) == (0.05, 3, 2, 1)
    assert [(g.group, g.n, g.flagged) for g in r.attack_styles] == [("s", 2, (2,)), ("t", 1, (0,))]
    assert [(g.group, g.n, g.flagged) for g in r.legit_personas] == [("p", 2, (1,))]


def test_null_and_nan_scores_count_as_unscored() -> None:
    truth, _ = frames([(L, "p", 0.0), (L, "p", 0.0), (D, "s", 0.0)])
    verdicts = pl.DataFrame({"account_id": ["a0", "a1", "a2"], "score": [None, float("nan"), 1.0]})
    r = evaluate(truth, verdicts)
    assert r.n_unscored == 2
    assert r.roc_auc == 1.0


@pytest.mark.parametrize("label", [L, D])
def test_one_class_truth_gives_nan_not_a_crash(label: str) -> None:
    rows = [(label, "p", float(i)) for i in range(5)]
    tiers = ["allow", "block", "watch", "throttle", None]
    r = evaluate(*frames(rows, tier=tiers))
    assert math.isnan(r.roc_auc) and math.isnan(r.average_precision)
    assert all(math.isnan(p.threshold) and math.isnan(p.tpr) for p in r.operating_points)
    assert all(p.n_flagged == 0 for p in r.operating_points)
    assert r.roc.fpr == ()
    assert "has no" in r.warnings[0] and "undefined" in r.warnings[0]
    groups = r.legit_personas or r.attack_styles
    assert all(math.isnan(x) for x in groups[0].rate)
    # tiers need no threshold: still measured
    assert r.tiers is not None and r.tiers.n_actioned == 2
    assert groups[0].actioned == 2


def test_tiers_confusion_and_actioned_rates() -> None:
    rows: list[tuple[str, str, float | None]] = [
        (L, "casual_chat", 0.1),
        (L, "casual_chat", 0.2),
        (L, "education", 0.3),
        (L, "education", 0.7),
    ]
    rows += [(D, "cot_coercion", 0.9), (D, "cot_coercion", 0.8), (D, "tool_trace", None)]
    tiers = ["allow", "Watch", "allow", " THROTTLE", "block", "watch", "block"]
    r = evaluate(*frames(rows, tier=tiers))
    t = r.tiers
    assert t is not None
    assert [(c.tier, c.legit, c.distill) for c in t.confusion] == [
        ("allow", 2, 0),
        ("watch", 1, 1),
        ("throttle", 1, 0),
        ("block", 0, 1),
        ("(none)", 0, 1),  # tool_trace account has no verdict row
    ]
    assert (t.n_actioned, t.tpr, t.fpr, t.precision) == (2, 1 / 3, 1 / 4, 0.5)
    personas = {g.group: g for g in r.legit_personas}
    assert (personas["education"].actioned, personas["education"].actioned_rate) == (1, 0.5)
    assert personas["casual_chat"].actioned == 0
    styles = {g.group: g for g in r.attack_styles}
    assert styles["tool_trace"].actioned == 0


def test_custom_actioned_tiers() -> None:
    rows = [(L, "p", 0.1), (D, "s", 0.9)]
    r = evaluate(*frames(rows, tier=["watch", "watch"]), actioned_tiers=("watch",))
    assert r.tiers is not None and r.tiers.n_actioned == 2


def _cluster_case(cluster_ids: Sequence[str | None]) -> EvalResult:
    rows = [(D, "s", 0.9)] * 6 + [(L, "p", 0.1), (L, "p", 0.2)]
    campaigns = {f"a{i}": "c1" if i < 3 else "c2" for i in range(6)}
    return evaluate(*frames(rows, campaigns, cluster_id=cluster_ids))


def test_identical_clustering_has_ari_one() -> None:
    r = _cluster_case(["k1", "k1", "k1", "k2", "k2", "k2", None, None])
    c = r.clusters
    assert c is not None
    assert (c.ari, c.ari_distill, c.purity, c.distill_clustered_share) == (1.0, 1.0, 1.0, 1.0)
    assert (c.n_clusters, c.n_clusters_with_distill) == (2, 2)


def test_known_clustering() -> None:
    # truth c1 = {a0 a1 a2}, c2 = {a3 a4 a5}; predicted k1 = {a0 a1 a2 a3}, k2 = {a4 a5}
    r = _cluster_case(["k1", "k1", "k1", "k1", "k2", "k2", None, None])
    c = r.clusters
    assert c is not None
    # pairs together in both: 3 + 1 = 4; predicted 6 + 1 = 7; truth 3 + 3 = 6
    # distill only (15 pairs): expected 7*6/15 = 2.8, max 6.5 -> (4 - 2.8) / (6.5 - 2.8)
    assert c.ari_distill == pytest.approx(1.2 / 3.7)
    # with the two legit singletons (28 pairs): expected 1.5 -> (4 - 1.5) / (6.5 - 1.5)
    assert c.ari == pytest.approx(0.5)
    rows = [
        (k.cluster_id, k.size, k.n_distill, k.majority_campaign, k.majority_share)
        for k in c.clusters
    ]
    assert rows == [("k1", 4, 4, "c1", 0.75), ("k2", 2, 2, "c2", 1.0)]
    assert c.purity == pytest.approx(5 / 6)


def test_legit_members_dilute_purity_and_singletons_are_not_clustered() -> None:
    # k2 takes a legit account; a5 stays unclustered (null)
    r = _cluster_case(["k1", "k1", "k1", "k2", "k2", None, "k2", "k3"])
    c = r.clusters
    assert c is not None
    assert [(k.cluster_id, k.size, k.n_distill, k.majority_share) for k in c.clusters] == [
        ("k1", 3, 3, 1.0),
        ("k2", 3, 2, pytest.approx(2 / 3)),
    ]
    assert c.n_clusters == 2  # k3 holds one account only
    assert c.purity == pytest.approx(5 / 6)
    assert c.distill_clustered_share == pytest.approx(5 / 6)


def test_no_cluster_or_tier_column_means_no_section() -> None:
    r = evaluate(*frames([(L, "p", 0.1), (D, "s", 0.9)]))
    assert r.clusters is None and r.tiers is None


@pytest.mark.parametrize("fprs", [(), (0.0,), (1.0,), (-0.1,)])
def test_bad_targets(fprs: tuple[float, ...]) -> None:
    with pytest.raises(DistillwatchError):
        evaluate(*frames([(L, "p", 0.1), (D, "s", 0.9)]), fprs=fprs)


def test_empty_truth_is_an_error() -> None:
    truth, verdicts = frames([])
    with pytest.raises(DistillwatchError, match="no accounts"):
        evaluate(truth, verdicts)


def test_result_is_a_frozen_value() -> None:
    r = evaluate(*frames([(L, "p", 0.1), (D, "s", 0.9)]))
    with pytest.raises(AttributeError):
        r.roc_auc = 0.0  # type: ignore[misc, unused-ignore]
    assert r == evaluate(*frames([(L, "p", 0.1), (D, "s", 0.9)]))


def test_flag_nothing_point_flags_nothing_even_with_infinite_scores() -> None:
    rows = [(L, "p", math.inf), (L, "p", 0.1), (D, "s", 0.9)]
    r = evaluate(*frames(rows), fprs=(0.1,))
    (p,) = r.operating_points
    # no false positive allowed and the top score is legit: the best point flags no one
    assert (p.threshold, p.n_flagged, p.tpr) == (math.inf, 0, 0.0)
    assert r.legit_personas[0].flagged == (0,)
    assert r.histogram.n_excluded == 1


def test_all_null_cluster_ids_mean_no_clustering() -> None:
    truth = pl.DataFrame(
        {
            "account_id": ["a", "b", "c", "d"],
            "label": ["distill", "distill", "legit", "legit"],
            "persona": ["cot_coercion", "cot_coercion", "casual_chat", "casual_chat"],
            "campaign_id": ["c1", "c1", None, None],
        }
    )
    verdicts = pl.DataFrame(
        {"account_id": ["a", "b", "c", "d"], "score": [0.9, 0.8, 0.2, 0.1]}
    ).with_columns(pl.lit(None, pl.String).alias("cluster_id"))
    assert evaluate(truth, verdicts).clusters is None
    with_one = verdicts.with_columns(
        pl.when(pl.col("account_id") == "a").then(pl.lit("k")).alias("cluster_id")
    )
    assert evaluate(truth, with_one).clusters is not None
