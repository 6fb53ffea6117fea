"""Scenario knobs: absolute campaign sizes, the hydra and hard scenarios, and that knobs left off
change nothing."""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from distillwatch.core.errors import DistillwatchError
from distillwatch.sim import SimResult, Simulator, load_corpora, load_scenario, shipped_fit
from distillwatch.sim import templates as T
from distillwatch.sim.content import CLIENTS
from distillwatch.sim.engine import _Planner
from distillwatch.sim.scenario import Scenario

SCENARIOS = Path(__file__).parents[2] / "src" / "distillwatch" / "sim" / "scenarios"
CAMPAIGN = "calls_per_day: [13, 20], mundane_share: [0, 0]"


def _scenario(tmp_path: Path, text: str) -> Scenario:
    f = tmp_path / "s.yaml"
    f.write_text(text)
    return load_scenario(f)


def _run(sc: Scenario, accounts: int, days: int = 1, seed: int = 1) -> SimResult:
    return Simulator(sc, load_corpora(), shipped_fit(), seed=seed).run(accounts, days)


def _labels(res: SimResult) -> pl.DataFrame:
    labels = pl.from_arrow(res.labels)
    assert isinstance(labels, pl.DataFrame)
    return labels


def _distill_calls(res: SimResult) -> pl.DataFrame:
    calls = pl.from_arrow(res.calls.select(["account_id", "request"]))
    assert isinstance(calls, pl.DataFrame)
    return calls.unnest("request").join(
        _labels(res).select("account_id", "label", "persona", "org_id"), on="account_id"
    )


# --- absolute campaign sizes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("campaign", "where"),
    [
        (f"{{id: x, style: cot_coercion, accounts: 0, {CAMPAIGN}}}", "campaigns/0/accounts"),
        (f"{{id: x, style: cot_coercion, accounts: 2.5, {CAMPAIGN}}}", "campaigns/0/accounts"),
        (f"{{id: x, style: cot_coercion, accounts: many, {CAMPAIGN}}}", "campaigns/0/accounts"),
        (f"{{id: x, style: cot_coercion, {CAMPAIGN}}}", "campaigns/0"),  # no share, no accounts
        (
            f"{{id: x, style: cot_coercion, share: 1, paraphrases: -1, {CAMPAIGN}}}",
            "campaigns/0/paraphrases",
        ),
        (
            f"{{id: x, style: cot_coercion, share: 1, legit_system: 2, {CAMPAIGN}}}",
            "campaigns/0/legit_system",
        ),
    ],
)
def test_campaign_knobs_are_validated(tmp_path: Path, campaign: str, where: str) -> None:
    with pytest.raises(DistillwatchError, match=rf"s\.yaml: at {where}"):
        _scenario(tmp_path, f"campaigns:\n  - {campaign}\n")


def test_persona_knobs_only_where_they_mean_something(tmp_path: Path) -> None:
    with pytest.raises(DistillwatchError, match="personas/casual_chat: cot_prompts applies only"):
        _scenario(tmp_path, "personas:\n  casual_chat: {cot_prompts: 0.5}\n")
    with pytest.raises(DistillwatchError, match="personas/education/shared_egress"):
        _scenario(tmp_path, "personas:\n  education: {shared_egress: 1.5}\n")


def test_absolute_sizes_are_honoured_exactly_and_legit_is_the_rest(tmp_path: Path) -> None:
    sc = _scenario(
        tmp_path,
        "legit_share: 0.9\ncampaigns:\n"
        f"  - {{id: small, style: cot_coercion, accounts: 7, replacement: 0.5, {CAMPAIGN}}}\n"
        f"  - {{id: big, style: passive_harvest, accounts: 60, share: 0.9, min_accounts: 99,"
        f" {CAMPAIGN}}}\n"
        f"  - {{id: shared, style: alpaca_sweep, share: 0.3, {CAMPAIGN}}}\n",
    )
    assert sc.fixed_accounts == 67
    labels = _labels(_run(sc, 400))
    sizes = dict(labels.group_by("campaign_id").len().iter_rows())
    # share-sized campaigns split (400 - 67) * (1 - 0.9) = 33 accounts; legit are the rest
    assert sizes == {"small": 7, "big": 60, "shared": 33, None: 400 - 67 - 33}


