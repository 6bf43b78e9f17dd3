"""SIGKILL in the middle of a fan-out: every subscriber gets the alert exactly once.

``avisa run`` as a process, a real Kannel with fakesmsc as the phone
network, 300 subscribers of one area, sends paced at 100 a second. The node
is killed (SIGKILL) twice while the alert goes out, each time once fakesmsc
has seen more messages, and started again. Afterwards every subscriber has
received the alert exactly once, the queue is empty, and every row is
delivered. Rows the kill left in doubt are settled by Kannel's delivery
reports (which Kannel retries until the node is back); those the gateway
never saw are resent once ``in_doubt_grace`` (5 s here) passes, with the node
up, without one.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from bridges.sms import store as sms_store
from bridges.sms.inbound import HASH_PURPOSE
from bridges.sms.localkannel import FakeSmsc, Kannel
from relay.storage import db, sealkey
from relay.storage.files import write_private
from tests.helpers import wait_for
from tests.sms.kit import DRAFT, SECRET, need_kannel, sms_toml
from tests.test_federation_process import Proc, free_port, setup_node

pytestmark = pytest.mark.slow
SUBSCRIBERS = 300
KILL_AT = (60, 170)


def seed_subscribers(data: Path) -> list[str]:
    sealer = sealkey.load_or_create(data)
    numbers = [f"+1805555{n:04d}" for n in range(SUBSCRIBERS)]
    conn = db.open_sync(data / "avisa.db")
    try:

        def job(c: sqlite3.Connection) -> None:
            for number in numbers:
                hashed = sealer.keyed_hash(number.encode(), HASH_PURPOSE)
                sms_store.subscribe(
                    c, hashed, sealer.seal(number.encode()), "ALERT", "en", ["fips:06111"], 0
                )

        db.transaction(conn, job)
    finally:
        conn.close()
    return numbers


def queue_states(data: Path) -> Counter[str]:
    conn = sqlite3.connect(f"file:{data / 'avisa.db'}?mode=ro", uri=True, timeout=30)
    try:
        return Counter(
            dict(conn.execute("SELECT state, COUNT(*) FROM sms_queue GROUP BY state").fetchall())
        )
    finally:
        conn.close()


async def test_sigkill_mid_fanout_texts_each_subscriber_once(tmp_path: Path) -> None:
    need_kannel()
    port = free_port()
    data = setup_node(tmp_path, "ventura", port)
    kannel = Kannel(
        tmp_path / "kannel",
        post_url=f"http://127.0.0.1:{port}/sms/v1/kannel/{SECRET}?from=%p&to=%P&id=%I",
    )
    extra = 'tips = false\nin_doubt_grace = "5s"\nretry_max = "2s"'
    config = data / "avisa.toml"
    config.write_text(
        config.read_text()
        + sms_toml(kannel.sendsms_url, extra).replace("throughput = 0", "throughput = 100")
    )
    write_private(data / "sms.pass", kannel.password.encode())
    write_private(data / "sms-inbound.secret", SECRET.encode())
    env = {k: v for k, v in os.environ.items() if k != "AVISA_TEST_CLOCK_FILE"}
    node = Proc(data, port, env)
    await node.start()  # creates the database and desk.key
    node.stop()
    numbers = seed_subscribers(data)
    await asyncio.to_thread(kannel.start)
    phones = FakeSmsc(kannel, receive_only=True)
    try:
        await node.start()
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {node.token}"}
            async with http.post(f"{node.url}/api/v1/alerts", json=DRAFT, headers=headers) as r:
                assert r.status == 201, await r.text()
        for threshold in KILL_AT:
            await wait_for(
                lambda t=threshold: len(phones.messages()) >= t,
                timeout=60,
                what=f"{threshold} texts out",
            )
            node.kill()
            await node.start()
        await wait_for(
            lambda: len(phones.messages()) >= SUBSCRIBERS,
            timeout=90,
            what="every subscriber texted",
        )
        await wait_for(
            lambda: set(queue_states(data)) == {"delivered"}, timeout=60, what="all delivered"
        )
    finally:
        node.stop()
        phones.stop()
        kannel.stop()
    received = Counter(mt.receiver for mt in phones.messages())
    assert set(received) == set(numbers)
    assert [n for n, c in received.items() if c != 1] == []
    assert {mt.text.split(".")[0] for mt in phones.messages()} == {"CONFIRMED ALERT: Sighting"}
    assert queue_states(data) == Counter({"delivered": SUBSCRIBERS})
    log = (data.parent / f"{data.name}.log").read_bytes()
    assert b"555" not in log.replace(b"127.0.0.1", b"")
