"""SIGKILL at random moments while a node accepts and forwards 10,000 alerts.

Two ``avisa run`` processes share a test clock file that ticks at four times
real speed (so backoffs end; alerts live 4 h, so none expires). ``net-a``
takes 10,000 publishes from eight concurrent clients and forwards each to
``net-b``. At eight moments drawn from a seeded generator (by how many
publishes have been acknowledged) net-a gets SIGKILL, mid-request and
mid-transaction, and is started again; net-b is killed twice as well, and
stays down while a few hundred alerts queue for it.

Then, with both running, the test waits for net-a's queue to drain, stops
both and reads their databases:

- every publish that got a 201 is in net-a's store (0 lost); publishes in
  flight at a kill may or may not be there, and those that are count too;
- net-b holds exactly net-a's alerts, each once in its feed and accepted
  once in its decision log (re-sent copies are decided ``duplicate``);
- net-a's queue for net-b is empty;
- the logs of the whole run (both nodes, every restart) hold no token and no IP address.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import sqlite3
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from keys.core.keyring import KeyEntry
from keys.store import nodekey
from relay.core.policy import PeerPolicy
from relay.runtime.clock import TEST_CLOCK_ENV
from relay.storage import db, trust
from tests.adversarial.kit import figure
from tests.helpers import T0, wait_for
from tests.test_api import DRAFT
from tests.test_federation_process import Proc, free_port, set_clock, setup_node

pytestmark = pytest.mark.slow
_IPV4 = re.compile(rb"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9.])")
TOTAL = 10_000
CLIENTS = 8
A_KILLS = 8
B_DOWN_FOR = 300  # acknowledged publishes while net-b is down
SEED = int(os.environ.get("AVISA_CRASH_SEED", "20261123"))


def trust_fast_peer(data: Path, peer_data: Path, peer: str, port: int, forward: bool) -> None:
    record = trust.PeerRecord(
        peer,
        f"http://127.0.0.1:{port}",
        (KeyEntry(peer, nodekey.read_public(peer_data / "node.key")),),
        PeerPolicy(
            network=peer, speaks_for=("fips:06",), rate_limit_per_min=1_000_000, forward=forward
        ),
    )
    conn = db.open_sync(data / "avisa.db")
    try:
        db.transaction(conn, lambda c: trust.save_peer(c, record, T0))
    finally:
        conn.close()


def query(proc: Proc, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{proc.data / 'avisa.db'}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_sigkill_while_accepting_and_forwarding_loses_and_duplicates_nothing(
    tmp_path: Path, procs: list[Proc]
) -> None:
    rng = random.Random(SEED)
    clock_file = tmp_path / "clock"
    set_clock(clock_file, T0)
    env = {**os.environ, TEST_CLOCK_ENV: str(clock_file)}
    port_a, port_b = free_port(), free_port()
    data_a, data_b = setup_node(tmp_path, "net-a", port_a), setup_node(tmp_path, "net-b", port_b)
    trust_fast_peer(data_a, data_b, "net-b", port_b, forward=True)
    trust_fast_peer(data_b, data_a, "net-a", port_a, forward=False)
    a, b = Proc(data_a, port_a, env), Proc(data_b, port_b, env)
    procs += [a, b]
    await a.start()
    await b.start()

    started = time.monotonic()

    async def tick() -> None:
        while True:
            set_clock(clock_file, T0 + timedelta(seconds=4 * (time.monotonic() - started)))
            await asyncio.sleep(0.25)

    ticker = asyncio.create_task(tick())
    a_kills = sorted(rng.sample(range(200, TOTAL - 200), A_KILLS))
    # One net-b kill in each half, so its downtimes never overlap.
    half = TOTAL // 2
    b_kills = [rng.randrange(1000, half - 1000), rng.randrange(half + 1000, TOTAL - 1000)]
    acked: set[str] = set()
    failed_requests = 0
    a_up = asyncio.Event()
    a_up.set()
    headers = {"Authorization": f"Bearer {a.token}"}

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal failed_requests
        while len(acked) < TOTAL:
            await a_up.wait()
            try:
                async with http.post(
                    a.url + "/api/v1/alerts", json=DRAFT, headers=headers
                ) as reply:
                    if reply.status == 201:
                        acked.add((await reply.json())["id"])
                        continue
                    failed_requests += 1
            except (TimeoutError, aiohttp.ClientError, OSError):
                failed_requests += 1
            await asyncio.sleep(0.01)  # the kill is under way: let the restart begin

    events = [(n, "kill a") for n in a_kills]
    for n in b_kills:
        events += [(n, "kill b"), (n + B_DOWN_FOR, "start b")]

    async def chaos() -> None:
        for at, what in sorted(events):
            await wait_for(lambda at=at: len(acked) >= at, timeout=300, what=f"{at} publishes")
            if what == "kill a":
                await asyncio.sleep(rng.random() * 0.05)  # somewhere inside a request or batch
                a_up.clear()
                a.kill()
                await a.start()
                a_up.set()
            elif what == "kill b":
                b.kill()
            else:
                await b.start()

    try:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await asyncio.gather(chaos(), *(client(http) for _ in range(CLIENTS)))
        publish_seconds = time.monotonic() - started

        def caught_up() -> bool:
            if query(a, "SELECT count(*) FROM outbox")[0][0]:
                return False
            return (
                query(b, "SELECT count(*) FROM alerts")[0][0]
                == query(a, "SELECT count(*) FROM alerts")[0][0]
            )

        await wait_for(caught_up, timeout=180, what="net-b has everything net-a stored")
    finally:
        ticker.cancel()
    a.stop()
    b.stop()
    elapsed = time.monotonic() - started

    stored_a = {row[0] for row in query(a, "SELECT id FROM alerts")}
    stored_b = {row[0] for row in query(b, "SELECT id FROM alerts")}
    feed_b = Counter(row[0] for row in query(b, "SELECT alert_id FROM feed"))
    decisions_b = Counter(
        (alert_id, action)
        for alert_id, action in query(b, "SELECT alert_id, action FROM decisions")
    )
    lost = acked - stored_a
    accepted_twice = [k for k, n in decisions_b.items() if k[1] == "accept" and n > 1]
    duplicates = query(b, "SELECT count(*) FROM decisions WHERE reason = 'duplicate'")[0][0]
    refused = query(b, "SELECT count(*) FROM decisions WHERE action != 'accept'")[0][0]
    figure(
        "crash_durability",
        publishes_acknowledged=len(acked),
        stored_at_origin=len(stored_a),
        stored_without_ack=len(stored_a - acked),
        lost=len(lost),
        delivered_to_peer=len(stored_b),
        delivered_twice=sum(1 for n in feed_b.values() if n > 1),
        duplicate_copies_refused_by_peer=duplicates,
        sigkills_origin=A_KILLS,
        sigkills_peer=len(b_kills),
        failed_requests_at_kills=failed_requests,
        publish_seconds=round(publish_seconds, 1),
        total_seconds=round(elapsed, 1),
        seed=SEED,
    )
    assert len(acked) >= TOTAL
    assert not lost, f"{len(lost)} acknowledged alerts lost"
    assert stored_b == stored_a
    assert set(feed_b) == stored_a and all(n == 1 for n in feed_b.values())
    assert not accepted_twice
    assert refused == duplicates, "net-b refused something other than a duplicate"
    assert query(a, "SELECT count(*) FROM outbox") == [(0,)]
    logs = a.log.read_bytes() + b.log.read_bytes()
    assert a.token.encode() not in logs and b.token.encode() not in logs
    assert not _IPV4.findall(logs), "an IP address in the logs of the run"
