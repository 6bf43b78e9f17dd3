"""The coalition as the bench drives it: processes, streams, publishing, counting.

``Coalition`` starts every node, follows each one's ``/api/v1/stream`` (resuming
with ``Last-Event-ID`` after a restart, as any client does), publishes alerts and
cancels through the nodes' own APIs on a fixed schedule, and notes when each
message reached each node. What it measures is in ``bench.coalition``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.harness import (
    SIGHTING,
    NodeProcess,
    children,
    cpu_seconds,
    linked,
    machine_busy_seconds,
    steal_seconds,
    summary_ms,
    wait_until,
)

CANCEL = {
    "text": {
        "es": {"headline": "Cancelada: ya no hay actividad", "body": "Retirada por el equipo."},
        "en": {"headline": "Cancelled: no activity now", "body": "Withdrawn by the team."},
    }
}


@dataclass
class Sent:
    """One message the bench published."""

    origin: str
    started: float  # perf_counter just before the POST
    expires_in: str | None = None
    expires_wall: float = 0.0  # time.time() by which it has expired (short-lived ones)
    cancels: str | None = None


@dataclass
class Follower:
    arrived: dict[str, float] = field(default_factory=dict)  # id -> perf_counter
    arrived_wall: dict[str, float] = field(default_factory=dict)
    last_event_id: str | None = None
    bytes: int = 0
    task: asyncio.Task[None] | None = None


class Coalition:
    def __init__(
        self, http: aiohttp.ClientSession, nodes: dict[str, NodeProcess], counties: dict[str, str]
    ) -> None:
        self.http = http
        self.nodes = nodes
        self.counties = counties
        self.followers = {name: Follower() for name in nodes}
        self.published_bytes = 0

    # --- processes ---------------------------------------------------------

    async def start(self) -> None:
        for node in self.nodes.values():
            node.start()
        for name in self.nodes:
            await self.reconnect(name)

    async def reconnect(self, name: str) -> None:
        node = self.nodes[name]
        try:
            await node.ready(self.http, timeout=120)
        except SystemExit as exc:
            raise SystemExit(f"{exc}; its log ends: {node.log.read_text()[-1500:]}") from None
        await wait_until(lambda: linked(self.http, node), 120, f"{name} linked", every=0.2)
        self.followers[name].task = asyncio.create_task(self._follow(name))

    def kill(self, name: str) -> None:
        follower = self.followers[name]
        if follower.task is not None:
            follower.task.cancel()
        process = self.nodes[name].process
        if process is not None:
            workers = children(process.pid)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            for worker in workers:  # a crash of the machine takes them too
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker, signal.SIGKILL)
        self.nodes[name].process = None

    def restart(self, name: str) -> None:
        self.nodes[name].start()

    async def stop(self) -> None:
        for follower in self.followers.values():
            if follower.task is not None:
                follower.task.cancel()
        for node in self.nodes.values():
            node.stop()

    # --- streams -------------------------------------------------------------

    async def _follow(self, name: str) -> None:
        node, follower = self.nodes[name], self.followers[name]
        while True:
            headers = node.headers()
            if follower.last_event_id is not None:
                headers["Last-Event-ID"] = follower.last_event_id
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                async with self.http.get(
                    node.url + "/api/v1/stream",
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
                ) as reply:
                    await self._read(reply, follower)
            await asyncio.sleep(0.2)

    @staticmethod
    async def _read(reply: aiohttp.ClientResponse, follower: Follower) -> None:
        async for raw in reply.content:
            follower.bytes += len(raw)
            line = raw.decode().rstrip("\n")
            if line.startswith("id: "):
                follower.last_event_id = line[4:]
            elif line.startswith("data: "):
                alert_id = json.loads(line[6:])["alert"]["id"]
                if alert_id not in follower.arrived:
                    follower.arrived[alert_id] = time.perf_counter()
                    follower.arrived_wall[alert_id] = time.time()

    # --- publishing ----------------------------------------------------------

    async def publish_at_rate(
        self, plan: Sequence[tuple[Any, ...]], rate: float
    ) -> dict[str, Sent]:
        """Publish ``(origin, cancels | None[, expires_in])`` items on a fixed schedule."""
        sent: dict[str, Sent] = {}
        tasks = []
        origin_time = time.perf_counter()
        for n, item in enumerate(plan):
            delay = origin_time + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._one(sent, *item)))
        await asyncio.gather(*tasks)
        return sent

    async def _one(
        self, sent: dict[str, Sent], origin: str, cancels: str | None, expires_in: str | None = None
    ) -> None:
        node = self.nodes[origin]
        if cancels is None:
            body: dict[str, Any] = dict(SIGHTING, expires_in=expires_in or "4h")
            county = self.counties[origin]
            body["area"] = dict(SIGHTING["area"], codes=[county])  # type: ignore[arg-type]
            path = "/api/v1/alerts"
        else:
            body, path = CANCEL, f"/api/v1/alerts/{cancels}/cancel"
        raw = json.dumps(body).encode()
        self.published_bytes += len(raw)
        started = time.perf_counter()
        async with self.http.post(
            node.url + path,
            data=raw,
            headers={**node.headers(), "Content-Type": "application/json"},
        ) as reply:
            answer = await reply.json()
            if reply.status != 201:
                raise SystemExit(f"bench: publish at {origin} failed: {reply.status} {answer}")
        short = time.time() + 20 if expires_in else 0.0
        sent[answer["id"]] = Sent(origin, started, expires_in, short, cancels)
        # The origin's own stream counts too; the reach is to the others.

    # --- what arrived ---------------------------------------------------------

    def _targets(self, sent: Sent) -> list[str]:
        return [name for name in self.nodes if name != sent.origin]

    async def settle(self, messages: dict[str, Sent], timeout: float) -> float:
        """Wait until every message is at every other node; perf_counter when it was."""

        async def done() -> bool:
            return not self.missing(messages)

        with contextlib.suppress(SystemExit):
            await wait_until(done, timeout, "every message everywhere", every=0.05)
        arrivals = [
            self.followers[name].arrived[i]
            for i, s in messages.items()
            for name in self._targets(s)
            if i in self.followers[name].arrived
        ]
        return max(arrivals, default=time.perf_counter())

    def missing(self, messages: dict[str, Sent]) -> list[dict[str, str]]:
        return [
            {"id": i, "node": name}
            for i, s in messages.items()
            for name in self._targets(s)
            if i not in self.followers[name].arrived
        ]

    def reach(self, messages: dict[str, Sent]) -> dict[str, float]:
        """Per message: the time until the last node that has it got it."""
        times = []
        for i, s in messages.items():
            got = [self.followers[n].arrived.get(i) for n in self._targets(s)]
            reached = [t for t in got if t is not None]
            if reached:
                times.append(max(reached) - s.started)
        return summary_ms(times)

    def latencies(self, messages: dict[str, Sent]) -> list[float]:
        return [
            t - s.started
            for i, s in messages.items()
            for n in self._targets(s)
            if (t := self.followers[n].arrived.get(i)) is not None
        ]

    def by_hops(
        self, messages: dict[str, Sent], hops: Callable[[str, str], int]
    ) -> dict[str, dict[str, float]]:
        """Arrival times by how many links a message crossed to the node (``hops``), its
        origin's own stream included (0): what one hop adds, read from outside."""
        found: dict[int, list[float]] = {}
        for i, s in messages.items():
            for n in (s.origin, *self._targets(s)):
                if (t := self.followers[n].arrived.get(i)) is not None:
                    found.setdefault(hops(s.origin, n), []).append(t - s.started)
        return {f"{count}_hops": summary_ms(found[count]) for count in sorted(found)}

    def late(self, expiring: dict[str, Sent]) -> list[dict[str, str]]:
        return [
            {"id": i, "node": n}
            for i, s in expiring.items()
            for n in self._targets(s)
            if self.followers[n].arrived_wall.get(i, 0.0) > s.expires_wall + 0.5
        ]

    async def cancelled_still_active(
        self, cancels: list[Sent], published: dict[str, Sent]
    ) -> list[dict[str, str]]:
        cancelled = {s.cancels for s in cancels if s.cancels}
        stale = []
        for name, node in self.nodes.items():
            async with self.http.get(
                node.url + "/api/v1/alerts?active=true", headers=node.headers()
            ) as reply:
                active = {item["alert"]["id"] for item in (await reply.json())["alerts"]}
            stale += [{"id": i, "node": name} for i in sorted(active & cancelled)]
        return stale

    async def snapshot(self) -> dict[str, Any]:
        counts: dict[str, dict[str, float]] = {}
        for name, node in self.nodes.items():
            async with self.http.get(node.url + "/metrics", headers=node.headers()) as reply:
                counts[name] = received(await reply.text())
            counts[name]["cpu_s"] = cpu_seconds(node.pid)
        return {
            "nodes": counts,
            "wall_s": time.monotonic(),
            "busy_s": machine_busy_seconds(),
            "steal_s": steal_seconds(),
            "lo_bytes": loopback_bytes(),
            "bench_bytes": self.published_bytes + sum(f.bytes for f in self.followers.values()),
        }


