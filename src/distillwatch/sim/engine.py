"""The traffic simulator: accounts, organisations and campaigns, their timing, and their calls.

Plan (accounts, orgs, campaigns, infrastructure) -> per account and day, call times from the
persona's arrival process -> per call, content from :mod:`distillwatch.sim.content` -> Arrow
tables in the canonical schema. One seed fixes everything: the simulator reads no clock and no
global random state.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillwatch.core.errors import DistillwatchError
from distillwatch.core.schema import (
    ACCOUNT_SCHEMA,
    CALL_SCHEMA,
    LABEL_SCHEMA,
    MODEL_SCHEMA,
)
from distillwatch.sim import templates as T
from distillwatch.sim.content import (
    GENERATORS,
    PERSONA_CLIENTS,
    AccountState,
    Content,
    ContentMaker,
    client_system,
)
from distillwatch.sim.corpora import Corpora
from distillwatch.sim.scenario import CampaignSpec, PersonaSpec, Scenario
from distillwatch.sim.traces import TraceFit

DAY = 86_400.0
# calls buffered in Python lists before they become an Arrow chunk: small, because memory freed
# by Python is seldom given back to the system, so the largest buffer sets the process's floor
FLUSH_CALLS = 50_000
# local-time hourly weights of people typing into a chat window
HUMAN_HOURS = np.array(
    [0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 1.0, 1.2, 1.3, 1.3,
     1.2, 1.3, 1.3, 1.3, 1.2, 1.1, 1.0, 1.0, 1.0, 0.9, 0.7, 0.5]
)  # fmt: skip
TRACE_TZ = 8.0  # ServeGen's clock is taken to be its clients' local time (UTC+8)
COUNTRIES = (  # (country, UTC offset hours, residential ASNs, weight)
    ("US", -5.0, (7922, 701, 20115), 0.34),
    ("IN", 5.5, (9829, 24560), 0.12),
    ("DE", 1.0, (3320,), 0.07),
    ("GB", 0.0, (2856,), 0.07),
    ("BR", -3.0, (28573,), 0.06),
    ("JP", 9.0, (4713,), 0.05),
    ("FR", 1.0, (3215,), 0.05),
    ("CA", -5.0, (812,), 0.05),
    ("KR", 9.0, (4766,), 0.04),
    ("SG", 8.0, (9506,), 0.04),
    ("AU", 10.0, (1221,), 0.04),
    ("ES", 1.0, (3352,), 0.04),
    ("NL", 1.0, (1136,), 0.03),
)
CLOUD_ASNS = (16509, 15169, 8075, 14061, 24940)
CAMPUS_ASNS = (1312, 786, 2200)
SDK_AGENTS = (
    "OpenAI/Python 1.54.3",
    "OpenAI/Python 1.61.0",
    "OpenAI/NodeJS 4.77.0",
    "langchain-openai/0.2.14",
    "LiteLLM/1.55.2",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Safari/605.1.15",
    "curl/8.5.0",
)
HARVEST_AGENTS = ("python-requests/2.31.0", "aiohttp/3.9.5", "OpenAI/Python 1.54.3", "httpx/0.27.0")
# how each persona spreads its calls over a day: human sessions, 24/7 service, or bursts
TIMING = {
    "casual_chat": "human",
    "power_user": "human",
    "corporate_team": "human",
    "education": "human",
    "product_backend": "service",
    "agent_platform": "service",
    "reseller": "service",
    "migrating_customer": "service",
    "synthetic_data_partner": "service",
    "eval_harness": "burst",
    "batch_job": "burst",
}


@dataclass(slots=True)
class _Account:
    idx: int
    account_id: str
    org_id: str | None
    persona: str  # legit persona or attack style
    campaign: CampaignSpec | None
    country: str
    tz: float
    asn_pool: tuple[int, ...]
    ips: list[str]
    agent: str
    tls: str
    created_s: float  # seconds relative to the window start (negative: before it)
    channel: str
    payment: str
    verified: bool
    allowlisted: bool
    per_active_day: float
    active_days: float
    cv: float
    active_from: float = 0.0  # days
    active_to: float = math.inf
    mundane: float = 0.0
    model: str = ""
    adopt_delay: float = math.inf  # seconds after the release until the account may switch
    adopt: float = 0.0  # share of its calls that go to the new model once switched
    rotate_ips: bool = False  # spread calls evenly over ``ips`` (mobile CGNAT, load balancers)
    proxy_session_s: float = 0.0  # > 0: sticky proxy sessions of this length over ``ips``
    ip_offset: int = 0
    human_hours: bool = False  # a campaign account keeping its operators' working day
    service_hours: bool = False  # a campaign account following a 24/7 service's daily curve
    fixed_system: bool = False  # send ``system`` on every call, whatever the generator chose
    system: str | None = None
    state: AccountState = field(default_factory=AccountState)


@dataclass(frozen=True, slots=True)
class SimResult:
    """The simulator's tables (canonical schema) and the numbers that describe the run."""

    calls: pa.Table
    accounts: pa.Table
    models: pa.Table
    labels: pa.Table
    stats: dict[str, Any]


