"""Real processes on loopback for the gateway tests: the stub upstream and gateways."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"process exited with {proc.returncode}:\n{out}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


class Proc:
    """A child process we started, stopped by its own id."""

    def __init__(self, args: list[str], cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stdout.read().decode() if self.proc.stdout else ""


NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
HAVE_NATS = Path(NATS_SERVER).exists()


def nats_server(port: int, store: Path) -> Proc:
    """A JetStream-enabled ``nats-server`` on loopback, storing under ``store``."""
    proc = Proc([NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.stop()
    raise TimeoutError(f"nats-server on {port}")


class Stub(Proc):
    def __init__(self, delay_ms: float = 0.0) -> None:
        self.port = free_port()
        super().__init__(
            [
                PY,
                "-m",
                "distillwatch.gateway.stub",
                "--port",
                str(self.port),
                "--delay-ms",
                str(delay_ms),
            ]
        )
        self.url = f"http://127.0.0.1:{self.port}"
        wait_http(self.url + "/v1/models", proc=self.proc)


KEYS = {
    "sk-alice": {"account_id": "acct-alice", "org_id": "org-a"},
    "sk-bob": {"account_id": "acct-bob", "org_id": "org-a"},
    "sk-carol": {"account_id": "acct-carol"},
}


class Gw(Proc):
    """A ``distillwatch gateway`` process with a config written from ``doc``."""

    def __init__(self, folder: Path, upstream: str, **doc: Any) -> None:
        self.port, self.admin_port = free_port(), free_port()
        folder.mkdir(parents=True, exist_ok=True)
        cfg = {
            "upstream": upstream,
            "listen": f"127.0.0.1:{self.port}",
            "admin_listen": f"127.0.0.1:{self.admin_port}",
            "keys": KEYS,
            "sink": "file://log?format=parquet",
            "rotate_seconds": 0.5,
            "live_mode": "off",
            "node": "t" + uuid.uuid4().hex[:6],
            **doc,
        }
        self.folder = folder
        self.config = folder / f"gw-{self.port}.yaml"
        self.config.write_text(yaml.safe_dump(cfg))
        super().__init__(
            [PY, "-m", "distillwatch.cli.main", "gateway", "--config", str(self.config)], cwd=folder
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        wait_http(self.admin + "/health", proc=self.proc)

    def health(self) -> dict[str, Any]:
        return httpx.get(self.admin + "/health", timeout=5).json()  # type: ignore[no-any-return]

    def wait_delivered(self, n: int, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            h = self.health()
            if h["event_log"]["delivered"] >= n or time.monotonic() > deadline:
                return h
            time.sleep(0.1)

    def chat(self, key: str = "sk-alice", prompt: str = "hi", **extra: Any) -> httpx.Response:
        body = {"model": "stub-1", "messages": [{"role": "user", "content": prompt}], **extra}
        return httpx.post(
            self.url + "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )


KEYS.update(
    {
        "sk-dave": {"account_id": "acct-dave"},
        "sk-erin": {"account_id": "acct-erin"},
        "sk-frank": {"account_id": "acct-frank"},
    }
)


def write_scan(
    folder: Path, accounts: list[dict[str, Any]], clusters: list[dict[str, Any]] | None = None
) -> Path:
    """A scan output folder (accounts.parquet, clusters.parquet) as ``distillwatch scan`` writes it."""
    import polars as pl

    ev = pl.List(
        pl.Struct(
            {
                "signal": pl.String,
                "value": pl.Float64,
                "baseline": pl.Float64,
                "weight": pl.Float64,
                "source": pl.String,
            }
        )
    )
    folder.mkdir(parents=True, exist_ok=True)
    evidence = [
        {
            "signal": "rule:intent/cot-elicitation",
            "value": 0.9,
            "baseline": 0.01,
            "weight": 2.5,
            "source": "detector:account-gbm@1",
        }
    ]
    acc = pl.DataFrame(
        {
            "account_id": [a["account_id"] for a in accounts],
            "org_id": [a.get("org_id") for a in accounts],
            "score": [a["score"] for a in accounts],
            "tier": [a["tier"] for a in accounts],
            "cluster_id": [a.get("cluster_id") for a in accounts],
            "n_calls": [10 for _ in accounts],
            "reasons": [["share of calls firing rule:intent/cot-elicitation"] for _ in accounts],
            "evidence": [evidence for _ in accounts],
        },
        schema_overrides={
            "org_id": pl.String,
            "cluster_id": pl.String,
            "n_calls": pl.UInt32,
            "evidence": ev,
        },
    )
    acc.write_parquet(folder / "accounts.parquet")
    clusters = clusters or []
    cl = pl.DataFrame(
        {
            "cluster_id": [c["cluster_id"] for c in clusters],
            "score": [c["score"] for c in clusters],
            "tier": [c["tier"] for c in clusters],
            "n_accounts": [len(c["members"]) for c in clusters],
            "n_calls": [10 for _ in clusters],
            "members": [c["members"] for c in clusters],
            "edge_types": [["template"] for _ in clusters],
            "reasons": [["linked"] for _ in clusters],
            "evidence": [evidence for _ in clusters],
        },
        schema={
            "cluster_id": pl.String,
            "score": pl.Float64,
            "tier": pl.String,
            "n_accounts": pl.UInt32,
            "n_calls": pl.UInt32,
            "members": pl.List(pl.String),
            "edge_types": pl.List(pl.String),
            "reasons": pl.List(pl.String),
            "evidence": ev,
        },
    )
    cl.write_parquet(folder / "clusters.parquet")
    return folder
