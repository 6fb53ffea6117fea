"""`distillwatch attribute ...`: prove a suspect model learnt from us. Thin layer."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from distillwatch.cli.watermark_cmd import (
    KEY_HELP,
    _emit,
    _fail,
    resolve_key,
    spec_of,
    tokenize,
)
from distillwatch.core.errors import DistillwatchError
from distillwatch.watermark import radioactivity as ra
from distillwatch.watermark.countermeasures import canary_test, decoy_canaries, open_registry
from distillwatch.watermark.keys import load_master
from distillwatch.watermark.lineage import PROBES, lineage_test
from distillwatch.watermark.suspect import is_url, suspect_ask

attribute_app = typer.Typer(
    help="Attribution: radioactivity, lineage and canary tests.", no_args_is_help=True
)


def _read_lines(path: Path, field: str) -> list[str]:
    """JSONL (taking ``field``) or plain text, one item a line."""
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            out.append(str(json.loads(line).get(field, "")))
        else:
            out.append(line)
    return out


@attribute_app.command("radioactivity")
def radioactivity(
    suspect: str = typer.Option(
        ...,
        "--suspect",
        help="OpenAI-compatible base URL (…/v1), 'smollm2[:STATE.pt]', 'gemma3[:STATE.pt]' or a transformers folder.",
    ),
    served: Path = typer.Option(
        ...,
        "--served",
        help="JSONL of watermarked answers we served "
        "under the key ('text' field) or plain text lines.",
    ),
    key: str | None = typer.Option(None, "--key", help=KEY_HELP),
    master: Path | None = typer.Option(None, "--master"),
    account: str | None = typer.Option(None, "--account"),
    period: str = typer.Option("", "--period"),
    mode: str = typer.Option(
        "auto",
        "--mode",
        help="closed (sample the suspect), open (its "
        "predictions on --served; local suspects), auto.",
    ),
    prompts: Path | None = typer.Option(
        None,
        "--prompts",
        help="Closed mode: prompts to sample "
        "the suspect on (JSONL 'prompt' or lines); default: "
        "the built-in probe battery.",
    ),
    texts_file: Path | None = typer.Option(
        None,
        "--texts",
        help="Open mode: unwatermarked texts to read the suspect's predictions on (exact for any "
        "suspect); default: the served texts with echo positions dropped.",
    ),
    samples: int = typer.Option(1, "--samples", help="Samples per prompt (closed mode)."),
    max_new: int = typer.Option(64, "--max-new"),
    temperature: float = typer.Option(0.8, "--temperature"),
    min_count: int = typer.Option(
        1,
        "--min-count",
        help="Keep suspect tuples whose context we served at least this often; 0 = no filter.",
    ),
    tokenizer: str = typer.Option("smollm2", "--tokenizer", help="Our tokenizer (or 'ids')."),
    scheme: str = typer.Option("kgw", "--scheme"),
    gamma: float = typer.Option(0.25, "--gamma"),
    width: int = typer.Option(2, "--width"),
    alpha: float = typer.Option(1e-3, "--alpha"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Was the suspect trained on our watermarked outputs? Exact p-value and evidence."""
    try:
        k = resolve_key(key, master, account, period)
        spec = spec_of(scheme, gamma, 0.0, width)
        served_ids = [tokenize(t, tokenizer) for t in _read_lines(served, "text")]
        chosen = mode if mode != "auto" else ("closed" if is_url(suspect) else "open")
        if chosen == "closed":
            ask = suspect_ask(suspect, max_tokens=max_new, temperature=temperature)
            plist = _read_lines(prompts, "prompt") if prompts else list(PROBES)
            texts = [tokenize(ask(p), tokenizer) for p in plist for _ in range(samples)]
            ctx = ra.served_context_counts(served_ids, spec) if min_count > 0 else None
            res = ra.closed_mode(texts, k, spec, served_contexts=ctx, min_count=max(1, min_count))
        elif chosen == "open":
            if is_url(suspect) or tokenizer == "ids":
                raise DistillwatchError("open mode needs a local suspect and a real tokenizer")
            from distillwatch.watermark.suspect import load_local

            model, tok = load_local(suspect)
            # key-independent texts give an exact test for any suspect; our served texts only
            # with the echo dropped (conservative)
            own = texts_file is None
            read = served_ids
            if texts_file is not None:
                read = [tokenize(t, tokenizer) for t in _read_lines(texts_file, "text")]
            preds, _ = ra.top1_predictions(model, [[]] * len(read), read, pad_id=tok.pad_token_id)
            # no prompt: the first token has no prediction; align by dropping it
            ctx = ra.served_context_counts(served_ids, spec) if min_count > 0 and not own else None
            res = ra.open_mode(
                [s[1:] for s in read],
                [p[1:] for p in preds],
                k,
                spec,
                drop_echo=own,
                served_contexts=ctx,
                min_count=max(1, min_count),
            )
        else:
            raise DistillwatchError("--mode is closed, open or auto")
    except (DistillwatchError, ImportError, OSError) as exc:
        _fail(exc)
    d = res.detection
    found = d.p_value <= alpha
    payload = {
        "mode": res.mode,
        "filter": res.filter,
        "radioactive": found,
        "n_candidate_tuples": res.n_candidate_tuples,
        "n_filtered_out": res.n_filtered_out,
        **d.to_dict(),
    }
    _emit(
        payload,
        as_json,
        [
            f"{'RADIOACTIVE' if found else 'not shown'} ({res.mode} mode, key {d.key_id}):"
            f" p={d.p_value:.3g} (log10 p={d.log10_p:.2f})",
            f"{d.n_scored} distinct tuples scored of {res.n_candidate_tuples} "
            f"({res.n_filtered_out} filtered: {res.filter}); score {d.score:.1f}, "
            f"expected {d.expected:.1f}",
        ],
    )
    raise typer.Exit(0 if found else 1)


