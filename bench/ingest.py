"""Ingest: alerts accepted per second by one node from one peer, and its memory.

Topology: the node under test (``avisa run``) trusts two networks the bench
plays: ``bench-origin``, whose alerts these are (its ``speaks_for`` covers
their area, so they are accepted as authoritative), and ``bench-relay``, the
peer that relays and endorses them and sends every transaction. Each alert
therefore carries two signatures the node knows and must verify.

Load: transactions of ``batch`` envelopes (50, the protocol's maximum), each
a fresh ``txn_id`` with a freshly signed ``Authorization`` header, ``PUT`` on
``/federation/v1/send``. ``in_flight`` transactions are kept outstanding at
once (4, the node's per-peer concurrency limit), each sender sending its next
as soon as its reply arrives, until the phase has lasted ``min_seconds`` and
sent ``min_alerts``. Every reply is checked: the figure counts only
``accepted`` results, and anything else is reported.

``alerts_per_s`` = accepted ÷ (last reply − first request).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

from bench.harness import FakePeer, NodeProcess, cpu_seconds, machine_busy_seconds


class _Result(msgspec.Struct):
    status: str
    reason: str


class _Reply(msgspec.Struct):
    results: list[_Result]


_reply = msgspec.json.Decoder(_Reply)


@dataclass
class Tally:
    sent: int = 0
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    http_errors: dict[int, int] = field(default_factory=dict)
    first: float = 0.0
    last: float = 0.0
    node_cpu_s: float = 0.0
    bench_cpu_s: float = 0.0
    machine_busy_s: float = 0.0

    @property
    def accepted(self) -> int:
        return self.statuses.get("accepted", 0)

    def per_second(self) -> float:
        elapsed = self.last - self.first
        return self.accepted / elapsed if elapsed > 0 else 0.0


class Connection:
    """One keep-alive HTTP/1.1 connection, as little client as a PUT needs.

    The load generator shares two cores with the node it measures, so its own
    CPU per request matters; this costs a fraction of a general client's. It
    reads replies with a Content-Length only (what the node sends) and gives
    up on anything else.
    """

    def __init__(self, node: NodeProcess) -> None:
        self._node = node
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def put(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self._node.port)
        reader, writer = self._streams
        head = f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{self._node.port}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode("ascii") + body)
        status = int((await reader.readuntil(b"\r\n")).split(b" ", 2)[1])
        length, keep = None, True
        for line in (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"connection" and value.strip().lower() == b"close":
                keep = False
        if length is None:
            raise SystemExit("bench: a reply without Content-Length")
        reply = await reader.readexactly(length)
        if not keep:
            self.close()
        return status, reply

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def send_transaction(
    connection: Connection, node: NodeProcess, peer: FakePeer, body: bytes
) -> tuple[int, bytes]:
    path = f"/federation/v1/send/{secrets.token_hex(8)}"
    return await connection.put(path, peer.put_headers(node.network, path, body), body)


async def drive(
    node: NodeProcess,
    peer: FakePeer,
    bodies: list[bytes],
    batch: int,
    in_flight: int,
    min_alerts: int,
    min_seconds: float,
) -> Tally:
    """Keep ``in_flight`` transactions outstanding until both minimums are met."""
    tally = Tally()
    queue = iter(bodies)
    node_cpu, bench_cpu, busy = cpu_seconds(node.pid), cpu_seconds(), machine_busy_seconds()
    tally.first = time.perf_counter()

    def more() -> bool:
        elapsed = time.perf_counter() - tally.first
        return tally.sent < min_alerts or elapsed < min_seconds

    async def sender() -> None:
        connection = Connection(node)
        try:
            await send_all(connection)
        finally:
            connection.close()

    async def send_all(connection: Connection) -> None:
        while more():
            body = next(queue, None)
            if body is None:
                return
            tally.sent += batch
            while True:
                status, raw = await send_transaction(connection, node, peer, body)
                tally.requests += 1
                if status == 200:
                    break
                tally.http_errors[status] = tally.http_errors.get(status, 0) + 1
                if status != 429:
                    raise SystemExit(f"bench: ingest got HTTP {status}: {raw[:200]!r}")
                await asyncio.sleep(0.001)
            for result in _reply.decode(raw).results:
                key = result.status
                if key != "accepted":
                    key += ":" + result.reason
                tally.statuses[key] = tally.statuses.get(key, 0) + 1
            tally.last = time.perf_counter()

    await asyncio.gather(*(sender() for _ in range(in_flight)))
    tally.node_cpu_s = cpu_seconds(node.pid) - node_cpu
    tally.bench_cpu_s = cpu_seconds() - bench_cpu
    tally.machine_busy_s = machine_busy_seconds() - busy
    return tally


def report(tally: Tally, batch: int, in_flight: int) -> dict[str, Any]:
    return {
        "alerts_per_s": round(tally.per_second()),
        "accepted": tally.accepted,
        "sent": tally.sent,
        "seconds": round(tally.last - tally.first, 2),
        "not_accepted": {k: v for k, v in tally.statuses.items() if k != "accepted"},
        "http_errors": tally.http_errors,
        "batch": batch,
        "in_flight": in_flight,
        "signatures_per_alert": 2,
        # CPU spent per accepted alert: the node (all its threads) and the load generator.
        "node_cpu_us_per_alert": round(tally.node_cpu_s / max(tally.accepted, 1) * 1e6, 1),
        "bench_cpu_us_per_alert": round(tally.bench_cpu_s / max(tally.accepted, 1) * 1e6, 1),
        # CPUs (on average) that other processes on the machine kept busy meanwhile:
        # what the node could not use, whatever the baseline says.
        "other_processes_cpus": round(
            max(0.0, tally.machine_busy_s - tally.node_cpu_s - tally.bench_cpu_s)
            / max(tally.last - tally.first, 1e-9),
            2,
        ),
    }
