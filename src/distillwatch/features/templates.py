"""Template families: calls whose prompts share a fixed wrapper around varying content.

Distillation campaigns send one wrapper ("Solve the following problem. Before giving the final
answer, write out your complete internal reasoning…\\n\\n{task}") tens of thousands of times with a
different seed task in the slot. The wrapper is found from the prompt's ends: the first words of its
first line (head) and the last words of its last line (tail), normalised (lower case, digit runs
masked, white space runs collapsed). A head or tail that ends at least ``min_variants`` distinct
prompts is a *skeleton* side, unless it is a *slot filler*: a seed task reused inside several
wrappers also ends many distinct prompts, but the other end of those prompts is mostly a skeleton
that recurs more often than it does. A prompt's family is its skeleton (head, tail or both).
Prompts with no skeleton side fall back to *duplicate* families: exact repeats of one prompt and,
optionally, near repeats found by MinHash (``rensa``) with LSH banding over word 3-shingles,
joined into connected components. No step compares all pairs.

The system prompt is not part of the skeleton: campaigns rotate personas around one wrapper.
Family ids are seeded hashes of content (Polars' hash: stable for one seed and Polars version),
so they do not depend on row order; families are relative to the frame passed in.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl

__all__ = [
    "FAMILY_KINDS",
    "account_template_features",
    "family_stats",
    "template_families",
]

FAMILY_KINDS: Final = ("template", "duplicate")
"""Values of ``family_kind``: a shared skeleton, or repeats / near repeats of one prompt."""

_END_CHARS: Final = 300  # characters read from each end of a prompt for its skeleton sides
_MINHASH_CHARS: Final = 800  # characters of a prompt the near-duplicate sketch reads
_GOLDEN: Final = 0x9E3779B97F4A7C15  # odd 64-bit multiplier that mixes shingle hashes
_TAIL_SALT: Final = 0x5BD1E995  # keeps a head key and an equal tail key apart


def _normalise(text: pl.Expr) -> pl.Expr:
    """Lower case, every run of digits as ``0``, white space runs as one space, ends stripped.
    (Single spaces are left alone: replacing every one of them costs more than all the rest.)"""
    return (
        text.str.to_lowercase()
        .str.replace_all("[0-9]+", "0")
        .str.replace_all(r"[ \t\r\n]{2,}|[\t\r\n]", " ")
        .str.strip_chars()
    )


_WORDS: Final = r"[^ \t\r\n]+(?:[ \t\r]+[^ \t\r\n]+){0,%d}"  # up to n+1 words on one line


def _head(prompt: pl.Expr, window: int) -> pl.Expr:
    """The first ``window`` words of the prompt's first non-blank line, normalised."""
    first_line = (
        prompt.str.slice(0, _END_CHARS)
        .str.strip_chars_start()
        .str.split_exact("\n", 1)
        .struct.field("field_0")
    )
    return _normalise(first_line.str.extract(f"^({_WORDS % (window - 1)})"))


def _tail(prompt: pl.Expr, window: int) -> pl.Expr:
    """The last ``window`` words of the prompt's last non-blank line, normalised."""
    last_line = prompt.str.slice(-_END_CHARS).str.strip_chars_end().str.split("\n").list.last()
    return _normalise(last_line.str.extract(f"({_WORDS % (window - 1)})$"))