def test_a_population_smaller_than_its_campaigns_is_an_error(tmp_path: Path) -> None:
    sc = _scenario(
        tmp_path, f"campaigns:\n  - {{id: big, style: cot_coercion, accounts: 500, {CAMPAIGN}}}\n"
    )
    with pytest.raises(DistillwatchError, match=r"need 500 accounts \(500 of them .*than the 499"):
        _run(sc, 499)
    assert _labels(_run(sc, 500))["label"].to_list() == ["distill"] * 500


def test_hydra_campaign_sizes_and_shared_egress() -> None:
    sc = load_scenario(SCENARIOS / "hydra.yaml")
    sizes = {c.id: c.accounts for c in sc.campaigns}
    assert sorted(sizes.values()) == [50, 500, 500, 5000]
    assert {c.style for c in sc.campaigns} >= {"passive_harvest"}
    for c in sc.campaigns:
        assert (c.calls_per_day, c.replacement > 0) == ((13, 170), True)
        if c.style != "passive_harvest":
            assert c.mundane_share == (0.2, 0.8)
    # planning alone (no calls): exact sizes, and platforms whose accounts share their egress
    accounts = _Planner(sc, shipped_fit(), 6050 + 2000, 1, seed=3).plan()
    per_campaign = Counter(a.campaign.id for a in accounts if a.campaign)
    assert per_campaign == sizes
    assert sum(a.campaign is None for a in accounts) == 2000
    orgs: dict[str, set[tuple[str, ...]]] = {}
    for a in accounts:
        if a.persona in ("agent_platform", "reseller") and a.org_id:
            orgs.setdefault(a.org_id, set()).add(tuple(a.ips))
    big = [ips for ips in orgs.values() if len(ips) == 1]
    assert big, "no platform org whose accounts all leave through the same addresses"


# --- hard scenario ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hard() -> SimResult:
    return _run(load_scenario(SCENARIOS / "hard.yaml"), 1200, days=2, seed=5)


@pytest.fixture(scope="module")
def default() -> SimResult:
    return _run(load_scenario(), 1200, days=2, seed=5)


PRODUCT_SYSTEM = re.compile(r"You are .+ for [A-Z]\w+ [A-Z]\w+\.")


def _legit_system(system: str | None) -> bool:
    return system in (None, T.AGENT_SYSTEM, T.TUTOR_SYSTEM) or bool(
        PRODUCT_SYSTEM.match(system or "")
    )


def test_hard_campaigns_send_legitimate_system_prompts_or_none(
    hard: SimResult, default: SimResult
) -> None:
    experts = {p for p in T.EXPERT_PERSONAS if p}
    soft = _distill_calls(default).filter(pl.col("label") == "distill")
    assert soft["system"].is_in(list(experts)).any()  # the artefact the knob removes
    calls = _distill_calls(hard).filter(pl.col("label") == "distill")
    systems = calls.group_by("account_id").agg(pl.col("system").unique())
    # one fixed system prompt per account that has one from the legit pool; the others (20 %)
    # still send their style's own
    fixed = systems.filter(pl.col("system").list.len() == 1)["system"].list.first().to_list()
    assert fixed and all(_legit_system(s) for s in fixed)
    assert sum(s is not None for s in fixed) >= 5
    share_experts = calls["system"].is_in(list(experts)).mean()
    assert share_experts is not None and float(share_experts) < 0.1


def _skeletons(res: SimResult) -> Counter[str]:
    """The wrappers of cot_coercion calls: each prompt with its task cut out."""
    corpora = load_corpora()
    tasks = sorted({t for pool in (corpora.math, corpora.mcq, corpora.code) for t, _ in pool})
    calls = _distill_calls(res).filter(pl.col("persona") == "cot_coercion")
    out: Counter[str] = Counter()
    for prompt in calls["messages"].list.last().struct.field("content").to_list():
        task = next((t for t in tasks if t in prompt), None)
        if task is not None:  # (mundane calls carry no task)
            out[prompt.replace(task, "{task}")] += 1
    return out


def test_hard_campaigns_paraphrase_their_templates(hard: SimResult, default: SimResult) -> None:
    soft, varied = _skeletons(default), _skeletons(hard)
    assert len(soft) <= len(T.COT_COERCION)
    assert len(varied) >= 5 * len(soft)
    # fewer exact repeats: the commonest wrapper carries a much smaller share of the calls
    assert max(varied.values()) / varied.total() < 0.5 * max(soft.values()) / soft.total()


