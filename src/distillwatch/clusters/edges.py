"""Typed, weighted links between accounts: what two accounts share, and how telling that is.

Every edge type is a group-by on a shared key (a card, an address in a window, a template
family, an activity bucket), then pairs within each key. A key shared by more accounts than its
cap links no pair by itself (template families and client fingerprints over their caps still
corroborate pairs that other edges link), a busy timing bucket is split into capped
sub-buckets, and the accounts in step with one set of waves are linked by a sparse ring (see
:class:`~distillwatch.clusters.config.GraphConfig`), so the cost is bounded by the caps squared
times the number of keys, never the number of accounts squared. Edge types:

- ``payment`` (strong): the same payment fingerprint pays for both accounts.
- ``org`` (strong, declared): the same ``org_id``.
- ``ip`` (medium): the same address within one ``ip_window`` bucket; addresses used by more than
  ``max_key_accounts`` accounts over the frame (NAT, CGNAT) are dropped, rarer ones weighted by IDF.
- ``subnet24`` (weak): the same IPv4 /24 within one ``subnet24_window`` bucket, likewise capped;
  only for pairs with no ``ip`` edge (a shared address already implies its /24).
- ``asn`` (very weak): the same ASN within one ``asn_window`` bucket, each ASN-window capped.
- ``client`` (weak): the same user agent and TLS fingerprint, weighted by IDF: a stock SDK used by
  thousands is no evidence, a custom harvesting client is.
- ``template`` (weak): the same rarely used *template* family; duplicate families are ignored.
- ``timing`` (medium): active in the same short buckets far more often than chance, on several
  days (SynchroTrap-style co-occurrence with a per-bucket cap).
- ``wave`` (medium): both accounts in step with one set of waves (bursts among all accounts,
  or among those of one client fingerprint or template family) far beyond chance: a large
  campaign's synchrony, tested per account against its waves as a whole.
- ``signup_burst`` (weak): created within a short window through the same sign-up channel.
- ``handover`` (strong): one account's first call soon after another's last call, the two
  sharing a template family, client or /24 that few accounts use: a banned account replaced by a
  fresh one. Full weight needs two kinds of thing shared.

``payment`` and ``signup_burst`` need the account table; ``org`` reads it, else the calls' org.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

import numpy as np
import polars as pl

from distillwatch.clusters.config import GraphConfig

__all__ = ["EDGE_SCHEMA", "account_edges"]

EDGE_SCHEMA: Final = pl.Schema(
    {
        "src": pl.String(),
        "dst": pl.String(),
        "type": pl.String(),
        "weight": pl.Float64(),
        "support": pl.UInt32(),
        "key": pl.String(),
    }
)
"""Columns of :func:`account_edges`: one row per account pair (``src < dst``) and edge type.
``support`` counts the shared items (cards, buckets, families, fingerprints); ``key`` is a short
example of what is shared, for an analyst."""

_SLIM: Final = pl.Schema(
    {
        "account_id": pl.String(),
        "org_id": pl.String(),
        "ts": pl.Datetime("us", "UTC"),
        "ip": pl.String(),
        "asn": pl.Int64(),
        "user_agent": pl.String(),
        "tls_fingerprint": pl.String(),
        "family_id": pl.UInt64(),
        "family_kind": pl.String(),
    }
)
Label = Callable[[pl.Expr], pl.Expr]  # a key column -> its text in ``key``
_SUB_BUCKET_SEED: Final = 0x5EED_7157  # fixed: the same calls always split the same way
_BLOCK_PRODUCTS: Final = 1 << 24  # timing co-occurrence: pair counts held at once, about
Keep = Callable[[Any, Any, Any], Any]  # (src, dst, support) arrays -> a boolean mask of those kept


def _span(td: timedelta) -> str:
    """``5-min``, ``1-h``, ``1-day``: a window's length as a bucket label."""
    secs = int(td.total_seconds())
    if secs % 86_400 == 0:
        return f"{secs // 86_400}-day"
    if secs % 3600 == 0:
        return f"{secs // 3600}-h"
    if secs % 60 == 0:
        return f"{secs // 60}-min"
    return f"{secs}-s"


def _duration_text(seconds: pl.Expr) -> pl.Expr:
    """``"12 min"`` under two hours, else ``"3.5 h"``."""
    return (
        pl.when(seconds < 7200)
        .then(pl.format("{} min", (seconds / 60).round(0).cast(pl.Int64)))
        .otherwise(pl.format("{} h", (seconds / 3600).round(1)))
    )


def _idf(n: pl.Expr, population: float) -> pl.Expr:
    """Rarity of a key shared by ``n`` accounts: 1 for two accounts, 0 for everyone."""
    return ((population / n.cast(pl.Float64)).log() / math.log(population / 2.0)).clip(0.0, 1.0)


def _pairs(members: pl.DataFrame, on: list[str], cap: int) -> pl.DataFrame:
    """Account pairs (``src < dst``) sharing a key ``on``, over keys held by 2..``cap`` accounts.

    ``members`` holds one row per key and account; other columns come along for both ends (the
    far end's with a ``_dst`` suffix), and ``n_key`` is the key's account count."""
    sized = members.with_columns(pl.len().over(on).alias("n_key")).filter(
        (pl.col("n_key") >= 2) & (pl.col("n_key") <= cap)
    )
    left = sized.rename({"account_id": "src"})
    right = sized.drop("n_key").rename({"account_id": "dst"})
    return left.join(right, on=on, suffix="_dst").filter(pl.col("src") < pl.col("dst"))


