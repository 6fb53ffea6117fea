"""Run a gateway: the proxy and its admin endpoint on two addresses, one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import Iterator

import uvicorn

from distillwatch.core.errors import DistillwatchError
from distillwatch.gateway.admin import AdminApp
from distillwatch.gateway.config import GatewayConfig
from distillwatch.gateway.proxy import Gateway


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` -> ``(host, port)``.

    >>> split_address("127.0.0.1:8080")
    ('127.0.0.1', 8080)
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise DistillwatchError(f"{address!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class _QuietServer(uvicorn.Server):
    """The admin server: the proxy's server owns the process signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _uvicorn(
    app: object, address: str, server: type[uvicorn.Server] = uvicorn.Server
) -> uvicorn.Server:
    host, port = split_address(address)
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        loop="none",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
        backlog=4096,
    )
    return server(config)


async def _freeze_after_start(server: uvicorn.Server) -> None:
    """Once the gateway has started, put what it allocated so far (modules, compiled rules,
    the first decision snapshot: ~250k objects) out of the cyclic GC's reach, so that a full
    collection scans only what came later; scanning them took 100-300 ms of stalled event
    loop on a 2-core machine."""
    while not server.started:
        await asyncio.sleep(0.05)
    gc.collect()
    gc.freeze()


async def serve(config: GatewayConfig) -> None:
    """Serve until SIGINT/SIGTERM; then stop taking calls, flush the event log and exit."""
    gateway = Gateway(config)
    proxy = _uvicorn(gateway, config.listen)
    admin = (
        _uvicorn(AdminApp(gateway), config.admin_listen, _QuietServer)
        if config.admin_listen
        else None
    )
    tasks = [asyncio.create_task(proxy.serve())]
    if admin is not None:
        tasks.append(asyncio.create_task(admin.serve()))
    freeze = asyncio.create_task(_freeze_after_start(proxy))
    await tasks[0]
    freeze.cancel()
    if admin is not None:
        admin.should_exit = True
        await tasks[1]


def run(config: GatewayConfig) -> None:
    """Blocking entry point used by ``distillwatch gateway``."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # a background thread (spool writes, reloads) holding the GIL delays the event loop by at
    # most this long: the default 5 ms would show in the p99 added latency
    sys.setswitchinterval(0.0005)
    try:
        import uvloop

        uvloop.run(serve(config))
    except ImportError:  # pragma: no cover - uvloop is a dependency, but keep asyncio working
        asyncio.run(serve(config))