def cost(
    before: dict[str, Any], after: dict[str, Any], messages: dict[str, Sent], coalition: Coalition
) -> dict[str, Any]:
    """Deliveries, duplicates, bytes and CPU per message between two snapshots."""

    def total(key: str) -> float:
        return sum(after["nodes"][n][key] - before["nodes"][n][key] for n in after["nodes"])

    reached = len(coalition.latencies(messages))
    count = max(1, len(messages))
    wire = (after["lo_bytes"] - before["lo_bytes"]) - (after["bench_bytes"] - before["bench_bytes"])
    return {
        "envelopes_received": int(total("received")),
        "deliveries_per_node_reached": round(total("received") / max(1, reached), 2),
        "duplicates_per_message": round(total("duplicate") / count, 1),
        "bytes_per_message": int(wire / count),
        "node_cpu_ms_per_message_coalition": round(1000 * total("cpu_s") / count, 1),
        **machine(before, after),
    }


def machine(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """How busy the whole machine was between two snapshots: cores in use (of
    ``os.cpu_count()``) and the share of CPU time the hypervisor gave to others."""
    wall = max(1e-9, after["wall_s"] - before["wall_s"])
    cpus = os.cpu_count() or 1
    return {
        "machine_cores_busy": round((after["busy_s"] - before["busy_s"]) / wall, 2),
        "machine_cores": cpus,
        "steal_percent": round(100 * (after["steal_s"] - before["steal_s"]) / (wall * cpus), 1),
    }


def received(metrics: str) -> dict[str, float]:
    """Envelopes received from peers, and how many were duplicates, from /metrics."""
    found = {"received": 0.0, "duplicate": 0.0}
    for line in metrics.splitlines():
        if not line.startswith("avisa_decisions_total{") or 'peer="local"' in line:
            continue
        value = float(line.rsplit(" ", 1)[1])
        found["received"] += value
        if 'reason="duplicate"' in line:
            found["duplicate"] += value
    return found


def loopback_bytes() -> int:
    """Bytes received on the loopback interface since boot (every node's traffic)."""
    with open("/proc/net/dev", encoding="ascii") as table:
        for line in table:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[0])
    return 0
