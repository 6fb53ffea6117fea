"""`distillwatch watermark ...`: keys, detection and watermarked generation. Thin layer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from distillwatch.core.errors import DistillwatchError
from distillwatch.watermark import keys as wkeys
from distillwatch.watermark.detect import decode, detect
from distillwatch.watermark.spec import WatermarkSpec

watermark_app = typer.Typer(
    help="Output watermarks: keys, detection, generation.", no_args_is_help=True
)

KEY_HELP = "A raw 64-bit key (int or 0x-hex); or use --master with --account."


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def resolve_key(
    key: str | None, master: Path | None, account: str | None, period: str
) -> wkeys.WatermarkKey:
    """The key named on the command line (shared with `attribute`)."""
    if key is not None:
        return wkeys.raw_key(key)
    if account is None:
        raise DistillwatchError("give --key, or --account with --master / $DISTILLWATCH_WM_MASTER")
    return wkeys.derive_key(wkeys.load_master(master), account, period)


def spec_of(scheme: str, gamma: float, delta: float, width: int) -> WatermarkSpec:
    return WatermarkSpec(scheme=scheme, gamma=gamma, delta=delta, width=width)


def read_input(text_or_file: str) -> str:
    """TEXT, a path to a file, or '-' for stdin."""
    if text_or_file == "-":
        import sys

        return sys.stdin.read()
    try:
        path = Path(text_or_file)
        if "\n" not in text_or_file and path.is_file():
            return path.read_text()
    except OSError:  # e.g. a long text is no valid file name
        pass
    return text_or_file


def tokenize(text: str, tokenizer: str) -> list[int]:
    """Token ids: 'ids' reads whitespace-separated integers; else a tokenizer name or folder."""
    if tokenizer == "ids":
        try:
            return [int(t) for t in text.split()]
        except ValueError:
            raise DistillwatchError("--tokenizer ids expects whitespace-separated ints") from None
    from distillwatch.watermark.models import encode_answer, load_tokenizer

    tok = load_tokenizer(None if tokenizer == "smollm2" else tokenizer)
    return encode_answer(tok, text)


def _emit(payload: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(payload, indent=1))
    else:
        for line in lines:
            typer.echo(line)


@watermark_app.command("keygen")
def keygen(
    out: Path = typer.Option(..., "--out", help="Where to write the master secret (hex)."),
) -> None:
    """Create a new master secret (file mode 0600)."""
    if out.exists():
        _fail(DistillwatchError(f"{out} exists; refusing to overwrite a master secret"))
    wkeys.save_master(out, wkeys.new_master())
    typer.echo(f"wrote master secret to {out}")


@watermark_app.command("key")
def key_cmd(
    account: str = typer.Option(..., "--account"),
    period: str = typer.Option("", "--period", help="e.g. 2026-11; empty = no rotation."),
    master: Path | None = typer.Option(None, "--master", help="Master secret file (hex)."),
    show_secret: bool = typer.Option(False, "--show-secret", help="Print the key value too."),
) -> None:
    """Print the key id (and, if asked, the 64-bit value) of an account."""
    try:
        k = wkeys.derive_key(wkeys.load_master(master), account, period)
    except DistillwatchError as exc:
        _fail(exc)
    typer.echo(k.key_id + (f" 0x{k.value:016x}" if show_secret else ""))


@watermark_app.command("detect")
def detect_cmd(
    text: str = typer.Argument(..., help="Text, a file, or '-' for stdin."),
    key: str | None = typer.Option(None, "--key", help=KEY_HELP),
    master: Path | None = typer.Option(None, "--master"),
    account: str | None = typer.Option(None, "--account"),
    period: str = typer.Option("", "--period"),
    prompt: str | None = typer.Option(
        None, "--prompt", help="The prompt (text or file): its n-grams are skipped."
    ),
    tokenizer: str = typer.Option(
        "smollm2", "--tokenizer", help="'smollm2', a tokenizer folder, or 'ids'."
    ),
    scheme: str = typer.Option("kgw", "--scheme"),
    gamma: float = typer.Option(0.25, "--gamma"),
    delta: float = typer.Option(2.0, "--delta"),
    width: int = typer.Option(2, "--width", help="Context tokens hashed with each token."),
    alpha: float = typer.Option(1e-3, "--alpha", help="Significance level for the verdict."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Test a text for a watermark; exact p-value. Exit 0 if detected at --alpha, else 1."""
    try:
        k = resolve_key(key, master, account, period)
        spec = spec_of(scheme, gamma, delta, width)
        ids = tokenize(read_input(text), tokenizer)
        pids = tokenize(read_input(prompt), tokenizer) if prompt else None
    except DistillwatchError as exc:
        _fail(exc)
    r = detect(ids, k, spec, prompt_ids=pids)
    found = r.p_value <= alpha
    _emit(
        r.to_dict() | {"detected": found},
        as_json,
        [
            f"{'WATERMARKED' if found else 'not detected'} key={r.key_id} p={r.p_value:.3g} "
            f"(log10 p={r.log10_p:.2f})",
            f"scored {r.n_scored} distinct tuples of {r.n_tokens} tokens; score {r.score:.1f}, "
            f"expected {r.expected:.1f} under the null; {r.n_repeated} repeats and "
            f"{r.n_in_prompt} prompt tuples skipped",
        ],
    )
    raise typer.Exit(0 if found else 1)


