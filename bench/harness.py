"""What every benchmark phase shares: real nodes as processes, fake peers, statistics.

``NodeProcess`` is one ``avisa run`` subprocess on 127.0.0.1 with its own
data directory (real SQLite file, ``synchronous=FULL``, the system clock),
initialised and peered through the same library calls ``avisa init`` and
``avisa trust add`` use. Its memory is read from ``/proc/<pid>/status``:
``VmRSS`` now and ``VmHWM``, the peak since the process started.

``FakePeer`` is a network the bench itself plays: it holds a real node key,
signs federation requests exactly as a node does (``relay.federation.auth``)
and is trusted by the node under test like any other peer. Its URL points at
``PeerStub``, a tiny server in the bench process that answers the node's own
requests to that peer (an empty catch-up page, no key document), so the
node's links to fake peers are healthy and quiet instead of retrying in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from keys.core.keyring import KeyEntry
from keys.core.signing import NodeKey
from keys.store import nodekey
from relay.cli import datadir
from relay.core.policy import PeerPolicy, Relay
from relay.federation.auth import authorization
from relay.runtime.clock import TEST_CLOCK_ENV, system_clock
from relay.storage import db, trust

# The draft every benchmark publishes: a confirmed sighting with both languages.
SIGHTING = {
    "kind": "sighting",
    "certainty": "confirmed",
    "area": {
        "label": "Oxnard, Colonia neighborhood",
        "geohash": "9q4gch",
        "radius_m": 800,
        "codes": ["fips:06111"],
    },
    "agencies": ["ice"],
    "text": {
        "es": {
            "headline": "ICE confirmado cerca de la escuela Ramona",
            "body": "Verificado por el equipo de respuesta a las 7:40.",
        },
        "en": {
            "headline": "ICE confirmed near Ramona school",
            "body": "Verified by the rapid-response team at 7:40.",
        },
    },
    "expires_in": "4h",
}

#: Limits the bench gives the peers it floods a node with, so that the node's
#: own per-peer rate limit never caps (and so never hides) what is measured.
UNLIMITED_PER_MIN = 100_000_000
SPEAKS_FOR = ("fips:06",)
DEFAULT_PER_MIN = PeerPolicy(network="default").rate_limit_per_min


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest rank on a sorted copy; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-round(fraction * 1000) * len(ordered) // 1000))
    return ordered[min(rank, len(ordered)) - 1]


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a live process plus its children, in MiB.

    The peak is the sum of each process's own peak (an upper bound: they need
    not peak at the same moment).
    """
    found = {"VmRSS": 0.0, "VmHWM": 0.0}
    for member in (pid, *children(pid)):
        with contextlib.suppress(OSError):
            lines = Path(f"/proc/{member}/status").read_text(encoding="ascii").splitlines()
            for line in lines:
                name, _, rest = line.partition(":")
                if name in found:
                    found[name] += int(rest.split()[0]) / 1024
    return round(found["VmRSS"], 1), round(found["VmHWM"], 1)


def children(pid: int) -> list[int]:
    """Direct child processes (a node's verification workers)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as listed:
            found += [int(child) for child in listed.read().split()]
    return found


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs of the machine spent busy since boot (``/proc/stat``)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def steal_seconds() -> float:
    """CPU seconds the hypervisor ran something else while this machine's CPUs wanted to
    run (``steal`` in ``/proc/stat``): beside a latency figure, how noisy the host was."""
    with open("/proc/stat", encoding="ascii") as stat:
        return int(stat.readline().split()[8]) / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().rpartition(")")[2].split()


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process and its children, all threads; this one if None.

    Children that already exited count through the parent's ``cutime``/``cstime``.
    """
    if pid is None:
        times = os.times()
        return times.user + times.system
    ticks = 0
    for member in (pid, *children(pid)):
        with contextlib.suppress(OSError):
            fields = _stat(member)
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Trusted:
    """One peer entry, as ``avisa trust add`` would store it."""

    network: str
    url: str
    public_key: bytes
    endorse: bool = False
    forward: bool = True
    speaks_for: tuple[str, ...] = SPEAKS_FOR
    rate_limit_per_min: int = DEFAULT_PER_MIN
    relay: Relay = "all"

    def record(self) -> trust.PeerRecord:
        return trust.PeerRecord(
            self.network,
            self.url,
            (KeyEntry(self.network, self.public_key),),
            PeerPolicy(
                network=self.network,
                speaks_for=self.speaks_for,
                rate_limit_per_min=self.rate_limit_per_min,
                forward=self.forward,
                endorse=self.endorse,
                relay=self.relay,
            ),
        )


