"""Plain-English reasons, rendered from evidence items (never stored apart from them)."""

from __future__ import annotations

from distillwatch.core.values import Evidence

# feature -> (what it measures, where it comes from)
FEATURES: dict[str, tuple[str, str]] = {
    "n_calls": ("calls in the window", "feature:volume@1"),
    "active_days": ("days with traffic", "feature:volume@1"),
    "calls_per_active_day": ("calls per active day", "feature:volume@1"),
    "single_turn_share": ("share of single-turn calls", "feature:conversation@1"),
    "mean_messages": ("mean messages per call", "feature:conversation@1"),
    "tools_share": ("share of calls sending tool definitions", "feature:conversation@1"),
    "system_share": ("share of calls with a system prompt", "feature:conversation@1"),
    "high_max_tokens_share": (
        "share of calls asking for ≥ 8,192 output tokens",
        "feature:harvest-params@1",
    ),
    "default_max_tokens_share": (
        "share of calls leaving max_tokens unset",
        "feature:harvest-params@1",
    ),
    "multi_sample_share": ("share of calls with n > 1", "feature:harvest-params@1"),
    "logprobs_share": ("share of calls asking for logprobs", "feature:harvest-params@1"),
    "seed_share": ("share of calls setting a seed", "feature:harvest-params@1"),
    "seed_sweep_share": (
        "share of prompts re-sent with different seeds",
        "feature:harvest-params@1",
    ),
    "high_effort_share": ("share of calls with high reasoning effort", "feature:harvest-params@1"),
    "length_stop_share": ("share of answers cut at max_tokens", "feature:harvest-params@1"),
    "output_input_ratio": ("output tokens per input token", "feature:harvest-params@1"),
    "temperature_std": ("spread of temperatures used", "feature:harvest-params@1"),
    "mean_prompt_chars": ("mean prompt length (characters)", "feature:content@1"),
    "distinct_prompt_share": ("share of distinct prompts", "feature:content@1"),
    "task_entropy": ("spread over task types (bits)", "feature:capability-mix@1"),
    "ip_per_call": ("distinct client addresses per call", "feature:infrastructure@1"),
    "n_ips": ("distinct client addresses", "feature:infrastructure@1"),
    "gap_cv": ("irregularity of gaps between calls (CV)", "feature:timing@1"),
    "burst_share": ("share of calls < 2 s after the previous", "feature:timing@1"),
    "median_gap_s": ("median gap between calls (s)", "feature:timing@1"),
    "hour_entropy": ("spread over hours of the day (bits)", "feature:timing@1"),
    "utc_night_share": ("share of calls 00-06 UTC", "feature:timing@1"),
    "duty_cycle": ("share of 10-minute slots with traffic", "feature:timing@1"),
    "new_model_24h_share": (
        "share of calls to a model in its first 24 h",
        "feature:release-pivot@1",
    ),
    "account_age_days": ("account age at first call (days)", "feature:account@1"),
    "verified": ("account verified", "feature:account@1"),
    "payment_accounts": ("accounts sharing its payment method", "feature:account@1"),
    "family_share": (
        "share of calls in a template or duplicate family",
        "detector:template-families@1",
    ),
    "top_family_share": (
        "share of calls in its most used template family",
        "detector:template-families@1",
    ),
    "n_families": ("template families used", "detector:template-families@1"),
    "shared_template_share": (
        "share of calls in templates shared with ≥ 5 other accounts",
        "detector:template-families@1",
    ),
    "shared_duplicate_share": (
        "share of calls repeating prompts of ≥ 5 other accounts",
        "detector:template-families@1",
    ),
    "max_family_accounts": (
        "most accounts sharing one of its template families",
        "detector:template-families@1",
    ),
    "benchmark_share": (
        "share of calls carrying a public benchmark item",
        "detector:benchmark-sweeps@1",
    ),
    "benchmark_items": ("distinct benchmark items sent", "detector:benchmark-sweeps@1"),
    "benchmarks_swept": ("distinct benchmarks swept", "detector:benchmark-sweeps@1"),
}
for _t in ("code", "math", "mcq", "writing", "reasoning", "tool", "chat"):
    FEATURES[f"task_{_t}_share"] = (f"share of {_t} tasks", "feature:capability-mix@1")


# cluster features (scoring/clusters.py): aggregates over a cluster's members and its links
_CLUSTER = "feature:cluster@1"
FEATURES.update(
    {
        "cluster_score": ("score of the account's cluster", "detector:cluster-gbm@1"),
        "n_accounts": ("accounts in the cluster", _CLUSTER),
        "log_calls": ("log of the cluster's calls", _CLUSTER),
        "calls_per_account": ("calls per member account", _CLUSTER),
        "member_score_mean": ("mean of the members' own scores", _CLUSTER),
        "member_score_max": ("highest member's own score", _CLUSTER),
        "member_score_median": ("median of the members' own scores", _CLUSTER),
        "member_flagged_share": ("share of members scoring ≥ 0.5 on their own", _CLUSTER),
        "member_intent_share": (
            "share of members with ≥ 5 % of calls firing a strong intent rule",
            _CLUSTER,
        ),
        "pooled_intent_share": (
            "share of the cluster's calls firing a strong intent rule",
            _CLUSTER,
        ),
        "orgs_per_account": ("distinct organisations per member", _CLUSTER),
        "allowlisted_share": ("share of allowlisted members", _CLUSTER),
        "median_account_age_days": ("members' median account age (days)", _CLUSTER),
        "task_focus": ("share of the cluster's calls in its main task type", _CLUSTER),
        "link_density": ("share of member pairs directly linked", _CLUSTER),
        "link_weight_per_account": ("link weight per member", _CLUSTER),
    }
)


def _cluster_signal(signal: str) -> tuple[str, str] | None:
    """Descriptions of the generated cluster columns (pooled_*, mean_*, link_*_share)."""
    if signal.startswith("pooled_") and signal[7:] in FEATURES:
        return f"{FEATURES[signal[7:]][0]}, over the cluster's calls", _CLUSTER
    if signal.startswith("mean_") and signal[5:] in FEATURES:
        return f"members' mean {FEATURES[signal[5:]][0]}", _CLUSTER
    if signal.startswith("link_") and signal.endswith("_share"):
        return f"share of the cluster's link weight from {signal[5:-6]} links", _CLUSTER
    return None


def describe(signal: str) -> tuple[str, str]:
    """(description, source) of a feature; rule and channel columns describe themselves."""
    if signal in FEATURES:
        return FEATURES[signal]
    if signal.startswith("rule:"):
        return f"share of calls firing {signal}", signal
    cluster = _cluster_signal(signal)
    if cluster is not None:
        return cluster
    if signal.startswith("channel_"):
        return f"signed up through {signal[8:]}", "feature:account@1"
    return signal.replace("_", " "), "feature:other@1"


def _fmt(x: float) -> str:
    if x == int(x) and abs(x) < 1e6:
        return f"{int(x):,}"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def render(ev: Evidence) -> str:
    """One sentence from one evidence item.

    >>> render(Evidence("high_max_tokens_share", 0.84, 0.0, 1.23, "feature:harvest-params@1"))
    'share of calls asking for ≥ 8,192 output tokens is 0.84 (population median 0): raises the score by 1.23 log-odds [feature:harvest-params@1]'
    """
    what, _ = describe(ev.signal)
    verb = "raises" if ev.weight > 0 else "lowers"
    return (
        f"{what} is {_fmt(ev.value)} (population median {_fmt(ev.baseline)}): "
        f"{verb} the score by {abs(ev.weight):.2f} log-odds [{ev.source}]"
    )
