"""Rules and rule sets as values; each rule compiles to one Polars boolean expression."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import polars as pl

from distillwatch.rules.prefilter import FOLD_EXCEPTION_CLASS, anchor_factor, required_literals

Maturity = Literal["experimental", "test", "stable"]
Field = Literal["prompt", "system", "any"]
Strength = Literal["strong", "weak"]

FLAGS = "(?i)"
"""Every rule regex is case-insensitive (Unicode case folding, Rust ``regex`` syntax)."""

COLUMN_PREFIX = "rule:"

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


_META = frozenset("\\.+*?()|[]{}^$#&-~")


def literal_regex(literals: tuple[str, ...]) -> str:
    """A case-insensitive regex matching any of ``literals``; a space matches any whitespace run.

    >>> literal_regex(("debug mode", "<think", "a.b"))
    '(?i)debug\\\\s+mode|<think|a\\\\.b'
    """
    escaped = (
        "\\s+".join("".join(f"\\{c}" if c in _META else c for c in word) for word in lit.split(" "))
        for lit in literals
    )
    return FLAGS + "|".join(escaped)


@dataclass(frozen=True, slots=True)
class Rule:
    """One heuristic signal over call text, as loaded from a YAML file.

    The rule fires on a text when one of ``patterns`` matches it and none of ``exclude`` does;
    with ``field="any"`` it fires when it fires on the prompt or on the system prompt. When
    ``anchors`` (literal strings) are given, texts containing none of them are skipped before
    any regex runs: a speed-up that must never change the result, so every pattern match has
    to contain an anchor.

    >>> rule = Rule("intent/demo", 2, "test", "Demo", "A demo.", "prompt", ("scratch ?pad",))
    >>> rule.source, rule.column
    ('rule:intent/demo@2', 'rule:intent/demo')
    >>> pl.DataFrame({"prompt": ["Use your SCRATCHPAD", "hi"]}).select(rule.expr())["rule:intent/demo"].to_list()
    [True, False]
    """

    id: str
    version: int
    maturity: Maturity
    title: str
    description: str
    field: Field
    patterns: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    languages: tuple[str, ...] = ("en",)
    references: str = ""
    strength: Strength = "strong"
    weight: float = 1.0
    anchors: tuple[str, ...] = ()
    path: str = ""
    """The file the rule was read from; empty for a rule built in code."""

    @property
    def source(self) -> str:
        """Provenance for evidence: ``rule:<id>@<version>``."""
        return f"{COLUMN_PREFIX}{self.id}@{self.version}"

    @property
    def column(self) -> str:
        """Name of the boolean column :meth:`RuleSet.signals` adds: ``rule:<id>``."""
        return f"{COLUMN_PREFIX}{self.id}"

    @property
    def columns(self) -> tuple[str, ...]:
        """The input columns the rule reads."""
        return ("prompt", "system") if self.field == "any" else (self.field,)

    def expr(self) -> pl.Expr:
        """A boolean expression, never null, named :attr:`column`.

        One expression per rule: the anchor gate, then every pattern as its own regex search
        (``any_horizontal``), then the exclude veto. Patterns are searched one by one because
        one alternation of them all is too big for the regex engine's lazy DFA and falls back
        to a slow NFA (measured: 0.6 MB/s against 250+ MB/s per pattern).
        """
        gate = literal_regex(self.anchors) if self.anchors else None

        def on(column: str) -> pl.Expr:
            text = pl.col(column).cast(pl.String)  # an all-null column may come in as Null
            if gate is not None:
                # "" (not null) where the gate fails: Polars searches null slots' old values
                # too, an empty string is free. The gated column is shared by all patterns.
                text = pl.when(text.str.contains(gate)).then(text).otherwise(pl.lit(""))
            hit = _any(text, self.patterns)
            if self.exclude:
                hit = hit & ~_any(text, self.exclude)
            return hit.fill_null(False)

        hits = [on(column) for column in self.columns]
        out = hits[0] if len(hits) == 1 else hits[0] | hits[1]
        return out.alias(self.column)


def _any(text: pl.Expr, patterns: tuple[str, ...]) -> pl.Expr:
    return pl.any_horizontal([text.str.contains(FLAGS + pattern) for pattern in patterns])


@dataclass(frozen=True, slots=True)
class RuleSet:
    """An ordered collection of rules with unique ids; :meth:`signals` runs them all at once.

    >>> rules = RuleSet((Rule("intent/demo", 1, "test", "Demo", "A demo.", "any", ("debug mode",)),))
    >>> frame = pl.DataFrame({"prompt": ["hello", "hi"], "system": ["DEBUG MODE on", None]})
    >>> rules.signals(frame)["rule:intent/demo"].to_list()
    [True, False]
    """

    rules: tuple[Rule, ...]

    def __post_init__(self) -> None:
        seen: dict[str, Rule] = {}
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(
                    f"duplicate rule id {rule.id!r} in {seen[rule.id].path or '<code>'} "
                    f"and {rule.path or '<code>'}"
                )
            seen[rule.id] = rule

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __contains__(self, rule_id: object) -> bool:
        return any(rule.id == rule_id for rule in self.rules)

    def __getitem__(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(rule.id for rule in self.rules)

    @property
    def columns(self) -> tuple[str, ...]:
        """The ``rule:<id>`` columns :meth:`signals` adds, in rule order."""
        return tuple(rule.column for rule in self.rules)

    def select(
        self, *, strength: Strength | None = None, maturity: tuple[Maturity, ...] | None = None
    ) -> RuleSet:
        """The rules of one strength and/or some maturities, in the same order."""
        return RuleSet(
            tuple(
                rule
                for rule in self.rules
                if (strength is None or rule.strength == strength)
                and (maturity is None or rule.maturity in maturity)
            )
        )

    def expressions(self) -> list[pl.Expr]:
        """One boolean expression per rule, for callers that build their own ``select``."""
        return [rule.expr() for rule in self.rules]

    def signals(self, frame: Frame) -> Frame:
        """``frame`` plus one boolean ``rule:<id>`` column per rule; reads ``prompt``/``system``.

        Pure: no I/O, and a LazyFrame stays lazy (it runs :meth:`expressions`). A DataFrame is
        searched pattern by pattern, each regex only on the texts that contain the literals it
        needs (:func:`~distillwatch.rules.prefilter.required_literals`): the same result, many
        times faster, since most texts contain none of a pattern's rarer words.
        """
        if isinstance(frame, pl.LazyFrame):
            return frame.with_columns(self.expressions())
        hits = {rule.column: np.zeros(frame.height, dtype=bool) for rule in self.rules}
        for column in ("prompt", "system"):
            users = [rule for rule in self.rules if column in rule.columns]
            if users:
                for name, found in _column_hits(frame.get_column(column), users).items():
                    hits[name] |= found
        return frame.with_columns(pl.Series(name, found) for name, found in hits.items())


def _column_hits(column: pl.Series, rules: list[Rule]) -> dict[str, np.ndarray]:
    """Per rule, which rows of ``column`` it fires on (null never fires). Distinct values are
    searched once when the column repeats itself (system prompts do)."""
    text = column.cast(pl.String)
    present = np.flatnonzero(text.is_not_null().to_numpy())
    values = text.gather(present)
    distinct = values.unique()
    if distinct.len() < 0.7 * values.len():
        found = _search(distinct, rules)
        keyed = pl.DataFrame({"v": distinct, **found})
        mapped = values.to_frame("v").join(keyed, on="v", how="left", maintain_order="left")
        found = {name: mapped.get_column(name).to_numpy() for name in found}
    else:
        found = _search(values, rules)
    out = {}
    for rule in rules:
        full = np.zeros(text.len(), dtype=bool)
        full[present] = found[rule.column]
        out[rule.column] = full
    return out


def _search(values: pl.Series, rules: list[Rule]) -> dict[str, np.ndarray]:
    """Each rule over non-null ``values``, rules in parallel (Polars releases the GIL while it
    searches, and one search of one column runs on one thread). One Aho-Corasick pass finds
    which of all the rules' prefilter literals each text contains (:class:`_LiteralIndex`);
    each pattern's regex then runs only on the texts that hold all its prefilters."""
    index = _LiteralIndex(values, rules)
    costly_first = sorted(rules, key=lambda rule: -len(rule.patterns))
    with ThreadPoolExecutor(max_workers=max(1, pl.thread_pool_size())) as pool:
        found = pool.map(lambda rule: _rule_hits(rule, values, index), costly_first)
        return {rule.column: hit for rule, hit in zip(costly_first, found, strict=True)}


