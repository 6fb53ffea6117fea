"""Score a verdict table against the truth: ranking, operating points, per-group rates, clusters.

The positive class is ``distill``. Truth accounts the verdicts do not score rank below every
score and are never flagged; verdict rows for accounts outside the truth are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from math import floor, nan
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from sklearn.metrics import (
    adjusted_rand_score,
    average_precision_score,
    roc_auc_score,
    roc_curve,
)

from distillwatch.core.errors import DistillwatchError
from distillwatch.eval.inputs import truth_frame, verdict_frame
from distillwatch.eval.result import (
    ACTIONED_TIERS,
    NO_CAMPAIGN,
    NO_TIER,
    TRUTH_PARTITION,
    ClusterRow,
    ClusterSummary,
    EvalResult,
    GroupRate,
    OperatingPoint,
    RocCurve,
    ScoreHistogram,
    TierCount,
    TierSummary,
)

DEFAULT_FPRS = (0.001, 0.01)
HISTOGRAM_BINS = 40
TIER_ORDER = ("allow", "watch", "throttle", "degrade", "verify", "block")

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


def evaluate(
    truth: pl.DataFrame,
    verdicts: pl.DataFrame,
    fprs: Sequence[float] = DEFAULT_FPRS,
    *,
    actioned_tiers: Sequence[str] = ACTIONED_TIERS,
) -> EvalResult:
    """Evaluate ``verdicts`` (``account_id``, ``score``, optional ``tier`` / ``cluster_id``)
    against ``truth`` (``account_id``, ``label``, ``persona``, optional ``campaign_id``).

    >>> truth = pl.DataFrame({"account_id": ["a", "b", "c"], "label": ["legit", "distill", "legit"],
    ...                       "persona": ["casual_chat", "cot_coercion", "casual_chat"]})
    >>> verdicts = pl.DataFrame({"account_id": ["a", "b"], "score": [0.2, 0.9]})
    >>> r = evaluate(truth, verdicts)
    >>> r.roc_auc, r.n_unscored, r.operating_points[0].tpr
    (1.0, 1, 1.0)
    """
    targets = _targets(fprs)
    t = truth_frame(truth)
    if t.height == 0:
        raise DistillwatchError("truth: no accounts")
    v = verdict_frame(verdicts)
    n_ignored = v.join(t.select("account_id"), on="account_id", how="anti").height
    df = t.join(v, on="account_id", how="left")

    y = (df["label"] == "distill").to_numpy()
    raw = df["score"].to_numpy().astype(np.float64)
    scored = ~np.isnan(raw)
    score = np.where(scored, raw, -np.inf)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    n_unscored, n_unscored_pos = int((~scored).sum()), int((~scored & y).sum())
    degenerate = n_pos == 0 or n_neg == 0

    warnings: list[str] = []
    if degenerate:
        missing = "distill" if n_pos == 0 else "legit"
        warnings.append(
            f"the truth has no {missing} accounts: ROC-AUC, PR-AUC and the score thresholds are "
            "undefined (NaN)"
        )
    if n_unscored:
        warnings.append(
            f"{n_unscored} truth account(s) have no score ({n_unscored_pos} distill): "
            "ranked lowest and never flagged"
        )
    if n_ignored:
        warnings.append(f"{n_ignored} verdict row(s) name accounts not in the truth: ignored")

    # sklearn rejects -inf: rank the scores densely (same order, same ties) and map back later
    uniq = np.unique(score)
    rank = np.searchsorted(uniq, score).astype(np.float64)
    if degenerate:
        auc = ap = nan
        roc = RocCurve((), (), ())
        points = tuple(_undefined_point(f) for f in targets)
    else:
        auc = float(roc_auc_score(y, rank))
        ap = float(average_precision_score(y, rank))
        fpr, tpr, thr = roc_curve(y, rank, drop_intermediate=True)
        roc = RocCurve(_floats(fpr), _floats(tpr), _floats(_rank_to_score(thr, uniq)))
        curve = _counts_curve(y, rank, uniq)
        points = tuple(_operating_point(curve, n_pos, n_neg, f) for f in targets)

    flags = [_flagged(score, p) for p in points]
    defined = tuple(not np.isnan(p.threshold) for p in points)
    actioned_set = tuple(a.lower() for a in actioned_tiers)
    actioned = (
        df["tier"].is_in(actioned_set).fill_null(False).to_numpy() if "tier" in df.columns else None
    )

    groups = df.with_columns(
        [pl.Series(f"flag{i}", f) for i, f in enumerate(flags)]
        + ([] if actioned is None else [pl.Series("actioned", actioned)])
    )
    legit = groups.filter(pl.col("label") == "legit")
    distill = groups.filter(pl.col("label") == "distill").with_columns(
        pl.col("campaign_id").fill_null(NO_CAMPAIGN)
    )

    return EvalResult(
        target_fprs=targets,
        n_accounts=df.height,
        n_positive=n_pos,
        n_negative=n_neg,
        n_unscored=n_unscored,
        n_unscored_positive=n_unscored_pos,
        n_ignored=n_ignored,
        roc_auc=auc,
        average_precision=ap,
        operating_points=points,
        legit_personas=_group_rates(legit, "persona", defined),
        attack_styles=_group_rates(distill, "persona", defined),
        campaigns=_group_rates(distill, "campaign_id", defined, styles=True),
        tiers=None if actioned is None else _tiers(df, y, actioned, actioned_set),
        # an all-null cluster_id (clustering not run) is no clustering to score
        clusters=_clusters(df, y)
        if "cluster_id" in df.columns and df["cluster_id"].null_count() < df.height
        else None,
        roc=roc,
        histogram=_histogram(score, y),
        warnings=tuple(warnings),
    )


def _targets(fprs: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(f) for f in fprs)
    if not out:
        raise DistillwatchError("no target FPR given")
    for f in out:
        if not 0.0 < f < 1.0:
            raise DistillwatchError(f"target FPR {f!r} must be strictly between 0 and 1")
    return out


def _rank_to_score(thr: Floats, uniq: Floats) -> Floats:
    """sklearn's thresholds are ranks (and ``inf`` first): map them back to scores."""
    out = np.full(thr.shape, np.inf)
    finite = np.isfinite(thr)
    out[finite] = uniq[thr[finite].astype(np.int64)]
    return out


