"""Real prompt corpora for the simulator, from a staged corpus folder or the bundled sample.

Both have the layout of ``shared/data`` (``sharegpt_v3/…``, ``gsm8k/…``); any file may be missing,
and a pool missing from the folder is taken from the bundled sample instead, so the simulator
always has every pool.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import orjson

from distillwatch.core.errors import DistillwatchError

MAX_CHARS = 6000  # one message's text is clipped to this many characters


def bundled_dir() -> Path:
    """The folder of the permissively licensed sample that ships in the package."""
    return Path(str(resources.files("distillwatch") / "data" / "corpora"))


@dataclass(frozen=True, slots=True)
class Corpora:
    """Pools of real text the simulator draws from; every pool is a tuple of plain values.

    - ``chats``: conversations, each a tuple of (user, assistant) turns (ShareGPT)
    - ``natural``: single natural prompts with an answer (ShareGPT first turns, OASST)
    - ``math``: (question, worked answer) (GSM8K)
    - ``mcq``: (question with lettered choices, answer letter) (MMLU)
    - ``code``: (task, reference solution or "") (HumanEval, MBPP, MBPP+)
    - ``instructions``: (instruction, input, output) Alpaca-style (Alpaca, Code Alpaca; falls back
      to natural prompts and code tasks when those non-commercial sets are not staged)
    - ``sources``: pool -> the files it came from
    """

    chats: tuple[tuple[tuple[str, str], ...], ...]
    natural: tuple[tuple[str, str], ...]
    math: tuple[tuple[str, str], ...]
    mcq: tuple[tuple[str, str], ...]
    code: tuple[tuple[str, str], ...]
    instructions: tuple[tuple[str, str, str], ...]
    sources: dict[str, list[str]] = field(default_factory=dict)

    @property
    def answers(self) -> tuple[str, ...]:
        """Every assistant text, for responses to prompts that have none of their own."""
        return tuple(a for conv in self.chats for _, a in conv)


def _records(path: Path) -> Iterator[dict[str, object]]:
    with gzip.open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                rec = orjson.loads(line)
                if isinstance(rec, dict):
                    yield rec


def _clip(text: object) -> str:
    return str(text or "")[:MAX_CHARS]


def _find(folders: list[Path], rel: str, sources: dict[str, list[str]], pool: str) -> Path | None:
    for folder in folders:
        path = folder / rel
        if path.is_file():
            sources.setdefault(pool, []).append(str(path))
            return path
    return None


def _sharegpt(path: Path) -> list[tuple[tuple[str, str], ...]]:
    convs: dict[str, list[tuple[int, list[tuple[str, str]]]]] = {}
    for rec in _records(path):
        turns: list[tuple[str, str]] = []
        pending: str | None = None
        msgs = rec.get("conversations")
        for msg in msgs if isinstance(msgs, list) else []:
            role, value = msg.get("from"), _clip(msg.get("value"))
            if role == "human":
                pending = value
            elif role == "gpt" and pending is not None and pending.strip():
                turns.append((pending, value))
                pending = None
        if turns:
            cid = str(rec.get("conversation_id") or rec.get("id"))
            seg = rec.get("segment")
            convs.setdefault(cid, []).append((seg if isinstance(seg, int) else 0, turns))
    return [tuple(t for _, ts in sorted(parts) for t in ts) for parts in convs.values()]


def load_corpora(folder: Path | None = None) -> Corpora:
    """Load every pool from ``folder`` (a staged ``shared/data``), else from the bundled sample."""
    folders = [folder] if folder is not None else []
    if folder is not None and not folder.is_dir():
        raise DistillwatchError(f"corpus folder {folder} does not exist")
    folders.append(bundled_dir())
    src: dict[str, list[str]] = {}

    path = _find(folders, "sharegpt_v3/sharegpt_v3_prefix.jsonl.gz", src, "chats")
    chats = _sharegpt(path) if path else []
    if not chats:
        raise DistillwatchError("no ShareGPT conversations found in the corpus folders")

    natural = [conv[0] for conv in chats]
    path = _find(folders, "oasst_prompt_lottery/prompt_lottery_en_250.jsonl.gz", src, "natural")
    if path:
        answers = [a for conv in chats for _, a in conv]
        natural += [
            (_clip(r.get("prompt")), answers[i * 7919 % len(answers)])
            for i, r in enumerate(_records(path))
            if r.get("prompt")
        ]

    math: list[tuple[str, str]] = []
    for rel in ("gsm8k/gsm8k_train.jsonl.gz", "gsm8k/gsm8k_test.jsonl.gz"):
        path = _find(folders[:1] if rel.endswith("test.jsonl.gz") else folders, rel, src, "math")
        if path:
            math += [(_clip(r["question"]), _clip(r["answer"])) for r in _records(path)]

    mcq: list[tuple[str, str]] = []
    path = _find(folders, "mmlu/mmlu_all_splits.jsonl.gz", src, "mcq")
    if path:
        for r in _records(path):
            choices = r.get("choices")
            if isinstance(choices, list) and len(choices) == 4:
                lettered = "\n".join(f"{'ABCD'[i]}. {c}" for i, c in enumerate(choices))
                mcq.append((f"{_clip(r['question'])}\n{lettered}", str(r.get("answer", ""))))

    code: list[tuple[str, str]] = []
    path = _find(folders, "humaneval/HumanEval.jsonl.gz", src, "code")
    if path:
        code += [(_clip(r["prompt"]), _clip(r.get("canonical_solution"))) for r in _records(path)]
    path = _find(folders, "mbpp_sanitized/sanitized-mbpp.jsonl.gz", src, "code")
    if path:
        code += [(_clip(r["prompt"]), _clip(r.get("code"))) for r in _records(path)]
    path = _find(folders[:1], "mbppplus_prompts/mbppplus_prompts.jsonl.gz", src, "code")
    if path:
        code += [(_clip(r["prompt"]), "") for r in _records(path)]

    instructions: list[tuple[str, str, str]] = []
    nc_sets = (
        "llamafactory_alpaca_en_demo/alpaca_en_demo_1k.jsonl.gz",
        "code_alpaca/code_alpaca_2k.jsonl.gz",
    )
    for rel in nc_sets:  # CC BY-NC: only ever read from a staged folder, never bundled
        path = _find(folders[:1], rel, src, "instructions")
        if path:
            instructions += [
                (_clip(r.get("instruction")), _clip(r.get("input")), _clip(r.get("output")))
                for r in _records(path)
                if r.get("instruction")
            ]
    path = _find(
        folders[:1], "alpaca_seed_tasks/alpaca_seed_tasks_175.jsonl.gz", src, "instructions"
    )
    if path:
        for r in _records(path):
            inst = r.get("instances")
            first = inst[0] if isinstance(inst, list) and inst else {}
            instructions.append(
                (_clip(r.get("instruction")), _clip(first.get("input")), _clip(first.get("output")))
            )
    if not instructions:  # bundled fallback: natural prompts and code tasks as instructions
        src.setdefault("instructions", []).append("fallback: natural + code pools")
        instructions = [(p, "", a) for p, a in natural[::2]] + [(p, "", s) for p, s in code]

    for name, pool in (("math", math), ("mcq", mcq), ("code", code)):
        if not pool:
            raise DistillwatchError(f"corpus pool {name!r} is empty: no source file found")

    return Corpora(
        chats=tuple(chats),
        natural=tuple(natural),
        math=tuple(math),
        mcq=tuple(mcq),
        code=tuple(code),
        instructions=tuple(instructions),
        sources=src,
    )