def _shared(members: pl.DataFrame, on: list[str], cap: int) -> pl.DataFrame:
    """Per pair sharing keys ``on`` of ``members`` (``account_id``, ``on``, ``k``, ``idf``):
    ``support`` (keys shared), ``evidence`` (their IDF summed), ``example`` (the rarest ``k``),
    ``n`` (its accounts) and ``n_keys`` (distinct ``k``)."""
    rarest = [pl.col("idf"), pl.col("k")]
    return (
        _pairs(members, on, cap)
        .group_by("src", "dst")
        .agg(
            pl.len().alias("support"),
            pl.col("idf").sort().sum().alias("evidence"),
            pl.col("k").sort_by(rarest, descending=[True, False]).first().alias("example"),
            pl.col("n_key").sort_by(rarest, descending=[True, False]).first().alias("n"),
            pl.col("k").n_unique().alias("n_keys"),
        )
    )


def _edges(
    frame: pl.DataFrame, kind: str, weight: pl.Expr, support: pl.Expr, key: pl.Expr
) -> pl.DataFrame:
    """``frame`` (one row per pair) in :data:`EDGE_SCHEMA` form, zero-weight rows dropped."""
    return (
        frame.select(
            "src",
            "dst",
            pl.lit(kind).alias("type"),
            weight.cast(pl.Float64).alias("weight"),
            support.cast(pl.UInt32).alias("support"),
            key.cast(pl.String).alias("key"),
        )
        .filter(pl.col("weight") > 0)
        .cast(EDGE_SCHEMA)
    )


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=EDGE_SCHEMA)


def _more(n_keys: pl.Expr) -> pl.Expr:
    """`` (+2 more)`` after an example key when the pair shares more than one."""
    return pl.when(n_keys > 1).then(pl.format(" (+{} more)", n_keys - 1)).otherwise(pl.lit(""))


def _plural(n: pl.Expr, word: str) -> pl.Expr:
    """``word`` or ``word + "s"`` by the count ``n``."""
    return pl.when(n == 1).then(pl.lit(word)).otherwise(pl.lit(word + "s"))


def _slim(calls: pl.DataFrame) -> pl.DataFrame:
    """The columns edges read, typed; absent optional columns become nulls."""
    missing = {"account_id", "ts"} - set(calls.columns)
    if missing:
        raise ValueError(f"calls lack required columns {sorted(missing)}")
    return calls.select(
        pl.col(name).cast(dtype) if name in calls.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in _SLIM.items()
    )


# --- account-table edges ------------------------------------------------------------------------


def _payment_edges(accounts: pl.DataFrame, cfg: GraphConfig) -> pl.DataFrame:
    members = (
        accounts.select("account_id", pl.col("payment_fingerprint").alias("k"))
        .drop_nulls()
        .unique()
    )
    pairs = _pairs(members, ["k"], cfg.max_payment_accounts)
    return _edges(
        pairs,
        "payment",
        pl.lit(cfg.payment_weight),
        pl.lit(1),
        pl.format("{} ({} accounts)", "k", "n_key"),
    )


def _org_edges(orgs: pl.DataFrame, cfg: GraphConfig) -> pl.DataFrame:
    pairs = _pairs(orgs.rename({"org_id": "k"}), ["k"], cfg.max_org_accounts)
    return _edges(
        pairs, "org", pl.lit(cfg.org_weight), pl.lit(1), pl.format("{} ({} accounts)", "k", "n_key")
    )


def _signup_edges(accounts: pl.DataFrame, cfg: GraphConfig) -> pl.DataFrame:
    """Pairs created within ``signup_window`` through one channel: pairs within calendar windows
    and within windows shifted by half a window, so no pair is lost to a window edge."""
    w = cfg.signup_window
    base = accounts.select(
        "account_id", pl.col("signup_channel").alias("ch"), pl.col("created_at").alias("c")
    ).drop_nulls()
    found = [
        _pairs(
            base.with_columns((pl.col("c") + shift).dt.truncate(w).alias("g")),
            ["ch", "g"],
            cfg.max_signup_accounts,
        ).drop("g", "n_key")
        for shift in (timedelta(0), w / 2)
    ]
    gap = (pl.col("c") - pl.col("c_dst")).abs().dt.total_seconds()
    pairs = pl.concat(found).unique(["src", "dst"]).filter(gap <= w.total_seconds())
    return _edges(
        pairs,
        "signup_burst",
        pl.lit(cfg.signup_burst_weight),
        pl.lit(1),
        pl.format("{} sign-ups {} apart", "ch", _duration_text(gap)),
    )


# --- infrastructure edges -----------------------------------------------------------------------


def _bucketed_edges(
    calls: pl.DataFrame,
    key: pl.Expr,
    *,
    kind: str,
    window: timedelta,
    weight: float,
    full: float,
    cap: int,
    frame_cap: bool,
    population: float,
    label: Label,
) -> pl.DataFrame:
    """Pairs using one key (address, /24, ASN) within one ``window`` bucket.

    Evidence is the IDF-weighted count of shared (key, bucket) cells, IDF from the key's accounts
    over the frame; the edge reaches ``weight`` at ``full``. Cells with more than ``cap`` accounts
    are dropped, and with ``frame_cap`` so are keys with more than ``cap`` accounts over the frame.
    """
    # the key of each distinct (account, column, window), not of every call: a /24 is a regex
    cells = (
        calls.select(
            "account_id", *key.meta.root_names(), pl.col("ts").dt.truncate(window).alias("t")
        )
        .unique()
        .select("account_id", key.alias("k"), "t")
        .drop_nulls()
        .unique()
    )
    n_all = cells.group_by("k").agg(pl.col("account_id").n_unique().alias("n_all"))
    if frame_cap:
        n_all = n_all.filter(pl.col("n_all") <= cap)
    cells = cells.join(n_all, on="k").with_columns(_idf(pl.col("n_all"), population).alias("idf"))
    pairs = _shared(cells.drop("n_all"), ["k", "t"], cap)
    return _edges(
        pairs,
        kind,
        weight * (pl.col("evidence") / full).clip(upper_bound=1.0),
        pl.col("support"),
        pl.format(
            "{}{}, {} shared {} {}",
            label(pl.col("example")),
            _more(pl.col("n_keys")),
            "support",
            pl.lit(_span(window)),
            _plural(pl.col("support"), "window"),
        ),
    )


