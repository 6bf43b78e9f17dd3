"""The composition root: the node as an aiohttp application, and ``avisa run``.

``build_app`` wires the routes, the one error middleware and the lifecycle
onto a ``Node``; ``serve`` binds it (port 0 in tests) and returns the runner
and the actual port. ``run_until_stopped`` is the process entry point.

Lifecycle is aiohttp's ``cleanup_ctx``: each part that starts something is
one context, entered in order at ``runner.setup()`` and left in reverse at
``runner.cleanup()``. A start-up that fails half-way leaves exactly the
contexts that were entered, so it cleans up exactly what started. Before any
of it, ``run_until_stopped`` reads and checks everything it can (config,
key, the bridges' secret files): a bad setting stops ``avisa run`` before a
database, a thread or a task exists. Tests that start the ``Node`` themselves
call ``serve`` without ``owned``: then the app owns only its federation.

Federation talks to peers only once the site is bound (they may answer back
at once), so ``serve`` starts it after the site; its context stops it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from pathlib import Path

import structlog
from aiohttp import web

from bridges.cap.export import CapExport
from bridges.runner import check_bridges, start_bridges
from relay.core import clients
from relay.core.config import Config
from relay.core.errors import ConfigError
from relay.federation import inbound
from relay.federation.service import Federation
from relay.http import api, cap, chainview, desk, place, report, trustlists, webdesk
from relay.http import sms as sms_api
from relay.http.clientlimit import PROXIES
from relay.http.framing import FramingRunner
from relay.runtime import places
from relay.runtime.clock import TEST_CLOCK_ENV, NodeClock, file_clock, system_clock
from relay.runtime.httpio import error_middleware
from relay.runtime.node import Node
from relay.storage.files import write_private

# Large enough for a federation transaction (50 envelopes of 64 KiB); each
# route applies its own, smaller limit while reading.
CLIENT_MAX_SIZE = 4 * 1024 * 1024
# A connection that sends no complete request for this long is closed. aiohttp's
# default (about an hour) let a client hold sockets open by trickling headers
# before any token or signature is checked. Above aiohttp clients' own 15 s idle
# limit, so a peer's pooled connection is never closed under its feet.
IDLE_TIMEOUT_S = 30.0
# Written while the node runs: its pid and the port it actually bound (for --listen :0).
RUN_FILE = "run.json"
GC_YOUNG_THRESHOLD = 20_000
# How long a thread may hold the GIL while another waits (CPython's default: 5 ms).
SWITCH_INTERVAL_S = 0.02
_log = structlog.get_logger("avisa.app")


Context = Callable[[web.Application], AsyncIterator[None]]


def owned_node(node: Node) -> list[Context]:
    """The contexts of a node this app starts and stops itself (``avisa run``)."""

    async def resources(app: web.Application) -> AsyncIterator[None]:
        yield  # created by Node.__init__, after every check passed
        await node.close()

    async def housekeeping(app: web.Application) -> AsyncIterator[None]:
        await node.start()
        yield
        await node.stop_tasks()

    async def bridges(app: web.Application) -> AsyncIterator[None]:
        node.bridges = start_bridges(node)
        yield
        running, node.bridges = node.bridges, []
        for bridge in running:
            await bridge.stop()

    async def verifier(app: web.Application) -> AsyncIterator[None]:
        # In the background: start-up need not wait for the workers (threads verify meanwhile).
        starting = asyncio.create_task(node.verifier.start(), name="avisa-verifier")
        yield
        # Not cancelled: a worker cancelled while it is being spawned would be orphaned.
        # The start is bounded by its own timeout; ``resources`` then stops the workers.
        await starting

    return [resources, housekeeping, bridges, verifier]


def federation_context(node: Node, federation: Federation) -> Context:
    async def linked(app: web.Application) -> AsyncIterator[None]:
        await node.attach(federation)
        yield
        await federation.stop()

    return linked


def build_app(node: Node, federation: Federation, owned: Sequence[Context] = ()) -> web.Application:
    app = web.Application(
        client_max_size=CLIENT_MAX_SIZE,
        middlewares=[error_middleware(node.metrics.http_error)],
        handler_args={"max_field_size": 8190, "max_line_size": 8190},
    )
    app[api.NODE] = node
    app[inbound.FEDERATION] = federation
    app[api.STREAMS] = set()
    app[PROXIES] = clients.parse_proxies(node.config.node.trusted_proxies)
    app[report.LIMITER] = report.ClientLimiter(
        node.config.desk.report_per_hour, monotonic=node.clock.monotonic
    )
    app[report.TOKENS] = report.FormTokens(node.clock.monotonic)
    app.cleanup_ctx.extend([*owned, federation_context(node, federation)])
    app.on_shutdown.append(api.close_streams)
    app.add_routes(api.routes)
    app.add_routes(inbound.routes)
    app[cap.CAP_EXPORT] = CapExport(node)
    app.add_routes(cap.routes)
    app.add_routes(desk.routes)
    app.add_routes(report.routes)
    webdesk.setup(app, node)
    app.add_routes(sms_api.routes)
    app.add_routes(place.routes)
    app.add_routes(trustlists.routes)
    app.add_routes(chainview.routes)
    return app


async def serve(
    node: Node, host: str, port: int, owned: Sequence[Context] = ()
) -> tuple[web.AppRunner, int]:
    """Start the app's contexts, bind, then start federation; on any failure, undo what
    started (``runner.cleanup`` leaves exactly the contexts that were entered)."""
    federation = Federation(node)
    runner = FramingRunner(
        build_app(node, federation, owned),
        node.metrics.http_error,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=IDLE_TIMEOUT_S,
    )
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        await federation.start()  # talk to peers only once they can answer back
    except BaseException:
        await runner.cleanup()
        raise
    sockets = runner.addresses
    bound = int(sockets[0][1]) if sockets else port
    line = sms_api.line_of(node)
    if line is not None:  # delivery-report URLs can name the port actually bound
        line.listening(f"http://{host}:{bound}")
    return runner, bound


def settle_garbage_collector() -> None:
    """After start-up: freeze what exists, and collect young objects less often.

    A node's per-alert objects are freed by reference counting; the cycle
    collector's passes (and its full passes over every module, function and
    class loaded at start) were ~3% of the CPU in a perf profile of ingest.
    Frozen objects are never scanned again; cyclic garbage still goes, just
    in larger, rarer collections.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def lengthen_switch_interval() -> None:
    """Let the node's threads hand the GIL over where they block, not every 5 ms.

    The event loop, the parse stage and the database writer all wait on I/O
    (sockets, pipes, SQLite) every few hundred microseconds, and hand the GIL
    over there anyway. A forced switch on top of that only adds context
    switches: in six interleaved runs of ``python -m bench.cpu_split``, 20 ms
    ingested 3-25% more alerts per second than the default, at 2-10% less
    node CPU per alert. No thread of the node runs pure Python for anything
    like 20 ms, so the event loop's latency does not change.
    """
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def test_clock_override() -> NodeClock | None:
    """``AVISA_TEST_CLOCK_FILE``: tests that run whole processes move time through a file."""
    path = os.environ.get(TEST_CLOCK_ENV)
    if not path:
        return None
    _log.warning(
        f"{TEST_CLOCK_ENV} is set: this node reads the time from a file. "
        "FOR TESTS ONLY. Unset it on any real node.",
    )
    try:
        return file_clock(Path(path))
    except (OSError, ValueError):
        raise ConfigError(TEST_CLOCK_ENV, "names no file holding an RFC 3339 time") from None


def _check(data_dir: Path, config: Config) -> None:
    check_bridges(data_dir, config)
    places.check_home(config)


async def run_until_stopped(data_dir: Path, clock: NodeClock = system_clock) -> None:
    if clock is system_clock:
        clock = test_clock_override() or clock
    node = Node.load(data_dir, clock, check=partial(_check, data_dir))
    config = node.config
    runner, port = await serve(node, config.listen_host, config.listen_port, owned_node(node))
    settle_garbage_collector()
    lengthen_switch_interval()
    announce = data_dir / RUN_FILE
    write_private(announce, json.dumps({"pid": os.getpid(), "port": port}).encode())
    _log.info("node started", network=node.network, port=port, keyid=node.key.keyid)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        _log.info("node stopping", network=node.network)
        announce.unlink(missing_ok=True)
        await runner.cleanup()