def _hexid(rng: random.Random, prefix: str, n: int = 12) -> str:
    return f"{prefix}-{rng.getrandbits(4 * n):0{n}x}"


def _ip(rng: random.Random, asn: int) -> str:
    # a stable, ASN-specific /16 per (asn, k): enough structure for /24 and ASN links
    h = hashlib.blake2b(f"{asn}:{rng.randrange(4)}".encode(), digest_size=2).digest()
    return f"{11 + h[0] % 180}.{h[1]}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


@functools.cache
def _asn_prefixes() -> dict[str, int]:
    """Every /16 prefix :func:`_ip` can draw, mapped to its ASN."""
    table: dict[str, int] = {}
    asns = {a for c in COUNTRIES for a in c[2]} | set(CLOUD_ASNS) | set(CAMPUS_ASNS)
    for asn in sorted(asns):
        for k in range(4):
            h = hashlib.blake2b(f"{asn}:{k}".encode(), digest_size=2).digest()
            table[f"{11 + h[0] % 180}.{h[1]}"] = asn
    return table


def _tls(agent: str, salt: str = "") -> str:
    return hashlib.md5(f"{agent.split('/')[0]}{salt}".encode(), usedforsecurity=False).hexdigest()


class _Planner:
    """Builds the population: who exists, in which org or campaign, on what infrastructure."""

    def __init__(self, sc: Scenario, fit: TraceFit, n_accounts: int, days: int, seed: int) -> None:
        self.sc, self.fit, self.days = sc, fit, days
        ss = np.random.SeedSequence(seed)
        self.np = np.random.default_rng(ss.spawn(1)[0])
        self.r = random.Random(seed)
        self.n = n_accounts
        self.accounts: list[_Account] = []
        self.release_s = min(sc.release_day, days / 2.0) * DAY

    # --- sizes ------------------------------------------------------------------------------

    def _campaign_sizes(self) -> list[int]:
        """Accounts per campaign: absolute sizes first; ``legit_share`` splits the rest of the
        population, and campaigns sized by ``share`` divide its distill part."""
        fixed = self.sc.fixed_accounts
        n_distill = round(max(0, self.n - fixed) * (1.0 - self.sc.legit_share))
        total = sum(c.share for c in self.sc.campaigns if c.accounts is None) or 1.0
        sizes = [
            c.accounts
            if c.accounts is not None
            else max(c.min_accounts, round(n_distill * c.share / total))
            for c in self.sc.campaigns
        ]
        if sum(sizes) > self.n:
            raise DistillwatchError(
                f"the scenario's campaigns need {sum(sizes):,} accounts ({fixed:,} of them in "
                f"campaigns of absolute size), more than the {self.n:,} simulated: raise the "
                "number of accounts (campaigns are part of it, legitimate accounts are the rest)"
            )
        return sizes

    def _persona_sizes(self, n_legit: int) -> list[int]:
        total = sum(p.share for p in self.sc.personas)
        sizes = [int(n_legit * p.share / total) for p in self.sc.personas]
        order = sorted(range(len(sizes)), key=lambda i: -self.sc.personas[i].share)
        for i in range(n_legit - sum(sizes)):
            sizes[order[i % len(order)]] += 1
        return sizes

    def _sigma_within(self) -> float:
        sigma = self.sc.sigma if self.sc.sigma is not None else self.fit.log_volume_sigma
        w = np.array([p.share for p in self.sc.personas])
        logs = np.log([p.volume for p in self.sc.personas])
        between = float(np.sum(w * (logs - np.sum(w * logs) / w.sum()) ** 2) / w.sum())
        return math.sqrt(max(sigma**2 - between, 0.25))

    # --- accounts -------------------------------------------------------------------------------

    def _country(self) -> tuple[str, float, tuple[int, ...]]:
        c = self.r.choices(COUNTRIES, weights=[x[3] for x in COUNTRIES])[0]
        return c[0], c[1], c[2]

    def _base_model(self, persona: str) -> str:
        models = self.sc.models
        weights = [
            m.share * (3.0 if m.reasoning and persona in ("power_user",) else 1.0) for m in models
        ]
        return self.r.choices([m.model for m in models], weights=weights)[0]

    def plan(self) -> list[_Account]:
        sizes = self._campaign_sizes()
        n_legit = self.n - sum(sizes)
        for spec, size in zip(self.sc.personas, self._persona_sizes(n_legit), strict=True):
            self._legit(spec, size)
        for camp, size in zip(self.sc.campaigns, sizes, strict=True):
            self._campaign(camp, size)
        # account ids and row order must not reveal labels: shuffle, then number
        self.r.shuffle(self.accounts)
        for i, a in enumerate(self.accounts):
            a.idx = i
        return self.accounts

    def _legit(self, spec: PersonaSpec, size: int) -> None:
        r, sig = self.r, self._sigma_within()
        median = self.sc.median_calls_per_day * spec.volume
        made = 0
        while made < size:
            org_n = min(size - made, r.randint(*spec.org_size))
            org = _hexid(r, "org", 10)
            country, tz, asns = self._country()
            shared_ip = None
            if spec.name in ("corporate_team", "education"):  # one NAT address for everyone
                shared_ip = _ip(r, r.choice(CAMPUS_ASNS if spec.name == "education" else asns))
            service = TIMING.get(spec.name) in ("service", "burst")
            org_payment = _hexid(r, "pay", 16)
            org_created = -r.uniform(30, 900) * DAY
            agent = r.choice(SDK_AGENTS[:5] if service else SDK_AGENTS)
            # knobs off (0) draw nothing, so scenarios without them keep their bytes
            egress: list[str] | None = None
            if (
                spec.shared_egress
                and shared_ip is None
                and org_n > 1
                and r.random() < spec.shared_egress
            ):
                asn = r.choice(CLOUD_ASNS if service else asns)  # platform servers or office NAT
                egress = [_ip(r, asn) for _ in range(r.choice((1, 1, 2, 4)))]
            product: tuple[str, str] | None = None
            if spec.shared_template and org_n > 1 and r.random() < spec.shared_template:
                product = T.product_template(r, strong=True)
            for _ in range(org_n):
                vol = float(
                    np.clip(
                        self.np.lognormal(math.log(median), sig), 0.05, self.sc.max_calls_per_day
                    )
                )
                rotate = False
                if shared_ip:
                    ips = [shared_ip]
                elif egress:  # every account of the org leaves through the org's addresses
                    ips, rotate = egress, True
                elif service:  # cloud egress, often several load-balanced addresses
                    asn = r.choice(CLOUD_ASNS)
                    ips = [_ip(r, asn) for _ in range(r.choice((1, 1, 2, 4, 8, 16)))]
                    rotate = True
                elif r.random() < self.sc.mobile_share:  # rotating mobile / CGNAT addresses
                    asn = r.choice(asns)
                    ips = [_ip(r, asn) for _ in range(r.randint(3, 12))]
                    rotate = True
                else:
                    ips = [_ip(r, r.choice(asns)) for _ in range(r.randint(1, 3))]
                new_signup = r.random() < self.sc.new_signup_share
                a = _Account(
                    idx=0,
                    account_id=_hexid(r, "acct"),
                    org_id=org if org_n > 1 or r.random() < 0.5 else None,
                    persona=spec.name,
                    campaign=None,
                    country=country,
                    tz=tz,
                    asn_pool=asns,
                    ips=ips,
                    agent=agent if org_n > 1 else r.choice(SDK_AGENTS),
                    tls="",
                    created_s=-r.uniform(0.5, 30) * DAY
                    if new_signup
                    else org_created + r.uniform(0, 20) * DAY,
                    channel=self._legit_channel(spec.name),
                    payment=org_payment if org_n > 1 else _hexid(r, "pay", 16),
                    verified=r.random() < (0.9 if org_n > 1 or service else 0.6),
                    allowlisted=spec.name == "synthetic_data_partner",
                    per_active_day=vol / spec.active_days,
                    active_days=spec.active_days,
                    cv=float(self.fit.sample_cv(self.np, 1)[0]),
                    model=self._base_model(spec.name),
                )
                a.tls = _tls(a.agent)
                a.rotate_ips = rotate
                self._legit_adoption(a)
                if product is not None:  # the org's one product (a reseller: its one pool)
                    key = "products" if spec.name == "reseller" else "product"
                    a.state.config[key] = [product] if key == "products" else product
                a.state.cot = spec.cot_prompts > 0 and r.random() < spec.cot_prompts
                self.accounts.append(a)
                made += 1

    def _legit_channel(self, persona: str) -> str:
        return {
            "education": "education",
            "reseller": "reseller",
            "agent_platform": "enterprise",
            "corporate_team": "enterprise",
            "synthetic_data_partner": "enterprise",
            "eval_harness": self.r.choice(("research_program", "self_serve", "enterprise")),
            "product_backend": self.r.choice(("startup_program", "self_serve", "enterprise")),
            "migrating_customer": self.r.choice(("startup_program", "enterprise")),
        }.get(persona, "self_serve")

    def _legit_adoption(self, a: _Account) -> None:
        r = self.r
        if a.persona == "migrating_customer":  # moves most traffic on release day
            a.adopt_delay, a.adopt = r.uniform(0.5, 20) * 3600, r.uniform(0.8, 1.0)
        elif a.persona == "eval_harness":  # benchmarks the new model within a day
            a.adopt_delay, a.adopt = r.uniform(1, 20) * 3600, r.uniform(0.3, 0.7)
        elif r.random() < self.sc.early_adopter_share:  # tries the new model on release day
            a.adopt_delay, a.adopt = r.uniform(0.2, 24) * 3600, r.uniform(0.05, 0.5)
        elif r.random() < 0.2:
            a.adopt_delay, a.adopt = r.uniform(1.0, 4.0) * DAY, r.uniform(0.05, 0.4)

    def _campaign(self, spec: CampaignSpec, size: int) -> None:
        r = self.r
        n_first = max(1, round(size / (1.0 + spec.replacement)))
        n_repl = size - n_first
        proxy_asns = tuple(a for c in COUNTRIES[:6] for a in c[2])
        pool = [_ip(r, r.choice(proxy_asns)) for _ in range(max(4, int(spec.proxy_ips * size)))]
        cards = [_hexid(r, "pay", 16) for _ in range(max(1, size // 25))]
        agents = r.sample(HARVEST_AGENTS, 2)
        # half the campaigns run a custom client (own TLS fingerprint), half a stock SDK
        tls_salt = spec.id if r.random() < 0.5 else ""
        burst = -r.uniform(2, 20) * DAY  # accounts are created in a burst before the window
        operator_tz = r.choice((8.0, 3.0, -5.0, 1.0))
        lo, hi = spec.calls_per_day
        banned: list[_Account] = []
        for i in range(size):
            country, _tz, asns = self._country()
            per_day = math.exp(r.uniform(math.log(lo), math.log(hi)))
            agent = r.choice(agents)
            a = _Account(
                idx=0,
                account_id=_hexid(r, "acct"),
                org_id=_hexid(r, "org", 10) if r.random() < 0.4 else None,
                persona=spec.style,
                campaign=spec,
                country=country,
                tz=operator_tz,
                asn_pool=asns,
                ips=pool,
                agent=agent,
                tls=_tls(agent, tls_salt),
                created_s=burst + r.uniform(0, 1.5) * DAY,
                channel=r.choice(spec.signup),
                payment=r.choice(cards)
                if r.random() < spec.shared_payment
                else _hexid(r, "pay", 16),
                verified=r.random() < 0.15,
                allowlisted=False,
                per_active_day=per_day / 0.95,
                active_days=0.95,
                cv=float(self.fit.sample_cv(self.np, 1)[0]),
                mundane=r.uniform(*spec.mundane_share),
                model=self._base_model(spec.style),
                adopt_delay=r.uniform(0.2, 20) * 3600,
                adopt=spec.pivot,
                proxy_session_s=r.uniform(*spec.proxy_session_hours) * 3600,
                ip_offset=r.randrange(len(pool)),
                human_hours=r.random() < spec.human_hours,
            )
            if r.random() < spec.aged_accounts:  # bought or aged accounts
                a.created_s = -r.uniform(60, 400) * DAY
            self._disguise(a, spec)
            if i < n_first:
                if i < n_repl:  # banned at some point in the window, replaced below
                    a.active_to = r.uniform(0.15, 0.85) * self.days
                    banned.append(a)
            else:  # the replacement takes over where a banned account stopped
                gone = banned[i - n_first]
                a.active_from = gone.active_to + r.uniform(1, 12) / 24
                a.created_s = a.active_from * DAY - r.uniform(0.5, 6) * 3600
                a.per_active_day, a.mundane = gone.per_active_day, gone.mundane
                # ... with the same client set-up
                a.fixed_system, a.system = gone.fixed_system, gone.system
                a.state.client = gone.state.client
            self.accounts.append(a)

    def _disguise(self, a: _Account, spec: CampaignSpec) -> None:
        """The hard-scenario knobs of one campaign account; knobs at 0 draw nothing."""
        r = self.r
        if spec.service_hours > 0 and not a.human_hours:
            a.service_hours = r.random() < spec.service_hours
        if spec.paraphrases:
            a.state.group, a.state.paraphrases = spec.id, spec.paraphrases
        if spec.legit_system <= 0 and spec.legit_params <= 0:
            return
        # one legitimate client kind, drawn like a call of the legitimate population
        kinds, weights = self._client_kinds
        kind = r.choices(kinds, weights=weights)[0]
        if r.random() < spec.legit_system:
            a.fixed_system, a.system = True, client_system(kind, r)
        if r.random() < spec.legit_params:
            a.state.client = kind

    @functools.cached_property
    def _client_kinds(self) -> tuple[list[str], list[float]]:
        """Legitimate client kinds, weighted by their share of legitimate calls."""
        weights: dict[str, float] = {}
        for p in self.sc.personas:  # a persona's share of legitimate calls
            calls = p.share * p.volume * p.active_days
            for kind, w in PERSONA_CLIENTS[p.name].items():
                weights[kind] = weights.get(kind, 0.0) + calls * w
        return list(weights), list(weights.values())


class _Timer:
    """Call times for one account and day (seconds from the window start), vectorised."""

    def __init__(self, rng: np.random.Generator, fit: TraceFit, days: int) -> None:
        self.rng, self.days = rng, days
        self.service = np.asarray(fit.diurnal)
        self.waves: dict[str, np.ndarray] = {}

    def _renewal(self, n: int, cv: float) -> np.ndarray:
        """n points in [0, 1) from a gamma renewal process (CV ``cv``), scaled to fit."""
        shape = 1.0 / max(cv, 0.05) ** 2
        gaps = self.rng.gamma(shape, 1.0, n + 1)
        total = gaps.sum()
        if not total > 0:  # very bursty (CV ~20): every gap can underflow to 0
            gaps, total = np.ones(n + 1), float(n + 1)
        pts: np.ndarray = np.cumsum(gaps)[:-1] / total
        return pts

    @staticmethod
    def _warp(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Map uniform day fractions through the inverse CDF of an hourly intensity."""
        cdf = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
        out: np.ndarray = np.interp(u, cdf, np.linspace(0.0, 1.0, len(cdf)))
        return out

    def _local_weights(self, weights: np.ndarray, tz: float) -> np.ndarray:
        # weights are by local hour; rotate to UTC hours of the simulated clock
        return np.roll(weights, round(-tz) % 24)

    def times(self, a: _Account, day: int, n: int) -> np.ndarray:
        start = day * DAY
        mode = "campaign" if a.campaign else TIMING.get(a.persona, "human")
        if mode == "service":
            w = self._local_weights(self.service, a.tz - TRACE_TZ)
            return start + self._warp(self._renewal(n, a.cv), w) * DAY
        if mode == "human":
            out = []
            left = n
            w = self._local_weights(HUMAN_HOURS, a.tz)
            while left > 0:
                k = min(left, int(self.rng.geometric(0.25)))
                hour = self.rng.choice(24, p=w / w.sum()) + self.rng.random()
                gaps = self.rng.gamma(1.0 / max(a.cv, 0.3) ** 2, 75.0 * max(a.cv, 0.3) ** 2, k)
                out.append(start + hour * 3600 + np.cumsum(gaps) - gaps[0])
                left -= k
            return np.concatenate(out)
        if mode == "burst":
            runs = int(self.rng.integers(1, 3))
            per = np.array_split(np.arange(n), runs)
            out = []
            for idx in per:
                if a.persona == "batch_job":
                    local = self.rng.uniform(0, 5)
                else:
                    local = self.rng.uniform(8, 20)
                begin = start + ((local - a.tz) % 24) * 3600
                gaps = self.rng.gamma(4.0, self.rng.uniform(0.2, 1.0), len(idx))
                out.append(begin + np.cumsum(gaps))
            return np.concatenate(out)
        # campaign: part of the calls fired in campaign-wide waves, the rest round the clock
        spec = a.campaign
        assert spec is not None
        waves = self.waves.get(spec.id)
        if waves is None:  # wave starts per day, shared by every member of the campaign
            width = spec.wave_minutes * 60
            waves = np.sort(
                self.rng.uniform(0, DAY - width, (self.days + 2, int(self.rng.integers(6, 14)))),
                axis=1,
            )
            self.waves[spec.id] = waves
        synced = self.rng.random(n) < spec.sync
        u = self._renewal(n, a.cv)
        if a.human_hours:
            u = self._warp(u, self._local_weights(HUMAN_HOURS, a.tz))
        elif a.service_hours:
            u = self._warp(u, self._local_weights(self.service, a.tz - TRACE_TZ))
        t = start + u * DAY
        k = int(synced.sum())
        if k:
            wave = waves[day][self.rng.integers(0, waves.shape[1], k)]
            t[synced] = start + wave + self.rng.uniform(0, spec.wave_minutes * 60, k)
        return t


class _AccountIds:
    """Account, organisation and key ids by account index, for every chunk of calls."""

    def __init__(self, accounts: list[_Account]) -> None:
        self.account = pa.array([a.account_id for a in accounts], pa.string())
        self.org = pa.array([a.org_id for a in accounts], pa.string())
        self.key = pa.array([f"key-{a.account_id[5:13]}" for a in accounts], pa.string())


class _Calls:
    """Column buffers for the calls table (plain lists, turned into Arrow once at the end)."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {
            k: []
            for k in (
                "ts", "acct", "model", "endpoint", "ip", "asn", "country", "agent", "tls",
                "msg_offsets", "roles", "contents", "system", "temperature", "top_p",
                "max_tokens", "n", "logprobs", "top_logprobs", "tools", "reasoning_effort",
                "stream", "seed", "status", "output", "reasoning", "finish", "in_tok",
                "out_tok", "reason_tok", "latency",
            )
        }  # fmt: skip
        self.cols["msg_offsets"].append(0)


def _tokens(text_len: int) -> int:
    return max(1, text_len // 4)


class Simulator:
    """Simulate ``n_accounts`` accounts over ``days`` days of API traffic under a scenario."""

    def __init__(
        self, scenario: Scenario, corpora: Corpora, fit: TraceFit, *, seed: int = 0
    ) -> None:
        self.sc, self.corpora, self.fit, self.seed = scenario, corpora, fit, seed

    def run(
        self, n_accounts: int, days: int, progress: Callable[[int, int], None] | None = None
    ) -> SimResult:
        planner = _Planner(self.sc, self.fit, n_accounts, days, self.seed)
        accounts = planner.plan()
        ss = np.random.SeedSequence([self.seed, 1])
        timer = _Timer(np.random.default_rng(ss), self.fit, days)
        rng = np.random.default_rng(ss.spawn(1)[0])
        maker = ContentMaker(self.corpora, random.Random(self.seed * 7919 + 1))
        buf = _Calls()
        release_s = planner.release_s
        by_day: dict[int, list[pa.Table]] = {}
        ids = _AccountIds(accounts)
        for i, a in enumerate(accounts):
            self._account_calls(a, days, timer, rng, maker, buf, release_s)
            if len(buf.cols["ts"]) >= FLUSH_CALLS:
                self._split_days(self._calls_chunk(buf, ids), days, by_day)
                buf = _Calls()
            if progress is not None and (i % 50 == 0 or i == len(accounts) - 1):
                progress(i + 1, len(accounts))
        self._split_days(self._calls_chunk(buf, ids), days, by_day)
        del buf
        calls = self._time_ordered(by_day)
        return SimResult(
            calls=calls,
            accounts=self._accounts_table(accounts),
            models=self._models_table(release_s),
            labels=self._labels_table(accounts),
            stats={"release_s": release_s, "n_accounts": len(accounts), "n_calls": calls.num_rows},
        )

    # --- calls ----------------------------------------------------------------------------------

    def _account_calls(
        self,
        a: _Account,
        days: int,
        timer: _Timer,
        rng: np.random.Generator,
        maker: ContentMaker,
        buf: _Calls,
        release_s: float,
    ) -> None:
        gen = GENERATORS[a.persona]
        weekend_quiet = a.campaign is None and TIMING.get(a.persona) in ("human", "burst")
        first_day = max(0, math.floor(a.active_from))
        last_day = min(days, math.ceil(a.active_to)) if math.isfinite(a.active_to) else days
        for day in range(first_day, last_day):
            if rng.random() >= a.active_days:
                continue
            lam = a.per_active_day * (0.55 if weekend_quiet and day % 7 in (5, 6) else 1.0)
            n = int(rng.poisson(lam))
            if n == 0:
                continue
            t = timer.times(a, day, n)
            t = np.sort(t[(t >= a.active_from * DAY) & (t < min(a.active_to, days) * DAY)])
            t = t[t >= 0]
            if not len(t):
                continue
            switched = (t >= release_s + a.adopt_delay) & (rng.random(len(t)) < a.adopt)
            mundane = rng.random(len(t)) < a.mundane
            prev = -math.inf
            for ts, new_model, plain in zip(
                t.tolist(), switched.tolist(), mundane.tolist(), strict=True
            ):
                new_session = ts - prev > 1800
                prev = ts
                content: Content = (
                    maker.mundane(a.state) if plain else gen(maker, a.state, new_session)
                )
                if a.fixed_system:
                    content = content._replace(system=a.system)
                if a.state.client:
                    content = maker.as_client(a.state, content)
                self._append(
                    buf, a, ts, self.sc.release.model if new_model else a.model, content, rng
                )

    def _append(
        self, buf: _Calls, a: _Account, ts: float, model: str, ct: Content, rng: np.random.Generator
    ) -> None:
        c = buf.cols
        r, r_ip, r_status = rng.random(3).tolist()
        c["ts"].append(ts)
        c["acct"].append(a.idx)
        c["model"].append(model)
        c["endpoint"].append("chat.completions" if r < 0.85 else "responses")
        if a.proxy_session_s > 0:  # sticky residential-proxy session
            ip = a.ips[(a.ip_offset + int(ts // a.proxy_session_s) * 7919) % len(a.ips)]
        elif a.rotate_ips or r_ip >= 0.7:
            ip = a.ips[int(r_ip * len(a.ips)) % len(a.ips)]
        else:
            ip = a.ips[0]
        c["ip"].append(ip)
        c["asn"].append(None)  # filled from the address below
        c["country"].append(a.country)
        c["agent"].append(a.agent)
        c["tls"].append(a.tls)
        for role, text in ct.messages:
            c["roles"].append(role)
            c["contents"].append(text)
        c["msg_offsets"].append(len(c["roles"]))
        for k in ("system", "temperature", "top_p", "max_tokens", "n", "logprobs",
                  "top_logprobs", "reasoning_effort", "stream", "seed"):  # fmt: skip
            c[k].append(getattr(ct, k))
        c["tools"].append(ct.tools)
        in_tok = _tokens(sum(len(x) for _, x in ct.messages) + len(ct.system or "")) + 4 * len(
            ct.messages
        )
        reasoning = (model == self.sc.release.model and self.sc.release.reasoning) or any(
            m.reasoning and m.model == model for m in self.sc.models
        )
        out_tok = int(_tokens(len(ct.output)) * ct.length_factor)
        finish = "stop"
        if ct.max_tokens is not None and out_tok >= ct.max_tokens:
            out_tok, finish = ct.max_tokens, "length"
        reason_tok = int(out_tok * (1.0 + 3.0 * r_status)) if reasoning else 0
        status = 429 if r_status > 0.996 else 200
        c["status"].append(status)
        c["output"].append(ct.output if status == 200 else None)
        c["reasoning"].append(ct.output[:300] if reasoning and status == 200 else None)
        c["finish"].append(finish if status == 200 else None)
        c["in_tok"].append(in_tok)
        c["out_tok"].append(out_tok if status == 200 else 0)
        c["reason_tok"].append(reason_tok if status == 200 else 0)
        c["latency"].append(round(180.0 + (out_tok + reason_tok) * 12.0 * (0.6 + r), 1))

    def _split_days(self, chunk: pa.Table, days: int, into: dict[int, list[pa.Table]]) -> None:
        """File a chunk's calls under their day, so each day can be sorted on its own."""
        start_us = int(self.sc.start.timestamp() * 1_000_000)
        day = pc.divide(pc.subtract(chunk["ts"].cast(pa.int64()), start_us), 86_400_000_000)
        for d in range(days):
            part = chunk.filter(pc.equal(day, d))
            if part.num_rows:
                into.setdefault(d, []).append(part)
        del chunk, day
        pa.default_memory_pool().release_unused()  # the chunk's memory, back to the system

    def _time_ordered(self, by_day: dict[int, list[pa.Table]]) -> pa.Table:
        """Sort calls by time one day at a time (all days may not fit one Arrow chunk, a day's
        do), and number them in that order.

        A day is sorted one column at a time, its parts joined into one array first and dropped
        before the sorted copy is made: the peak is the window plus one column of one day (a
        table-wide take would hold about three copies of the day).
        """
        out: list[pa.Table] = []
        done = 0
        pool = pa.default_memory_pool()
        for day in sorted(by_day):
            today = pa.concat_tables(by_day.pop(day))
            order = pc.array_sort_indices(today["ts"].combine_chunks())
            columns: list[pa.ChunkedArray | None] = list(today.columns)
            n, schema = today.num_rows, today.schema
            del today
            for i in range(len(columns)):  # (enumerate's tuple would keep the parts alive)
                column, columns[i] = columns[i], None
                assert column is not None
                whole = column.combine_chunks()
                del column  # the day's parts of this column can go now
                pool.release_unused()
                columns[i] = pa.chunked_array([whole.take(order)])
                del whole
            pool.release_unused()
            columns[1] = pa.chunked_array(
                [pa.array([f"req-{self.seed:x}-{done + i:09d}" for i in range(n)], pa.string())]
            )
            out.append(pa.Table.from_arrays(columns, schema=schema))
            done += n
        return pa.concat_tables(out) if out else CALL_SCHEMA.empty_table()

    def _calls_chunk(self, buf: _Calls, ids: _AccountIds) -> pa.Table:
        """The calls buffered so far as one Arrow table, in the order they were made."""
        c = buf.cols
        start_us = int(self.sc.start.timestamp() * 1_000_000)
        ts = (np.asarray(c["ts"], dtype=np.float64) * 1_000_000).astype(np.int64) + start_us
        acct = pa.array(np.asarray(c["acct"], dtype=np.int64))

        def col(name: str, typ: pa.DataType) -> pa.Array:
            return pa.array(c[name], typ)

        offsets = pa.array(c["msg_offsets"], pa.int32())
        messages = pa.ListArray.from_arrays(
            offsets,
            pa.StructArray.from_arrays(
                [pa.array(c["roles"], pa.string()), pa.array(c["contents"], pa.string())],
                names=["role", "content"],
            ),
        )
        ips = col("ip", pa.string())
        prefixes = _asn_prefixes()
        asn_of = {ip: prefixes.get(ip.rsplit(".", 2)[0], 0) for ip in set(c["ip"])}
        asn = pa.array([asn_of[ip] for ip in ips.to_pylist()], pa.int64())
        client = pa.StructArray.from_arrays(
            [
                ips,
                col("agent", pa.string()),
                asn,
                col("country", pa.string()),
                col("tls", pa.string()),
            ],
            fields=list(CALL_SCHEMA.field("client").type),
        )
        req_t = CALL_SCHEMA.field("request").type
        request = pa.StructArray.from_arrays(
            [
                messages,
                col("system", pa.string()),
                col("temperature", pa.float64()),
                col("top_p", pa.float64()),
                col("max_tokens", pa.int64()),
                col("n", pa.int64()),
                col("logprobs", pa.bool_()),
                col("top_logprobs", pa.int64()),
                col("tools", pa.list_(pa.string())),
                col("reasoning_effort", pa.string()),
                col("stream", pa.bool_()),
                col("seed", pa.int64()),
            ],
            fields=list(req_t),
        )
        resp_t = CALL_SCHEMA.field("response").type
        usage = pa.StructArray.from_arrays(
            [col("in_tok", pa.int64()), col("out_tok", pa.int64()), col("reason_tok", pa.int64())],
            fields=list(resp_t.field("usage").type),
        )
        response = pa.StructArray.from_arrays(
            [
                col("status", pa.int64()),
                col("output", pa.string()),
                col("reasoning", pa.string()),
                col("finish", pa.string()),
                usage,
                col("latency", pa.float64()),
            ],
            fields=list(resp_t),
        )
        n = len(ts)
        request_ids = pa.nulls(n, pa.string())  # numbered once the calls are in time order
        return pa.Table.from_arrays(
            [
                pa.array(ts, pa.timestamp("us", tz="UTC")),
                request_ids,
                ids.account.take(acct),
                ids.org.take(acct),
                ids.key.take(acct),
                col("model", pa.string()),
                col("endpoint", pa.string()),
                client,
                request,
                response,
                pa.nulls(n, pa.string()),
            ],
            schema=CALL_SCHEMA,
        )

    # --- other tables ---------------------------------------------------------------------------

    def _accounts_table(self, accounts: list[_Account]) -> pa.Table:
        start = self.sc.start
        return pa.Table.from_pylist(
            [
                {
                    "account_id": a.account_id,
                    "org_id": a.org_id,
                    "created_at": start + timedelta(seconds=round(a.created_s)),
                    "signup_channel": a.channel,
                    "payment_fingerprint": a.payment,
                    "verified": a.verified,
                    "country": a.country,
                    "allowlisted": a.allowlisted,
                    "extra": None,
                }
                for a in accounts
            ],
            schema=ACCOUNT_SCHEMA,
        )

    def _models_table(self, release_s: float) -> pa.Table:
        rows = [{"model": m.model, "released_at": m.released_at} for m in self.sc.models]
        rows.append(
            {
                "model": self.sc.release.model,
                "released_at": self.sc.start + timedelta(seconds=release_s),
            }
        )
        return pa.Table.from_pylist(rows, schema=MODEL_SCHEMA)

    def _labels_table(self, accounts: list[_Account]) -> pa.Table:
        return pa.Table.from_pylist(
            [
                {
                    "account_id": a.account_id,
                    "label": "distill" if a.campaign else "legit",
                    "persona": a.persona,
                    "campaign_id": a.campaign.id if a.campaign else None,
                    "org_id": a.org_id,
                    "mundane_share": round(a.mundane, 4),
                }
                for a in accounts
            ],
            schema=LABEL_SCHEMA,
        )