def _subnet24(ip: pl.Expr) -> pl.Expr:
    return ip.str.extract(r"^(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}$")


def _client_label() -> pl.Expr:
    """``user_agent | tls <first 12 of fingerprint>``; null when both are unknown."""
    ua, tls = pl.col("user_agent"), pl.col("tls_fingerprint")
    return (
        pl.when(ua.is_not_null() | tls.is_not_null())
        .then(pl.format("{} | tls {}", ua.fill_null("?"), tls.fill_null("?").str.slice(0, 12)))
        .alias("k")
    )


def _client_members(calls: pl.DataFrame, cfg: GraphConfig, population: float) -> pl.DataFrame:
    """One row per account and client fingerprint, for fingerprints used by at most
    ``max_client_accounts`` accounts and ``client_max_share`` of the ``population``."""
    members = calls.select("account_id", _client_label()).drop_nulls().unique()
    cap = min(cfg.max_client_accounts, max(2, math.floor(cfg.client_max_share * population)))
    return (
        members.with_columns(pl.len().over("k").alias("n"))
        .filter(pl.col("n") <= cap)
        .with_columns(_idf(pl.col("n"), population).alias("idf"))
    )


def _client_edges(calls: pl.DataFrame, cfg: GraphConfig, population: float) -> pl.DataFrame:
    members = _client_members(calls, cfg, population).drop("n")
    pairs = _shared(members, ["k"], cfg.max_client_accounts)
    return _edges(
        pairs,
        "client",
        cfg.client_weight * pl.col("evidence").clip(upper_bound=1.0),
        pl.col("support"),
        pl.format("{} ({} accounts)", "example", "n"),
    )


# --- content and behaviour edges ----------------------------------------------------------------


def _template_members(calls: pl.DataFrame, cfg: GraphConfig, population: float) -> pl.DataFrame:
    """One row per account and template family it uses (at least ``template_min_calls`` calls),
    for families with at most ``max_template_accounts`` accounts."""
    return (
        calls.filter((pl.col("family_kind") == "template") & pl.col("family_id").is_not_null())
        .group_by("account_id", "family_id")
        .len()
        .filter(pl.col("len") >= cfg.template_min_calls)
        .with_columns(pl.len().over("family_id").alias("n"))
        .filter(pl.col("n") <= cfg.max_template_accounts)
        .select(
            "account_id",
            pl.col("family_id").alias("k"),
            _idf(pl.col("n"), population).alias("idf"),
        )
    )


def _template_edges(calls: pl.DataFrame, cfg: GraphConfig, population: float) -> pl.DataFrame:
    members = _template_members(calls, cfg, population)
    pairs = _shared(members, ["k"], cfg.max_template_accounts)
    return _edges(
        pairs,
        "template",
        cfg.template_weight * (pl.col("evidence") / cfg.template_full).clip(upper_bound=1.0),
        pl.col("support"),
        pl.format(
            "template family {} ({} accounts){}",
            pl.col("example").cast(pl.String),
            "n",
            _more(pl.col("support")),
        ),
    )


def _big_key_edges(
    calls: pl.DataFrame, linked: pl.DataFrame, cfg: GraphConfig, population: float
) -> pl.DataFrame:
    """``template`` and ``client`` edges from the keys over their caps (template families used by
    more than ``max_template_accounts`` accounts, client fingerprints over the client cap), for
    the pairs of ``linked`` only: those that an edge of a ``corroborated_types`` type already
    links. All pairs of a key held by thousands would cost its size squared and say little;
    on a pair that shares an address, a card or a wave, the same key is one more piece of
    evidence, IDF-weighted like any other. Pairs with an edge of the same type from the keys
    under the caps keep that one."""
    n_accounts = float(population)
    family = (
        calls.filter((pl.col("family_kind") == "template") & pl.col("family_id").is_not_null())
        .group_by("account_id", "family_id")
        .len()
        .filter(pl.col("len") >= cfg.template_min_calls)
        .with_columns(pl.len().over("family_id").alias("n"))
        .filter(pl.col("n") > cfg.max_template_accounts)
        .select(
            "account_id",
            pl.lit("template").alias("type"),
            pl.format("template family {}", "family_id").alias("k"),
            "n",
        )
    )
    cap = min(cfg.max_client_accounts, max(2, math.floor(cfg.client_max_share * n_accounts)))
    client = (
        calls.select("account_id", _client_label())
        .drop_nulls()
        .unique()
        .with_columns(pl.len().over("k").alias("n"))
        .filter(pl.col("n") > cap)
        .select("account_id", pl.lit("client").alias("type"), "k", "n")
    )
    big = pl.concat([family, client]).with_columns(_idf(pl.col("n"), population).alias("idf"))
    pairs = linked.filter(pl.col("type").is_in(list(cfg.corroborated_types))).select("src", "dst")
    pairs = pairs.unique()
    shared = (
        pairs.join(big.rename({"account_id": "src"}), on="src")
        .join(big.select("account_id", "type", "k").rename({"account_id": "dst"}),
              on=["dst", "type", "k"])
        .join(linked.select("src", "dst", "type"), on=["src", "dst", "type"], how="anti")
        .group_by("src", "dst", "type")
        .agg(
            pl.len().alias("support"),
            pl.col("idf").sort().sum().alias("evidence"),
            pl.col("k").sort_by(["idf", "k"], descending=[True, False]).first().alias("k"),
            pl.col("n").sort_by(["idf", "k"], descending=[True, False]).first().alias("n"),
        )
    )  # fmt: skip
    weight = (
        pl.when(pl.col("type") == "template")
        .then(cfg.template_weight * (pl.col("evidence") / cfg.template_full).clip(upper_bound=1.0))
        .otherwise(cfg.client_weight * pl.col("evidence").clip(upper_bound=1.0))
    )
    return (
        shared.select(
            "src",
            "dst",
            "type",
            weight.alias("weight"),
            pl.col("support").cast(pl.UInt32),
            pl.format(
                "{} ({} accounts, corroborating){}", "k", "n", _more(pl.col("support"))
            ).alias("key"),
        )
        .filter(pl.col("weight") > 0)
        .cast(EDGE_SCHEMA)
    )


