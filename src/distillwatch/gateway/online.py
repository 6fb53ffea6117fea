"""Online scoring: per-account state updated call by call, giving a live finding with evidence.

The streaming versions of scan's cheap signals, each an exponentially weighted share over an
account's recent calls (event time drives the timing ones, so replaying a log is the same code
path as live traffic):

- intent: share of calls on which the heuristic rules (:mod:`distillwatch.rules`) fire;
- harvesting parameters: share asking for log-probabilities or several choices;
- template sketch: share of prompts whose skeleton (first words, digits folded) the account
  has already sent recently;
- timing: calls per minute and how regular the gaps between calls are.

The live score is a logistic function of those shares with fixed, documented weights (a
heuristic, not a trained model); each term becomes one :class:`Evidence` item.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import re2

from distillwatch.core.values import TIERS, Evidence, Finding
from distillwatch.rules import Rule, RuleSet, load_rules
from distillwatch.rules.model import literal_regex

SOURCE: Final = "gateway:live@1"

_WORD_B = re.compile(r"\(\?-u:\\b\)")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.case_sensitive = False
_RE2_OPTIONS.max_mem = 64 << 20
_RE2_OPTIONS.never_capture = True  # only whether a pattern matches is read: no submatches

_GROUP_PROGRAM: Final = 100_000
"""A rule's patterns are joined into alternations of at most about this many RE2 program
instructions: one DFA pass per group instead of one search per pattern (~5 us of wrapper
each), while each group's DFA fits ``max_mem`` (groups of ~170k instructions ran out of it on
real prompts; RE2 then falls back to its slower NFA, still correct)."""


_WORD = r"\pL\pM\pN_"


def rust_to_re2(pattern: str) -> str:
    r"""Rust ``regex`` syntax -> RE2 syntax for what the rules use: Rust's ``\w`` is Unicode,
    RE2's ASCII, so it becomes letter/mark/number classes; Rust's ASCII word boundary
    ``(?-u:\b)`` is RE2's plain ``\b``.

    >>> print(rust_to_re2(r"(?-u:\b)a\w+[^\w.]"))
    \ba[\pL\pM\pN_]+[^\pL\pM\pN_.]
    """
    pattern = _WORD_B.sub(r"\\b", pattern)
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt == "w":
                out.append(_WORD if in_class else f"[{_WORD}]")
            elif nxt == "W" and not in_class:
                out.append(f"[^{_WORD}]")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
            out.append(ch)
            if pattern[i + 1 : i + 2] == "^":
                out.append("^")
                i += 1
            if pattern[i + 1 : i + 2] == "]":  # a leading ] is a literal
                out.append("]")
                i += 1
        elif ch == "]" and in_class:
            in_class = False
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def compile_rule_regex(pattern: str) -> Any:
    """A rule regex (Rust ``regex`` syntax) compiled once with RE2, which like Rust's engine
    runs in linear time: Python's ``re`` backtracks on these patterns (~6 ms per prompt here)."""
    return re2.compile(rust_to_re2(pattern), _RE2_OPTIONS)