def test_hard_campaign_clients_use_legitimate_parameters(hard: SimResult) -> None:
    calls = _distill_calls(hard).filter(pl.col("persona") == "cot_coercion")
    product = CLIENTS["product"]
    # a CoT harvester configured like a product back-end: 0.2 / 512 (never a CoT default)
    like_backend = calls.filter(
        (pl.col("temperature") == product.temperature[0])
        & (pl.col("max_tokens") == product.max_tokens[0])
    )
    assert like_backend.height > 0


def _starts_any(prompts: pl.Series, templates: list[str]) -> bool:
    prefixes = tuple(t.split("{task}")[0] for t in templates if not t.startswith("{task}"))
    return any(p.startswith(prefixes) for p in prompts.to_list())


def test_hard_legit_personas_look_suspicious(hard: SimResult) -> None:
    calls = _distill_calls(hard).filter(pl.col("label") == "legit")
    calls = calls.with_columns(prompt=pl.col("messages").list.last().struct.field("content"))
    # chain-of-thought harness formats (beyond the zero-shot one every harness sends)
    cot = [t for ts in T.EVAL_COT.values() for t in ts if t not in T.EVAL_HARNESS.values()]
    assert _starts_any(calls.filter(pl.col("persona") == "eval_harness")["prompt"], cot)
    students = calls.filter(pl.col("persona") == "education")["prompt"]
    assert _starts_any(students, list(T.TUTOR_STEPS))
    # one house template (system prompt with a rules block) across an org's accounts
    house = (
        calls.filter(
            (pl.col("persona") == "product_backend") & pl.col("system").str.contains("Rules:")
        )
        .group_by("org_id", "system")
        .agg(pl.col("account_id").n_unique())
    )
    assert house["account_id"].max() >= 2


def test_hard_scenario_is_deterministic(hard: SimResult) -> None:
    again = _run(load_scenario(SCENARIOS / "hard.yaml"), 1200, days=2, seed=5)
    assert again.calls.equals(hard.calls) and again.labels.equals(hard.labels)


# --- knobs left off change nothing ------------------------------------------------------------


def _digest(res: SimResult) -> str:
    h = hashlib.sha256()
    for table in (res.calls, res.accounts, res.labels, res.models):
        h.update(json.dumps(table.to_pylist(), default=str, sort_keys=True).encode())
    return h.hexdigest()


def test_knobs_set_to_their_defaults_change_no_byte(tmp_path: Path) -> None:
    doc = (SCENARIOS / "default.yaml").read_text()
    off = "service_hours: 0, wave_minutes: 15, legit_system: 0, legit_params: 0, paraphrases: 0, "
    explicit = re.sub(r"(  - \{id: camp-\w+, )", lambda m: m.group(1) + off, doc)
    explicit = explicit.replace("org_size: [1, 1]}", "org_size: [1, 1], shared_egress: 0}")
    assert explicit.count("paraphrases: 0") == 8 and "shared_egress: 0" in explicit
    assert _digest(_run(_scenario(tmp_path, explicit), 300)) == _digest(_run(load_scenario(), 300))


# The default scenario's output for one seed, pinned: a change here means every earlier
# simulated population changes too. If that is intended, say so in the change and update this.
DEFAULT_DIGEST = "936e23904a9fa6e9a18fb67df7d8b6a2e5da8c0e4307cea524b3998c1c515569"


def test_default_scenario_output_is_pinned() -> None:
    assert _digest(_run(load_scenario(), 150, days=1, seed=11)) == DEFAULT_DIGEST


def test_paraphrases_keep_placeholders_and_vary() -> None:
    import random

    rng = random.Random(0)
    families = (
        T.COT_COERCION, T.BENCHMARK_SWEEP, T.RUBRIC_GRADING, T.TOOL_TASK, T.SAFE_REWRITE,
        T.TASK_GENERATION,
    )  # fmt: skip
    for family in families:
        for template in family:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
            variants = {T.paraphrase(template, rng) for _ in range(60)}
            for v in variants:
                assert {f for _, f, _, _ in string.Formatter().parse(v) if f} == fields, v
            assert len(variants) >= (5 if template != "{task}" else 1), template
