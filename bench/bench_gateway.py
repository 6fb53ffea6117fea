"""Added latency and throughput of `distillwatch gateway`, side by side with LiteLLM's proxy.

Everything runs on loopback: a fast local OpenAI-compatible upstream (the stub), the gateway in
front of it (file sink, live scoring in its worker process, a policy with a limit and a
degrade rule that do not fire for the bench key), and, when installed, LiteLLM's proxy in front
of the same upstream. An open-loop load generator sends chat completions at fixed rates; the
added latency at a percentile is that percentile through the proxy minus the same percentile
straight to the upstream at the same rate, measured in the same run. Then a closed-loop run
(fixed concurrency) gives each proxy's maximum requests/s. Bounded: a few seconds per step.

    .venv/bin/python bench/bench_gateway.py                # rates 100,250,500,750
    .venv/bin/python bench/bench_gateway.py --rates 500 --seconds 10
    .venv/bin/python bench/bench_gateway.py --live-mode off      # the proxy alone
    .venv/bin/python bench/bench_gateway.py --rates 500 --repeats 5 --pin

`--repeats N` measures each rate N times (direct then each proxy, in turn) and prints the
median and the spread of the added p50/p99 over the rounds: one 6-second step on a shared
2-core VM can catch a scheduling burst that has nothing to do with the proxy. `--pin` gives the
proxies (the gateway with its workers, LiteLLM) core 0 and the stub and the load generator
core 1, as on a deployment where the gateway does not share its cores with its clients.

Per step it also prints the 1-minute load average and the CPU (share of one core) of the
gateway process, its live-scorer worker and its other workers (the Parquet writer).

LiteLLM goes in its own venv (not a project dependency):

    python3 -m venv .venv-litellm && .venv-litellm/bin/pip install 'litellm[proxy]'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
LITELLM = ROOT / ".venv-litellm" / "bin" / "litellm"
MASTER = "sk-" + os.urandom(32).hex()  # LiteLLM refuses to start without a strong master key
BODY = json.dumps(
    {"model": "stub-1", "messages": [{"role": "user", "content": "What is 2+2? Answer briefly."}]}
).encode()


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def workers(pid: int, health_url: str) -> tuple[list[int], list[int]]:
    """The gateway's live-scorer worker and its other spawned workers (the Parquet writer),
    not the resource tracker."""
    import urllib.request

    live_pid = (json.loads(urllib.request.urlopen(health_url).read()).get("live") or {}).get("pid")
    spawned = []
    for kids in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in kids.read_text().split():
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                spawned.append(int(child))
    if live_pid is None:  # an older gateway: its one spawned worker is the live scorer
        return spawned, []
    return [p for p in spawned if p == live_pid], [p for p in spawned if p != live_pid]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


async def wait_ready(url: str, headers: dict[str, str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.post(url, data=BODY, headers=headers) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise TimeoutError(url)


def wait_live_scorer(health_url: str, timeout: float = 300.0) -> None:
    """Until the live scorer's worker is up (rules compiled) and has scored the warm-up calls,
    so that no step measures its start."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = json.loads(urllib.request.urlopen(health_url).read()).get("live")
        if not live or live["mode"] == "off" or (live["scored"] and not live["pending"]):
            return
        time.sleep(0.2)
    raise TimeoutError("the live scorer did not catch up with the warm-up calls")


async def open_loop(
    url: str, headers: dict[str, str], rate: float, seconds: float
) -> tuple[np.ndarray, int, float]:
    """Send ``rate`` requests/s for ``seconds``; latencies (ms) of the 200s, errors, achieved rate."""
    lat: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(
        total=10
    )  # a saturated proxy shows as errors, not an endless run
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as s:

        async def one() -> None:
            nonlocal errors
            t = time.perf_counter()
            try:
                async with s.post(url, data=BODY, headers=headers) as r:
                    await r.read()
                    if r.status == 200:
                        lat.append((time.perf_counter() - t) * 1000)
                    else:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1

        n = int(rate * seconds)
        t0 = time.perf_counter()
        tasks = []
        for i in range(n):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    return np.array(lat), errors, len(lat) / elapsed


async def closed_loop(url: str, headers: dict[str, str], concurrency: int, seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with s.post(url, data=BODY, headers=headers) as r:
                    await r.read()
                    done += r.status == 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - t0)