def compile_any(patterns: Iterable[str], max_program: int = _GROUP_PROGRAM) -> tuple[Any, ...]:
    r"""Rule regexes as a few RE2 alternations, each matching where any of its members does
    (a text matches one of ``patterns`` iff it matches one of the groups); members keep their
    own inline flags, scoped by the ``(?:...)`` around each.

    >>> groups = compile_any([r"(?-u:\b)cat", "(?-i:Dog)", "b"], max_program=12)
    >>> [g.pattern for g in groups]
    ['(?:\\bcat)', '(?:(?-i:Dog))|(?:b)']
    >>> [bool(any(g.search(t) for g in groups)) for t in ("a CAT", "dog", "Dog", "xyz")]
    [True, False, True, False]
    """
    groups: list[list[str]] = []
    size = max_program
    for pattern in patterns:
        member = f"(?:{rust_to_re2(pattern)})"
        cost = re2.compile(member, _RE2_OPTIONS).programsize
        if size + cost > max_program:
            groups.append([])
            size = 0
        groups[-1].append(member)
        size += cost
    return tuple(re2.compile("|".join(g), _RE2_OPTIONS) for g in groups)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule compiled once for per-text matching; Polars recompiles every regex on each
    call (~3 s for the builtin rules here), too slow for a batch of a few calls."""

    rule: Rule
    gate: Any
    patterns: tuple[Any, ...]
    exclude: tuple[Any, ...]

    @classmethod
    def compile(cls, rule: Rule) -> CompiledRule:
        gate = compile_rule_regex(literal_regex(rule.anchors)) if rule.anchors else None
        return cls(rule, gate, compile_any(rule.patterns), compile_any(rule.exclude))

    def _on(self, text: bytes | None) -> bool:
        if not text or (self.gate is not None and not self.gate.search(text)):
            return False
        if not any(p.search(text) for p in self.patterns):
            return False
        return not any(p.search(text) for p in self.exclude)

    def fires(self, prompt: bytes | None, system: bytes | None) -> bool:
        """Whether the rule fires on a call's texts, given UTF-8 encoded (encoded once per
        call: RE2 matches bytes, and the wrapper would encode a ``str`` for every search)."""
        if self.rule.field == "prompt":
            return self._on(prompt)
        if self.rule.field == "system":
            return self._on(system)
        return self._on(prompt) or self._on(system)


class OnlineRules:
    """A rule set matched text by text; agrees with :meth:`RuleSet.signals` on the golden sets."""

    def __init__(self, rules: RuleSet | None = None) -> None:
        self.rules = rules if rules is not None else load_rules()
        self.compiled = tuple(CompiledRule.compile(r) for r in self.rules)

    def fired(self, prompt: str | None, system: str | None) -> tuple[Rule, ...]:
        p = prompt.encode("utf-8", "surrogatepass") if prompt else None
        s = system.encode("utf-8", "surrogatepass") if system else None
        return tuple(c.rule for c in self.compiled if c.fires(p, s))


@dataclass(frozen=True, slots=True)
class LiveConfig:
    """Hyper-parameters of the live score, kept verbatim. Weights are log-odds per unit share."""

    window: int = 100
    """Calls an exponentially weighted share effectively averages over."""
    min_calls: int = 10
    """Below this many calls an account's live tier stays ``allow``."""
    bias: float = -4.0
    w_intent: float = 4.0
    w_harvest: float = 2.0
    w_template: float = 3.0
    w_rate: float = 2.0
    w_regular: float = 1.0
    rate_scale: float = 30.0
    """Calls per minute at which the rate term is half its weight (saturating: r / (r + scale))."""
    prior_calls: float = 20.0
    """Shrinkage: every term is scaled by n / (n + prior_calls), so a score needs evidence from
    many calls to get high, and rises as a campaign unfolds instead of jumping on call two."""
    watch: float = 0.5
    throttle: float = 0.8
    block: float = 0.95
    skeleton_words: int = 8
    skeleton_memory: int = 256
    max_accounts: int = 100_000
    """Least recently seen accounts are forgotten beyond this many."""


@dataclass(slots=True)
class AccountState:
    """The running statistics of one account."""

    n: int = 0
    last_ts: float | None = None
    intent: float = 0.0
    rules: dict[str, float] = field(default_factory=dict)
    harvest: float = 0.0
    template: float = 0.0
    gap: float | None = None
    gap_sq: float | None = None
    skeletons: OrderedDict[int, None] = field(default_factory=OrderedDict)


_NUM = re.compile(r"\d+")
_WS = re.compile(r"\s+")


def skeleton(prompt: str, words: int) -> int:
    """A hash of a prompt's first ``words`` words, lower-cased with digit runs folded to 0:
    prompts stamped from one template share it.

    >>> skeleton("Solve 12 + 7 step by step", 4) == skeleton("solve 3 + 99  step", 4)
    True
    """
    head = _WS.split(_NUM.sub("0", prompt.lower()).strip(), words)[:words]
    return hash(" ".join(head))