def _counts_curve(
    y: Bools, rank: Floats, uniq: Floats
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], Floats]:
    """(false positives, true positives, score threshold) at every distinct score, highest first.

    sklearn's ``roc_curve`` steps only between distinct values, so equal scores stay together.
    """
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    fpr, tpr, thr = roc_curve(y, rank, drop_intermediate=False)
    fp = np.rint(fpr * n_neg).astype(np.int64)
    tp = np.rint(tpr * n_pos).astype(np.int64)
    return fp, tp, _rank_to_score(thr, uniq)


def _operating_point(
    curve: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], Floats],
    n_pos: int,
    n_neg: int,
    target: float,
) -> OperatingPoint:
    """Highest TPR with FPR <= target; among equal TPRs the lowest FPR (highest threshold)."""
    fp, tp, thresholds = curve
    # the FPR limit as a count, exactly: 0.01 of 200 negatives allows 2 false positives
    max_fp = floor(Fraction(repr(target)) * n_neg)
    # the unscored (-inf) are never flagged, so the threshold -inf is not an operating point
    ok = (fp <= max_fp) & (thresholds > -np.inf)
    best_tp = int(tp[ok].max())  # the first point (threshold inf, nothing flagged) is always ok
    i = int(np.flatnonzero(ok & (tp == best_tp))[0])
    n_flagged = int(tp[i] + fp[i])
    return OperatingPoint(
        target_fpr=target,
        threshold=float(thresholds[i]),
        tpr=int(tp[i]) / n_pos,
        fpr=int(fp[i]) / n_neg,
        precision=_ratio(int(tp[i]), n_flagged),
        true_positives=int(tp[i]),
        false_positives=int(fp[i]),
        n_flagged=n_flagged,
    )


def _undefined_point(target: float) -> OperatingPoint:
    return OperatingPoint(target, nan, nan, nan, nan, 0, 0, 0)


def _flagged(score: Floats, point: OperatingPoint) -> Bools:
    """Who ``point`` flags: score at or above its threshold, never the unscored."""
    if point.n_flagged == 0:  # also for threshold inf when some scores are inf
        return np.zeros(score.shape, dtype=np.bool_)
    return (score >= point.threshold) & (score > -np.inf)


def _ratio(num: int, den: int) -> float:
    return num / den if den else nan


def _group_rates(
    frame: pl.DataFrame, by: str, defined: tuple[bool, ...], *, styles: bool = False
) -> tuple[GroupRate, ...]:
    """Per value of ``by``: accounts, flagged at each operating point, actioned by tier."""
    n_points = len(defined)
    has_tiers = "actioned" in frame.columns
    aggs = [pl.len().alias("n")] + [pl.col(f"flag{i}").sum() for i in range(n_points)]
    if has_tiers:
        aggs.append(pl.col("actioned").sum())
    if styles:
        aggs.append(pl.col("persona").unique().sort().str.join(", ").alias("styles"))
    rows = frame.group_by(by).agg(aggs).sort(by).iter_rows(named=True)
    return tuple(_group_rate(r, by, defined, has_tiers, styles) for r in rows)


