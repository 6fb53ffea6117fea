"""What each simulated persona and campaign style sends, built from real corpus text.

A generator returns one :class:`Content` per call; consecutive calls of a conversation share its
earlier turns. Generators draw only from the ``random.Random`` they are given, so a seed fixes
every prompt.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from distillwatch.sim import templates as T
from distillwatch.sim.corpora import Corpora

Message = tuple[str, str]
HISTORY_TURNS = 4  # earlier turns a chat client resends with each request
HISTORY_CHARS = 2000  # and at most this many characters of each

# request parameters of legitimate clients: options a client is configured with once
CHAT_TEMPERATURE = (None, None, 0.7, 1.0)  # None: the SDK / server default
CHAT_MAX_TOKENS = (None, None, 1024, 2048)
CHAT_STREAM = (True, True, False)
LONG_MAX_TOKENS = (None, 4096, 8192, 16384)
AGENT_TEMPERATURE = (0.0, 0.2)
AGENT_MAX_TOKENS = (4096, 8192, 16384)
EFFORT = (None, "medium", "high")


class ClientProfile(NamedTuple):
    """What one kind of legitimate client sends besides the prompt: its system prompt
    (``"product"``: a product's own) and the options its parameters are set from."""

    system: str | None
    temperature: tuple[float | None, ...]
    max_tokens: tuple[int | None, ...]
    stream: tuple[bool | None, ...]
    reasoning_effort: tuple[str | None, ...] = (None,)


CLIENTS: dict[str, ClientProfile] = {
    "chat": ClientProfile(None, CHAT_TEMPERATURE, CHAT_MAX_TOKENS, CHAT_STREAM),
    "power": ClientProfile(None, CHAT_TEMPERATURE, LONG_MAX_TOKENS, (True,), EFFORT),
    "product": ClientProfile("product", (0.2,), (512,), (None,)),
    "agent": ClientProfile(T.AGENT_SYSTEM, AGENT_TEMPERATURE, AGENT_MAX_TOKENS, (True,)),
    "tutor": ClientProfile(T.TUTOR_SYSTEM, (0.7,), (None,), (None,)),
    "offline": ClientProfile(None, (0.0,), (1024,), (None,)),  # eval harnesses, batch jobs
    "synthetic": ClientProfile(None, (0.7, 1.0), (2048, 4096), (None,)),
}
# the client kinds behind each legitimate persona's calls, with their shares
PERSONA_CLIENTS: dict[str, dict[str, float]] = {
    "casual_chat": {"chat": 1.0},
    "corporate_team": {"chat": 1.0},
    "power_user": {"power": 1.0},
    "product_backend": {"product": 1.0},
    "migrating_customer": {"product": 1.0},
    "eval_harness": {"offline": 1.0},
    "batch_job": {"offline": 1.0},
    "agent_platform": {"agent": 1.0},
    "education": {"tutor": 1.0},
    "reseller": {"chat": 0.5, "product": 0.3, "agent": 0.2},
    "synthetic_data_partner": {"synthetic": 1.0},
}


def client_system(kind: str, rng: random.Random) -> str | None:
    """The system prompt a client of ``kind`` sends (a freshly made product's, for products)."""
    system = CLIENTS[kind].system
    return T.product_template(rng)[0] if system == "product" else system


class Content(NamedTuple):
    """The request and response text of one call (timing and client fields come elsewhere)."""

    messages: list[Message]
    output: str
    system: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[str] | None = None
    reasoning_effort: str | None = None
    stream: bool | None = None
    seed: int | None = None
    length_factor: float = 1.0  # output tokens relative to the output text's length


@dataclass(slots=True)
class AccountState:
    """What a generator remembers about one account between calls (conversation, sweep position)."""

    conv: int = -1
    turn: int = 0
    cursor: int = 0
    templates: dict[str, list[int]] = field(default_factory=dict)
    pools: list[str] = field(default_factory=list)
    sweep: list[tuple[str, str]] = field(default_factory=list)
    config: dict[str, object] = field(default_factory=dict)
    group: str = ""  # the campaign: paraphrases are made once per campaign and template
    paraphrases: int = 0  # > 0: send one of this many paraphrases of each campaign template
    client: str = ""  # a kind in CLIENTS: send that legitimate client's parameters
    cot: bool = False  # (eval harness, education) asks for step-by-step reasoning


Generator = Callable[["ContentMaker", AccountState, bool], Content]


class ContentMaker:
    """Turns corpus text into calls for every persona and attack style."""

    def __init__(self, corpora: Corpora, rng: random.Random) -> None:
        self.c = corpora
        self.rng = rng
        self.answers = corpora.answers
        self.paraphrased: dict[tuple[str, str, int], list[str]] = {}

    # --- shared pieces --------------------------------------------------------------------

    def _seed_task(self, pool: str) -> tuple[str, str]:
        """A (task, reference answer) from one of the task pools."""
        r = self.rng
        if pool == "math":
            return r.choice(self.c.math)
        if pool == "mcq":
            q, letter = r.choice(self.c.mcq)
            return q, f"The answer is {letter}. " + r.choice(self.answers)[:400]
        if pool == "code":
            task, sol = r.choice(self.c.code)
            return task, sol or r.choice(self.answers)[:800]
        if pool == "instructions":
            inst, inp, out = r.choice(self.c.instructions)
            return (f"{inst}\n{inp}" if inp else inst), out
        return r.choice(self.c.natural)

    def conversation_turn(self, st: AccountState, new_session: bool) -> Content:
        """Next turn of a real multi-turn conversation (a new one at a session start or its end)."""
        r = self.rng
        if st.conv < 0 or new_session or st.turn >= len(self.c.chats[st.conv]):
            st.conv, st.turn = r.randrange(len(self.c.chats)), 0
        conv = self.c.chats[st.conv]
        msgs: list[Message] = []
        # clients keep a bounded context: the last HISTORY_TURNS turns, long answers clipped
        for user, assistant in conv[max(0, st.turn - HISTORY_TURNS) : st.turn]:
            msgs += [("user", user[:HISTORY_CHARS]), ("assistant", assistant[:HISTORY_CHARS])]
        msgs.append(("user", conv[st.turn][0]))
        out = conv[st.turn][1]
        st.turn += 1
        return Content(
            msgs,
            out,
            temperature=self.sticky(st, "temperature", CHAT_TEMPERATURE),
            max_tokens=self.sticky(st, "max_tokens", CHAT_MAX_TOKENS),
            stream=self.sticky(st, "stream", CHAT_STREAM),
        )

    def sticky(self, st: AccountState, key: str, options: tuple[Any, ...]) -> Any:
        """A client setting: chosen once per account from ``options``, then kept for 90 % of
        calls (clients are configured once; a share of calls deviates)."""
        if key not in st.config:
            st.config[key] = self.rng.choice(options)
        return st.config[key] if self.rng.random() < 0.9 else self.rng.choice(options)

    def mundane(self, st: AccountState) -> Content:
        """An ordinary single-turn chat prompt: what campaigns mix in to look normal."""
        prompt, answer = self.rng.choice(self.c.natural)
        return Content([("user", prompt)], answer, stream=self.rng.random() < 0.5)

    def templates(
        self, st: AccountState, name: str, family: tuple[object, ...], k: int
    ) -> list[int]:
        """The ``k`` templates of ``family`` this account uses (chosen once, then kept)."""
        if name not in st.templates:
            st.templates[name] = self.rng.sample(range(len(family)), min(k, len(family)))
        return st.templates[name]

    def wrapper(self, st: AccountState, name: str, family: tuple[str, ...], i: int) -> str:
        """Template ``i`` of ``family``, or (``st.paraphrases``) one of the paraphrases of it
        that the account's campaign made once and shares."""
        if not st.paraphrases:
            return family[i]
        key = (st.group, name, i)
        if key not in self.paraphrased:
            self.paraphrased[key] = [
                T.paraphrase(family[i], self.rng) for _ in range(st.paraphrases)
            ]
        return self.rng.choice(self.paraphrased[key])

    def pick(self, st: AccountState, name: str, family: tuple[str, ...]) -> str:
        """Any template of ``family`` (through :meth:`wrapper`)."""
        return self.wrapper(st, name, family, self.rng.randrange(len(family)))

    def as_client(self, st: AccountState, ct: Content) -> Content:
        """``ct`` with the parameters of the legitimate client kind ``st.client`` (configured once
        per account, like an SDK's defaults) in place of the ones its generator chose."""
        p = CLIENTS[st.client]
        return ct._replace(
            temperature=self.sticky(st, "client_temperature", p.temperature),
            max_tokens=self.sticky(st, "client_max_tokens", p.max_tokens),
            stream=self.sticky(st, "client_stream", p.stream),
            reasoning_effort=self.sticky(st, "client_effort", p.reasoning_effort),
        )


def _casual(m: ContentMaker, st: AccountState, new: bool) -> Content:
    return m.conversation_turn(st, new)


def _power(m: ContentMaker, st: AccountState, new: bool) -> Content:
    r = m.rng
    x = r.random()
    if x < 0.7:
        c = m.conversation_turn(st, new)
        return c._replace(max_tokens=m.sticky(st, "max_tokens_long", LONG_MAX_TOKENS))
    task, ans = m._seed_task("code" if x < 0.85 else "math")
    return Content(
        [("user", task if r.random() < 0.5 else f"{task}\nthink step by step")],
        ans,
        max_tokens=4096,
        reasoning_effort=m.sticky(st, "reasoning_effort", EFFORT),
        stream=True,
    )


def _backend(m: ContentMaker, st: AccountState, new: bool) -> Content:
    if "product" not in st.config:  # this account's own product, fixed once
        st.config["product"] = T.product_template(m.rng)
    product = st.config["product"]
    assert isinstance(product, tuple)
    system, template = str(product[0]), str(product[1])
    text, answer = m.rng.choice(m.c.natural)
    return Content(
        [("user", template.format(task=text[:1500]))],
        answer[:500],
        system=system,
        temperature=0.2,
        max_tokens=512,
    )


def _eval(m: ContentMaker, st: AccountState, new: bool) -> Content:
    r = m.rng
    if not st.pools:
        st.pools = r.sample(["math", "mcq", "code"], r.choice((1, 2)))
    pool = st.pools[st.cursor % len(st.pools)] if new else st.pools[0]
    items = {"math": m.c.math, "mcq": m.c.mcq, "code": m.c.code}[pool]
    q, a = items[st.cursor % len(items)]  # harnesses sweep the benchmark in order
    st.cursor += 1
    if st.cot:  # a chain-of-thought harness: asks for the steps, leaves room for them
        template = T.EVAL_COT[pool][m.templates(st, f"eval-{pool}", T.EVAL_COT[pool], 1)[0]]
        return Content(
            [("user", template.format(task=q))],
            f"{r.choice(m.answers)[:600]}\nThe answer is ({a[:1]})." if pool == "mcq" else a,
            temperature=0.0,
            max_tokens=m.sticky(st, "max_tokens", (2048, 4096, 8192)),
            reasoning_effort=m.sticky(st, "reasoning_effort", (None, "high")),
            seed=1234 if r.random() < 0.5 else None,
            length_factor=1.5,
        )
    if pool == "mcq":
        a = a[:1]
    return Content(
        [("user", T.EVAL_HARNESS[pool].format(task=q))],
        a,
        temperature=0.0,
        max_tokens=1024 if pool != "mcq" else 8,
        seed=1234 if r.random() < 0.5 else None,
    )


def _batch(m: ContentMaker, st: AccountState, new: bool) -> Content:
    template = T.BATCH_TASKS[m.rng.choice(m.templates(st, "batch", T.BATCH_TASKS, 2))]
    text, answer = m.rng.choice(m.c.natural)
    short = "classify" in template.lower() or "topic" in template.lower()
    return Content(
        [("user", template.format(task=text[:2000]))],
        m.rng.choice(("positive", "negative", "neutral", "tech", "other"))
        if short
        else answer[:800],
        temperature=0.0,
        max_tokens=16 if short else 1024,
    )


def _agent(m: ContentMaker, st: AccountState, new: bool) -> Content:
    r = m.rng
    task, solution = m._seed_task("code") if r.random() < 0.6 else m._seed_task("natural")
    msgs: list[Message] = [("user", task)]
    for _ in range(r.choice((0, 0, 1, 2, 3))):
        msgs += [
            ("assistant", '[tool_call] run_python {"code": "..."}'),
            ("tool", r.choice(m.answers)[:300]),
        ]
    return Content(
        msgs,
        solution,
        system=T.AGENT_SYSTEM,
        tools=list(r.sample(T.TOOLS, r.choice((2, 3)))),
        temperature=m.sticky(st, "temperature", AGENT_TEMPERATURE),
        max_tokens=m.sticky(st, "max_tokens", AGENT_MAX_TOKENS),
        stream=True,
    )


def _education(m: ContentMaker, st: AccountState, new: bool) -> Content:
    r = m.rng
    if not new and st.conv >= 0 and r.random() < 0.3:  # follow-up on the last problem
        task, ans = m.c.math[st.conv % len(m.c.math)]
        return Content(
            [
                ("user", _tutor_prompt(m, st).format(task=task)),
                ("assistant", ans),
                (
                    "user",
                    r.choice(("I still don't get step 2", "why do we divide there?", "ok thx")),
                ),
            ],
            r.choice(m.answers)[:600],
            system=T.TUTOR_SYSTEM,
        )
    st.conv = r.randrange(len(m.c.math))
    task, ans = m.c.math[st.conv] if r.random() < 0.7 else m._seed_task("mcq")
    return Content(
        [("user", _tutor_prompt(m, st).format(task=task))],
        ans,
        system=T.TUTOR_SYSTEM,
        temperature=0.7,
    )


def _tutor_prompt(m: ContentMaker, st: AccountState) -> str:
    # students who want the method (st.cot) mostly ask for every step
    steps = st.cot and m.rng.random() < 0.7
    return m.rng.choice(T.TUTOR_STEPS if steps else T.TUTOR_PROMPTS)


def _reseller(m: ContentMaker, st: AccountState, new: bool) -> Content:
    x = m.rng.random()
    if x < 0.4:
        return m.conversation_turn(st, new)
    if x < 0.7:
        # a reseller serves many customers' products: one of a pool of its own
        pool = st.config.setdefault("products", [T.product_template(m.rng) for _ in range(12)])
        assert isinstance(pool, list)
        st.config["product"] = m.rng.choice(pool)
        return _backend(m, st, new)
    if x < 0.9:
        return _agent(m, st, new)
    return _power(m, st, new)


def _synthetic_partner(m: ContentMaker, st: AccountState, new: bool) -> Content:
    # a licensed partner's synthetic-data job looks exactly like an Alpaca sweep
    return _alpaca(m, st, new)


# --- campaigns --------------------------------------------------------------------------------


def _cot(m: ContentMaker, st: AccountState, new: bool) -> Content:
    r = m.rng
    mine = m.templates(st, "cot", T.COT_COERCION, r.choice((1, 2, 3)))
    pool = r.choices(("math", "mcq", "code"), weights=(0.5, 0.25, 0.25))[0]
    task, answer = m._seed_task(pool)
    prompt = m.wrapper(st, "cot", T.COT_COERCION, r.choice(mine)).format(task=task)
    return Content(
        [("user", prompt)],
        answer,
        system=r.choice(T.EXPERT_PERSONAS),
        temperature=m.sticky(st, "temperature", (None, 0.7, 1.0)),
        max_tokens=m.sticky(st, "max_tokens", (None, 4096, 8192, 16384, 32768)),
        reasoning_effort=m.sticky(st, "reasoning_effort", ("high", "high", None)),
        length_factor=r.uniform(1.5, 5.0),
    )


def _alpaca(m: ContentMaker, st: AccountState, new: bool) -> Content:
    r = m.rng
    inst, inp, out = r.choice(m.c.instructions)
    if r.random() < 0.15:
        other = r.choice(m.c.instructions)[0]
        template = m.pick(st, "taskgen", T.TASK_GENERATION)
        return Content(
            [("user", template.format(task=inst, task2=other))],
            "\n".join(f"{i}. {r.choice(m.c.instructions)[0]}" for i in range(1, 21)),
            temperature=1.0,
            max_tokens=4096,
        )
    template = T.ALPACA_SWEEP[m.templates(st, "alpaca", T.ALPACA_SWEEP, 1)[0]]
    if "{input}" in template and "### Input" in template and not inp:
        template = T.ALPACA_SWEEP[1]
    return Content(
        [("user", template.format(instruction=inst, input=inp))],
        out or r.choice(m.answers),
        temperature=m.sticky(st, "temperature", (0.7, 1.0)),
        max_tokens=m.sticky(st, "max_tokens", (2048, 4096)),
    )


def _bench_rubric(m: ContentMaker, st: AccountState, new: bool) -> Content:
    r = m.rng
    if r.random() < 0.5:
        pool = "mcq" if r.random() < 0.6 else "math"
        items = m.c.mcq if pool == "mcq" else m.c.math
        q, a = items[(st.cursor * 7) % len(items)]  # systematic sweep
        st.cursor += 1
        mine = m.templates(st, "bench", T.BENCHMARK_SWEEP, 2)
        return Content(
            [("user", m.wrapper(st, "bench", T.BENCHMARK_SWEEP, r.choice(mine)).format(task=q))],
            (a if pool == "math" else f"{a}. " + r.choice(m.answers)[:500]),
            temperature=0.7,
            max_tokens=4096,
            length_factor=2.0,
        )
    task, answer = m._seed_task(r.choice(("math", "natural", "code")))
    template = m.pick(st, "rubric", T.RUBRIC_GRADING)
    return Content(
        [
            (
                "user",
                template.format(
                    task=task, answer=answer[:1500], answer2=r.choice(m.answers)[:1500]
                ),
            )
        ],
        r.choice(m.answers)[:700],
        temperature=0.0,
        max_tokens=2048,
    )


def _tool_trace(m: ContentMaker, st: AccountState, new: bool) -> Content:
    r = m.rng
    task, solution = m._seed_task(r.choice(("code", "math", "natural")))
    msgs: list[Message] = [("user", m.pick(st, "tool", T.TOOL_TASK).format(task=task))]
    for _ in range(r.choice((1, 2, 3, 4))):
        msgs += [
            ("assistant", '[tool_call] run_python {"code": "..."}'),
            ("tool", r.choice(m.answers)[:300]),
        ]
    return Content(
        msgs,
        solution,
        system=r.choice(T.EXPERT_PERSONAS),
        tools=list(T.TOOLS),
        temperature=m.sticky(st, "temperature", (0.7, 1.0)),
        max_tokens=m.sticky(st, "max_tokens", (None, 4096, 8192)),
        reasoning_effort=m.sticky(st, "reasoning_effort", ("high", None)),
        length_factor=2.0,
    )


def _safe_rewrite(m: ContentMaker, st: AccountState, new: bool) -> Content:
    text, answer = m.rng.choice(m.c.natural)
    return Content(
        [("user", m.pick(st, "rewrite", T.SAFE_REWRITE).format(task=text[:2000]))],
        answer[:1200],
        temperature=0.7,
        max_tokens=2048,
    )


def _param_harvest(m: ContentMaker, st: AccountState, new: bool) -> Content:
    r = m.rng
    if new or not st.sweep or st.cursor >= 6:  # a fresh prompt, then a sweep over seeds
        task, answer = m._seed_task(r.choice(("math", "code", "natural")))
        st.sweep, st.cursor = [(task, answer)], 0
    task, answer = st.sweep[0]
    st.cursor += 1
    return Content(
        [("user", task)],
        answer,
        temperature=m.sticky(st, "temperature", (0.2, 0.5, 0.8, 1.0)),
        top_p=r.choice((None, 0.95)),
        max_tokens=m.sticky(st, "max_tokens", (16384, 32768)),
        n=r.choice((1, 4, 8)),
        logprobs=True,
        top_logprobs=r.choice((5, 20)),
        seed=st.cursor,
        length_factor=3.0,
    )


def _passive(m: ContentMaker, st: AccountState, new: bool) -> Content:
    # replays natural user prompts with default parameters: nothing in the text gives it away
    return m.mundane(st)


def _low_slow(m: ContentMaker, st: AccountState, new: bool) -> Content:
    return _cot(m, st, new) if m.rng.random() < 0.6 else _alpaca(m, st, new)


GENERATORS: dict[str, Generator] = {
    "casual_chat": _casual,
    "corporate_team": _casual,
    "power_user": _power,
    "product_backend": _backend,
    "migrating_customer": _backend,
    "eval_harness": _eval,
    "batch_job": _batch,
    "agent_platform": _agent,
    "education": _education,
    "reseller": _reseller,
    "synthetic_data_partner": _synthetic_partner,
    "cot_coercion": _cot,
    "alpaca_sweep": _alpaca,
    "benchmark_rubric": _bench_rubric,
    "tool_trace": _tool_trace,
    "safe_rewrite": _safe_rewrite,
    "param_harvest": _param_harvest,
    "passive_harvest": _passive,
    "low_and_slow": _low_slow,
}
