"""CLI end to end on tiny inputs: keys, detect, decode, and the attribute verbs against a stub
OpenAI-compatible server on loopback (token ids as text, so no tokenizer is needed)."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
from chat_stub import chat_server
from typer.testing import CliRunner
from wm_synth import sample_text

from distillwatch.cli.main import app
from distillwatch.watermark.countermeasures import CanaryRegistry, canary_for
from distillwatch.watermark.keys import derive_key, load_master
from distillwatch.watermark.spec import WatermarkSpec

runner = CliRunner()


def ids_text(ids: list[int]) -> str:
    return " ".join(map(str, ids))


def test_keygen_key_detect_decode(tmp_path) -> None:
    master_file = tmp_path / "master.hex"
    r = runner.invoke(app, ["watermark", "keygen", "--out", str(master_file)])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["watermark", "keygen", "--out", str(master_file)]).exit_code == 2
    r = runner.invoke(app, ["watermark", "key", "--account", "alice", "--master", str(master_file)])
    assert r.exit_code == 0 and r.output.strip() == "acct:alice"
    key = derive_key(load_master(master_file), "bob", "2026-11")
    spec = WatermarkSpec(width=2)
    text = ids_text(sample_text(np.random.default_rng(0), 120, key, spec))
    (tmp_path / "t.txt").write_text(text)
    args = [
        "watermark",
        "detect",
        str(tmp_path / "t.txt"),
        "--tokenizer",
        "ids",
        "--master",
        str(master_file),
        "--account",
        "bob",
        "--period",
        "2026-11",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and r.output.startswith("WATERMARKED"), r.output
    r = runner.invoke(app, [*args, "--json"])
    payload = json.loads(r.output)
    assert payload["detected"] and payload["p_value"] < 1e-3 and payload["evidence"]
    r = runner.invoke(app, ["watermark", "detect", text, "--tokenizer", "ids", "--key", "0x1"])
    assert r.exit_code == 1 and r.output.startswith("not detected")
    r = runner.invoke(
        app,
        [
            "watermark",
            "decode",
            text,
            "--tokenizer",
            "ids",
            "--master",
            str(master_file),
            "--period",
            "2026-11",
            "--accounts",
            "alice,bob,carol",
            "--json",
        ],
    )
    assert r.exit_code == 0 and json.loads(r.output)["account_key"] == "acct:bob@2026-11"


def test_detect_reports_bad_key_cleanly() -> None:
    r = runner.invoke(app, ["watermark", "detect", "1 2 3", "--tokenizer", "ids"])
    assert r.exit_code == 2 and "error:" in r.output


def test_attribute_radioactivity_closed_mode_against_a_url(tmp_path) -> None:
    rng = np.random.default_rng(1)
    spec = WatermarkSpec(width=1)
    key_args = ["--key", "0x5eed", "--width", "1", "--tokenizer", "ids"]
    from distillwatch.watermark.keys import raw_key

    key = raw_key("0x5eed")
    served = tmp_path / "served.jsonl"
    served.write_text(
        "\n".join(
            json.dumps({"text": ids_text(sample_text(rng, 100, key, spec))}) for _ in range(30)
        )
    )
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"question {i}" for i in range(30)))
    student = WatermarkSpec(width=1, delta=1.0)
    with chat_server(lambda p: ids_text(sample_text(rng, 100, key, student))) as url:
        r = runner.invoke(
            app,
            [
                "attribute",
                "radioactivity",
                "--suspect",
                url,
                "--served",
                str(served),
                "--prompts",
                str(prompts),
                "--json",
                *key_args,
            ],
        )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["radioactive"] and out["mode"] == "closed" and out["n_scored"] > 100
    with chat_server(lambda p: ids_text(sample_text(rng, 100))) as url:
        r = runner.invoke(
            app,
            [
                "attribute",
                "radioactivity",
                "--suspect",
                url,
                "--served",
                str(served),
                "--prompts",
                str(prompts),
                *key_args,
            ],
        )
    assert r.exit_code == 1 and r.output.startswith("not shown"), r.output


def test_attribute_lineage_and_canary_against_urls(tmp_path) -> None:
    import random

    def model(seed: int) -> Callable[[str], str]:
        def ask(prompt: str) -> str:
            rng = random.Random(f"{seed}:{prompt}")
            return " ".join(rng.choice("abcdefghijklmnop") for _ in range(30))

        return ask

    ours, ref = model(1), model(2)
    with chat_server(ours) as u_ours, chat_server(ref) as u_ref, chat_server(ours) as u_sus:
        r = runner.invoke(
            app,
            [
                "attribute",
                "lineage",
                "--suspect",
                u_sus,
                "--ours",
                u_ours,
                "--reference",
                f"ref={u_ref}",
                "--n-probes",
                "20",
                "--json",
            ],
        )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["derived"] and out["probes_needed"] == 10  # 0.5**10 < 1e-3

    master = tmp_path / "m.hex"
    assert runner.invoke(app, ["watermark", "keygen", "--out", str(master)]).exit_code == 0
    secret = load_master(master)
    reg = CanaryRegistry(tmp_path / "c.sqlite")
    issued = [canary_for(f"acct-{i}", secret) for i in range(10)]
    for c in issued:
        reg.record(c, issued_at=0.0)
    answers = {c.completion: c.answer for c in issued}
    with chat_server(lambda q: answers.get(q, "1900")) as url:
        r = runner.invoke(
            app,
            [
                "attribute",
                "canary",
                "--suspect",
                url,
                "--registry",
                str(tmp_path / "c.sqlite"),
                "--master",
                str(master),
                "--json",
            ],
        )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["hits"] == 10 and out["n_queries"] == 30 and out["p_value"] < 1e-3
