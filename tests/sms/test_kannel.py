"""The text line against a real Kannel: MO through fakesmsc, MT read back from it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridges.sms.localkannel import FakeSmsc
from relay.core.model import Area, Text
from relay.core.tipdrafts import TipDraft
from relay.runtime.clock import FakeClock
from tests.helpers import wait_for
from tests.sms.kit import (
    PHONE,
    SHORT_CODE,
    Line,
    need_kannel,
    start_line,
)

OTHER = "+18055550199"


@pytest.fixture
async def line(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Line]:
    need_kannel()
    started = await start_line(tmp_path, clock)
    try:
        yield started
    finally:
        await started.stop()


async def test_subscribe_alert_stop_through_kannel(line: Line) -> None:
    phones = line.phones
    assert phones is not None
    phones.send(PHONE, SHORT_CODE, "alerta")
    (welcome,) = await phones.wait_for(1, to=PHONE)
    assert welcome.sender == SHORT_CODE and welcome.receiver == PHONE
    assert welcome.text.startswith("Avisa: suscrito") and welcome.coding == "text"
    counts = await line.counts()
    assert counts["subscribers"] == 1
    assert counts["by_keyword"] == [{"keyword": "ALERTA", "lang": "es", "count": 1}]

    await line.publish()
    _, alert = await phones.wait_for(2, to=PHONE)
    assert alert.text.startswith("ALERTA CONFIRMADA: Avistamiento. ICE en el parque Colonia")
    assert "Zona: Colonia, Oxnard" in alert.text and alert.coding == "text"

    phones.send(PHONE, SHORT_CODE, "Alto")
    *_, bye = await phones.wait_for(3, to=PHONE)
    assert bye.text.startswith("Avisa: ya no recibira mensajes")
    await line.wait_counts(lambda c: c["subscribers"] == 0 and c["queued"] == 0)
    await line.publish()
    phones.send(OTHER, SHORT_CODE, "HELP")  # something after the alert, to wait on
    await phones.wait_for(1, to=OTHER)
    assert len(phones.messages(to=PHONE)) == 3  # no alert after STOP, one confirmation


async def test_english_help_tip_and_accents(line: Line) -> None:
    phones = line.phones
    assert phones is not None
    phones.send(OTHER, SHORT_CODE, "HELP")
    (help_text,) = await phones.wait_for(1, to=OTHER)
    assert "Text ALERT to subscribe" in help_text.text
    phones.send(OTHER, SHORT_CODE, "Ayúda")
    _, ayuda = await phones.wait_for(2, to=OTHER)
    assert ayuda.text.startswith("Avisa: alertas verificadas") and "ALERTA" in ayuda.text

    phones.send(OTHER, SHORT_CODE, "Dos camionetas de ICE en la calle Cooper")
    *_, ack = await phones.wait_for(3, to=OTHER)
    assert ack.text.startswith("Avisa: recibimos su reporte")
    (tip,) = await line.node.desk.listing()
    assert tip.channel == "sms" and tip.language == "es" and tip.where.label == "SMS"
    assert tip.text == "Dos camionetas de ICE en la calle Cooper"
    # The desk verifies and publishes it: the reporter gets the desk's thanks by text.
    desk = line.node.desk
    await desk.claim(tip.id, "ana")
    await desk.outcome(tip.id, "ana", "confirmed")
    area = Area(label="Calle Cooper", geohash="9q4gch", radius_m=300, codes=["fips:06111"])
    text = {"es": Text(headline="ICE en la calle Cooper", body="Verificado.")}
    await desk.publish(
        tip.id, "luis", TipDraft(kind="sighting", area=area, text=text, expires_in="2h")
    )
    *_, thanks = await phones.wait_for(4, to=OTHER)
    assert thanks.text == "Avisa: gracias por su reporte. Lo verificamos y enviamos una alerta."
    assert len(phones.messages(to=OTHER)) == 4  # not a subscriber: no alert text

    phones.send(PHONE, SHORT_CODE, "ALERT")
    await phones.wait_for(1, to=PHONE)
    es = {"headline": "Redada en Oxnard", "body": "Más información pronto."}
    await line.publish(text={"es": es})
    _, alert = await phones.wait_for(2, to=PHONE)
    assert alert.coding == "ucs-2" and "Más información pronto." in alert.text


async def test_cancel_only_to_recipients_and_reports_recorded(line: Line) -> None:
    phones = line.phones
    assert phones is not None
    far = "+18055550111"
    phones.send(PHONE, SHORT_CODE, "ALERT")
    phones.send(far, SHORT_CODE, "ALERTA 93101")  # narrowed to a ZIP elsewhere
    await phones.wait_for(1, to=PHONE)
    (narrowed,) = await phones.wait_for(1, to=far)
    assert narrowed.text.startswith("Avisa: suscrito")
    alert_id = await line.publish()
    _, original = await phones.wait_for(2, to=PHONE)
    assert original.text.startswith("CONFIRMED ALERT: Sighting. ICE at Colonia park")
    await line.cancel(alert_id)
    *_, cancel = await phones.wait_for(3, to=PHONE)
    assert cancel.text.startswith("CANCELLED: False alarm")
    late = "+18055550122"
    phones.send(late, SHORT_CODE, "ALERT")  # subscribed after the original: no cancel
    await phones.wait_for(1, to=late)
    counts = await line.wait_counts(lambda c: c["delivered"] == 5 and c["sent"] == 0)
    assert counts["failed"] == 0 and counts["queued"] == 0
    assert len(phones.messages(to=far)) == 1 and len(phones.messages(to=late)) == 1
    status, body = await line.call("GET", "/api/v1/sms")
    assert status == 200 and body["subscribers"] == 3 and body["delivered"] == 5
    assert "805555" not in str(body)  # counts only, never a number


async def test_gateway_down_backs_off_then_delivers(tmp_path: Path, clock: FakeClock) -> None:
    need_kannel()
    line = await start_line(tmp_path, clock, extra='retry_max = "2s"')
    try:
        assert line.phones is not None and line.kannel is not None
        line.phones.send(PHONE, SHORT_CODE, "ALERT")
        await line.phones.wait_for(1, to=PHONE)
        line.phones.stop()
        line.kannel.stop()
        await line.publish()
        await wait_for(lambda: line.sms.stats.retried >= 2, timeout=20, what="retries")
        counts = await line.counts()
        assert counts["queued"] + counts["sending"] == 1 and counts["failed"] == 0
        await asyncio.to_thread(line.kannel.start)
        line.phones = FakeSmsc(line.kannel)
        (alert,) = await line.phones.wait_for(1, to=PHONE, timeout=30)
        assert alert.text.startswith("CONFIRMED ALERT: Sighting.")
        assert "kannel unreachable" in str(line.sms.status()["last_error"])
    finally:
        await line.stop()
