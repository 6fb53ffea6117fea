"""The scan pipeline: call frames -> account features -> detector -> account verdicts.

Training and scanning both build features through :meth:`ScanPipeline.features`, so a detector
always sees the columns it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from distillwatch.clusters import (
    EDGE_SCHEMA,
    GraphConfig,
    account_edges,
    cluster_accounts,
    cluster_edge_summary,
)
from distillwatch.core.errors import DistillwatchError
from distillwatch.detectors.gbm import GradientBoostedDetector
from distillwatch.features.benchmarks import BenchmarkIndex
from distillwatch.features.calls import call_frame, is_call_frame
from distillwatch.features.table import feature_table
from distillwatch.features.templates import template_families
from distillwatch.rules import RuleSet, load_rules
from distillwatch.scoring.accounts import (
    EVIDENCE_STRUCT,
    ScanConfig,
    explain_accounts,
    score_accounts,
)
from distillwatch.scoring.clusters import (
    attach_suspects,
    cluster_features,
    combine_scores,
    score_clusters,
    with_attached,
)

NON_FEATURES = ("account_id", "org_id", "allowlisted", "label")
VERDICT_COLUMNS = (
    "account_id",
    "org_id",
    "score",
    "tier",
    "cluster_id",
    "n_calls",
    "reasons",
    "evidence",
)


CLUSTER_COLUMNS = (
    "cluster_id",
    "score",
    "tier",
    "n_accounts",
    "n_calls",
    "members",
    "edge_types",
    "reasons",
    "evidence",
)


def default_detector_path() -> Path:
    return Path(str(resources.files("distillwatch") / "data" / "models" / "account-gbm.json"))


def default_cluster_detector_path() -> Path:
    return Path(str(resources.files("distillwatch") / "data" / "models" / "cluster-gbm.json"))


@dataclass(frozen=True)
class ScanResult:
    """What one scan finds: account verdicts (best first), the account feature table, cluster
    verdicts (best first, larger first among equals; empty when clustering is off) and the
    account graph's edges."""

    verdicts: pl.DataFrame
    features: pl.DataFrame
    clusters: pl.DataFrame
    edges: pl.DataFrame