def _skeleton_families(
    distinct: pl.DataFrame,
    *,
    seed: int,
    window: int,
    min_variants: int,
    min_key_chars: int,
    both_ratio: float,
) -> pl.DataFrame:
    """``family_id`` (u64 or null) per distinct prompt from its head and tail skeleton sides."""
    keys = distinct.select(
        "ph",
        _head(pl.col("prompt"), window).alias("head"),
        _tail(pl.col("prompt"), window).alias("tail"),
    )
    # a prompt that fits in one window is all content: its ends are the same words
    whole = pl.col("head") == pl.col("tail")
    usable = ~whole.fill_null(False)
    keys = keys.with_columns(
        pl.when(usable & (pl.col("head").str.len_chars() >= min_key_chars))
        .then(pl.col("head").hash(seed))
        .alias("hk"),
        pl.when(usable & (pl.col("tail").str.len_chars() >= min_key_chars))
        .then(pl.col("tail").hash(seed ^ _TAIL_SALT))
        .alias("tk"),
    ).with_columns(
        pl.when(pl.col("hk").is_not_null()).then(pl.len().over("hk")).alias("h_var"),
        pl.when(pl.col("tk").is_not_null()).then(pl.len().over("tk")).alias("t_var"),
    )
    keys = keys.with_columns(
        (pl.col("h_var").fill_null(0) >= min_variants).alias("h_ok"),
        (pl.col("t_var").fill_null(0) >= min_variants).alias("t_ok"),
    )

    # A seed task reused inside many wrappers also recurs at one end of many distinct prompts;
    # what gives it away is that the other end of those prompts is mostly a skeleton, more than
    # one (a two-sided wrapper has a single partner), each recurring more often than the task.
    candidates = keys.filter(pl.col("h_ok") | pl.col("t_ok"))

    def slot_fillers(
        key: str, ok: str, var: str, other: str, other_ok: str, other_var: str
    ) -> pl.Series:
        partner_ok = pl.col(other_ok)
        return (
            candidates.filter(ok)
            .group_by(key)
            .agg(
                partner_ok.mean().alias("share"),
                pl.col(other).filter(partner_ok).n_unique().alias("partners"),
                pl.col(other_var).filter(partner_ok).median().alias("partner_var"),
                pl.col(var).first(),
            )
            .filter(
                (pl.col("share") >= 0.5)
                & (pl.col("partners") >= 2)
                & (pl.col("partner_var") > pl.col(var))
            )
            .get_column(key)
        )

    h_fill = slot_fillers("hk", "h_ok", "h_var", "tk", "t_ok", "t_var")
    t_fill = slot_fillers("tk", "t_ok", "t_var", "hk", "h_ok", "h_var")
    keys = keys.with_columns(
        (pl.col("h_ok") & ~pl.col("hk").is_in(h_fill.implode())).alias("h_ok"),
        (pl.col("t_ok") & ~pl.col("tk").is_in(t_fill.implode())).alias("t_ok"),
    )
    h_ok, t_ok = pl.col("h_ok"), pl.col("t_ok")
    lo = pl.min_horizontal("h_var", "t_var").cast(pl.Float64)
    hi = pl.max_horizontal("h_var", "t_var").cast(pl.Float64)
    both = h_ok & t_ok & (lo >= both_ratio * hi)
    return keys.select(
        "ph",
        pl.when(both)
        .then(pl.struct("hk", "tk").hash(seed))
        .when(h_ok & (~t_ok | (pl.col("h_var") >= pl.col("t_var"))))
        .then(pl.col("hk"))
        .when(t_ok)
        .then(pl.col("tk"))
        .alias("family_id"),
    )