def _poisson_tail(observed: Any, expected: Any) -> Any:
    """``-log10 P(X >= observed)`` for ``X ~ Poisson(expected)``, element-wise on NumPy arrays
    (finite)."""
    from scipy.stats import poisson

    log_tail = poisson.logsf(np.asarray(observed, dtype=np.float64) - 1.0, expected)
    return np.nan_to_num(-log_tail / math.log(10), posinf=1e6)


def _poisson_surprise(observed: pl.Series, expected: pl.Series) -> pl.Series:
    """``-log10 P(X >= observed)`` for ``X ~ Poisson(expected)``, element-wise (finite)."""
    tail = _poisson_tail(observed.cast(pl.Float64).to_numpy(), expected.to_numpy())
    return pl.Series(tail, dtype=pl.Float64)


def _co_occurrence(
    active: pl.DataFrame, n: int, keep: Keep, block_products: int = _BLOCK_PRODUCTS
) -> pl.DataFrame:
    """``src``, ``dst`` (``src < dst``) and ``support`` (cells shared) from ``ix``, ``cell`` rows
    (one per account and active cell), for the pairs that ``keep(src, dst, support)`` keeps
    (NumPy arrays in, a boolean mask out).

    A sparse product of the account-by-cell matrix with itself, which costs the sum of squared
    cell sizes. It runs over blocks of rows (accounts), each against the accounts from its first
    row on, so that about ``block_products`` pair counts at most are held at once and only a
    block's kept pairs outlive it: most pairs share a bucket or two by chance, and holding them
    all would take memory that grows with the accounts times the bucket cap."""
    from scipy.sparse import csr_matrix

    schema = pl.Schema({"src": pl.UInt32(), "dst": pl.UInt32(), "support": pl.Int64()})
    if active.height == 0:
        return pl.DataFrame(schema=schema)
    rows = active.get_column("ix").to_numpy().astype(np.int64)
    cells = active.get_column("cell").to_numpy().astype(np.int64)
    ones = np.ones(len(rows), dtype=np.int32)
    matrix = csr_matrix((ones, (rows, cells)), shape=(n, int(cells.max()) + 1))
    # a row's products (its cells' sizes summed) bound the pairs it adds to its block
    sizes = np.bincount(cells)
    cumulative = np.cumsum(np.bincount(rows, weights=sizes[cells], minlength=n))
    found: list[tuple[Any, ...]] = []
    start = 0
    while start < n:
        done = cumulative[start - 1] if start else 0.0
        stop = int(np.searchsorted(cumulative, done + block_products, side="right"))
        stop = min(max(stop, start + 1), n)
        shared = (matrix[start:stop] @ matrix[start:].T).tocoo()
        src = shared.row.astype(np.int64) + start
        dst = shared.col.astype(np.int64) + start
        support = shared.data.astype(np.int64)
        upper = np.flatnonzero(dst > src)
        kept = upper[keep(src[upper], dst[upper], support[upper])]
        found.append((src[kept], dst[kept], support[kept]))
        start = stop
    columns = [np.concatenate(parts) for parts in zip(*found, strict=True)]
    return pl.DataFrame(dict(zip(schema, columns, strict=True))).cast(schema)