@watermark_app.command("decode")
def decode_cmd(
    text: str = typer.Argument(..., help="Text, a file, or '-' for stdin."),
    accounts: str = typer.Option(
        ..., "--accounts", help="Comma-separated candidate accounts, or @FILE with one per line."
    ),
    master: Path | None = typer.Option(None, "--master"),
    period: str = typer.Option("", "--period"),
    tokenizer: str = typer.Option("smollm2", "--tokenizer"),
    scheme: str = typer.Option("kgw", "--scheme"),
    gamma: float = typer.Option(0.25, "--gamma"),
    width: int = typer.Option(2, "--width"),
    alpha: float = typer.Option(1e-3, "--alpha"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Which account's key marked this text? Bonferroni over the candidates."""
    try:
        names = (
            Path(accounts[1:]).read_text().split()
            if accounts.startswith("@")
            else [a for a in accounts.split(",") if a]
        )
        cands = wkeys.account_keys(wkeys.load_master(master), names, period)
        ids = tokenize(read_input(text), tokenizer)
        spec = spec_of(scheme, gamma, 0.0, width)
    except DistillwatchError as exc:
        _fail(exc)
    res = decode(ids, cands, spec, alpha=alpha)
    _emit(
        {
            "account_key": res.best_key_id,
            "p_value": res.p_value,
            "log10_p": res.log10_p,
            "n_candidates": res.n_candidates,
        },
        as_json,
        [
            f"{res.best_key_id or 'no account'}: Bonferroni p={res.p_value:.3g} over "
            f"{res.n_candidates} candidates"
        ],
    )
    raise typer.Exit(0 if res.best_key_id else 1)


@watermark_app.command("generate")
def generate_cmd(
    prompt: str = typer.Argument(...),
    key: str | None = typer.Option(None, "--key", help=KEY_HELP),
    master: Path | None = typer.Option(None, "--master"),
    account: str | None = typer.Option(None, "--account"),
    period: str = typer.Option("", "--period"),
    scheme: str = typer.Option("kgw", "--scheme"),
    gamma: float = typer.Option(0.25, "--gamma"),
    delta: float = typer.Option(2.0, "--delta"),
    width: int = typer.Option(2, "--width"),
    max_new: int = typer.Option(64, "--max-new"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Answer a prompt with SmolLM2-135M-Instruct (offline) under a watermark."""
    try:
        k = resolve_key(key, master, account, period)
        spec = spec_of(scheme, gamma, delta, width)
        from distillwatch.watermark.models import generate, load_model, load_tokenizer
        from distillwatch.watermark.processors import processor_for

        tok, model = load_tokenizer(), load_model()
    except (DistillwatchError, ImportError) as exc:
        _fail(exc)
    gen = generate(
        model,
        tok,
        [prompt],
        processors=[processor_for(k, spec)],
        max_new_tokens=max_new,
        batch_size=1,
        seed=seed,
    )[0]
    typer.echo(gen.text)
