"""The values an evaluation produces: plain numbers and tuples, no frames, no arrays.

Rates whose denominator is zero are ``nan``. A threshold of ``inf`` means "flag nothing" (the best
operating point under the target FPR flags no account); ``nan`` means no threshold could be chosen
(no positives or no negatives).
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIONED_TIERS = ("throttle", "block")
"""Tiers that count as acted upon: the account is slowed down or stopped."""

NO_TIER = "(none)"
"""The tier row for truth accounts the verdicts gave no tier (missing row or null tier)."""

NO_CAMPAIGN = "(none)"
"""The campaign group of distill accounts whose ``campaign_id`` is null."""

TRUTH_PARTITION = (
    "distill accounts grouped by campaign_id; every legit account, and every distill account "
    "without a campaign_id, is its own singleton"
)
"""The truth clustering the adjusted Rand index compares against."""


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """The score threshold with the highest TPR whose FPR is at most ``target_fpr``.

    An account is flagged when ``score >= threshold``; unscored accounts are never flagged. Equal
    scores are always on the same side. Among thresholds with the same TPR the lowest FPR wins.
    """

    target_fpr: float
    threshold: float
    tpr: float
    fpr: float
    precision: float
    true_positives: int
    false_positives: int
    n_flagged: int


@dataclass(frozen=True, slots=True)
class GroupRate:
    """Share of one group's accounts flagged at each operating point, and actioned by tier.

    For a legit persona the share is its false-positive rate; for an attack style or a campaign
    it is recall. ``flagged`` and ``rate`` line up with ``EvalResult.operating_points``;
    ``actioned`` is ``None`` when the verdicts carry no ``tier``. ``styles`` names the attack
    styles of a campaign's accounts (comma-separated) and is ``None`` for other groups.
    """

    group: str
    n: int
    flagged: tuple[int, ...]
    rate: tuple[float, ...]
    actioned: int | None = None
    actioned_rate: float | None = None
    styles: str | None = None


@dataclass(frozen=True, slots=True)
class TierCount:
    """One row of the tier × label confusion table."""

    tier: str
    legit: int
    distill: int


@dataclass(frozen=True, slots=True)
class TierSummary:
    """How the verdict tiers line up with the truth: actioned = tier in ``actioned_tiers``."""

    actioned_tiers: tuple[str, ...]
    n_actioned: int
    tpr: float
    fpr: float
    precision: float
    confusion: tuple[TierCount, ...]


@dataclass(frozen=True, slots=True)
class ClusterRow:
    """One predicted cluster of two or more truth accounts holding at least one distill account.

    ``majority_share`` is the share of all members (legit ones included) that belong to the most
    common campaign among its distill members.
    """

    cluster_id: str
    size: int
    n_distill: int
    majority_campaign: str
    majority_share: float


@dataclass(frozen=True, slots=True)
class ClusterSummary:
    """Predicted ``cluster_id`` against the truth campaigns (see ``truth_partition``).

    ``ari`` is over every truth account, ``ari_distill`` over distill accounts only; a null or
    missing predicted cluster is a singleton. ``purity`` is the size-weighted mean of
    ``majority_share`` over ``clusters``; ``distill_clustered_share`` is the share of distill
    accounts sitting in a predicted cluster of two or more truth accounts.
    """

    truth_partition: str
    ari: float
    ari_distill: float
    purity: float
    n_clusters: int
    n_clusters_with_distill: int
    distill_clustered_share: float
    clusters: tuple[ClusterRow, ...]


@dataclass(frozen=True, slots=True)
class RocCurve:
    """ROC points from the highest threshold down; ``threshold[0]`` is ``inf`` (nothing flagged).

    Unscored accounts rank below every score, so the last point is (1, 1) and the area under
    these points is ``EvalResult.roc_auc``.
    """

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    threshold: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ScoreHistogram:
    """Counts of finite scores per bin (``len(edges) == len(legit) + 1``), legit and distill.

    ``n_excluded`` counts truth accounts left out: unscored, or scored ``±inf``.
    """

    edges: tuple[float, ...]
    legit: tuple[int, ...]
    distill: tuple[int, ...]
    n_excluded: int


@dataclass(frozen=True, slots=True)
class EvalResult:
    """Everything ``distillwatch eval`` reports about one verdict table against the truth.

    ``n_unscored`` counts truth accounts without a usable score (no verdict row, or a null / NaN
    score), ``n_unscored_positive`` the distill ones among them; ``n_ignored`` counts verdict rows
    whose account is not in the truth.
    """

    target_fprs: tuple[float, ...]
    n_accounts: int
    n_positive: int
    n_negative: int
    n_unscored: int
    n_unscored_positive: int
    n_ignored: int
    roc_auc: float
    average_precision: float
    operating_points: tuple[OperatingPoint, ...]
    legit_personas: tuple[GroupRate, ...]
    attack_styles: tuple[GroupRate, ...]
    campaigns: tuple[GroupRate, ...]
    tiers: TierSummary | None
    clusters: ClusterSummary | None
    roc: RocCurve
    histogram: ScoreHistogram
    warnings: tuple[str, ...]
