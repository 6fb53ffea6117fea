"""The simulator: coverage of personas and campaigns, label consistency, determinism, structure."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from distillwatch.core.errors import DistillwatchError
from distillwatch.core.schema import ACCOUNT_SCHEMA, CALL_SCHEMA, LABEL_SCHEMA, MODEL_SCHEMA
from distillwatch.sim import (
    ATTACK_STYLES,
    LEGIT_PERSONAS,
    SimResult,
    Simulator,
    load_corpora,
    load_scenario,
    shipped_fit,
    summarize,
)

ACCOUNTS, DAYS = 1500, 3


def _run(seed: int, accounts: int = ACCOUNTS, days: int = DAYS) -> SimResult:
    # bundled corpora: the tests must not depend on a staged corpus folder
    return Simulator(load_scenario(), load_corpora(), shipped_fit(), seed=seed).run(accounts, days)


@pytest.fixture(scope="module")
def sim() -> SimResult:
    return _run(7)


def _frames(sim: SimResult) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    calls = pl.from_arrow(sim.calls)
    labels = pl.from_arrow(sim.labels)
    accounts = pl.from_arrow(sim.accounts)
    assert isinstance(calls, pl.DataFrame)
    assert isinstance(labels, pl.DataFrame)
    assert isinstance(accounts, pl.DataFrame)
    return calls, labels, accounts


def test_tables_have_the_canonical_schemas(sim: SimResult) -> None:
    assert sim.calls.schema.equals(CALL_SCHEMA)
    assert sim.accounts.schema.equals(ACCOUNT_SCHEMA)
    assert sim.models.schema.equals(MODEL_SCHEMA)
    assert sim.labels.schema.equals(LABEL_SCHEMA)
    assert sim.calls.num_rows > 10 * ACCOUNTS
    assert sim.calls["ts"].is_valid().to_pylist().count(False) == 0


def test_every_persona_and_campaign_appears_with_traffic(sim: SimResult) -> None:
    calls, labels, _ = _frames(sim)
    active = labels.join(calls.group_by("account_id").len(), on="account_id")
    personas = set(active["persona"])
    assert set(LEGIT_PERSONAS) <= personas
    assert set(ATTACK_STYLES) <= personas
    campaign_ids = {c.id for c in load_scenario().campaigns}
    assert campaign_ids == set(active["campaign_id"].drop_nulls())


def test_labels_are_consistent_with_campaigns_and_accounts(sim: SimResult) -> None:
    calls, labels, accounts = _frames(sim)
    assert labels.height == accounts.height == ACCOUNTS
    assert labels["account_id"].n_unique() == ACCOUNTS
    assert set(calls["account_id"].unique()) <= set(labels["account_id"])
    distill = labels.filter(pl.col("label") == "distill")
    legit = labels.filter(pl.col("label") == "legit")
    assert distill["campaign_id"].null_count() == 0
    assert legit["campaign_id"].null_count() == legit.height
    assert set(distill["persona"]) <= set(ATTACK_STYLES)
    assert set(legit["persona"]) <= set(LEGIT_PERSONAS)
    # one attack style per campaign, and the org in labels is the account's org
    assert distill.group_by("campaign_id").agg(pl.col("persona").n_unique())["persona"].max() == 1
    joined = labels.join(accounts, on="account_id", suffix="_acct")
    assert (joined["org_id"].eq_missing(joined["org_id_acct"])).all()
    # calls carry the account's org
    org_calls = (
        calls.select("account_id", "org_id")
        .unique()
        .join(accounts.select("account_id", "org_id"), on="account_id", suffix="_acct")
    )
    assert (org_calls["org_id"].eq_missing(org_calls["org_id_acct"])).all()


def test_account_ids_do_not_reveal_labels(sim: SimResult) -> None:
    _, labels, _ = _frames(sim)
    first = labels.head(ACCOUNTS // 2)
    # shuffled: the first half of the table holds distill accounts at about the overall rate
    overall = (labels["label"] == "distill").mean()
    assert abs((first["label"] == "distill").mean() - overall) < 0.05
    assert labels["account_id"].str.starts_with("acct-").all()


def test_same_seed_same_tables_other_seed_differs() -> None:
    a, b, c = _run(3, 300, 2), _run(3, 300, 2), _run(4, 300, 2)
    assert a.calls.equals(b.calls) and a.accounts.equals(b.accounts) and a.labels.equals(b.labels)
    assert not a.calls.equals(c.calls)
    assert a.labels["account_id"] != c.labels["account_id"]


def test_campaign_infrastructure_and_allowlist(sim: SimResult) -> None:
    calls, labels, accounts = _frames(sim)
    acc = accounts.join(
        labels.select("account_id", "label", "persona", "campaign_id"), on="account_id"
    )
    shared = (
        acc.filter(pl.col("label") == "distill")
        .group_by("campaign_id", "payment_fingerprint")
        .len()
        .filter(pl.col("len") > 1)
    )
    assert shared.height > 0  # some campaign members share a card
    partners = acc.filter(pl.col("persona") == "synthetic_data_partner")
    assert partners["allowlisted"].all()
    assert not acc.filter(pl.col("persona") != "synthetic_data_partner")["allowlisted"].any()
    # sticky residential-proxy sessions rotate: campaign accounts use more addresses than most
    ips = (
        calls.select("account_id", pl.col("client").struct.field("ip"))
        .join(labels.select("account_id", "label"), on="account_id")
        .group_by("account_id", "label")
        .agg(pl.col("ip").n_unique(), pl.len())
        .filter(pl.col("len") >= 20)
    )
    med = ips.group_by("label").agg(pl.col("ip").median()).sort("label")
    assert (
        med.filter(pl.col("label") == "distill")["ip"][0]
        > med.filter(pl.col("label") == "legit")["ip"][0]
    )


def test_replacement_accounts_start_after_they_are_created(sim: SimResult) -> None:
    calls, labels, accounts = _frames(sim)
    first = calls.group_by("account_id").agg(pl.col("ts").min().alias("first"))
    j = first.join(accounts, on="account_id")
    assert (j["first"] >= j["created_at"]).all()
    # replacements were created inside the window
    start = load_scenario().start
    late = j.join(labels, on="account_id").filter(
        (pl.col("label") == "distill") & (pl.col("created_at") > start)
    )
    assert late.height > 0


def test_release_pivot_campaigns_and_migrants_move_casual_users_do_not(sim: SimResult) -> None:
    s = summarize(sim.calls, sim.labels, sim.models, shipped_fit(), DAYS)
    share = {(r["label"], r["persona"]): r["share_on_new_model_24h"] for r in s["release_pivot"]}
    assert share[("legit", "migrating_customer")] > 0.3
    assert 0.1 < share[("distill", "cot_coercion")] < 0.8
    assert share[("legit", "casual_chat")] < 0.15


def test_volume_quantiles_follow_servegen_shape(sim: SimResult) -> None:
    s = summarize(sim.calls, sim.labels, sim.models, shipped_fit(), DAYS)
    for row in s["volume_quantiles"]:
        if row["quantile"] in (0.75, 0.9):
            ratio = row["sim_ratio_to_median"] / row["servegen_ratio_to_median"]
            assert 0.4 < ratio < 2.5, row


def test_scenario_errors_name_the_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("personas:\n  casual_chat: {share: 2.0}\n")
    with pytest.raises(DistillwatchError, match=r"bad\.yaml: at personas/casual_chat"):
        load_scenario(bad)
    bad.write_text(
        "campaigns:\n  - {id: x, style: not_a_style, share: 1, calls_per_day: [1, 2], mundane_share: [0, 0]}\n"
    )
    with pytest.raises(DistillwatchError, match="campaigns/0/style"):
        load_scenario(bad)


def test_scenario_override_changes_the_population(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "legit_share: 0.5\ncampaigns:\n  - {id: only, style: passive_harvest, share: 1,"
        " calls_per_day: [13, 20], mundane_share: [0, 0]}\n"
    )
    res = Simulator(load_scenario(f), load_corpora(), shipped_fit(), seed=1).run(200, 1)
    labels = pl.from_arrow(res.labels)
    assert isinstance(labels, pl.DataFrame)
    distill = labels.filter(pl.col("label") == "distill")
    assert set(distill["campaign_id"]) == {"only"}
    assert 90 <= distill.height <= 110
    assert isinstance(res.calls, pa.Table)
