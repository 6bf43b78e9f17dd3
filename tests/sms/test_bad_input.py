"""Bad input at the text line's webhooks: each answered as documented, no 5xx, nothing else changed.

These post exactly what Kannel's ``sms-service`` would (``post-url``), since
fakesmsc cannot produce every case (it reads 256-byte lines); the node's
gateway points at a closed port, so nothing leaves and the queue shows what
would have.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay.runtime.clock import FakeClock
from tests.helpers import wait_for
from tests.sms.kit import PHONE, SECRET, Line, start_line


@pytest.fixture
async def line(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Line]:
    started = await start_line(tmp_path, clock, with_kannel=False)
    try:
        yield started
    finally:
        await started.stop()


def snapshot(line: Line) -> dict[str, Any]:
    conn = sqlite3.connect(line.node.db.path)
    try:
        # the queue's delivery columns move on their own (the gateway is down): not compared
        queries = {
            "sms_subscribers": "SELECT hash, keyword, lang, areas FROM sms_subscribers",
            "sms_queue": "SELECT id, hash, message_id, root_id FROM sms_queue",
            "sms_messages": "SELECT * FROM sms_messages",
            "sms_mo": "SELECT * FROM sms_mo",
        }
        return {
            table: conn.execute(sql + " ORDER BY 1").fetchall() for table, sql in queries.items()
        }
    finally:
        conn.close()


async def tips(line: Line) -> list[Any]:
    return list(reversed(await line.node.desk.listing()))  # oldest first


async def test_wrong_secret_is_a_plain_404_and_changes_nothing(line: Line) -> None:
    before = snapshot(line)
    status, body = await line.mo(b"ALERTA", secret="wrong-secret")
    async with line.http.post(f"{line.url}/no/such/path") as unknown:
        assert status == unknown.status == 404 and body == await unknown.read()
    for path in (
        f"/sms/v1/kannel/{SECRET}x",
        f"/sms/v1/twilio/{SECRET}",
        f"/sms/v1/kannel/{SECRET[:-1]}/report?ref=1&status=1",
    ):
        async with line.http.post(line.url + path, data=b"ALERTA") as r:
            assert r.status == 404
    assert snapshot(line) == before


async def test_a_replayed_mo_id_is_answered_once(line: Line) -> None:
    status, _ = await line.mo(b"ALERTA", mo_id="same")
    assert status == 200
    after_first = snapshot(line)
    status, _ = await line.mo(b"ALERTA", mo_id="same")
    assert status == 200 and snapshot(line) == after_first
    status, _ = await line.mo(b"STOP", mo_id="same")
    assert status == 200 and snapshot(line) == after_first  # the id decides, not the text
    assert len(after_first["sms_queue"]) == 1 and len(after_first["sms_subscribers"]) == 1


async def test_odd_number_formats_are_one_subscriber_or_refused(line: Line) -> None:
    for n, sender in enumerate(
        ["+18055550134", "18055550134", "(805) 555-0134", "+1 805 555 0134", "8055550134"]
    ):
        status, _ = await line.mo(b"ALERTA", sender=sender, mo_id=f"f{n}")
        assert status == 200, sender
    counts = await line.counts()
    assert counts["subscribers"] == 1
    before = snapshot(line)
    for n, sender in enumerate(["abc", "123", "+", "9" * 80, "24587"]):
        status, body = await line.mo(b"ALERTA", sender=sender, mo_id=f"bad{n}")
        assert status == 400 and b"AVISA_BAD_PHONE" in body and sender.encode() not in body
    for query in (
        {"to": "24587", "id": "x"},
        {"from": PHONE, "to": "24587"},
        {"from": PHONE, "id": "i" * 101},
    ):
        async with line.http.post(
            f"{line.url}/sms/v1/kannel/{SECRET}", params=query, data=b"HELP"
        ) as r:
            assert r.status == 400 and (await r.json())["errcode"] == "AVISA_BAD_SMS"
    assert snapshot(line) == before


async def test_long_binary_udh_and_invalid_utf8(line: Line) -> None:
    text = ("Hay dos camionetas blancas sin placas en la calle Cooper y la quinta. " * 30)[:1600]
    status, _ = await line.mo(text.encode(), mo_id="long")
    assert status == 200
    (tip,) = await tips(line)
    assert len(tip.text) == 1600 and tip.channel == "sms"
    before = snapshot(line)
    for n, headers in enumerate(
        [
            {"X-Kannel-Coding": "1"},
            {"X-Kannel-UDH": "%05%00%03%01%02%01"},
            {"Content-Type": "application/octet-stream"},
        ]
    ):
        status, _ = await line.mo(
            b"\x05\x00\x03\x01\x02\x01\xff\xfe binary", mo_id=f"bin{n}", headers=headers
        )
        assert status == 200
    after = snapshot(line)
    assert (
        after["sms_subscribers"] == before["sms_subscribers"]
        and after["sms_queue"] == before["sms_queue"]
    )
    assert len(after["sms_mo"]) == len(before["sms_mo"]) + 3 and len(await tips(line)) == 1
    status, _ = await line.mo(
        b"ALTO\xff\xfe\xfd", mo_id="bad-utf8-stop"
    )  # the keyword still counts
    status2, _ = await line.mo(b"\xc3\x28\xa0\xa1 ICE aqui", mo_id="bad-utf8-tip")
    assert status == status2 == 200
    newest = (await tips(line))[-1]
    assert newest.text.endswith(" ICE aqui") and "\ufffd" in newest.text
    status, body = await line.mo(b"x" * 9000, mo_id="huge")
    assert status == 413 and b"AVISA_TOO_LARGE" in body
    status, body = await line.mo(
        "Ayuda 🚨".encode("utf-16-be"),
        mo_id="ucs2",
        headers={"Content-Type": "text/plain; charset=UTF-16BE"},
    )
    assert status == 200


async def test_unknown_words_get_help_when_tips_are_off(tmp_path: Path, clock: FakeClock) -> None:
    line = await start_line(tmp_path, clock, with_kannel=False, extra="tips = false")
    try:
        status, _ = await line.mo(b"PIZZA", mo_id="p1")
        assert status == 200 and await tips(line) == []
        conn = sqlite3.connect(line.node.db.path)
        (body,) = conn.execute(
            "SELECT m.body FROM sms_queue q JOIN sms_messages m ON m.id = q.message_id"
        ).fetchone()
        conn.close()
        assert body.startswith("Avisa: alertas verificadas") and "reporte" not in body
    finally:
        await line.stop()


async def test_delivery_reports_for_unknown_messages(line: Line) -> None:
    before = snapshot(line)
    base = f"{line.url}/sms/v1/kannel/{SECRET}/report"
    for query, code, errcode in [
        ("?ref=abc&status=1", 400, "AVISA_BAD_DLR"),
        ("?ref=1", 400, "AVISA_BAD_DLR"),
        ("?ref=" + "9" * 30 + "&status=1", 400, "AVISA_BAD_DLR"),
    ]:
        async with line.http.get(base + query) as r:
            assert r.status == code and (await r.json())["errcode"] == errcode
    async with line.http.get(base + "?ref=999&status=1") as r:  # 200: Kannel must not retry
        assert r.status == 200 and await r.text() == "unknown"
    assert snapshot(line) == before


async def test_numbers_stay_sealed_and_out_of_the_api(
    line: Line, capsys: pytest.CaptureFixture[str]
) -> None:
    await line.mo(b"ALERTA", mo_id="s1")
    await line.mo(b"hay ICE", mo_id="s2")
    status, body = await line.call("GET", "/api/v1/sms")
    assert status == 200 and body["subscribers"] == 1
    status, bridges = await line.call("GET", "/api/v1/bridges")
    raw = line.node.db.path.read_bytes() + Path(str(line.node.db.path) + "-wal").read_bytes()
    for shown in (str(body), str(bridges), capsys.readouterr().out, raw.decode("latin-1")):
        assert "8055550134" not in shown and "805555" not in shown


async def test_old_rows_are_purged(line: Line, clock: FakeClock) -> None:
    await line.mo(b"ALERTA", mo_id="old-1")
    await line.mo(b"HELP", sender="+18055550199", mo_id="old-2")
    conn = sqlite3.connect(line.node.db.path)
    conn.execute("UPDATE sms_queue SET state = 'delivered'")  # as delivery reports would
    conn.commit()
    conn.close()
    clock.advance("15d")  # past max_lifetime + retention
    line.sms.follower._next_purge = clock()  # due now, instead of in ten minutes

    def left() -> list[int]:
        conn = sqlite3.connect(line.node.db.path)
        try:
            return [
                conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("sms_queue", "sms_messages", "sms_mo", "sms_subscribers")
            ]
        finally:
            conn.close()

    await wait_for(lambda: left() == [0, 0, 0, 1], timeout=10, what="the purge")


async def test_answers_to_one_number_are_bounded(line: Line, clock: FakeClock) -> None:
    for n in range(9):
        status, _ = await line.mo(b"HELP", mo_id=f"loop-{n}")
        assert status == 200
    status, _ = await line.mo(b"STOP", mo_id="loop-stop")
    assert status == 200
    conn = sqlite3.connect(line.node.db.path)
    bodies = [
        b
        for (b,) in conn.execute(
            "SELECT m.body FROM sms_queue q JOIN sms_messages m ON m.id = q.message_id"
            " ORDER BY q.id"
        )
    ]
    conn.close()
    # STOP deleted what was queued for the number, then queued its one confirmation
    assert len(bodies) == 1 and bodies[0].startswith("Avisa: you will get no more")
    assert line.sms.stats.inbound.get("help_unanswered") == 3
    clock.advance("61m")
    status, _ = await line.mo(b"HELP", mo_id="loop-later")  # STOP means stop (issue 25)
    assert status == 200 and line.sms.stats.inbound.get("help_opted_out") == 1
    await line.mo(b"START", mo_id="loop-start")
    status, _ = await line.mo(b"HELP", mo_id="loop-later-2")
    assert status == 200 and line.sms.stats.inbound.get("help") == 7


async def test_texts_over_the_senders_cap_are_refused_quietly(
    line: Line, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 25: a flood of texted reports past ``[desk] tips_per_sender_hour`` (3) files
    three tips and answers the rest as accepted, with no traceback in the node's log."""
    for n in range(8):
        status, _ = await line.mo(f"Camioneta en la esquina {n}".encode(), mo_id=f"flood-{n}")
        assert status == 200
    assert len(await tips(line)) == 3
    logged = capsys.readouterr()
    assert "Traceback" not in logged.err + logged.out
    assert "the desk refused a texted tip" in logged.err + logged.out
