"""The desk of a real node (real SQLite, fake clock): tips in, states, bounds, expiry, purge.

These drive ``node.desk`` directly, as the SMS and CAP bridges will; the HTTP
face is in ``tests/test_desk_api.py``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from relay.core.errors import BadInput, Conflict
from relay.core.tipdrafts import TipDraft
from relay.core.tips import TipIn, Where
from relay.runtime.clock import FakeClock
from relay.runtime.httpio import status_for
from relay.runtime.node import Node
from relay.storage import db, trust
from relay.storage.sealkey import SEAL_KEY_NAME
from tests.conftest import RunningNode, start_node
from tests.helpers import T0

PHONE = "(805) 555-0143"
E164 = b"+18055550143"


def tip(text: str = "dos camionetas en el parque", geohash: str | None = "9q4gch", **kw: object):  # type: ignore[no-untyped-def]
    return TipIn(text=text, where=Where(label="Colonia park", geohash=geohash), **kw)  # type: ignore[arg-type]


def raw_rows(node_db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(node_db)
    try:
        return conn.execute("SELECT * FROM tips").fetchall()
    finally:
        conn.close()


async def test_submit_seals_the_contact_and_never_shows_it(running: RunningNode) -> None:
    desk = running.node.desk
    assert (running.data_dir / SEAL_KEY_NAME).stat().st_mode & 0o777 == 0o600
    tip_id = await desk.submit(tip(channel="sms"), contact=PHONE)
    shown = await desk.get(tip_id)
    assert (shown.state, shown.channel, shown.number) == ("new", "sms", 1)
    assert "contact" not in repr(shown) and "805" not in repr(shown)
    (row,) = raw_rows(running.node.db.path)
    assert all(E164 not in bytes(v) for v in row if isinstance(v, bytes))
    assert all("5550143" not in v for v in row if isinstance(v, str))
    with pytest.raises(BadInput) as bad:
        await desk.submit(tip(), contact="call me maybe")
    assert bad.value.errcode == "AVISA_BAD_PHONE"
    assert len(raw_rows(running.node.db.path)) == 1


async def test_the_same_number_is_one_reporter(running: RunningNode) -> None:
    desk = running.node.desk
    await desk.submit(tip(), contact=PHONE)
    await desk.submit(tip(), contact="+1 805 555 0143")
    await desk.submit(tip(channel="web"), reporter=b"form-token-hash-1")
    listed = await desk.listing(cluster=True)
    assert {t.cluster.id for t in listed if t.cluster} == {listed[-1].id}
    cluster = listed[0].cluster
    assert cluster is not None
    assert (cluster.tips, cluster.reporters, cluster.channels) == (3, 2, ["hotline", "web"])


async def test_source_ref_is_unique_and_drives_updates(running: RunningNode) -> None:
    desk = running.node.desk
    first = await desk.submit(tip(channel="cap"), source_ref="sender@example,ID-1")
    again = await desk.submit(tip("other", channel="cap"), source_ref="sender@example,ID-1")
    assert again == first and len(await desk.listing()) == 1
    assert await desk.update_from_source("sender@example,ID-1", tip("three vans now"))
    assert (await desk.get(first)).text == "three vans now"
    assert not await desk.update_from_source("nobody,X", tip())
    assert await desk.close_from_source("sender@example,ID-1", "cancelled by sender")
    assert not await desk.close_from_source("sender@example,ID-1", "again")
    assert not await desk.update_from_source("sender@example,ID-1", tip())
    shown = await desk.get(first)
    assert shown.state == "closed"
    assert [e.action for e in shown.history] == ["update", "close"]


async def test_workflow_and_two_person_rule(tmp_path: Path, clock: FakeClock) -> None:
    node, runner, _, _ = await start_node(tmp_path, clock)
    try:
        desk = node.desk
        desk.section = msgspec.structs.replace(desk.section, confirmations=2)
        tip_id = await desk.submit(tip())
        number = str((await desk.get(tip_id)).number)
        with pytest.raises(Conflict) as early:
            await desk.outcome(number, "ana", "confirmed")
        assert early.value.errcode == "AVISA_NOT_CLAIMED"
        await desk.claim(number, "ana", "on my way")
        await desk.outcome(number, "ana", "confirmed", "two vans")
        with pytest.raises(Conflict) as one:
            await desk.publish(number, "pat", TipDraft())
        assert one.value.errcode == "AVISA_NEEDS_CONFIRMATION"
        shown = await desk.outcome(number, "ben", "confirmed")
        assert shown.confirmations == 2
        alert_id, _ = await desk.publish(number, "pat", TipDraft())
        shown = await desk.get(tip_id)
        assert (shown.state, shown.alert_id) == ("published", alert_id)
        with pytest.raises(Conflict):
            await desk.publish(number, "pat", TipDraft())
        alerts = await node.db.read(lambda c: c.execute("SELECT id FROM alerts").fetchall())
        assert [row[0] for row in alerts] == [alert_id]
    finally:
        await runner.cleanup()
        await node.stop()


async def test_publishing_a_tip_is_one_transaction(
    running: RunningNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while the tip is marked published takes the signed alert back with it:
    never an alert whose tip still looks publishable (it could be published twice)."""
    from relay.storage import tips as tip_store

    desk, node = running.node.desk, running.node
    tip_id = await desk.submit(tip(), contact=PHONE)
    await desk.claim(tip_id, "ana")
    await desk.outcome(tip_id, "ana", "confirmed")
    head = node.feed.head
    real_record = tip_store.record

    def fail_on_publish(conn, tip_id, event, state=None):  # type: ignore[no-untyped-def]
        if state == "published":
            raise sqlite3.OperationalError("disk I/O error")
        return real_record(conn, tip_id, event, state)

    monkeypatch.setattr(tip_store, "record", fail_on_publish)
    with pytest.raises(sqlite3.OperationalError):
        await desk.publish(tip_id, "pat", TipDraft())
    alerts = await node.db.read(lambda c: c.execute("SELECT count(*) FROM alerts").fetchone())
    assert alerts == (0,) and node.feed.head == head
    assert (await desk.get(tip_id)).state == "confirmed"

    monkeypatch.setattr(tip_store, "record", real_record)
    alert_id, _ = await desk.publish(tip_id, "pat", TipDraft())
    ids = await node.db.read(lambda c: c.execute("SELECT id FROM alerts").fetchall())
    assert ids == [(alert_id,)] and (await desk.get(tip_id)).alert_id == alert_id