class NodeProcess:
    """One ``avisa run`` process with its own data directory."""

    def __init__(self, root: Path, network: str) -> None:
        self.network = network
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        init = datadir.initialize(root / network, network, f"127.0.0.1:{self.port}")
        self.data = init.data_dir
        self.token = init.token
        self.public_key = nodekey.read_public(self.data / "node.key")
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / f"{network}.log"

    def as_peer(self, **policy: Any) -> Trusted:
        return Trusted(self.network, self.url, self.public_key, **policy)

    def trust(self, *peers: Trusted) -> None:
        conn = db.open_sync(self.data / "avisa.db")
        try:
            for peer in peers:
                record = peer.record()
                db.transaction(conn, lambda c, r=record: trust.save_peer(c, r, system_clock()))
        finally:
            conn.close()

    def start(self) -> float:
        """Launch ``avisa run``; returns the ``time.perf_counter()`` of the launch."""
        env = {k: v for k, v in os.environ.items() if k != TEST_CLOCK_ENV}
        command = [sys.executable, "-m", "relay", "run", "--data", str(self.data)]
        started = time.perf_counter()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--log-level", "warning"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        return started

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def memory_mb(self) -> tuple[float, float]:
        return memory_mb(self.pid)

    async def healthy(self, http: aiohttp.ClientSession, timeout: float = 30.0) -> float:
        """Poll ``/healthz`` until 200; returns the ``perf_counter`` of that reply."""
        deadline = time.perf_counter() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise SystemExit(f"bench: {self.network} exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(self.url + "/healthz") as reply:
                    if reply.status == 200:
                        return time.perf_counter()
            if time.perf_counter() > deadline:
                raise SystemExit(f"bench: {self.network} not healthy after {timeout} s")
            await asyncio.sleep(0.002)

    async def ready(self, http: aiohttp.ClientSession, timeout: float = 30.0) -> None:
        """Healthy, and its verification workers answer (``avisa_verify_workers`` > 0)."""
        await self.healthy(http, timeout)

        async def workers() -> bool:
            async with http.get(self.url + "/metrics", headers=self.headers()) as reply:
                for line in (await reply.text()).splitlines():
                    if line.startswith("avisa_verify_workers "):
                        return float(line.split()[1]) > 0
            return False

        await wait_until(workers, timeout, f"{self.network}'s verification workers")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


@contextlib.contextmanager
def stopping(nodes: Iterable[NodeProcess]) -> Any:
    try:
        yield
    finally:
        for node in nodes:
            node.stop()


@dataclass
class FakePeer:
    """A network played by the bench: a real key, signed requests, an address at the stub."""

    network: str
    key: NodeKey = field(default_factory=NodeKey.generate)
    url: str = ""

    def trusted(self, **policy: Any) -> Trusted:
        """How the node under test trusts it: by default with no effective rate limit."""
        policy.setdefault("rate_limit_per_min", UNLIMITED_PER_MIN)
        return Trusted(self.network, self.url, self.key.public_key, **policy)

    def put_headers(self, destination: str, path: str, body: bytes) -> dict[str, str]:
        header = authorization(
            self.key, "PUT", path, self.network, destination, system_clock(), body
        )
        return {"Authorization": header, "Content-Type": "application/json"}


class PeerStub:
    """Answers a node's requests to the fake peers: nothing to catch up, no key document."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> PeerStub:
        app = web.Application()
        app.router.add_get("/federation/v1/alerts", self._alerts)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    async def _alerts(request: web.Request) -> web.Response:
        since = request.query.get("since", "0")
        return web.json_response({"envelopes": [], "next": since if since.isdigit() else "0"})


async def wait_until(check: Any, timeout: float, what: str, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        await asyncio.sleep(every)


async def linked(http: aiohttp.ClientSession, node: NodeProcess) -> bool:
    """Every peer link of ``node`` has had one success (its first catch-up pull)."""
    try:
        async with http.get(node.url + "/api/v1/peers", headers=node.headers()) as reply:
            peers = (await reply.json())["peers"]
    except (aiohttp.ClientError, OSError, ValueError, KeyError):
        return False
    return bool(peers) and all(peer.get("last_success") for peer in peers)


class Followable(Protocol):
    url: str

    def headers(self) -> dict[str, str]: ...


async def follow(http: aiohttp.ClientSession, node: Followable, arrived: dict[str, float]) -> None:
    """Note when each alert id first appears on ``node``'s SSE stream (it is committed)."""
    async with http.get(
        node.url + "/api/v1/stream", headers=node.headers(), timeout=aiohttp.ClientTimeout()
    ) as reply:
        event = ""
        async for raw in reply.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "alert":
                arrived.setdefault(json.loads(line[6:])["alert"]["id"], time.perf_counter())


def summary_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    values = [value * 1000 for value in latencies_s]
    return {
        "p50": round(percentile(values, 0.50), 1),
        "p99": round(percentile(values, 0.99), 1),
        "max": round(max(values, default=0.0), 1),
    }
