"""STOP means stop (issue 25, hole 5), through a real Kannel with fakesmsc as the phones.

The tester's case: a number texts a report, then STOP; the desk verifies and
publishes the report, and the reporter was texted the desk's thanks anyway.
Now, after STOP, the number gets nothing at all (no alert, no receipt, no
answer to HELP or to a keyword, no acknowledgement of a new report) until it
texts START; its open tips lose their sealed contact at once; the opted-out
set holds keyed hashes only. A carrier's opt-out counts as a STOP.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridges.sms.inbound import HASH_PURPOSE
from relay.core.model import Area, Text
from relay.core.tipdrafts import TipDraft
from relay.core.tips import TipIn, Where
from relay.runtime.clock import FakeClock
from tests.helpers import wait_for
from tests.sms.kit import PHONE, SHORT_CODE, Line, need_kannel, start_line

OTHER = "+18055550199"
DRAFT = TipDraft(
    kind="sighting",
    area=Area(label="Calle Cooper", geohash="9q4gch", radius_m=300, codes=["fips:06111"]),
    text={"es": Text(headline="ICE en la calle Cooper", body="Verificado.")},
    expires_in="2h",
)


@pytest.fixture
async def line(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Line]:
    need_kannel()
    started = await start_line(tmp_path, clock)
    try:
        yield started
    finally:
        await started.stop()


def rows(line: Line, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(line.node.db.path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def handled(line: Line, outcome: str, count: int = 1) -> None:
    """Wait until the line has handled ``count`` texts with ``outcome`` (no reply to wait on)."""
    await wait_for(
        lambda: line.sms.stats.inbound.get(outcome, 0) >= count,
        timeout=20,
        what=f"{count} x {outcome}: {line.sms.stats.inbound}",
    )


async def confirm_and_publish(line: Line, tip_id: str) -> None:
    desk = line.node.desk
    await desk.claim(tip_id, "ana")
    await desk.outcome(tip_id, "ana", "confirmed")
    await desk.publish(tip_id, "luis", DRAFT)


async def test_after_stop_nothing_until_start(line: Line) -> None:
    phones = line.phones
    assert phones is not None
    phones.send(PHONE, SHORT_CODE, "ALERTA")
    phones.send(PHONE, SHORT_CODE, "Dos camionetas de ICE en la calle Cooper")
    welcome, ack = await phones.wait_for(2, to=PHONE)
    assert welcome.text.startswith("Avisa: suscrito") and ack.text.startswith("Avisa: recibimos")
    (tip,) = await line.node.desk.listing()
    assert rows(line, "SELECT count(*) FROM tips WHERE contact IS NOT NULL") == [(1,)]

    phones.send(PHONE, SHORT_CODE, "STOP")
    *_, bye = await phones.wait_for(3, to=PHONE)
    assert bye.text.startswith("Avisa: ya no recibira mensajes")
    # Its open tip lost the sealed contact at once; the opted-out set is one keyed hash.
    assert rows(line, "SELECT count(*) FROM tips WHERE contact IS NOT NULL") == [(0,)]
    (hashed,) = rows(line, "SELECT hash FROM sms_optout")
    assert hashed[0] == line.sms.sealer.keyed_hash(PHONE.encode(), HASH_PURPOSE)

    # The desk publishes the report: the alert goes out, the reporter hears nothing.
    await confirm_and_publish(line, tip.id)
    # A hotline volunteer files another report with the same number: no receipt either.
    hotline = await line.node.desk.submit(
        TipIn(text="ICE otra vez", where=Where(label="Cooper"), channel="hotline"),
        contact=PHONE,
    )
    await confirm_and_publish(line, hotline)
    for text in ("HELP", "ALERTA", "STOP", "Hay ICE en la quinta"):
        phones.send(PHONE, SHORT_CODE, text)
    await handled(line, "help_opted_out")
    await handled(line, "subscribe_opted_out")
    await handled(line, "stop_opted_out")
    await handled(line, "tip_opted_out")
    newest = (await line.node.desk.listing())[0]
    assert newest.text == "Hay ICE en la quinta"  # the report still reached the desk
    assert rows(line, "SELECT count(*) FROM tips WHERE contact IS NOT NULL") == [(0,)]
    phones.send(OTHER, SHORT_CODE, "HELP")  # queued after all the above: something to wait on
    await phones.wait_for(1, to=OTHER)
    await line.wait_counts(lambda c: c["queued"] == 0 and c["sending"] == 0)
    assert len(phones.messages(to=PHONE)) == 3  # welcome, ack, the one STOP confirmation
    counts = await line.counts()
    assert counts["subscribers"] == 0 and counts["opted_out"] == 1
    counters = line.node.desk.counters
    assert counters[("replied", "")] == 0 and counters[("reply_failed", "BadInput")] == 1

    phones.send(PHONE, SHORT_CODE, "START")
    *_, back = await phones.wait_for(4, to=PHONE)
    assert back.text.startswith("Avisa:") and rows(line, "SELECT * FROM sms_optout") == []
    await line.publish()
    *_, alert = await phones.wait_for(5, to=PHONE)
    assert alert.text.startswith("CONFIRMED ALERT: Sighting.")  # START is English


async def test_a_carrier_opt_out_is_a_stop(line: Line) -> None:
    """Kannel reports the number as blocked: unsubscribed, opted out, contact forgotten."""
    phones = line.phones
    assert phones is not None
    phones.send(PHONE, SHORT_CODE, "ALERTA")
    phones.send(PHONE, SHORT_CODE, "Hay ICE en la calle Cooper")
    await phones.wait_for(2, to=PHONE)
    (tip,) = await line.node.desk.listing()
    (queue_id,) = rows(line, "SELECT min(id) FROM sms_queue")
    report = f"/sms/v1/kannel/{line.sms.gateway_secret}/report"
    query = {"ref": str(queue_id[0]), "status": "16", "reply": "NACK/0x0000000b/blocked"}
    async with line.http.get(line.url + report, params=query) as answer:
        assert answer.status == 200
    assert rows(line, "SELECT count(*) FROM sms_optout") == [(1,)]
    assert rows(line, "SELECT count(*) FROM tips WHERE contact IS NOT NULL") == [(0,)]
    await confirm_and_publish(line, tip.id)
    phones.send(PHONE, SHORT_CODE, "AYUDA")
    await handled(line, "help_opted_out")
    phones.send(OTHER, SHORT_CODE, "HELP")
    await phones.wait_for(1, to=OTHER)
    await line.wait_counts(lambda c: c["queued"] == 0 and c["sending"] == 0)
    assert len(phones.messages(to=PHONE)) == 2 and line.sms.stats.opted_out == 1
