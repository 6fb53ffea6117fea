"""Access to a suspect model: an OpenAI-compatible URL or a local model path. Black-box callables.

``ask(prompt) -> text``. A URL suspect is queried with the standard library (no extra client);
a local suspect (``smollm2``, ``smollm2:STATE.pt``, ``gemma3[:STATE.pt]`` or a transformers
folder) needs the
``watermark`` extra.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

from distillwatch.core.errors import DistillwatchError

Ask = Callable[[str], str]


def is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


def openai_ask(
    base_url: str,
    *,
    model: str = "suspect",
    api_key: str | None = None,
    temperature: float = 0.0,
    max_tokens: int = 64,
    timeout: float = 60.0,
) -> Ask:
    """A callable that asks ``{base_url}/chat/completions`` one question."""
    url = base_url.rstrip("/") + "/chat/completions"

    def ask(prompt: str) -> str:
        body = json.dumps(
            {
                "model": model,
                "temperature": temperature,
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": prompt}],
            }
        ).encode()
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                data = json.loads(resp.read())
        except OSError as exc:
            raise DistillwatchError(f"suspect at {base_url} failed: {exc}") from None
        try:
            return str(data["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            raise DistillwatchError(f"suspect at {base_url}: not a chat completion") from None

    return ask


def load_local(target: str) -> tuple[Any, Any]:
    """(model, tokenizer) for ``smollm2[:STATE.pt]``, ``gemma3[:STATE.pt]`` or a transformers
    folder."""
    from distillwatch.watermark.models import GEMMA3, load_model, load_tokenizer

    name, _, state = target.partition(":")
    if name in ("smollm2", GEMMA3):
        which = None if name == "smollm2" else GEMMA3
        model = load_model(which)
        if state:
            import torch

            model.load_state_dict(torch.load(state, map_location="cpu"), strict=False)
            model.eval()
        return model, load_tokenizer(which)
    return load_model(target), load_tokenizer(target)


def local_ask(
    model: Any, tokenizer: Any, *, max_tokens: int = 64, temperature: float = 0.0, seed: int = 0
) -> Ask:
    """A callable answering one prompt with a local model (greedy by default)."""
    from distillwatch.watermark.models import generate

    def ask(prompt: str) -> str:
        gens = generate(
            model,
            tokenizer,
            [prompt],
            max_new_tokens=max_tokens,
            do_sample=temperature > 0,
            temperature=temperature or 1.0,
            batch_size=1,
            seed=seed,
        )
        return gens[0].text

    return ask


def suspect_ask(target: str, **kwargs: Any) -> Ask:
    """A black-box callable for a URL or local target."""
    if is_url(target):
        return openai_ask(target, **kwargs)
    model, tok = load_local(target)
    return local_ask(
        model,
        tok,
        max_tokens=kwargs.get("max_tokens", 64),
        temperature=kwargs.get("temperature", 0.0),
    )