@attribute_app.command("lineage")
def lineage(
    suspect: str = typer.Option(..., "--suspect", help="URL or local model."),
    ours: str = typer.Option(..., "--ours", help="Our model: URL or local model."),
    reference: list[str] = typer.Option(..., "--reference", help="NAME=URL|PATH, repeatable."),
    probes: Path | None = typer.Option(None, "--probes", help="Probe prompts (default battery)."),
    n_probes: int = typer.Option(len(PROBES), "--n-probes"),
    max_new: int = typer.Option(48, "--max-new"),
    alpha: float = typer.Option(1e-3, "--alpha"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Is the suspect derived from our model rather than from every reference model?"""
    try:
        plist = (_read_lines(probes, "prompt") if probes else list(PROBES))[:n_probes]
        refs = dict(r.split("=", 1) for r in reference)
        if not refs or any(not v for v in refs.values()):
            raise DistillwatchError("--reference takes NAME=URL|PATH")

        def answers(target: str) -> list[str]:
            ask = suspect_ask(target, max_tokens=max_new, temperature=0.0)
            return [ask(p) for p in plist]

        res = lineage_test(
            answers(suspect),
            answers(ours),
            {n: answers(t) for n, t in refs.items()},
            name=suspect,
            alpha=alpha,
        )
    except (DistillwatchError, ImportError, OSError, ValueError) as exc:
        _fail(exc)
    derived = res.p_value <= alpha
    payload = {
        "derived": derived,
        "p_value": res.p_value,
        "p_per_reference": dict(res.p_per_reference),
        "n_probes": res.n_probes,
        "probes_needed": res.probes_needed,
        "mean_sim_ours": res.mean_sim_ours,
        "mean_sim_reference": dict(res.mean_sim_reference),
    }
    lines = [
        f"{'DERIVED' if derived else 'not shown'}: p={res.p_value:.3g} over "
        f"{res.n_probes} probes (needed {res.probes_needed})"
    ]
    for name, p in res.p_per_reference.items():
        lines.append(
            f"  vs {name}: p={p:.3g}, similarity ours {res.mean_sim_ours:.3f} / "
            f"{name} {res.mean_sim_reference[name]:.3f}"
        )
    _emit(payload, as_json, lines)
    raise typer.Exit(0 if derived else 1)


@attribute_app.command("canary")
def canary(
    suspect: str = typer.Option(..., "--suspect", help="URL or local model."),
    registry: str = typer.Option(
        ...,
        "--registry",
        help="Issued canaries: the gateway's canary_registry (sqlite:///PATH, redis://HOST:PORT"
        "/DB?prefix=P) or a SQLite file.",
    ),
    account: str | None = typer.Option(None, "--account", help="Only this account's canaries."),
    master: Path | None = typer.Option(
        None, "--master", help="Hex secret file for the decoys (or $DISTILLWATCH_WM_MASTER)."
    ),
    secret: str | None = typer.Option(
        None, "--secret", help="Text secret for the decoys instead (e.g. the gateway's)."
    ),
    decoys: int = typer.Option(20, "--decoys"),
    max_issued: int = typer.Option(
        0, "--max-issued", help="Probe only the N most served canaries (0: all)."
    ),
    probe: str = typer.Option("completion", "--probe", help="'completion' or 'question'."),
    model: str = typer.Option("suspect", "--model", help="Model name sent to a URL suspect."),
    alpha: float = typer.Option(1e-3, "--alpha"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Does the suspect know the canary facts we served, more than never-served decoys?"""
    try:
        store = open_registry(registry, create=False)
        try:
            served = store.served(account)
        finally:
            store.close()
        if not served:
            raise DistillwatchError("no canaries issued (for that account)")
        if max_issued > 0:
            served = sorted(served, key=lambda s: (-s.count, s.first_served))[:max_issued]
        issued = [s.canary for s in served]
        decoy_secret = secret.encode() if secret else load_master(master)
        kwargs: dict[str, object] = {"model": model} if is_url(suspect) else {}
        ask = suspect_ask(suspect, max_tokens=16, temperature=0.0, **kwargs)
        res = canary_test(ask, issued, decoy_canaries(decoy_secret, decoys), probe, alpha)
    except (DistillwatchError, ImportError, OSError, ValueError) as exc:
        _fail(exc)
    found = res.p_value <= alpha
    payload = {
        "learnt": found,
        "p_value": res.p_value,
        "hits": res.hits,
        "n_issued": res.n_issued,
        "decoy_hits": res.decoy_hits,
        "n_decoys": res.n_decoys,
        "n_queries": res.n_queries,
        "queries_needed": res.queries_needed,
        "hit_ids": list(res.hit_ids),
        "accounts": sorted({s.canary.account_id for s in served}),
        "times_served": sum(s.count for s in served),
    }
    needed = (
        f"p <= {alpha:g} after {res.queries_needed} paired queries"
        if res.queries_needed
        else f"never p <= {alpha:g} along the way"
    )
    _emit(
        payload,
        as_json,
        [
            f"{'CANARIES LEARNT' if found else 'not shown'}: {res.hits}/{res.n_issued} "
            f"issued vs {res.decoy_hits}/{res.n_decoys} decoys, Fisher p={res.p_value:.3g}"
            f" ({res.n_queries} queries; sequential: {needed})"
        ],
    )
    raise typer.Exit(0 if found else 1)
