"""``avisa outbox list|release`` on a real node's data directory (issue 22)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from keys.core.keyring import KeyEntry
from relay.cli.main import main
from relay.core.policy import PeerPolicy
from relay.core.times import whole_seconds
from relay.runtime.clock import FakeClock
from relay.storage import outbox, trust
from tests.conftest import start_node
from tests.helpers import key
from tests.test_api import DRAFT

PEER = "la-rrn"


def _queued(data: Path) -> list[str]:
    conn = sqlite3.connect(data / "avisa.db")
    try:
        return [r[0] for r in conn.execute("SELECT alert_id FROM outbox WHERE peer = ?", (PEER,))]
    finally:
        conn.close()


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()  # what the node logged before
    code = main(list(args))
    return code, capsys.readouterr().out


async def test_quarantined_items_are_listed_and_released(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI reads the system clock: this node's clock starts at the real now.
    clock = FakeClock(whole_seconds(datetime.now(UTC)))
    node, runner, url, token = await start_node(tmp_path, clock)
    data = node.data_dir
    try:
        record = trust.PeerRecord(
            PEER,
            "http://127.0.0.1:9",  # nothing listens: the items stay queued
            (KeyEntry(PEER, key(5).public_key),),
            PeerPolicy(network=PEER, speaks_for=("fips:06037",)),
        )
        await node.db.write(lambda conn: trust.save_peer(conn, record, clock()))
        await node.reload_trust()
        ids = []
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {token}"}
            for _ in range(3):
                async with http.post(f"{url}/api/v1/alerts", json=DRAFT, headers=headers) as r:
                    assert r.status == 201
                    ids.append((await r.json())["id"])
            async with http.post(
                f"{url}/api/v1/alerts/{ids[2]}/cancel",
                json={"text": {"en": {"headline": "Mistaken", "body": ""}}},
                headers=headers,
            ) as r:
                assert r.status == 201
                cancel_id = (await r.json())["id"]

        def poison(conn: sqlite3.Connection) -> None:
            now = clock()
            rows = conn.execute(
                "SELECT n, alert_id FROM outbox WHERE peer = ? AND alert_id IN (?, ?, ?)",
                (PEER, *ids),
            ).fetchall()
            for n, alert_id in rows:
                outbox.quarantine(
                    conn, PEER, outbox.Queued(n, alert_id, b"", "alert"), "HTTP 400", now
                )

        await node.db.write(poison)
    finally:
        await runner.cleanup()
        await node.stop()
    assert set(_queued(data)) == {cancel_id}

    code, out = _run(capsys, "outbox", "list", "--data", str(data), "--json")
    assert code == 0
    listed = json.loads(out)["quarantined"]
    assert {(i["peer"], i["alert_id"], i["reason"]) for i in listed} == {
        (PEER, alert_id, "HTTP 400") for alert_id in ids
    }
    states = {i["alert_id"]: i["state"] for i in listed}
    assert states == {ids[0]: "active", ids[1]: "active", ids[2]: "cancelled"}

    code, out = _run(capsys, "outbox", "release", PEER, ids[0], "--data", str(data))
    assert code == 0 and "back in the queue" in out
    assert set(_queued(data)) == {cancel_id, ids[0]}
    code, out = _run(capsys, "outbox", "release", PEER, ids[2], "--data", str(data))
    assert code == 1 and "cancelled: not released" in out
    code, out = _run(capsys, "outbox", "release", "oc", ids[1], "--data", str(data))
    assert code == 1 and "not quarantined for oc" in out
    code, out = _run(capsys, "outbox", "release", PEER, "--all", "--data", str(data))
    assert code == 0 and out.count("back in the queue") == 1
    assert set(_queued(data)) == {cancel_id, ids[0], ids[1]}
    code, out = _run(capsys, "outbox", "list", "--data", str(data))
    assert ids[2] in out and ids[0] not in out and ids[1] not in out