def _shingle_hashes(texts: pl.Series, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat u64 hashes of word 3-shingles per text (its words themselves when it has fewer than
    three) and the row offsets into them, the layout rensa's bulk digest reads. Words are split on
    white space after lower-casing and masking digits; multiple spaces leave empty words, dropped."""
    words = (
        pl.DataFrame({"w": texts.str.slice(0, _MINHASH_CHARS)})
        .select(
            pl.col("w")
            .str.to_lowercase()
            .str.replace_all("[0-9]+", "0")
            .str.replace_many(["\n", "\t", "\r"], [" ", " ", " "])
            .str.split(" ")
        )
        .with_row_index("d")
        .explode("w")
        .filter(pl.col("w") != "")
        .select("d", pl.col("w").hash(seed).alias("h"))
    )
    mixed = (pl.col("h") * _GOLDEN + pl.col("h").shift(-1)) * _GOLDEN + pl.col("h").shift(-2)
    shingles = words.select(
        "d",
        pl.when(pl.len().over("d") < 3)
        .then(pl.col("h"))
        .when(pl.col("d").shift(-2) == pl.col("d"))
        .then(mixed)
        .alias("s"),
    ).drop_nulls("s")
    lengths = np.bincount(shingles.get_column("d").to_numpy(), minlength=len(texts))
    offsets = np.zeros(len(texts) + 1, dtype=np.uint64)
    np.cumsum(lengths, out=offsets[1:])
    return shingles.get_column("s").to_numpy().astype(np.uint64, copy=False), offsets


def _near_duplicate_edges(
    texts: pl.Series, *, seed: int, bands: int, rows: int, max_bucket: int
) -> pl.DataFrame:
    """Edges ``(a, b)`` between row positions of ``texts`` whose MinHash sketches share an LSH band;
    each band bucket links its members to its first member, buckets larger than ``max_bucket``
    (generic text) link nothing."""
    import rensa

    flat, offsets = _shingle_hashes(texts, seed)
    num_perm = bands * rows
    digest = rensa.RMinHash.digest_matrix_from_flat_token_hashes
    # rensa flags the rows that share a band with any other row without handing every
    # signature back to Python; only those rows' signatures are read out and banded here
    lengths = np.diff(offsets)
    flagged = np.asarray(
        rensa.RMinHashLSH(0.5, num_perm, bands).query_duplicate_flags_matrix_one_shot(
            digest(flat, offsets, num_perm, seed)
        ),
        dtype=bool,
    ) & (lengths > 0)
    idx = np.flatnonzero(flagged).astype(np.uint32)
    if len(idx) < 2:
        return pl.DataFrame(schema={"a": pl.UInt32, "b": pl.UInt32})
    sub_offsets = np.zeros(len(idx) + 1, dtype=np.uint64)
    np.cumsum(lengths[idx], out=sub_offsets[1:])
    sub_flat = flat[np.repeat(flagged, lengths.astype(np.int64))]
    sig = np.asarray(
        digest(sub_flat, sub_offsets, num_perm, seed).to_rows(), dtype=np.uint64
    ).reshape(len(idx), num_perm)
    # one u64 key per band: the band's minima folded with an odd multiplier (wrapping)
    keys = np.zeros((len(idx), bands), dtype=np.uint64)
    for r in range(rows):
        keys = keys * np.uint64(_GOLDEN) + sig[:, r::rows]
    frame = pl.DataFrame(
        {
            "row": np.repeat(idx, bands),
            "band": np.tile(np.arange(bands, dtype=np.uint16), len(idx)),
            "key": keys.reshape(-1),
        }
    )
    return (
        frame.with_columns(
            pl.col("row").min().over("band", "key").alias("rep"),
            pl.len().over("band", "key").alias("size"),
        )
        .filter(
            (pl.col("size") > 1) & (pl.col("size") <= max_bucket) & (pl.col("row") != pl.col("rep"))
        )
        .select(pl.col("row").alias("a"), pl.col("rep").alias("b"))
        .unique()
    )


def _components(n: int, edges: pl.DataFrame) -> np.ndarray:
    """Connected-component label per node ``0..n-1`` given undirected ``edges`` (a, b)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = edges.get_column("a").to_numpy()
    b = edges.get_column("b").to_numpy()
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return np.asarray(labels)


def _duplicate_families(
    residual: pl.DataFrame,
    *,
    seed: int,
    near_duplicates: bool,
    bands: int,
    rows: int,
    max_bucket: int,
) -> pl.DataFrame:
    """``family_id`` per distinct prompt without a skeleton: the smallest prompt hash of its
    near-duplicate component (or its own hash), kept where the group has two or more calls."""
    if near_duplicates and residual.height > 1:
        edges = _near_duplicate_edges(
            residual.get_column("prompt"),
            seed=seed,
            bands=bands,
            rows=rows,
            max_bucket=max_bucket,
        )
        comp = pl.Series("comp", _components(residual.height, edges))
        residual = residual.with_columns(comp)
    else:
        residual = residual.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("comp"))
    return residual.select(
        "ph",
        pl.when(pl.col("n").sum().over("comp") >= 2)
        .then(pl.col("ph").min().over("comp"))
        .alias("family_id"),
    )


def template_families(
    prompts: pl.DataFrame,
    *,
    seed: int = 0,
    window: int = 12,
    min_variants: int = 20,
    min_key_chars: int = 24,
    both_ratio: float = 0.5,
    near_duplicates: bool = True,
    bands: int = 6,
    rows: int = 6,
    max_bucket: int = 5000,
) -> pl.DataFrame:
    """``prompts`` with ``family_id`` (u64; null when the prompt is in no family) and
    ``family_kind`` (``"template"`` or ``"duplicate"``) added per call.

    A *template* family is a skeleton side shared by at least ``min_variants`` distinct prompts:
    the first ``window`` words of the first line or the last ``window`` words of the last line,
    normalised, at least ``min_key_chars`` characters long; when both sides qualify with variant
    counts within ``both_ratio`` of each other the family is the pair. Other prompts repeated (or,
    with ``near_duplicates``, nearly repeated: MinHash over ``bands * rows`` permutations, LSH with
    ``bands`` bands, buckets over ``max_bucket`` distinct prompts ignored) by two or more calls form
    a *duplicate* family. A head or tail that is a reused seed task rather than a wrapper (the
    other end of its prompts is mostly a skeleton that recurs more often) is no skeleton side.
    Families are relative to the frame passed in; ids depend only on content and ``seed``.

    >>> wrapper = "Solve the following problem. Show every step of your reasoning.\\n\\n{}"
    >>> calls = pl.DataFrame({"account_id": ["a", "b", "c"] * 10,
    ...     "prompt": [wrapper.format(f"What is {w} times {w}?") for w in "abcdefghijklmnopqrstuvwxyz"]
    ...         + ["hi", "hi", "what is love", "tell me a joke"]})
    >>> out = template_families(calls, min_variants=10)
    >>> out.group_by("family_kind").agg(pl.len(), pl.col("family_id").n_unique()).sort(
    ...     "family_kind", nulls_last=True).rows()
    [('duplicate', 2, 1), ('template', 26, 1), (None, 2, 1)]
    """
    out_schema = {"family_id": pl.UInt64, "family_kind": pl.String}
    if prompts.height == 0:
        return prompts.with_columns(
            pl.lit(None, dtype=pl.UInt64).alias("family_id"),
            pl.lit(None, dtype=pl.String).alias("family_kind"),
        )
    ph = pl.col("prompt").fill_null("").hash(seed).alias("ph")
    counts = prompts.select(ph).get_column("ph").value_counts(name="n")
    distinct = (
        prompts.select(ph, pl.col("prompt").fill_null(""))
        .unique(subset="ph", keep="any")
        .join(counts, on="ph")
    )
    skeleton = _skeleton_families(
        distinct.select("ph", "prompt"),
        seed=seed,
        window=window,
        min_variants=min_variants,
        min_key_chars=min_key_chars,
        both_ratio=both_ratio,
    )
    templated = skeleton.filter(pl.col("family_id").is_not_null()).with_columns(
        pl.lit("template").alias("family_kind")
    )
    residual = distinct.join(templated.select("ph"), on="ph", how="anti").sort("ph")
    duplicates = (
        _duplicate_families(
            residual,
            seed=seed,
            near_duplicates=near_duplicates,
            bands=bands,
            rows=rows,
            max_bucket=max_bucket,
        )
        .filter(pl.col("family_id").is_not_null())
        .with_columns(pl.lit("duplicate").alias("family_kind"))
    )
    families = pl.concat([templated, duplicates], how="vertical").cast(
        {"family_id": out_schema["family_id"], "family_kind": out_schema["family_kind"]}
    )
    return (
        prompts.with_columns(ph)
        .join(families, on="ph", how="left", maintain_order="left")
        .drop("ph")
    )