def _timing_edges(calls: pl.DataFrame, cfg: GraphConfig) -> pl.DataFrame:
    """SynchroTrap-style synchronized activity.

    Each account's set of active ``timing_bucket`` buckets; for a pair, the expected number of
    shared buckets under independence is ``|A| * |B| * sum_b(w_b^2 / k_b)``, where ``w_b`` is the
    bucket's share of all account-bucket activity (so the daily peak is expected to be shared)
    and ``k_b`` the number of sub-buckets a busy bucket is split into. A pair's *surprise* is
    ``-log10`` of the Poisson chance of sharing at least that many buckets, less ``log10`` of the
    number of candidate pairs (a Bonferroni correction: among 100,000 pairs, a one-in-100,000
    pair is expected once). Accounts that could not reach ``timing_min_lift`` with anyone, being active
    in too many buckets, are left out."""
    active = calls.select("account_id", pl.col("ts").dt.truncate(cfg.timing_bucket).alias("b"))
    active = active.unique()
    if active.height == 0:
        return _empty()
    occupancy = active.group_by("b").agg(pl.len().alias("n_b")).sort("b")  # fixed sum order
    w2 = (pl.col("n_b") / pl.col("n_b").sum()) ** 2
    concentration = float(occupancy.select(w2.sum()).item())
    per_account = active.group_by("account_id").agg(
        pl.len().alias("nb"), pl.col("b").dt.date().n_unique().alias("days")
    )
    most_buckets = 1.0 / (cfg.timing_min_lift * concentration)
    candidates = per_account.filter(
        (pl.col("nb") >= cfg.timing_min_buckets)
        & (pl.col("days") >= cfg.timing_min_days)
        & (pl.col("nb") <= most_buckets)
    )
    if candidates.height < 2:
        return _empty()
    active = active.join(candidates.select("account_id"), on="account_id")
    cap = cfg.timing_max_bucket_accounts
    split = (
        active.group_by("b")
        .agg(pl.len().alias("n_c"))
        .with_columns(((pl.col("n_c") + cap - 1) // cap).alias("k_b"))
    )
    scale = float(
        occupancy.join(split, on="b", how="left", maintain_order="left")
        .select((w2 / pl.col("k_b").fill_null(1)).sum())
        .item()
    )
    # integer ids, in account-id order so that ``src < dst`` holds for both
    index = candidates.select("account_id").sort("account_id").with_row_index("ix")
    active = (
        active.join(split.select("b", "k_b"), on="b")
        .with_columns(
            (pl.struct("account_id", "b").hash(_SUB_BUCKET_SEED) % pl.col("k_b")).alias("sub")
        )
        .filter(pl.len().over("b", "sub") <= 2 * cap)
        .join(index, on="account_id")
        .select(
            "ix",
            # cells numbered by bucket, then sub-bucket (a number to rank, not a struct)
            (pl.col("b").rank("dense").cast(pl.Int64) * pl.col("k_b").max().cast(pl.Int64))
            .add(pl.col("sub").cast(pl.Int64))
            .rank("dense")
            .cast(pl.Int64)
            .sub(1)
            .alias("cell"),
            pl.col("b").dt.date().rank("dense").cast(pl.Int64).sub(1).alias("day"),
        )
    )
    nb = candidates.join(index, on="account_id").select("ix", "nb")
    nb_of = np.zeros(index.height, dtype=np.float64)
    nb_of[nb.get_column("ix").to_numpy()] = nb.get_column("nb").to_numpy()
    compared = candidates.height * (candidates.height - 1) / 2
    # a hair under the expectation, so the pre-filter keeps a superset; the tests below decide
    low = scale * (1.0 - 1e-9)

    def keep(src: Any, dst: Any, support: Any) -> Any:
        """Pairs that may pass the support, lift and surprise tests (the Poisson tail only for
        those passing the cheap tests)."""
        expected = low * nb_of[src] * nb_of[dst]
        ok = (support >= cfg.timing_min_shared) & (support >= cfg.timing_min_lift * expected)
        maybe = np.flatnonzero(ok)
        surprise = _poisson_tail(support[maybe], expected[maybe]) - math.log10(compared)
        ok[maybe] = surprise >= cfg.timing_min_surprise - 1e-9
        return ok

    shared = _co_occurrence(active.select("ix", "cell"), index.height, keep)
    cells = active.select("ix", "cell", "day")
    on_days = (
        shared.select("src", "dst")
        .join(cells.rename({"ix": "src"}), on="src")
        .join(cells.drop("day").rename({"ix": "dst"}), on=["dst", "cell"])
        .group_by("src", "dst")
        .agg(pl.col("day").n_unique().cast(pl.Int64).alias("days"))
    )
    shared = shared.join(on_days, on=["src", "dst"])
    pairs = (
        shared.filter(
            (pl.col("support") >= cfg.timing_min_shared) & (pl.col("days") >= cfg.timing_min_days)
        )
        .join(nb.rename({"ix": "src"}), on="src")
        .join(nb.rename({"ix": "dst", "nb": "nb_dst"}), on="dst")
        .with_columns((pl.col("nb") * pl.col("nb_dst") * scale).alias("expected"))
        .filter(pl.col("support") >= cfg.timing_min_lift * pl.col("expected"))
    )
    surprise = _poisson_surprise(pairs.get_column("support"), pairs.get_column("expected"))
    pairs = (
        pairs.with_columns((surprise - math.log10(compared)).alias("surprise"))
        .filter(pl.col("surprise") >= cfg.timing_min_surprise)
        .join(index.rename({"ix": "src", "account_id": "src_id"}), on="src")
        .join(index.rename({"ix": "dst", "account_id": "dst_id"}), on="dst")
        .drop("src", "dst")
        .rename({"src_id": "src", "dst_id": "dst"})
    )
    return _edges(
        pairs,
        "timing",
        cfg.timing_weight * (pl.col("surprise") / cfg.timing_full_surprise).clip(upper_bound=1.0),
        pl.col("support"),
        pl.format(
            "{} shared {} buckets over {} {} (expected {})",
            "support",
            pl.lit(_span(cfg.timing_bucket)),
            "days",
            _plural(pl.col("days"), "day"),
            pl.col("expected").round(1),
        ),
    )


def _wave_keys(calls: pl.DataFrame, cfg: GraphConfig) -> pl.DataFrame:
    """``account_id``, ``k``: the keys whose accounts are searched for waves of their own: the
    whole frame (``*``), each client fingerprint and each template family (at least
    ``template_min_calls`` of the account's calls), whatever its size, held by at least
    ``wave_key_accounts`` accounts."""
    template = (
        calls.filter((pl.col("family_kind") == "template") & pl.col("family_id").is_not_null())
        .group_by("account_id", "family_id")
        .len()
        .filter(pl.col("len") >= cfg.template_min_calls)
        .select("account_id", pl.format("template family {}", "family_id").alias("k"))
    )
    client = calls.select("account_id", _client_label()).drop_nulls().unique()
    everyone = calls.select("account_id").unique().with_columns(pl.lit("*").alias("k"))
    keys = pl.concat([everyone, template, client])
    return keys.filter(pl.len().over("k") >= cfg.wave_key_accounts)


def _hot_buckets(active: pl.DataFrame, cfg: GraphConfig) -> pl.DataFrame:
    """Per key, its *hot* buckets: ``k``, ``b``, ``n`` (the key's accounts active) and ``rate``
    (the bucket's share of the key's smooth curve). ``active`` holds ``k``, ``b`` (a row per
    key, bucket and active account). A bucket is hot for a key when the key's active accounts
    exceed the rolling median over the ``wave_baseline`` around it by ``wave_min_z`` Poisson
    standard deviations and by the factor ``wave_min_lift``: a burst that the key's own daily
    curve does not explain. A burst at a time of day that is hot on ``wave_schedule_share`` of
    the frame's days (and ``timing_min_days``) is a schedule (a daily quota reset, a cron job, a
    class) that unrelated accounts keep too, not one operator's waves: dropped."""
    bucket = cfg.timing_bucket
    counts = active.group_by("k", "b").agg(pl.len().alias("n"))
    lo, hi = counts.select(pl.col("b").min().alias("lo"), pl.col("b").max().alias("hi")).row(0)
    grid = pl.DataFrame({"b": pl.datetime_range(lo, hi, bucket, eager=True)}).cast(
        {"b": counts.schema["b"]}
    )
    window = max(3, round(cfg.wave_baseline / bucket)) | 1  # odd: centred on the bucket
    days = grid.get_column("b").dt.date().n_unique()
    recurring = max(cfg.timing_min_days, math.ceil(cfg.wave_schedule_share * days))
    base = pl.col("n").cast(pl.Float64).rolling_median(window, center=True, min_samples=1)
    return (
        counts.select(pl.col("k").unique())
        .join(grid, how="cross")
        .join(counts, on=["k", "b"], how="left")
        .with_columns(pl.col("n").fill_null(0))
        .sort("k", "b")
        .with_columns(base.over("k").alias("base"))
        .with_columns((pl.col("base") / pl.col("base").sum().over("k")).alias("rate"))
        .filter(
            (pl.col("n") >= cfg.wave_min_lift * pl.col("base"))
            & (pl.col("n") - pl.col("base") >= cfg.wave_min_z * pl.col("base").clip(1.0).sqrt())
        )
        .filter(pl.len().over("k", pl.col("b").dt.time()) < recurring)
        .filter(pl.len().over("k") >= cfg.wave_min_buckets)
        .select("k", "b", "n", "rate")
    )


def _ring_pairs(members: list[str], group: str, k: int) -> list[tuple[str, str]]:
    """Each member linked to the next ``k`` in an order fixed by a hash of (group, account): a
    sparse ring lattice (``k`` pairs per member, ``2 k`` links each, connected) instead of all
    pairs. BLAKE2b, so the order does not depend on the Polars version."""
    order = sorted(
        members,
        key=lambda a: hashlib.blake2b(f"{group}:{a}".encode(), digest_size=8).digest(),
    )
    m = len(order)
    steps = range(1, min(k, m // 2) + 1) if m > 2 else range(1, m)
    pairs = {tuple(sorted((order[i], order[(i + step) % m]))) for step in steps for i in range(m)}
    return sorted((a, b) for a, b in pairs if a != b)


def _in_step(
    active: pl.DataFrame, nb: pl.DataFrame, hot: pl.DataFrame, tested: int, cfg: GraphConfig
) -> pl.DataFrame:
    """``k``, ``account_id``, ``hits``, ``expected``, ``surprise``, ``n_buckets``: the accounts
    in step with their key's ``hot`` buckets (:func:`_hot_buckets`). ``active`` holds ``k``,
    ``account_id``, ``b``; ``nb`` each account's active buckets. An account is in step when at
    least ``timing_min_shared`` of its active buckets, on ``timing_min_days`` days, are hot for
    the key, ``timing_min_lift`` times and ``wave_min_surprise`` (Poisson, Bonferroni over the
    ``tested`` (key, account) pairs) above chance: the sum over the key's hot buckets of
    ``min(1, nb * rate_b)``, as if the account followed the key's smooth daily curve."""
    if hot.height == 0:
        return pl.DataFrame(
            schema={"k": pl.String, "account_id": pl.String, "hits": pl.UInt32,
                    "expected": pl.Float64, "surprise": pl.Float64, "n_buckets": pl.UInt32}
        )  # fmt: skip
    levels = active.select("k", "account_id").unique().join(nb, on="account_id")
    levels = levels.select("k", "nb").unique()
    expected = (
        levels.join(hot.select("k", "rate"), on="k")
        .with_columns(
            (pl.col("nb").cast(pl.Float64) * pl.col("rate")).clip(upper_bound=1.0).alias("p")
        )
        .group_by("k", "nb")
        .agg(pl.col("p").sum().alias("expected"))
    )
    found = (
        active.join(hot.select("k", "b"), on=["k", "b"])
        .group_by("k", "account_id")
        .agg(pl.len().alias("hits"), pl.col("b").dt.date().n_unique().alias("days"))
        .filter((pl.col("hits") >= cfg.timing_min_shared) & (pl.col("days") >= cfg.timing_min_days))
        .join(nb, on="account_id")
        .join(expected, on=["k", "nb"])
        .filter(pl.col("hits") >= cfg.timing_min_lift * pl.col("expected"))
    )
    surprise = _poisson_surprise(found.get_column("hits"), found.get_column("expected"))
    return (
        found.with_columns((surprise - math.log10(max(tested, 1))).alias("surprise"))
        .filter(pl.col("surprise") >= cfg.wave_min_surprise)
        .join(hot.group_by("k").agg(pl.len().cast(pl.UInt32).alias("n_buckets")), on="k")
        .select(
            "k", "account_id", pl.col("hits").cast(pl.UInt32), "expected", "surprise", "n_buckets"
        )
        .sort("k", "account_id")
    )


def _wave_edges(calls: pl.DataFrame, cfg: GraphConfig) -> pl.DataFrame:
    """Accounts in step with one campaign's waves, far beyond chance.

    Pairwise timing fades in a large population: two members of a 5,000-account campaign that
    fires a third of its calls in waves share only a few more buckets than chance predicts. The
    campaign as a whole stands out: its waves are *hot* buckets (:func:`_hot_buckets`), and each
    member, over the waves together, is active in far more of them than chance
    (:func:`_in_step`). Waves are looked for in the whole frame and among the accounts of each
    client fingerprint and template family (:func:`_wave_keys`): a smaller campaign's waves,
    lost among a larger one's in the whole frame, stand out among the accounts of its own
    client or wrapper. When ``wave_key_share`` of a key's accounts (and ``wave_key_accounts``)
    are in step with its waves, its other accounts are tested again, against those waves
    alone and Bonferroni-corrected over this smaller family of tests: the quieter members of a
    campaign, too quiet to stand out the first time. The accounts in step with one key's waves
    form a *wave group*, linked sparsely (:func:`_ring_pairs`); an account in several groups
    joins them up."""
    if cfg.wave_weight <= 0:
        return _empty()
    keys = _wave_keys(calls, cfg)
    active = calls.select(
        "account_id", pl.col("ts").dt.truncate(cfg.timing_bucket).alias("b")
    ).unique()
    nb = active.group_by("account_id").agg(pl.len().alias("nb"))
    nb = nb.filter(pl.col("nb") >= cfg.timing_min_buckets)
    keyed = active.join(nb.select("account_id"), on="account_id").join(keys, on="account_id")
    if keyed.height == 0:
        return _empty()
    hot = _hot_buckets(keyed.select("k", "b"), cfg)
    members = keyed.select("k", "account_id").unique()
    ends = _in_step(keyed, nb, hot, members.height, cfg)
    # second stage: the other accounts of a key whose waves many of its accounts keep, tested
    # against those waves alone (a smaller family of tests: the quieter members of a campaign)
    held = members.group_by("k").agg(pl.len().alias("n"))
    owned = (
        ends.group_by("k")
        .agg(pl.len().alias("n_in"))
        .join(held, on="k")
        .filter(
            (pl.col("n_in") >= cfg.wave_key_accounts)
            & (pl.col("n_in") >= cfg.wave_key_share * pl.col("n"))
        )
    )
    rest = members.join(owned.select("k"), on="k").join(
        ends.select("account_id").unique(), on="account_id", how="anti"
    )
    more = _in_step(keyed.join(rest, on=["k", "account_id"]), nb, hot, rest.height, cfg)
    ends = pl.concat([ends, more]).sort("k", "account_id")
    ends = ends.join(ends.group_by("k").agg(pl.len().alias("n_in_step")), on="k").filter(
        pl.col("n_in_step") >= 2
    )
    if ends.height == 0:
        return _empty()
    rows: list[tuple[str, str, str]] = []
    for k, members in ends.group_by("k").agg(pl.col("account_id").sort()).sort("k").iter_rows():
        rows += [(a, b, k) for a, b in _ring_pairs(members, k, cfg.wave_neighbours)]
    pairs = (
        pl.DataFrame(
            rows, schema={"src": pl.String, "dst": pl.String, "k": pl.String}, orient="row"
        )
        .join(ends.rename({"account_id": "src"}), on=["src", "k"])
        .join(
            ends.select("k", "account_id", "hits", "expected", "surprise").rename(
                {"account_id": "dst"}
            ),
            on=["dst", "k"],
            suffix="_dst",
        )
        .with_columns(pl.min_horizontal("surprise", "surprise_dst").alias("evidence"))
        # a pair in several groups: its strongest one
        .sort(["src", "dst", "evidence", "k"], descending=[False, False, True, False])
        .unique(["src", "dst"], keep="first", maintain_order=True)
    )
    where = pl.when(pl.col("k") == "*").then(pl.lit("all accounts")).otherwise(pl.col("k"))
    return _edges(
        pairs,
        "wave",
        cfg.wave_weight * (pl.col("evidence") / cfg.wave_full_surprise).clip(upper_bound=1.0),
        pl.min_horizontal("hits", "hits_dst"),
        pl.format(
            "both in step with the waves of {} ({} accounts in step, {} hot {}): {} and {} "
            "hot buckets (expected {} and {})",
            where,
            "n_in_step",
            "n_buckets",
            pl.lit(_span(cfg.timing_bucket) + " buckets"),
            "hits",
            "hits_dst",
            pl.col("expected").round(1),
            pl.col("expected_dst").round(1),
        ),
    )


def _handover_keys(calls: pl.DataFrame, cfg: GraphConfig) -> pl.DataFrame:
    """``account_id``, ``what``, ``k``: each account's template families, client fingerprints and
    /24s, those held by at most ``max_key_accounts`` accounts (distinct values are labelled, not
    every call)."""
    template = calls.filter(pl.col("family_kind") == "template").select("account_id", "family_id")
    client = calls.select("account_id", "user_agent", "tls_fingerprint")
    subnet = calls.select("account_id", "ip")
    return (
        pl.concat(
            [
                template.unique().select(
                    "account_id",
                    pl.lit("template").alias("what"),
                    pl.col("family_id").cast(pl.String).alias("k"),
                ),
                client.unique().select(
                    "account_id", pl.lit("client").alias("what"), _client_label()
                ),
                subnet.unique().select(
                    "account_id", pl.lit("/24").alias("what"), _subnet24(pl.col("ip")).alias("k")
                ),
            ]
        )
        .drop_nulls()
        .unique()
        .filter(pl.len().over("what", "k") <= cfg.max_key_accounts)
    )


def _handover_edges(
    calls: pl.DataFrame,
    accounts: pl.DataFrame | None,
    cfg: GraphConfig,
    ip_pairs: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Account ``b`` starts within ``handover_window`` after account ``a`` stops, and they share a
    template family, client fingerprint or /24 held by at most ``max_key_accounts`` accounts.
    Candidate pairs come from the shared keys (at most the cap squared per key), not from the
    accounts stopping and starting near one time, which are many when a population ramps up.
    A pair in ``ip_pairs`` (an address both used) whose only shared kind is the /24 is dropped:
    that /24 is the address again, which its ``ip`` edge already counts."""
    if calls.height == 0:
        return _empty()
    start, end = calls.select(
        pl.col("ts").min().alias("start"), pl.col("ts").max().alias("end")
    ).row(0)
    window, quiet = cfg.handover_window, cfg.handover_min_quiet
    span = calls.group_by("account_id").agg(
        pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last")
    )
    stoppers = span.filter(pl.col("last") <= end - quiet).select(
        pl.col("account_id").alias("a"), "last"
    )
    starters = span.filter(pl.col("first") >= start + quiet).select(
        pl.col("account_id").alias("b"), "first"
    )
    keys = _handover_keys(calls, cfg)
    gap = pl.col("first") - pl.col("last")
    cand = (
        keys.rename({"account_id": "a"})
        .join(stoppers, on="a")
        .join(keys.rename({"account_id": "b"}).join(starters, on="b"), on=["what", "k"])
        .filter((gap > timedelta(0)) & (gap <= window) & (pl.col("a") != pl.col("b")))
    )
    if accounts is not None:
        created = accounts.select(pl.col("account_id").alias("b"), "created_at")
        cand = cand.join(created, on="b", how="left").filter(
            pl.col("created_at").is_null() | (pl.col("created_at") >= pl.col("last") - window)
        )
    if cand.height == 0:
        return _empty()
    shared = cand.group_by("a", "b").agg(
        pl.len().alias("support"),
        pl.col("what").n_unique().alias("kinds"),
        pl.col("what").unique().sort().str.join(", ").alias("what"),
        pl.col("first").first(),
        pl.col("last").first(),
    )
    pairs = shared.with_columns(
        pl.min_horizontal("a", "b").alias("src"), pl.max_horizontal("a", "b").alias("dst")
    )
    if ip_pairs is not None:
        # the /24 of an address both used is that address again: the ``ip`` edge has it
        same_address = pairs.join(ip_pairs, on=["src", "dst"], how="semi")
        pairs = pairs.join(
            same_address.filter(pl.col("what") == "/24").select("src", "dst"),
            on=["src", "dst"],
            how="anti",
        )
    return _edges(
        pairs,
        "handover",
        cfg.handover_weight * (pl.col("kinds") / cfg.handover_full_kinds).clip(upper_bound=1.0),
        pl.col("support"),
        pl.format(
            "{} started {} after {} stopped; shares {}",
            "b",
            _duration_text(gap.dt.total_seconds()),
            "a",
            "what",
        ),
    )


def _orgs(calls: pl.DataFrame, accounts: pl.DataFrame | None) -> pl.DataFrame:
    """``account_id``, ``org_id``: the account table's, else the first one its calls carry."""
    from_calls = (
        calls.filter(pl.col("org_id").is_not_null())
        .group_by("account_id")
        .agg(pl.col("org_id").min())
    )
    if accounts is None:
        return from_calls
    declared = accounts.select("account_id", pl.col("org_id").alias("declared"))
    return (
        from_calls.join(declared, on="account_id", how="full", coalesce=True)
        .select("account_id", pl.coalesce("declared", "org_id").alias("org_id"))
        .drop_nulls()
    )


def account_edges(
    calls: pl.DataFrame,
    accounts: pl.DataFrame | None = None,
    config: GraphConfig = GraphConfig(),
) -> pl.DataFrame:
    """Typed, weighted edges between the accounts of ``calls``: one row per pair and edge type.

    ``calls`` is a slim per-call frame: ``account_id``, ``ts`` and, as available, ``org_id``,
    ``ip``, ``asn``, ``user_agent``, ``tls_fingerprint``, ``family_id`` and ``family_kind`` (from
    :func:`~distillwatch.features.templates.template_families`); missing columns give no edges of
    their types. ``accounts`` (the account table) adds ``payment``, ``org`` and ``signup_burst``
    edges and the creation-time test of ``handover``; only accounts seen in ``calls`` are linked.
    Output columns are :data:`EDGE_SCHEMA`, sorted by ``src``, ``dst``, ``type``.

    >>> import datetime as dt
    >>> t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    >>> calls = pl.DataFrame({"account_id": ["a", "b", "c"], "ts": [t0, t0, t0],
    ...     "ip": ["203.0.113.7", "203.0.113.7", "198.51.100.1"]})
    >>> account_edges(calls).select("src", "dst", "type", "support").rows()
    [('a', 'b', 'ip', 1)]
    """
    calls = _slim(calls)
    seen = calls.select(pl.col("account_id").unique())
    population = float(max(seen.height, config.idf_min_accounts, 3))
    acc = None
    if accounts is not None:
        acc = accounts.join(seen, on="account_id", how="semi").unique("account_id", keep="first")
    ip, cfg = pl.col("ip"), config
    infrastructure: list[tuple[str, pl.Expr, timedelta, float, float, bool, Label]] = [
        ("ip", ip, cfg.ip_window, cfg.ip_weight, cfg.ip_full, True, lambda k: k),
        (
            "subnet24",
            _subnet24(ip),
            cfg.subnet24_window,
            cfg.subnet24_weight,
            cfg.subnet24_full,
            True,
            lambda k: pl.format("{}.0/24", k),
        ),
        (
            "asn",
            pl.col("asn"),
            cfg.asn_window,
            cfg.asn_weight,
            cfg.asn_full,
            False,  # every ASN is shared by many over a day: cap its windows only
            lambda k: pl.format("AS{}", k),
        ),
    ]
    infra = {
        kind: _bucketed_edges(
            calls,
            key,
            kind=kind,
            window=window,
            weight=weight,
            full=full,
            cap=cfg.max_key_accounts,
            frame_cap=frame_cap,
            population=population,
            label=label,
        )
        for kind, key, window, weight, full, frame_cap, label in infrastructure
    }
    # a shared address implies its /24: the subnet says something only about other pairs
    ip_pairs = infra["ip"].select("src", "dst")
    infra["subnet24"] = infra["subnet24"].join(ip_pairs, on=["src", "dst"], how="anti")
    parts = [
        _org_edges(_orgs(calls, acc), config),
        *infra.values(),
        _client_edges(calls, config, population),
        _template_edges(calls, config, population),
        _timing_edges(calls, config),
        _wave_edges(calls, config),
        _handover_edges(calls, acc, config, ip_pairs),
    ]
    if acc is not None:
        parts += [_payment_edges(acc, config), _signup_edges(acc, config)]
    linked = pl.concat(parts, how="vertical")
    big = _big_key_edges(calls, linked, config, population)
    return pl.concat([linked, big], how="vertical").sort("src", "dst", "type")