@dataclass
class ScanPipeline:
    """Feature building and scoring, with the detectors and config injected.

    ``cluster_detector`` None with ``clustering`` on: accounts are still linked and clustered
    (``cluster_id`` filled) but clusters are not scored and account scores stay their own.
    """

    detector: GradientBoostedDetector | None = None
    config: ScanConfig = field(default_factory=ScanConfig)
    rules: RuleSet = field(default_factory=load_rules)
    benchmarks: BenchmarkIndex | None = None  # None: the shipped benchmark index
    cluster_detector: GradientBoostedDetector | None = None
    graph: GraphConfig = field(default_factory=GraphConfig)
    clustering: bool = True
    seed: int = 0
    previous: pl.DataFrame | None = None
    """An earlier scan's ``account_id``, ``cluster_id`` (its ``accounts.parquet``, or
    :func:`previous_clusters` of a folder): clusters that are mostly the same accounts keep
    their ids across reruns on overlapping windows."""

    def call_frame(self, calls: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
        """The call frame of canonical calls (or of a call frame: itself), collected."""
        lf = calls.lazy() if isinstance(calls, pl.DataFrame) else calls
        return (lf if is_call_frame(lf) else call_frame(lf)).collect()

    def features(
        self,
        calls: pl.LazyFrame | pl.DataFrame,
        accounts: pl.LazyFrame | None = None,
        models: pl.LazyFrame | None = None,
        families: pl.DataFrame | None = None,
    ) -> pl.DataFrame:
        """One row per account: every feature family, plus ``org_id`` and ``allowlisted``."""
        return feature_table(
            calls, accounts, models, rules=self.rules, benchmarks=self.benchmarks,
            families=families,
        )  # fmt: skip

    @staticmethod
    def design(features: pl.DataFrame) -> pl.DataFrame:
        """The numeric columns a detector is fitted on."""
        return features.drop([c for c in NON_FEATURES if c in features.columns])

    def load_detector(self, path: Path | None = None) -> GradientBoostedDetector:
        path = path or default_detector_path()
        if not path.is_file():
            raise DistillwatchError(
                f"no detector at {path}: train one with `distillwatch train --out {path}`"
            )
        self.detector = GradientBoostedDetector.load(path)
        return self.detector

    def load_cluster_detector(self, path: Path | None = None) -> GradientBoostedDetector | None:
        """The cluster detector at ``path`` (an error if missing), or the packaged one (None,
        with cluster scoring off, when none is packaged)."""
        if path is None and not default_cluster_detector_path().is_file():
            self.cluster_detector = None
            return None
        path = path or default_cluster_detector_path()
        if not path.is_file():
            raise DistillwatchError(f"no cluster detector at {path}")
        self.cluster_detector = GradientBoostedDetector.load(path)
        return self.cluster_detector

    @property
    def strong_rules(self) -> tuple[str, ...]:
        return self.rules.select(strength="strong").columns

    def graph_of(
        self, cf: pl.DataFrame, families: pl.DataFrame, accounts: pl.LazyFrame | None
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(edges, clusters): the account graph and ``account_id`` -> ``cluster_id``."""
        calls = cf.select(
            "account_id", "org_id", "ts", "ip", "asn", "user_agent", "tls_fingerprint"
        ).with_columns(families.select("family_id", "family_kind"))
        acc = accounts.collect() if accounts is not None else None
        edges = account_edges(calls, acc, self.graph)
        ids = cf.get_column("account_id").unique().sort()
        clusters = cluster_accounts(
            edges, ids, self.graph, seed=self.seed, previous=self.previous
        )
        return edges, clusters

    def _explain_lifted(
        self, scored: pl.DataFrame, feats: pl.DataFrame, detector: GradientBoostedDetector
    ) -> pl.DataFrame:
        """Own evidence for accounts whose cluster lifted them to ``explain_min_score`` or more
        from below it (:func:`score_accounts` left them unexplained), after the cluster item."""
        cut = self.config.explain_min_score
        need = scored.filter((pl.col("score") >= cut) & (pl.col("own_score") < cut))
        if need.height == 0:
            return scored
        # explained within the whole population, so baselines are population medians
        rows = feats["account_id"].is_in(need["account_id"].implode()).to_numpy()
        reasons, evidence = explain_accounts(feats, detector, self.config, rows)
        extra = pl.DataFrame(
            {
                "account_id": feats["account_id"],
                "own_reasons": pl.Series(reasons, dtype=pl.List(pl.String)),
                "own_evidence": pl.Series(evidence, dtype=pl.List(EVIDENCE_STRUCT)),
            }
        ).filter(pl.Series(rows))
        return (
            scored.join(extra, on="account_id", how="left", maintain_order="left")
            .with_columns(
                pl.concat_list("reasons", pl.col("own_reasons").fill_null([])).alias("reasons"),
                pl.concat_list("evidence", pl.col("own_evidence").fill_null([])).alias(
                    "evidence"
                ),
            )
            .drop("own_reasons", "own_evidence")
        )

    def scan(
        self,
        calls: pl.LazyFrame | pl.DataFrame,
        accounts: pl.LazyFrame | None = None,
        models: pl.LazyFrame | None = None,
    ) -> ScanResult:
        """Score every account with calls (and, with clustering, every cluster)."""
        detector = self.detector or self.load_detector()
        cf = self.call_frame(calls)
        families = template_families(cf.select("account_id", "prompt"))
        feats = self.features(cf, accounts, models, families)
        own = score_accounts(feats, detector, self.config)
        edges = _no_edges()
        clusters = feats.select("account_id", pl.lit(None, pl.String).alias("cluster_id"))
        cver = pl.DataFrame(schema=_cluster_schema())
        if self.clustering:
            edges, clusters = self.graph_of(cf, families, accounts)
        if self.clustering and self.cluster_detector is not None:
            cfeats = cluster_features(feats, own, clusters, edges, strong_rules=self.strong_rules)
            cver = _cluster_verdicts(
                score_clusters(cfeats, self.cluster_detector, self.config), cfeats, clusters,
                edges,
            )  # fmt: skip
            attached = attach_suspects(own, clusters, cver, edges, self.config)
            clusters = clusters.update(
                attached.select("account_id", "cluster_id"), on="account_id", how="left"
            )
            cver = with_attached(cver, attached, feats)
            scored = combine_scores(own, clusters, cver, feats, self.config, attached)
            scored = self._explain_lifted(scored, feats, detector)
        else:
            scored = own.join(clusters, on="account_id", how="left")
        verdicts = (
            scored.join(feats.select("account_id", "org_id", "n_calls"), on="account_id")
            .select(VERDICT_COLUMNS)
            .sort(["score", "account_id"], descending=[True, False])
        )
        return ScanResult(verdicts, feats, cver, edges)


def previous_clusters(path: Path) -> pl.DataFrame:
    """``account_id``, ``cluster_id`` of an earlier scan: its output folder (``accounts.parquet``
    there), that file, or a ``clusters.parquet`` (its ``members`` lists)."""
    file = path / "accounts.parquet" if path.is_dir() else path
    try:
        cols = pl.read_parquet_schema(file)
        if "members" in cols and "account_id" not in cols:
            table = (
                pl.read_parquet(file, columns=["cluster_id", "members"])
                .explode("members")
                .select(pl.col("members").alias("account_id"), "cluster_id")
            )
        else:
            table = pl.read_parquet(file, columns=["account_id", "cluster_id"])
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DistillwatchError(
            f"{file}: cannot read an earlier scan's clusters (want accounts.parquet with "
            f"account_id and cluster_id, or clusters.parquet): {exc}"
        ) from None
    return table.drop_nulls().unique("account_id", keep="first").cast(pl.String)


def _no_edges() -> pl.DataFrame:
    return pl.DataFrame(schema=EDGE_SCHEMA)


def _cluster_schema() -> dict[str, Any]:
    return {
        "cluster_id": pl.String,
        "score": pl.Float64,
        "tier": pl.String,
        "n_accounts": pl.UInt32,
        "n_calls": pl.Int64,
        "members": pl.List(pl.String),
        "edge_types": pl.List(pl.String),
        "reasons": pl.List(pl.String),
        "evidence": pl.List(EVIDENCE_STRUCT),
    }


def _cluster_verdicts(
    scored: pl.DataFrame, cfeats: pl.DataFrame, clusters: pl.DataFrame, edges: pl.DataFrame
) -> pl.DataFrame:
    """Cluster verdict rows (:data:`CLUSTER_COLUMNS`), best first: members sorted, edge types
    by their weight inside the cluster, and a first reason that names the links."""
    cid = clusters.drop_nulls("cluster_id")
    members = cid.group_by("cluster_id").agg(pl.col("account_id").sort().alias("members"))
    # per cluster, its edge types heaviest first (cluster_edge_summary's order)
    inside = (
        cluster_edge_summary(edges, clusters)
        .group_by("cluster_id", maintain_order=True)
        .agg(
            pl.col("type").alias("edge_types"),
            pl.format(
                "{} ({} link{})",
                pl.col("type"),
                pl.col("n_edges"),
                pl.when(pl.col("n_edges") == 1).then(pl.lit("")).otherwise(pl.lit("s")),
            )
            .str.join(", ")
            .alias("links"),
        )
    )
    out = (
        scored.join(cfeats.select("cluster_id", "n_accounts", "n_calls"), on="cluster_id")
        .join(members, on="cluster_id")
        .join(inside, on="cluster_id", how="left")
        .with_columns(
            pl.col("edge_types").fill_null([]),
            pl.concat_list(
                pl.format(
                    "{} accounts linked by {}", pl.col("n_accounts"), pl.col("links").fill_null("-")
                ),
                pl.col("reasons"),
            ).alias("reasons"),
        )
    )
    return out.select(CLUSTER_COLUMNS).sort(
        ["score", "n_accounts", "cluster_id"], descending=[True, True, False]
    )