class LiveScorer:
    """Per-account online state; :meth:`update` takes calls in event-time order, :meth:`finding`
    is a pure read. Not thread-safe: one writer (the event log's worker) updates it."""

    def __init__(self, config: LiveConfig | None = None, rules: OnlineRules | None = None) -> None:
        self.config = config or LiveConfig()
        self.rules = rules if rules is not None else OnlineRules()
        self._states: OrderedDict[str, AccountState] = OrderedDict()
        self._findings: dict[str, Finding] = {}

    def __len__(self) -> int:
        return len(self._states)

    def update(self, calls: Iterable[dict[str, Any]]) -> None:
        """Fold calls (canonical records as dicts, ``ts`` in epoch seconds under ``_ts``) in."""
        touched: set[str] = set()
        for call in calls:
            account = call["account_id"]
            self._update_one(account, call)
            touched.add(account)
        for account in touched:
            self._findings[account] = self._score(account, self._states[account])

    def finding(self, account_id: str) -> Finding | None:
        return self._findings.get(account_id)

    def _state(self, account: str) -> AccountState:
        state = self._states.get(account)
        if state is None:
            state = self._states[account] = AccountState()
            while len(self._states) > self.config.max_accounts:
                old, _ = self._states.popitem(last=False)
                self._findings.pop(old, None)
        else:
            self._states.move_to_end(account)
        return state

    def _update_one(self, account: str, call: dict[str, Any]) -> None:
        cfg = self.config
        st = self._state(account)
        st.n += 1
        a = 1.0 / min(st.n, cfg.window)
        prompt, system = _texts(call.get("request") or {})
        fired = self.rules.fired(prompt, system)
        ids = {r.id for r in fired}
        strong = any(r.strength == "strong" for r in fired)
        st.intent += a * (float(strong) - st.intent)
        for rule in self.rules.rules:
            old = st.rules.get(rule.id, 0.0)
            new = old + a * (float(rule.id in ids) - old)
            if new > 1e-6 or rule.id in st.rules:
                st.rules[rule.id] = new
        req = call.get("request") or {}
        harvest = bool(req.get("logprobs")) or (req.get("n") or 1) > 1
        st.harvest += a * (float(harvest) - st.harvest)
        sk = skeleton(prompt or system or "", cfg.skeleton_words)
        seen = sk in st.skeletons
        st.template += a * (float(seen) - st.template)
        st.skeletons[sk] = None
        st.skeletons.move_to_end(sk)
        if len(st.skeletons) > cfg.skeleton_memory:
            st.skeletons.popitem(last=False)
        ts = float(call["_ts"])
        if st.last_ts is not None:
            gap = max(ts - st.last_ts, 0.0)
            if st.gap is None or st.gap_sq is None:
                st.gap, st.gap_sq = gap, gap * gap
            else:
                b = 1.0 / min(st.n - 1, cfg.window)
                st.gap += b * (gap - st.gap)
                st.gap_sq += b * (gap * gap - st.gap_sq)
        st.last_ts = ts if st.last_ts is None else max(ts, st.last_ts)

    def _score(self, account: str, st: AccountState) -> Finding:
        cfg = self.config
        rate = 60.0 / max(st.gap, 1e-3) if st.gap is not None else 0.0
        rate_term = rate / (rate + cfg.rate_scale)
        regular = 0.0
        if st.gap is not None and st.gap_sq is not None and st.n >= cfg.min_calls and st.gap > 0:
            var = max(st.gap_sq - st.gap * st.gap, 0.0)
            regular = max(0.0, 1.0 - math.sqrt(var) / st.gap)  # 1 - coefficient of variation
        terms = [
            ("live:intent_share", st.intent, 0.02, cfg.w_intent),
            ("live:harvest_params_share", st.harvest, 0.05, cfg.w_harvest),
            ("live:template_repeat_share", st.template, 0.1, cfg.w_template),
            ("live:calls_per_minute", rate, cfg.rate_scale, cfg.w_rate * rate_term),
            ("live:gap_regularity", regular, 0.0, cfg.w_regular),
        ]
        shrink = st.n / (st.n + cfg.prior_calls)
        evidence = [
            Evidence(
                name,
                value,
                base,
                shrink * (w if name == "live:calls_per_minute" else w * value),
                SOURCE,
            )
            for name, value, base, w in terms
        ]
        logit = cfg.bias + sum(e.weight for e in evidence)
        score = 1.0 / (1.0 + math.exp(-logit))
        evidence.extend(
            Evidence(f"rule:{rid}", share, 0.0, 0.0, SOURCE) for rid, share in st.rules.items()
        )
        evidence.append(Evidence("live:calls", float(st.n), float(cfg.min_calls), 0.0, SOURCE))
        return Finding(account, score, self._tier(score, st.n), tuple(evidence))

    def _tier(self, score: float, n: int) -> str:
        cfg = self.config
        if n < cfg.min_calls:
            return TIERS[0]
        for tier, bound in (("block", cfg.block), ("throttle", cfg.throttle), ("watch", cfg.watch)):
            if score >= bound:
                return tier
        return TIERS[0]


def _texts(request: dict[str, Any]) -> tuple[str | None, str | None]:
    """The last user message and the system prompt (field, else first system message)."""
    prompt = system = None
    for msg in request.get("messages") or ():
        role = msg.get("role")
        if role == "user":
            prompt = msg.get("content")
        elif role == "system" and system is None:
            system = msg.get("content")
    return prompt, request.get("system") or system
