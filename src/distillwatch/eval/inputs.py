"""Reading and checking the two inputs of an evaluation: the truth labels and a verdict table.

Both are Parquet or CSV, chosen by suffix. Every check raises :class:`DistillwatchError` with a
message that names the input (the file, when there is one) and what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import polars as pl

from distillwatch.core.errors import DistillwatchError
from distillwatch.core.schema import LABELS

TRUTH_COLUMNS = ("account_id", "label", "persona")
"""Columns the truth must have; ``campaign_id`` is optional (null when absent)."""

VERDICT_COLUMNS = ("account_id", "score")
"""Columns a verdict table must have; ``tier`` and ``cluster_id`` are optional."""

_ID_COLUMNS = ("account_id", "persona", "campaign_id", "tier", "cluster_id")


def read_table(path: Path) -> pl.DataFrame:
    """A ``.parquet`` or ``.csv`` file as a frame (CSV cells are read as text, never guessed)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DistillwatchError(f"{path}: no such file")
    try:
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(path)
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DistillwatchError(f"{path}: cannot read: {exc}") from None
    raise DistillwatchError(f"{path}: unknown format {suffix!r}; expected .parquet or .csv")


def read_truth(path: Path) -> pl.DataFrame:
    """The truth labels at ``path``, checked and normalised (see :func:`truth_frame`)."""
    return truth_frame(read_table(path), where=str(path))


def read_verdicts(path: Path) -> pl.DataFrame:
    """The verdict table at ``path``, checked and normalised (see :func:`verdict_frame`)."""
    return verdict_frame(read_table(path), where=str(path))


def require_columns(frame: pl.DataFrame, columns: Iterable[str], where: str) -> None:
    """Raise if ``frame`` lacks any of ``columns``, naming them and the columns it does have."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DistillwatchError(
            f"{where}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (has: {', '.join(frame.columns) or 'no columns'})"
        )


def truth_frame(frame: pl.DataFrame, where: str = "truth") -> pl.DataFrame:
    """``account_id``, ``label``, ``persona``, ``campaign_id`` as text, one row per account.

    Labels must be ``legit`` or ``distill``; account ids must be unique and not null.
    """
    require_columns(frame, TRUTH_COLUMNS, where)
    if "campaign_id" not in frame.columns:
        frame = frame.with_columns(campaign_id=pl.lit(None, pl.String))
    out = _as_text(frame.select(*TRUTH_COLUMNS, "campaign_id"))
    _check_ids(out, where)
    bad = out.filter(pl.col("label").is_null() | ~pl.col("label").is_in(LABELS))
    if bad.height:
        raise DistillwatchError(
            f"{where}: column label must be one of {', '.join(LABELS)}; "
            f"{bad.height} row(s) are not, e.g. account {bad['account_id'][0]!r} "
            f"with label {bad['label'][0]!r}"
        )
    return out.with_columns(pl.col("persona").fill_null("(unknown)"))


def verdict_frame(frame: pl.DataFrame, where: str = "verdicts") -> pl.DataFrame:
    """``account_id`` (text), ``score`` (float), ``tier`` / ``cluster_id`` (text) when present.

    Tiers are lower-cased and stripped. A null or NaN score is kept as null (unscored).
    """
    require_columns(frame, VERDICT_COLUMNS, where)
    keep = [c for c in ("account_id", "score", "tier", "cluster_id") if c in frame.columns]
    out = _as_text(frame.select(keep))
    _check_ids(out, where)
    if out["score"].dtype != pl.Float64:
        try:
            score = out["score"].cast(pl.Float64)
        except pl.exceptions.PolarsError:
            lenient = out["score"].cast(pl.Float64, strict=False)
            bad = out.filter(lenient.is_null() & out["score"].is_not_null())
            raise DistillwatchError(
                f"{where}: column score must be numeric; {bad.height} value(s) are not, "
                f"e.g. {bad['score'][0]!r} for account {bad['account_id'][0]!r}"
            ) from None
        out = out.with_columns(score=score)
    out = out.with_columns(score=pl.col("score").fill_nan(None))
    if "tier" in out.columns:
        out = out.with_columns(pl.col("tier").str.strip_chars().str.to_lowercase())
    return out


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(c).cast(pl.String) for c in _ID_COLUMNS if c in frame.columns)


def _check_ids(frame: pl.DataFrame, where: str) -> None:
    ids = frame["account_id"]
    if ids.null_count():
        raise DistillwatchError(f"{where}: column account_id has {ids.null_count()} null value(s)")
    dup = ids.filter(ids.is_duplicated())
    if dup.len():
        raise DistillwatchError(
            f"{where}: column account_id must be unique; {dup.n_unique()} id(s) repeat, "
            f"e.g. {dup[0]!r}"
        )


def parse_fprs(text: str) -> tuple[float, ...]:
    """Comma-separated target FPRs, as fractions or with a ``%`` sign.

    >>> parse_fprs("0.001, 1%")
    (0.001, 0.01)
    """
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            value = Fraction(part.removesuffix("%").strip()) / (100 if part.endswith("%") else 1)
        except (ValueError, ZeroDivisionError):
            raise DistillwatchError(f"--fpr: {part!r} is not a number") from None
        if not 0 < value < 1:
            raise DistillwatchError(
                f"--fpr: {part!r} must be strictly between 0 and 1 (0 % and 100 %)"
            )
        out.append(float(value))
    if not out:
        raise DistillwatchError("--fpr: no target false-positive rate given")
    return tuple(out)