class _LiteralIndex:
    """Which texts contain which prefilter literals, from one pass over the lowercased texts.

    Literals found in more than ``COMMON`` of a sample of the texts are left out (they would
    cost most of the pass and filter little), and so is every prefilter that needs one. Texts
    with a character the prefilters cannot judge (``FOLD_EXCEPTIONS``) pass every prefilter.
    """

    COMMON = 0.35
    SAMPLE = 2000
    CHUNK = 65_536

    def __init__(self, values: pl.Series, rules: list[Rule]) -> None:
        self.n = values.len()
        gates = {g for rule in rules for p in rule.patterns for g in required_literals(p)}
        gates |= {g for rule in rules if (g := anchor_factor(rule.anchors)) is not None}
        vocabulary = sorted({w for g in gates for w in g})
        if vocabulary and self.n > self.SAMPLE:
            sample = values.sample(self.SAMPLE, seed=0).str.to_lowercase()
            seen = sample.str.extract_many(vocabulary, overlapping=True).list.unique().explode()
            counts = seen.drop_nulls().value_counts()
            common = set(counts.filter(pl.col("count") > self.COMMON * self.SAMPLE)[seen.name])
            gates = {g for g in gates if not (g & common)}
            vocabulary = sorted({w for g in gates for w in g})
        self.always = np.flatnonzero(values.str.contains(FOLD_EXCEPTION_CLASS).to_numpy())
        self.gates = gates
        self.by_word: dict[str, np.ndarray] = {}
        self._rows: dict[_Gate, np.ndarray] = {}
        if not vocabulary or self.n == 0:
            return
        chunks = []
        for start in range(0, self.n, self.CHUNK):  # bounded memory: matches are many
            found = values.slice(start, self.CHUNK).str.to_lowercase()
            chunks.append(
                pl.DataFrame({"w": found.str.extract_many(vocabulary, overlapping=True)})
                .with_row_index("row", offset=start)
                .explode("w")
                .drop_nulls()
                .group_by("w")
                .agg("row")
            )
        grouped = pl.concat(chunks).explode("row").group_by("w").agg("row")
        self.by_word = {
            w: rows.to_numpy()
            for w, rows in zip(grouped["w"].to_list(), grouped["row"], strict=True)
        }

    def rows(self, gate: _Gate) -> np.ndarray:
        """Row numbers (sorted) that pass ``gate``; cached (a benign race between threads)."""
        found = self._rows.get(gate)
        if found is None:
            mask = np.zeros(self.n, dtype=bool)
            mask[self.always] = True
            for word in gate:
                hits = self.by_word.get(word)
                if hits is not None:
                    mask[hits] = True
            found = self._rows[gate] = np.flatnonzero(mask)
        return found

    def candidates(self, gates: tuple[_Gate, ...], within: np.ndarray) -> np.ndarray:
        """The rows of ``within`` (sorted row numbers) that pass every one of ``gates``; a gate
        left out of the index (too common) passes everything."""
        out = within
        for gate in gates:
            if gate in self.gates and out.size:
                mask = np.zeros(self.n, dtype=bool)
                mask[self.rows(gate)] = True
                out = out[mask[out]]
        return out


def _rule_hits(rule: Rule, values: pl.Series, index: _LiteralIndex) -> np.ndarray:
    """Anchor gate, then each pattern on the rows that pass its literal prefilters and that no
    earlier pattern matched, then the exclude veto."""
    rows = np.arange(index.n)
    anchor = anchor_factor(rule.anchors)
    if anchor is not None:
        rows = index.candidates((anchor,), rows)
    hit = np.zeros(index.n, dtype=bool)
    for pattern in rule.patterns:
        idx = index.candidates(required_literals(pattern), rows[~hit[rows]])
        if idx.size:
            hit[idx[values.gather(idx).str.contains(FLAGS + pattern).to_numpy()]] = True
    if rule.exclude and hit.any():
        idx = np.flatnonzero(hit)
        sub = values.gather(idx)
        for pattern in rule.exclude:
            hit[idx[sub.str.contains(FLAGS + pattern).to_numpy()]] = False
    return hit


_Gate = frozenset[str]
