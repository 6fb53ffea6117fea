"""Builders for small slim call frames and account tables, and a NAT-trap population.

A plain module (not a conftest) with a name no other test folder uses, imported by the tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)

SLIM = {
    "account_id": pl.String,
    "org_id": pl.String,
    "ts": pl.Datetime("us", "UTC"),
    "ip": pl.String,
    "asn": pl.Int64,
    "user_agent": pl.String,
    "tls_fingerprint": pl.String,
    "family_id": pl.UInt64,
    "family_kind": pl.String,
}
ACCOUNTS = {
    "account_id": pl.String,
    "org_id": pl.String,
    "created_at": pl.Datetime("us", "UTC"),
    "signup_channel": pl.String,
    "payment_fingerprint": pl.String,
    "verified": pl.Boolean,
    "country": pl.String,
    "allowlisted": pl.Boolean,
}


def make_calls(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A slim call frame from dicts; ``ts`` may be minutes after ``T0`` (a number)."""
    fixed = [
        {k: (T0 + dt.timedelta(minutes=v) if k == "ts" and isinstance(v, int | float) else v)
         for k, v in r.items()}
        for r in rows
    ]  # fmt: skip
    return pl.DataFrame(fixed, schema=SLIM)


def make_accounts(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """An account table from dicts; ``created_at`` may be minutes after ``T0`` (a number)."""
    fixed = [
        {k: (T0 + dt.timedelta(minutes=v) if k == "created_at" and isinstance(v, int | float)
             else v) for k, v in r.items()}
        for r in rows
    ]  # fmt: skip
    return pl.DataFrame(fixed, schema=ACCOUNTS)


POPULAR_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0"
NAT_IP = "198.51.100.7"
PUBLIC_TEMPLATE = 1_000
CAMPAIGN_TEMPLATES = (2_001, 2_002, 2_003)


def nat_trap(
    seed: int = 0, campus_org: str | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, list[str], list[str]]:
    """Calls and accounts over three days: 200 campus accounts (in ``campus_org``, or unrelated
    when None) behind one NAT address
    with one popular browser (many using one public prompt template), 200 other accounts on
    home addresses with the same browser, and a 20-account campaign (4 cards, 3 private template
    families, a custom client, synchronized waves) that also reaches the API through the NAT.
    Returns calls, accounts, the campaign's ids and the NAT accounts' ids."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    accounts: list[dict[str, Any]] = []
    nat = [f"nat-{i:03d}" for i in range(200)]
    home = [f"home-{i:03d}" for i in range(200)]
    campaign = [f"camp-{i:02d}" for i in range(20)]
    minutes = 3 * 24 * 60
    for i, acct in enumerate(nat + home):
        on_nat = acct.startswith("nat")
        public = on_nat and i % 4 != 0
        for _ in range(int(rng.integers(8, 25))):
            day = int(rng.integers(0, 3))
            ts = day * 1440 + float(rng.uniform(8 * 60, 20 * 60))
            templated = public and rng.random() < 0.5
            rows.append(
                {
                    "account_id": acct,
                    "ts": ts,
                    "ip": NAT_IP if on_nat else f"203.0.{i % 250}.{(i * 7) % 250 + 1}",
                    "asn": 1312 if on_nat else 7922,
                    "user_agent": POPULAR_UA,
                    "tls_fingerprint": "tls-chrome",
                    "family_id": PUBLIC_TEMPLATE if templated else None,
                    "family_kind": "template" if templated else None,
                }
            )
        accounts.append(
            {
                "account_id": acct,
                "org_id": campus_org if on_nat else None,
                "created_at": -float(rng.uniform(30, 900)) * 1440,
                "signup_channel": "education" if on_nat else "self_serve",
                "payment_fingerprint": f"pay-{acct}",
            }
        )
    waves = np.sort(rng.uniform(0, 1440 - 5, size=(3, 8)), axis=1)
    proxies = [f"100.64.{k}.{k + 10}" for k in range(40)]
    for j, acct in enumerate(campaign):
        families = [CAMPAIGN_TEMPLATES[j % 3], CAMPAIGN_TEMPLATES[(j + 1) % 3]]
        for day in range(3):
            for wave in waves[day]:
                if rng.random() < 0.75:
                    for _ in range(2):
                        ts = day * 1440 + float(wave) + float(rng.uniform(0, 4))
                        family = families[int(rng.integers(0, 2))]
                        if rng.random() < 0.2:
                            family = PUBLIC_TEMPLATE
                        rows.append(
                            {
                                "account_id": acct,
                                "ts": ts,
                                "ip": NAT_IP if rng.random() < 0.5 else proxies[j * 2 + day % 2],
                                "asn": 1312,
                                "user_agent": "python-requests/2.31.0",
                                "tls_fingerprint": "tls-custom-harvester",
                                "family_id": family,
                                "family_kind": "template",
                            }
                        )
            for _ in range(4):  # unsynchronized calls with the popular browser
                rows.append(
                    {
                        "account_id": acct,
                        "ts": day * 1440 + float(rng.uniform(0, 1440)),
                        "ip": NAT_IP,
                        "asn": 1312,
                        "user_agent": POPULAR_UA,
                        "tls_fingerprint": "tls-chrome",
                        "family_id": None,
                        "family_kind": None,
                    }
                )
        accounts.append(
            {
                "account_id": acct,
                "org_id": None,
                "created_at": -10 * 1440 + float(rng.uniform(0, 2 * 1440)),
                "signup_channel": "education",
                "payment_fingerprint": f"pay-card-{j % 4}",
            }
        )
    calls = make_calls([r for r in rows if r["ts"] < minutes])
    return calls, make_accounts(accounts), campaign, nat
