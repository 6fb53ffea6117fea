"""The account graph: typed edges between accounts, and the hydra clusters they form.

:func:`account_edges` links accounts by what they share (card, organisation, address, client,
template, synchronized timing, sign-up burst, handover); :func:`cluster_accounts` partitions the
graph with weighted Leiden under :class:`GraphConfig`; :func:`cluster_edge_summary` says, per
cluster, which kinds of link hold it together. Scoring clusters is not done here.
"""

from __future__ import annotations

from distillwatch.clusters.config import EDGE_TYPES, GraphConfig
from distillwatch.clusters.edges import EDGE_SCHEMA, account_edges
from distillwatch.clusters.partition import (
    cluster_accounts,
    cluster_edge_summary,
    combined_edges,
)

__all__ = [
    "EDGE_SCHEMA",
    "EDGE_TYPES",
    "GraphConfig",
    "account_edges",
    "cluster_accounts",
    "cluster_edge_summary",
    "combined_edges",
]