def _group_rate(
    row: dict[str, Any], by: str, defined: tuple[bool, ...], has_tiers: bool, styles: bool
) -> GroupRate:
    n = int(row["n"])
    flagged = tuple(int(row[f"flag{i}"]) for i in range(len(defined)))
    actioned = int(row["actioned"]) if has_tiers else None
    return GroupRate(
        group=str(row[by]),
        n=n,
        flagged=flagged,
        rate=tuple(f / n if ok else nan for f, ok in zip(flagged, defined, strict=True)),
        actioned=actioned,
        actioned_rate=None if actioned is None else actioned / n,
        styles=str(row["styles"]) if styles else None,
    )


def _tiers(df: pl.DataFrame, y: Bools, actioned: Bools, names: tuple[str, ...]) -> TierSummary:
    counts = (
        df.select(tier=pl.col("tier").fill_null(NO_TIER), distill=pl.Series(y))
        .group_by("tier")
        .agg(legit=(~pl.col("distill")).sum(), distill=pl.col("distill").sum())
    )
    order = {t: i for i, t in enumerate((*TIER_ORDER, *names))}
    rows = sorted(
        counts.iter_rows(named=True),
        key=lambda r: (r["tier"] == NO_TIER, order.get(r["tier"], len(order)), r["tier"]),
    )
    tp, fp = int((actioned & y).sum()), int((actioned & ~y).sum())
    return TierSummary(
        actioned_tiers=names,
        n_actioned=tp + fp,
        tpr=_ratio(tp, int(y.sum())),
        fpr=_ratio(fp, int((~y).sum())),
        precision=_ratio(tp, tp + fp),
        confusion=tuple(TierCount(r["tier"], int(r["legit"]), int(r["distill"])) for r in rows),
    )


def _clusters(df: pl.DataFrame, y: Bools) -> ClusterSummary:
    ids = df["account_id"]
    truth = np.where(
        y & df["campaign_id"].is_not_null().to_numpy(),
        ("c:" + df["campaign_id"].fill_null("")).to_numpy(),
        ("a:" + ids).to_numpy(),
    )
    pred_ids = df["cluster_id"]
    pred = np.where(
        pred_ids.is_not_null().to_numpy(),
        ("k:" + pred_ids.fill_null("")).to_numpy(),
        ("a:" + ids).to_numpy(),
    )
    ari = float(adjusted_rand_score(truth, pred))
    ari_distill = float(adjusted_rand_score(truth[y], pred[y])) if y.any() else nan

    members = pl.DataFrame({"pred": pred, "truth": truth, "distill": y})
    sizes = members.group_by("pred").len("size").filter(pl.col("size") >= 2)
    in_big = members.join(sizes, on="pred", how="inner")
    top = (
        in_big.filter("distill")
        .group_by("pred", "truth")
        .len("count")
        .sort(["pred", "count", "truth"], descending=[False, True, False])
        .group_by("pred", maintain_order=True)
        .first()
    )
    per_cluster = (
        in_big.group_by("pred")
        .agg(size=pl.len(), n_distill=pl.col("distill").sum())
        .join(top, on="pred", how="inner")
        .sort(["size", "pred"], descending=[True, False])
    )
    rows = tuple(
        ClusterRow(
            cluster_id=r["pred"][2:],
            size=int(r["size"]),
            n_distill=int(r["n_distill"]),
            majority_campaign=r["truth"][2:] if r["truth"].startswith("c:") else NO_CAMPAIGN,
            majority_share=int(r["count"]) / int(r["size"]),
        )
        for r in per_cluster.iter_rows(named=True)
    )
    majority = int(per_cluster["count"].sum())
    return ClusterSummary(
        truth_partition=TRUTH_PARTITION,
        ari=ari,
        ari_distill=ari_distill,
        purity=_ratio(majority, sum(r.size for r in rows)),
        n_clusters=sizes.height,
        n_clusters_with_distill=len(rows),
        distill_clustered_share=_ratio(int(in_big["distill"].sum()), int(y.sum())),
        clusters=rows,
    )


def _histogram(score: Floats, y: Bools) -> ScoreHistogram:
    finite = np.isfinite(score)
    excluded = int((~finite).sum())
    if not finite.any():
        return ScoreHistogram((), (), (), excluded)
    edges = np.histogram_bin_edges(score[finite], bins=HISTOGRAM_BINS)
    legit, _ = np.histogram(score[finite & ~y], bins=edges)
    distill, _ = np.histogram(score[finite & y], bins=edges)
    return ScoreHistogram(
        _floats(edges), tuple(int(c) for c in legit), tuple(int(c) for c in distill), excluded
    )


def _floats(a: Floats) -> tuple[float, ...]:
    return tuple(float(x) for x in a)