async def test_reply_goes_to_the_reporter_once_then_the_contact_is_gone(
    running: RunningNode,
) -> None:
    desk = running.node.desk
    sent: list[tuple[str, str, str]] = []

    async def send(number: str, language: str, text: str) -> None:
        sent.append((number, language, text))

    desk.reply_sender = send
    tip_id = await desk.submit(tip(language="en"), contact=PHONE)
    await desk.claim(tip_id, "ana")
    await desk.outcome(tip_id, "ana", "false_alarm")
    await desk.publish(tip_id, "pat", TipDraft())
    assert sent == [("+18055550143", "en", sent[0][2])] and "false rumor" in sent[0][2]
    (row,) = await running.node.db.read(lambda c: c.execute("SELECT contact FROM tips").fetchall())
    assert row == (None,)


async def test_open_tips_are_bounded_oldest_unclaimed_first(running: RunningNode) -> None:
    desk = running.node.desk
    desk.section = msgspec.structs.replace(desk.section, max_open_tips=10)
    ids = []
    for n in range(10):
        ids.append(await desk.submit(tip(f"tip {n}")))
        running.node.clock.advance(timedelta(seconds=1))  # type: ignore[attr-defined]
    await desk.claim(ids[0], "ana")
    await desk.submit(tip("one more"))
    assert (await desk.get(ids[0])).state == "claimed"
    assert (await desk.get(ids[1])).state == "closed"
    assert len(await desk.listing()) == 10
    for tip_id in ids[2:]:
        await desk.claim(tip_id, "ana")
    newest = (await desk.listing())[0]
    await desk.claim(newest.id, "ana")
    with pytest.raises(BadInput) as full:
        await desk.submit(tip("no room"))
    assert (full.value.errcode, status_for(full.value)) == ("AVISA_DESK_FULL", 429)
    metrics = "\n".join(desk.metrics_lines())
    assert 'event="expired",detail="desk_full"} 1' in metrics


async def test_expiry_and_purge_follow_the_clock(running: RunningNode, clock: FakeClock) -> None:
    node = running.node
    desk = node.desk
    kept = await desk.submit(tip("published one"))
    await desk.claim(kept, "ana")
    await desk.outcome(kept, "ana", "confirmed")
    await desk.publish(kept, "pat", TipDraft())
    lapsed = await desk.submit(tip("nobody came"), contact=PHONE)
    clock.advance("11h")
    await node.purge_once()
    assert (await desk.get(lapsed)).state == "new"
    clock.advance("1h")
    await node.purge_once()
    shown = await desk.get(lapsed)
    assert shown.state == "closed" and shown.history[-1].action == "expire"
    assert (await desk.get(kept)).state == "published"
    clock.advance("7d")
    await node.purge_once()
    assert await desk.listing(open_only=False) == []
    count = await node.db.read(lambda c: c.execute("SELECT count(*) FROM tip_history").fetchone())
    assert count == (0,)