def step(
    args: argparse.Namespace,
    name: str,
    url: str,
    h: dict[str, str],
    rate: float,
    base: tuple[float, float] | None,
    gw_pid: int,
    adm_port: int,
    saturated: set[str],
    rounds: dict[tuple[float, str], list[tuple[float, float]]],
) -> tuple[float, float] | None:
    """One open-loop step against one target; prints its row and returns the direct p50/p99."""
    live, other = (
        workers(gw_pid, f"http://127.0.0.1:{adm_port}/health")
        if name == "distillwatch"
        else ([], [])
    )
    groups = [[gw_pid], live, other] if name == "distillwatch" else []
    cpu0 = [sum(cpu_seconds(p) for p in g) for g in groups]
    t_step = time.perf_counter()
    gc.collect()
    gc.disable()  # the load generator's own GC pauses would show as latency
    try:
        lat, err, achieved = asyncio.run(open_loop(url, h, rate, args.seconds))
    finally:
        gc.enable()
    wall = time.perf_counter() - t_step
    cpu = [
        f"{100 * (sum(cpu_seconds(p) for p in g) - c) / wall:.0f}%" if g else ""
        for g, c in zip(groups, cpu0, strict=True)
    ]
    load = os.getloadavg()[0]
    if achieved < 0.5 * rate:
        saturated.add(name)
    p50, p99 = (
        (float(np.percentile(lat, 50)), float(np.percentile(lat, 99)))
        if len(lat)
        else (float("nan"),) * 2
    )
    if name == "direct":
        base = (p50, p99)
        added = ("", "")
    else:
        assert base is not None
        rounds.setdefault((rate, name), []).append((p50 - base[0], p99 - base[1]))
        added = (f"{p50 - base[0]:.2f}", f"{p99 - base[1]:.2f}")
    gw_cpu, live_cpu, other_cpu = cpu or ("", "", "")
    print(
        f"{rate:>6.0f} {name:>13} {achieved:>7.0f} {err:>5} {p50:>8.2f} {p99:>8.2f} {added[0]:>8} {added[1]:>8} {load:>6.2f} {gw_cpu:>7} {live_cpu:>6} {other_cpu:>7}",
        flush=True,
    )
    return base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="100,250,500,750")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--live-mode", default="process", choices=["process", "thread", "off"])
    ap.add_argument("--live-priority", choices=["idle", "normal"], help="default: the gateway's")
    ap.add_argument("--live-interval", type=float, help="seconds; default: the gateway's")
    ap.add_argument("--rotate-seconds", type=float, default=5.0, help="event-log segment length")
    ap.add_argument("--repeats", type=int, default=1, help="rounds per rate (median reported)")
    ap.add_argument(
        "--pin", action="store_true", help="proxies on core 0; stub and load generator on core 1"
    )
    args = ap.parse_args()
    proxy_cpu, client_cpu = (
        (["taskset", "-c", "0"], ["taskset", "-c", "1"]) if args.pin else ([], [])
    )
    if args.pin:
        os.sched_setaffinity(0, {1})
    rates = [float(r) for r in args.rates.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="dw-bench-gw-"))
    procs: list[subprocess.Popen[bytes]] = []
    up_port, gw_port, adm_port, ll_port = free_port(), free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    try:
        procs.append(
            start(
                [*client_cpu, PY, "-m", "distillwatch.gateway.stub", "--port", str(up_port)],
                tmp / "stub.log",
            )
        )
        cfg = {
            "upstream": upstream,
            "listen": f"127.0.0.1:{gw_port}",
            "admin_listen": f"127.0.0.1:{adm_port}",
            "keys": {"sk-bench": {"account_id": "acct-bench", "org_id": "org-bench"}},
            "sink": f"file://{tmp / 'log'}?format=parquet",
            "rotate_seconds": args.rotate_seconds,
            "live_mode": args.live_mode,
            "policy": {
                "rules": [
                    {"id": "scan-block", "when": {"tier": ["block"]}, "action": "block"},
                    {
                        "id": "live-throttle",
                        "when": {"live_tier": ["throttle", "block"]},
                        "action": "throttle",
                        "limit": "100/minute",
                        "shadow": True,
                    },
                    {
                        "id": "cot-degrade",
                        "when": {
                            "live_signal": {"name": "rule:intent/cot-elicitation", "gte": 0.5}
                        },
                        "action": "degrade",
                        "degrade": {"reasoning": "withhold"},
                    },
                ]
            },
        }
        if args.live_priority:
            cfg["live_priority"] = args.live_priority
        if args.live_interval:
            cfg["live_interval"] = args.live_interval
        (tmp / "gw.yaml").write_text(yaml.safe_dump(cfg))
        procs.append(
            start(
                [
                    *proxy_cpu,
                    PY,
                    "-m",
                    "distillwatch.cli.main",
                    "gateway",
                    "--config",
                    str(tmp / "gw.yaml"),
                ],
                tmp / "gw.log",
            )
        )
        gw_pid = procs[-1].pid
        targets = {
            "direct": (upstream + "/v1/chat/completions", {"content-type": "application/json"})
        }
        targets["distillwatch"] = (
            f"http://127.0.0.1:{gw_port}/v1/chat/completions",
            {"authorization": "Bearer sk-bench", "content-type": "application/json"},
        )
        if LITELLM.exists() and not args.no_litellm:
            ll = {
                "model_list": [
                    {
                        "model_name": "stub-1",
                        "litellm_params": {
                            "model": "openai/stub-1",
                            "api_base": upstream + "/v1",
                            "api_key": "sk-x",
                        },
                    }
                ],
                "litellm_settings": {"telemetry": False, "turn_off_message_logging": True},
            }
            (tmp / "litellm.yaml").write_text(yaml.safe_dump(ll))
            procs.append(
                start(
                    [
                        *proxy_cpu,
                        str(LITELLM),
                        "--config",
                        str(tmp / "litellm.yaml"),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(ll_port),
                        "--num_workers",
                        "1",
                    ],
                    tmp / "litellm.log",
                    {
                        "LITELLM_LOG": "ERROR",
                        "LITELLM_TELEMETRY": "False",
                        "LITELLM_MASTER_KEY": MASTER,
                    },
                )
            )
            targets["litellm"] = (
                f"http://127.0.0.1:{ll_port}/v1/chat/completions",
                {"authorization": f"Bearer {MASTER}", "content-type": "application/json"},
            )
        else:
            print(
                "LiteLLM not installed in .venv-litellm: comparing with the upstream only",
                file=sys.stderr,
            )
        for url, h in targets.values():
            asyncio.run(wait_ready(url, h))
            asyncio.run(open_loop(url, h, 50, 3.0))  # warm up connections, caches, the live scorer
        wait_live_scorer(f"http://127.0.0.1:{adm_port}/health")
        load1 = os.getloadavg()[0]
        print(
            f"# loopback, 2-core machine, load average at start {load1:.1f}; {args.seconds:.0f} s per step"
        )
        print(
            f"# live scoring: {args.live_mode}, priority {args.live_priority or 'default'}, interval {args.live_interval or 'default'}"
        )
        print(
            f"{'rate':>6} {'target':>13} {'req/s':>7} {'err':>5} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'+p99 ms':>8} {'load1':>6} {'gw cpu':>7} {'live':>6} {'writer':>7}"
        )
        saturated: set[str] = set()
        rounds: dict[tuple[float, str], list[tuple[float, float]]] = {}
        for rate in rates:
            for _ in range(args.repeats):
                base = None
                for name, (url, h) in targets.items():
                    if name in saturated:
                        print(f"{rate:>6.0f} {name:>13}  skipped: saturated at a lower rate")
                        continue
                    base = step(args, name, url, h, rate, base, gw_pid, adm_port, saturated, rounds)
        if args.repeats > 1:
            print(f"# added latency over {args.repeats} rounds: median [min, max] ms")
            for (rate, name), added in rounds.items():
                a = np.array(added)
                print(
                    f"{rate:>6.0f} {name:>13}  +p50 {np.median(a[:, 0]):.2f} [{a[:, 0].min():.2f}, {a[:, 0].max():.2f}]"
                    f"  +p99 {np.median(a[:, 1]):.2f} [{a[:, 1].min():.2f}, {a[:, 1].max():.2f}]"
                    f"  rounds with +p99 <= 5 ms: {int((a[:, 1] <= 5).sum())}/{len(a)}"
                )
        print(f"# closed loop, concurrency {args.concurrency}, {args.seconds:.0f} s")
        for name, (url, h) in targets.items():
            print(
                f"max req/s {name:>13}: {asyncio.run(closed_loop(url, h, args.concurrency, args.seconds)):.0f}",
                flush=True,
            )
        import urllib.request

        metrics = urllib.request.urlopen(f"http://127.0.0.1:{adm_port}/metrics").read().decode()
        summ = {
            ln.split()[0]: float(ln.split()[1])
            for ln in metrics.splitlines()
            if ln.startswith("dw_added_latency_ms_") and "{" not in ln
        }
        if summ.get("dw_added_latency_ms_count"):
            print(
                f"# gateway's own measure of its added time: mean {summ['dw_added_latency_ms_sum'] / summ['dw_added_latency_ms_count']:.3f} ms over {summ['dw_added_latency_ms_count']:.0f} calls"
            )
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{adm_port}/health").read())
        print(
            f"# event log: {health['event_log']['acknowledged']} acknowledged, {health['event_log']['refused']} refused; load average at end {os.getloadavg()[0]:.1f}"
        )
        live = health.get("live") or {}
        if live.get("mode") != "off":
            print(
                f"# live scorer: {live.get('scored')} scored in {live.get('batches')} batches, {live.get('dropped')} dropped, {live.get('boosts')} boosts to normal priority"
            )
    finally:
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