def family_stats(families: pl.DataFrame) -> pl.DataFrame:
    """One row per family of a :func:`template_families` frame: ``family_id``, ``family_kind``,
    ``n_calls``, ``n_accounts``, ``n_prompts`` (distinct prompt texts) and ``example`` (the first
    prompt of the family, clipped to 300 characters), largest families first."""
    return (
        families.filter(pl.col("family_id").is_not_null())
        .group_by("family_id")
        .agg(
            pl.col("family_kind").first(),
            pl.len().alias("n_calls"),
            pl.col("account_id").n_unique().alias("n_accounts"),
            pl.col("prompt").hash().n_unique().alias("n_prompts"),
            pl.col("prompt").first().str.slice(0, 300).alias("example"),
        )
        .sort(["n_calls", "family_id"], descending=[True, False])
    )


def account_template_features(families: pl.DataFrame, *, k: int = 5) -> pl.DataFrame:
    """Per ``account_id`` of a :func:`template_families` frame:

    - ``n_calls``; ``family_share``: share of its calls in any family;
    - ``top_family_share``: share of its calls in its largest family; ``n_families``;
    - ``shared_template_share``: share of its calls in template families that at least ``k``
      other accounts also use; ``shared_duplicate_share``: the same for duplicate families
      (repeated prompts such as "hi" are shared by unrelated users too);
    - ``max_family_accounts``: the most accounts sharing any family it uses (0 when none).
    """
    fam_accounts = (
        families.filter(pl.col("family_id").is_not_null())
        .group_by("family_id")
        .agg(pl.col("account_id").n_unique().alias("fam_accounts"))
    )
    per_call = families.select("account_id", "family_id", "family_kind").join(
        fam_accounts, on="family_id", how="left"
    )
    shared = (pl.col("fam_accounts").fill_null(0) - 1) >= k
    per_family = (
        per_call.filter(pl.col("family_id").is_not_null())
        .group_by("account_id", "family_id")
        .agg(pl.len().alias("n"))
        .group_by("account_id")
        .agg(pl.col("n").max().alias("top"), pl.len().alias("n_families"))
    )
    return (
        per_call.group_by("account_id")
        .agg(
            pl.len().alias("n_calls"),
            pl.col("family_id").is_not_null().mean().alias("family_share"),
            (shared & (pl.col("family_kind") == "template"))
            .fill_null(False)
            .mean()
            .alias("shared_template_share"),
            (shared & (pl.col("family_kind") == "duplicate"))
            .fill_null(False)
            .mean()
            .alias("shared_duplicate_share"),
            pl.col("fam_accounts").max().fill_null(0).alias("max_family_accounts"),
        )
        .join(per_family, on="account_id", how="left")
        .select(
            "account_id",
            "n_calls",
            "family_share",
            (pl.col("top").fill_null(0) / pl.col("n_calls")).alias("top_family_share"),
            pl.col("n_families").fill_null(0).cast(pl.UInt32),
            pl.col("shared_template_share").fill_null(0.0),
            pl.col("shared_duplicate_share").fill_null(0.0),
            pl.col("max_family_accounts").cast(pl.UInt32),
        )
        .sort("account_id")
    )