async def test_tokens_hold_several_roles_and_old_tokens_keep_theirs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = db.connect(path)
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY)")
    for name, sql in db.MIGRATIONS:
        if name == "0400_desk":
            break
        for statement in db._statements(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?)", (name,))
    conn.execute(
        "INSERT INTO tokens (hash, role, label, created_at) VALUES (?, 'reviewer', 'old', 0)",
        (trust.token_hash("avisa_old"),),
    )
    assert "0400_desk" in db.migrate(conn)
    tokens = trust.load_tokens(conn)
    assert trust.roles_for("avisa_old", tokens) == frozenset({"reviewer"})
    both = db.transaction(
        conn, lambda c: trust.add_token(c, trust.parse_roles("intake,verifier"), "desk", T0)
    )
    tokens = trust.load_tokens(conn)
    assert trust.roles_for(both, tokens) == frozenset({"intake", "verifier"})
    assert trust.roles_for("avisa_nope", tokens) is None
    assert [t.role for t in trust.list_tokens(conn)] == ["reviewer", "intake,verifier"]
    with pytest.raises(BadInput):
        trust.parse_roles("intake,boss")
    conn.close()


async def test_an_older_data_dir_gets_its_desk_key_on_first_start(
    tmp_path: Path, clock: FakeClock
) -> None:
    node, runner, _, _ = await start_node(tmp_path, clock)
    data_dir = node.data_dir
    await runner.cleanup()
    await node.stop()
    (data_dir / SEAL_KEY_NAME).unlink()
    fresh = Node.load(data_dir, clock)
    try:
        assert (data_dir / SEAL_KEY_NAME).stat().st_mode & 0o777 == 0o600
        tip_id = await fresh.desk.submit(tip(), contact=PHONE)
        assert (await fresh.desk.get(tip_id)).state == "new"
    finally:
        await fresh.stop()


async def test_a_tips_history_is_bounded(running: RunningNode) -> None:
    from relay.storage.tips import MAX_HISTORY

    desk = running.node.desk
    tip_id = await desk.submit(tip())
    for _ in range(MAX_HISTORY):
        await desk.claim(tip_id, "ana")
    with pytest.raises(Conflict) as busy:
        await desk.claim(tip_id, "ana")
    assert busy.value.errcode == "AVISA_TIP_BUSY"
    assert (await desk.close(tip_id, "ana")).state == "closed"


async def test_every_tip_change_advances_the_desk_signal(
    running: RunningNode, clock: FakeClock
) -> None:
    desk, node = running.node.desk, running.node

    async def advances(change: Awaitable[object]) -> int:
        """By how much ``change`` moved the signal; one who waited on it woke."""
        before = desk.changes.head
        waiting = asyncio.create_task(desk.changes.wait_beyond(before, 30))
        try:
            await change
        finally:
            if desk.changes.head == before:
                waiting.cancel()
        if desk.changes.head == before:
            return 0
        assert await asyncio.wait_for(waiting, 5)
        return desk.changes.head - before

    ref = "sender@example,ID-7"
    assert await advances(desk.submit(tip(channel="cap"), source_ref=ref)) == 1
    tip_id = (await desk.listing())[0].id
    assert await advances(desk.submit(tip(channel="cap"), source_ref=ref)) == 0  # known
    assert await advances(desk.update_from_source("nobody,X", tip())) == 0
    with pytest.raises(BadInput):
        await advances(desk.submit(tip(), contact="call me maybe"))
    assert await advances(desk.update_from_source(ref, tip("three vans now"))) == 1
    assert await advances(desk.claim(tip_id, "ana")) == 1
    assert await advances(desk.outcome(tip_id, "ana", "confirmed")) == 1
    assert await advances(desk.publish(tip_id, "pat", TipDraft())) == 1
    assert await advances(desk.close_from_source(ref, "cancelled by sender")) == 0  # published
    other = await desk.submit(tip("nobody came"))
    assert await advances(desk.close(other, "ana", "seen")) == 1
    lapsed = await desk.submit(tip("lapses"))
    clock.advance("12h")
    assert await advances(node.purge_once()) == 1
    assert (await desk.get(lapsed)).state == "closed"
    assert await advances(node.purge_once()) == 0  # nothing expired or purged
