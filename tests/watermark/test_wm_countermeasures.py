"""Countermeasures: reasoning withheld or summarised, canaries issued, recorded and probed."""

from __future__ import annotations

import copy

from distillwatch.watermark.countermeasures import (
    CanaryRegistry,
    canary_for,
    canary_hit,
    canary_test,
    decoy_canaries,
    insert_canary,
    withhold_reasoning,
)

SECRET = b"canary-secret-0123456789"


def test_openai_reasoning_fields_and_think_tags_are_withheld_without_mutation() -> None:
    resp = {
        "id": "x",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "<think>step 1. step 2.</think>The answer is 4.",
                    "reasoning_content": "secret chain of thought",
                },
            }
        ],
    }
    before = copy.deepcopy(resp)
    out = withhold_reasoning(resp)
    assert resp == before
    msg = out["choices"][0]["message"]
    assert msg == {"role": "assistant", "content": "The answer is 4."}


def test_summary_mode_keeps_a_short_summary() -> None:
    long = "First, consider the sum. " * 40
    resp = {"choices": [{"message": {"content": f"<think>{long}</think>4", "reasoning": long}}]}
    msg = withhold_reasoning(resp, mode="summary")["choices"][0]["message"]
    assert msg["reasoning"].startswith("[reasoning summarised]") and len(msg["reasoning"]) < 320
    assert msg["content"].startswith("<think>[reasoning summarised]") and msg["content"].endswith(
        "4"
    )


def test_anthropic_thinking_blocks_and_responses_api_reasoning() -> None:
    anth = {
        "content": [
            {"type": "thinking", "thinking": "hmm"},
            {"type": "redacted_thinking", "data": "xx"},
            {"type": "text", "text": "Hello"},
        ]
    }
    assert withhold_reasoning(anth)["content"] == [{"type": "text", "text": "Hello"}]
    summ = withhold_reasoning(anth, mode="summary")["content"]
    assert summ[0]["text"].startswith("[reasoning summarised]") and len(summ) == 2
    responses = {
        "output": [
            {"type": "reasoning", "summary": [], "encrypted_content": "e"},
            {"type": "message", "content": []},
        ]
    }
    assert withhold_reasoning(responses)["output"] == [{"type": "message", "content": []}]


def test_canaries_are_unique_per_account_and_deterministic() -> None:
    cs = [canary_for(f"acct-{i}", SECRET) for i in range(50)]
    assert len({c.fact for c in cs}) == 50 and len({c.canary_id for c in cs}) == 50
    assert canary_for("acct-1", SECRET) == cs[1]
    assert canary_for("acct-1", SECRET, index=1) != cs[1]
    assert canary_for("acct-1", b"other-secret-0123456789") != cs[1]
    assert all(c.answer in c.fact and c.answer not in c.question for c in cs)


def test_insert_and_registry_round_trip(tmp_path) -> None:
    c = canary_for("acct-9", SECRET)
    resp = {"choices": [{"message": {"content": "Paris."}}]}
    out = insert_canary(resp, c)
    assert (
        c.fact in out["choices"][0]["message"]["content"]
        and resp["choices"][0]["message"]["content"] == "Paris."
    )
    reg = CanaryRegistry(tmp_path / "c.sqlite")
    reg.record(c, issued_at=1.0)
    reg.record(c, issued_at=2.0)  # idempotent
    reg.record(canary_for("acct-2", SECRET), issued_at=3.0)
    assert reg.issued("acct-9") == [c]
    assert len(CanaryRegistry(tmp_path / "c.sqlite").issued()) == 2


def test_canary_test_separates_a_model_that_learnt_them() -> None:
    issued = [canary_for(f"acct-{i}", SECRET) for i in range(12)]
    decoys = decoy_canaries(SECRET, 12)
    by_q = {c.question: c.answer for c in issued}

    def trained(q: str) -> str:  # learnt 8 of 12 issued canaries
        return by_q[q] if q in by_q and list(by_q).index(q) < 8 else "1850"

    res = canary_test(trained, issued, decoys)
    assert res.hits == 8 and res.p_value < 1e-3 and res.n_queries == 24
    clean = canary_test(lambda q: "1850", issued, decoys)
    assert clean.p_value > 0.5
    assert canary_hit("It was 1743.", issued[0].__class__("i", "a", "f", "q", "1743"))
